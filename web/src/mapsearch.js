// The search box over every map (GET /api/v1/search) and the toggle of the tenant's optional external base layers
// (GET /api/v1/map/layers). Kept apart from map.js, which only calls addMapSearch and addBaseLayers.
import { api, get, ApiError } from "./api.js";
import { h } from "./dom.js";
import { t, problemMessage } from "./i18n.js";
import "./mapsearch.css";

const HIT = "search-hit";

function describe(r) {
  const kind = r.kind === "road" && r.road_class ? t(`msearch.classes.${r.road_class}`) : t(`msearch.kinds.${r.kind}`);
  const context = r.kind === "coordinates" ? (r.context || t("msearch.outside")) : r.context;
  return [kind, context].filter(Boolean).join(" · ");
}

function showHit(map, r) {
  const point = r.point || [(r.bbox[0] + r.bbox[2]) / 2, (r.bbox[1] + r.bbox[3]) / 2];
  const data = { type: "FeatureCollection", features: [{ type: "Feature", geometry: { type: "Point", coordinates: point },
    properties: { label: r.label } }] };
  const src = map.getSource(HIT);
  if (src) { src.setData(data); return; }
  map.addSource(HIT, { type: "geojson", data });
  map.addLayer({ id: `${HIT}-point`, type: "circle", source: HIT,
    paint: { "circle-radius": 7, "circle-color": "#ffb300", "circle-stroke-color": "#222", "circle-stroke-width": 2 } });
}

/** Move the map to a result: fit its extent (a street, a Gemeinde, a road, a route), or centre a point. */
export function goTo(map, r) {
  if (!r.bbox) return;
  const [w, s, e, n] = r.bbox;
  map.fitBounds([[w, s], [e, n]], { padding: 40, maxZoom: r.kind === "coordinates" ? 17 : 16, duration: 0 });
  if (r.kind === "coordinates" || r.kind === "street") showHit(map, r);
  map.getContainer().dispatchEvent(new CustomEvent("breitband:search", { detail: r }));
}

class SearchControl {
  onAdd(map) {
    this.map = map;
    this.seq = 0;
    this.results = [];
    const listId = `msearch-list-${Math.random().toString(36).slice(2, 8)}`;
    this.input = h("input", { type: "search", name: "q", autocomplete: "off", maxlength: "100", "aria-label": t("msearch.label"),
      placeholder: t("msearch.placeholder"), role: "combobox", "aria-expanded": "false", "aria-controls": listId,
      "aria-autocomplete": "list" });
    this.list = h("ul.msearch-results", { id: listId, role: "listbox", "aria-label": t("msearch.results") });
    this.status = h("p.msearch-status", { role: "status", "aria-live": "polite" });
    this.form = h("form.msearch", { role: "search", onsubmit: (e) => { e.preventDefault(); this.submit(); } },
      this.input, h("button", { type: "submit", "aria-label": t("msearch.button"), title: t("msearch.button") }, "⌕"),
      this.list, this.status);
    this.input.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.query(false), 250);
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown" && this.list.firstChild) { e.preventDefault(); this.list.firstChild.querySelector("button").focus(); }
      if (e.key === "Escape") this.clear();
    });
    this.list.addEventListener("keydown", (e) => {
      const item = e.target.closest("li");
      if (!item) return;
      const next = e.key === "ArrowDown" ? item.nextSibling : e.key === "ArrowUp" ? item.previousSibling : null;
      if (next) { e.preventDefault(); next.querySelector("button").focus(); }
      if (e.key === "ArrowUp" && !item.previousSibling) { e.preventDefault(); this.input.focus(); }
      if (e.key === "Escape") { this.clear(); this.input.focus(); }
    });
    this.el = h("div.maplibregl-ctrl.maplibregl-ctrl-group.msearch-ctrl", this.form);
    return this.el;
  }

  onRemove() { clearTimeout(this.timer); this.el.remove(); }

  clear() { this.list.replaceChildren(); this.input.setAttribute("aria-expanded", "false"); }

  async query(pick) {
    const q = this.input.value.trim();
    const seq = ++this.seq;
    if (!pick && q.length < 2) { this.clear(); this.status.textContent = ""; return null; }
    try {
      const { data } = await api(`/api/v1/search?q=${encodeURIComponent(q)}&limit=8`);
      if (seq !== this.seq) return null;
      this.render(data.results);
      this.status.textContent = data.results.length ? "" : t("msearch.none");
      return data.results;
    } catch (err) {
      if (seq !== this.seq) return null;
      this.clear();
      const detail = err instanceof ApiError ? (problemMessage(err.problem?.type) || err.problem?.detail) : null;
      this.status.textContent = detail || t("msearch.failed");
      return null;
    }
  }

  async submit() {
    clearTimeout(this.timer);
    const results = await this.query(true);
    if (results && results.length) this.choose(results[0]);
  }

  choose(r) {
    goTo(this.map, r);
    this.status.textContent = `${r.label} · ${describe(r)}`;
    this.clear();
  }

  render(results) {
    this.results = results;
    this.list.replaceChildren(...results.map((r) => {
      const open = (r.kind === "application" || r.kind === "case")
        ? h("a.msearch-open", { href: `#/${r.kind}/${r.id}` }, t("msearch.open")) : null;
      return h("li", { role: "option" },
        h("button", { type: "button", onclick: () => this.choose(r) }, h("strong", r.label), h("span", describe(r))), open);
    }));
    this.input.setAttribute("aria-expanded", results.length ? "true" : "false");
  }
}

/** The search box at the top left of the map. */
export function addMapSearch(map) {
  const control = new SearchControl();
  map.addControl(control, "top-left");
  control.el.parentElement.prepend(control.el);   // above the legend, which shares the corner
  return control;
}

class BaseLayerControl {
  constructor(layers) { this.layers = layers; }
  onAdd(map) {
    const lang = document.documentElement.lang;
    const name = (l) => (lang === "en" && l.name_en) || l.name;
    const choose = (id) => {
      for (const l of this.layers) map.setLayoutProperty(`base-${l.id}`, "visibility", l.id === id ? "visible" : "none");
    };
    const radios = [{ id: "", name: t("baseLayers.none") }, ...this.layers].map((l) => h("label",
      h("input", { type: "radio", name: "base-layer", value: l.id, checked: l.id === "", onchange: () => choose(l.id) }),
      " ", l.id ? name(l) : l.name));
    this.el = h("div.maplibregl-ctrl.maplibregl-ctrl-group.base-layers",
      h("fieldset", h("legend", t("baseLayers.title")), radios));
    return this.el;
  }
  onRemove() { this.el.remove(); }
}

/** The tenant's external base layers (none by default) as raster layers over the background and under everything
 * else, hidden until the user chooses one in the toggle. */
export async function addBaseLayers(map) {
  let layers = [];
  try { layers = (await get("/api/v1/map/layers")).base_layers; } catch { return null; }
  if (!layers.length) return null;
  // above the style's background (which is opaque), below everything else
  const first = map.getStyle().layers.find((l) => l.type !== "background")?.id;
  for (const l of layers) {
    map.addSource(`base-${l.id}`, { type: "raster", tiles: l.tiles, tileSize: l.tile_size, minzoom: l.min_zoom,
      maxzoom: l.max_zoom, attribution: l.attribution });
    map.addLayer({ id: `base-${l.id}`, type: "raster", source: `base-${l.id}`, layout: { visibility: "none" },
      paint: { "raster-opacity": l.opacity } }, first);
  }
  const control = new BaseLayerControl(layers);
  map.addControl(control, "top-right");
  return control;
}
