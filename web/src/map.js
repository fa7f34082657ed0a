// MapLibre map on our own style, tiles and glyphs (no external URLs), with a legend, a scale and popups on routes,
// cases and roads (issue 16). The style's tile URLs carry the configured public base
// URL; requests to /tiles and /styles are sent to the origin this page came from, where the session cookie goes
// with them (same-origin requests carry it; no Authorization header is needed or set).
import * as maplibregl from "maplibre-gl";
import "maplibre-gl/dist/maplibre-gl.css";
import workerUrl from "maplibre-gl/dist/maplibre-gl-worker.mjs?url";
import { api, get } from "./api.js";
import { h } from "./dom.js";
import { t, fmtDate } from "./i18n.js";
import { addBaseLayers, addMapSearch } from "./mapsearch.js";

maplibregl.setWorkerUrl(new URL(workerUrl, location.href).href); // the bundled worker, served from /assets

function local(url) {
  const u = new URL(url, location.href);
  if (!/^\/(tiles|styles|fonts)\//.test(u.pathname)) return null;
  return location.origin + u.pathname + u.search;
}

export async function createMap(container, { label } = {}) {
  const style = await get("/styles/breitband.json");
  const map = new maplibregl.Map({
    container, style, attributionControl: false, dragRotate: false, pitchWithRotate: false,
    transformRequest: (url) => {
      const rewritten = local(url);
      return rewritten ? { url: rewritten, credentials: "same-origin" } : { url };
    },
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric", maxWidth: 120 }), "bottom-left");
  map.addControl(new LegendControl(style), "top-left");
  // compact (an ⓘ button) on a narrow map, where the full line would cover the scale
  map.addControl(new maplibregl.AttributionControl({ compact: container.clientWidth < 600 }), "bottom-right");
  map.getCanvas().setAttribute("aria-label", label || t("map"));
  window.breitbandMap = map; // for the browser tests (queryRenderedFeatures)
  await new Promise((resolve) => (map.loaded() ? resolve() : map.once("load", resolve)));
  enablePopups(map);
  addMapSearch(map);
  await addBaseLayers(map);
  return map;
}

// --- colours: road classes as the style draws them; routes in hues no road class has (violet, teal, yellow, white,
// brown) with a dark casing, the viewer's own part with a violet halo -------------------------------------------
export const ROUTE = { own: "#8e44ad", other: "#00a3a3", outside: "#7f7f7f", casing: "#1b1b1b", halo: "#c9a3e6" };
const CASE_COLOURS = { received: "#8e44ad", in_review: "#00a3a3", incomplete: "#f1c40f", granted: "#ffffff",
  refused: "#7b4a2e" };
const ROAD_CLASSES = ["autobahn", "bund", "land", "kreis", "gemeinde"];

function swatch(colour, { casing = null, dashed = false, halo = false, fill = false } = {}) {
  const el = h(`span.lg-sw${casing ? ".cased" : ""}${dashed ? ".dashed" : ""}${halo ? ".halo" : ""}${fill ? ".fill" : ""}`,
    { "aria-hidden": "true" });
  // CSSOM, not a style attribute: the CSP (style-src 'self') refuses inline style attributes
  el.style.setProperty("--c", colour);
  if (casing) el.style.setProperty("--casing", casing);
  return el;
}

/** The legend: road classes in the style's colours (from its metadata), routes, case states, base map. Collapsed on
 * small maps, open on wide ones; a <details> element, so keyboard and screen readers can open it. */
class LegendControl {
  constructor(style) { this.colours = style?.metadata?.["breitband:road_colours"] || {}; }
  onAdd(map) {
    const item = (sw, label) => h("li", sw, h("span", label));
    const roads = ROAD_CLASSES.filter((c) => this.colours[c]).map((c) => item(swatch(this.colours[c]), t(`mapUi.${c}`)));
    roads.push(item(swatch(this.colours.gemeinde || "#8c8c8c", { dashed: true }), t("mapUi.privateRoad")));
    const routes = [
      item(swatch(ROUTE.own, { casing: ROUTE.casing, halo: true }), t("mapUi.ownPart")),
      item(swatch(ROUTE.other, { casing: ROUTE.casing }), t("mapUi.otherPart")),
      item(swatch(ROUTE.outside, { dashed: true }), t("mapUi.outsidePart")),
      item(swatch("#8a8a8a", { dashed: true }), t("mapUi.otherApp")),
    ];
    const states = Object.entries(CASE_COLOURS).map(([k, c]) => item(swatch(c, { casing: ROUTE.casing }), t(`st.${k}`)));
    const base = [item(swatch("#b9d3e8", { fill: true }), t("mapUi.water")), item(swatch("#ddd5cc", { fill: true }), t("mapUi.building")),
      item(swatch("#9a9a9a", { dashed: true }), t("mapUi.railway")), item(swatch("#a39fb0", { dashed: true }), t("mapUi.boundary"))];
    // open where the map is wide enough to keep most of it free; a closed <details> on a phone or a narrow pane
    const wide = map.getContainer().clientWidth >= 900;
    this.el = h("details.maplibregl-ctrl.maplibregl-ctrl-group.map-legend", { open: wide, id: "map-legend" },
      h("summary", t("mapUi.legend")),
      h("h3", t("mapUi.roadClasses")), h("ul", roads),
      h("h3", t("mapUi.routes")), h("ul", routes),
      h("h3", t("mapUi.caseStates")), h("ul", states),
      h("h3", t("mapUi.base")), h("ul", base));
    return this.el;
  }
  onRemove() { this.el?.remove(); }
}

// --- popups -----------------------------------------------------------------------------------------------------

function daysUntil(isoDate) {
  if (!isoDate) return null;
  const due = new Date(`${isoDate.slice(0, 10)}T12:00:00`);
  const today = new Date(); today.setHours(12, 0, 0, 0);
  return Math.round((due - today) / 86400000);
}

function facts(rows) {
  return h("dl.popup-facts", rows.filter(([, v]) => v != null && v !== "").map(([k, v]) => [h("dt", k), h("dd", v)]));
}

/** Popup content of a route or case feature (tiles: applications-*; GeoJSON layers: properties set by the page). */
export function routePopup(p) {
  const status = p.case_status || p.status;
  const days = p.days_left ?? daysUntil(p.decision_due);
  const link = p.case_id ? `#/case/${p.case_id}` : p.application_id ? `#/application/${p.application_id}` : p.id ? `#/application/${p.id}` : null;
  return h("div.map-popup",
    h("strong", p.reference || t("route")), p.project_name ? h("div", p.project_name) : null,
    facts([[t("status"), status ? t(`st.${status}`) : null], [t("mapUi.operator"), p.operator],
      [t("due"), p.decision_due ? `${fmtDate(p.decision_due)}${days != null ? ` (${days} ${t("daysLeft")})` : ""}` : null],
      [t("authorities"), p.authority]]),
    link ? h("a.popup-link", { href: link }, t("mapUi.open")) : null);
}

/** A line of ~12 m along the clicked road (the road's own vertices around the click), for /resolve. */
function pieceAt(feature, lngLat) {
  const g = feature.geometry;
  const lines = g.type === "LineString" ? [g.coordinates] : g.type === "MultiLineString" ? g.coordinates : [];
  let best = null;
  const k = Math.cos((lngLat.lat * Math.PI) / 180);
  for (const line of lines) for (let i = 0; i + 1 < line.length; i++) {
    const [ax, ay] = line[i]; const [bx, by] = line[i + 1];
    const dx = (bx - ax) * k, dy = by - ay; const len2 = dx * dx + dy * dy;
    const tt = len2 ? Math.max(0, Math.min(1, (((lngLat.lng - ax) * k) * dx + (lngLat.lat - ay) * dy) / len2)) : 0;
    const px = ax + tt * (bx - ax), py = ay + tt * (by - ay);
    const d = ((lngLat.lng - px) * k) ** 2 + (lngLat.lat - py) ** 2;
    if (!best || d < best.d) best = { d, px, py, ux: dx, uy: dy, len: Math.sqrt(len2) };
  }
  if (!best || !best.len) return null;
  const half = 6 / 111320; // 6 m in degrees of latitude
  const ux = best.ux / best.len, uy = best.uy / best.len;
  return { type: "LineString", coordinates: [[best.px - (ux * half) / k, best.py - uy * half], [best.px + (ux * half) / k, best.py + uy * half]] };
}

async function roadPopup(popup, feature, lngLat) {
  const p = feature.properties;
  const who = h("dd", t("mapUi.resolving"));
  const rule = h("dd.popup-rule", "");
  popup.setDOMContent(h("div.map-popup",
    h("strong", [p.ref, p.name].filter(Boolean).join(" · ") || t(`mapUi.${p.road_class}`)),
    h("dl.popup-facts", h("dt", t("mapUi.roadClass")), h("dd", t(`mapUi.${p.road_class}`) + (p.is_private ? ` (${t("mapUi.privateRoad")})` : "")),
      h("dt", t("mapUi.responsible")), who, h("dt", t("mapUi.rule")), rule)));
  const piece = pieceAt(feature, lngLat);
  if (!piece) { who.textContent = t("mapUi.noResponsible"); return; }
  try {
    const res = (await api("/api/v1/resolve", { method: "POST", body: { type: "Feature", geometry: piece, properties: {} } })).data;
    const a = (res.authorities || [])[0];
    const pc = a?.pieces?.[0];
    who.textContent = a ? a.name + (a.administered_by ? ` (${a.administered_by.name})` : "") : t("mapUi.noResponsible");
    rule.textContent = pc?.rule || (res.private_roads?.pieces?.length ? t("private") : res.outside_public_roads?.pieces?.length ? t("outside") : "");
  } catch (err) {
    who.textContent = err.message || t("mapUi.noResponsible");
  }
}

const ROUTE_LAYERS = ["applications-line", "applications-casing", "applications-point", "applications-area"];
const ROAD_LAYERS = ["roads-public", "roads-private"];

/** Click: the topmost route or case under the pointer (GeoJSON overlays first, then the tile layer), else a road. */
function enablePopups(map) {
  const popup = new maplibregl.Popup({ closeButton: true, maxWidth: "280px", className: "breitband-popup" });
  const overlayLayers = () => (map.getStyle()?.layers || [])
    .filter((l) => /-(line|point)$/.test(l.id) && map.getSource(l.source)?.type === "geojson").map((l) => l.id);
  map.on("click", (e) => {
    const box = [[e.point.x - 4, e.point.y - 4], [e.point.x + 4, e.point.y + 4]];
    const present = (ids) => ids.filter((id) => map.getLayer(id));
    const routes = map.queryRenderedFeatures(box, { layers: [...present(overlayLayers()), ...present(ROUTE_LAYERS)] });
    if (routes.length) {
      popup.setLngLat(e.lngLat).setDOMContent(routePopup(routes[0].properties)).addTo(map);
      return;
    }
    const roads = map.queryRenderedFeatures(box, { layers: present(ROAD_LAYERS) });
    if (roads.length) {
      popup.setLngLat(e.lngLat).setDOMContent(h("div.map-popup", t("loading"))).addTo(map);
      roadPopup(popup, roads[0], e.lngLat);
    }
  });
  for (const id of [...ROUTE_LAYERS, ...ROAD_LAYERS]) {
    map.on("mouseenter", id, () => (map.getCanvas().style.cursor = "pointer"));
    map.on("mouseleave", id, () => (map.getCanvas().style.cursor = ""));
  }
  window.breitbandPopup = popup; // for the browser tests
}

/** Show a GeoJSON FeatureCollection as a line/point/area layer; properties.highlight chooses the look: true the
 * viewer's own part (violet core, dark casing, violet halo), "other" another authority's part (teal core, casing),
 * false outside public roads or in private roads (grey, dashed). No road class uses these hues or a casing. */
export function showGeoJSON(map, id, fc) {
  const src = map.getSource(id);
  if (src) { src.setData(fc); return; }
  map.addSource(id, { type: "geojson", data: fc });
  const hl = ["get", "highlight"];
  const own = ["==", hl, true], other = ["==", hl, "other"], cased = ["any", own, other];
  const isLine = ["==", ["geometry-type"], "LineString"];
  const round = { "line-cap": "round", "line-join": "round" };
  map.addLayer({ id: `${id}-halo`, type: "line", source: id, filter: ["all", isLine, own], layout: round,
    paint: { "line-color": ROUTE.halo, "line-width": 18, "line-blur": 6, "line-opacity": 0.9 } });
  map.addLayer({ id: `${id}-casing`, type: "line", source: id, filter: ["all", isLine, cased], layout: round,
    paint: { "line-color": ROUTE.casing, "line-width": ["case", own, 8, 6] } });
  map.addLayer({ id: `${id}-line`, type: "line", source: id, filter: isLine, layout: round,
    paint: { "line-color": ["case", own, ROUTE.own, other, ROUTE.other, ROUTE.outside],
      "line-width": ["case", own, 4.5, other, 3, 3],
      "line-dasharray": ["case", cased, ["literal", [1, 0]], ["literal", [2, 1.5]]] } });
  map.addLayer({ id: `${id}-point`, type: "circle", source: id, filter: ["==", ["geometry-type"], "Point"],
    paint: { "circle-color": ["case", own, ROUTE.own, other, ROUTE.other, ROUTE.outside], "circle-radius": 5,
      "circle-stroke-color": ROUTE.casing, "circle-stroke-width": 2 } });
  // labels of the style stay above the routes
  const firstSymbol = (map.getStyle().layers || []).find((l) => l.type === "symbol")?.id;
  if (firstSymbol) for (const suffix of ["halo", "casing", "line", "point"]) map.moveLayer(`${id}-${suffix}`, firstSymbol);
}

export function bboxOf(fcs) {
  let b = [Infinity, Infinity, -Infinity, -Infinity];
  const walk = (c) => {
    if (typeof c[0] === "number") { b = [Math.min(b[0], c[0]), Math.min(b[1], c[1]), Math.max(b[2], c[0]), Math.max(b[3], c[1])]; return; }
    c.forEach(walk);
  };
  for (const fc of fcs) for (const f of fc.features || []) if (f.geometry) walk(f.geometry.coordinates);
  return Number.isFinite(b[0]) ? b : null;
}

export function fit(map, fcs) {
  const b = bboxOf(fcs);
  if (b) map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 60, maxZoom: 16, duration: 0 });
}

/** The resolution's pieces as features: highlight=true for the given authority, "other" for other authorities,
 * false for pieces outside public roads or in private roads; ``extra``: properties every piece carries (its popup). */
export function resolutionFeatures(resolution, ownAuthorityId, extra = {}) {
  const features = [];
  for (const a of resolution?.authorities || [])
    for (const p of a.pieces || [])
      features.push({ type: "Feature", geometry: p.geometry,
        properties: { ...extra, authority: a.name, authority_id: a.id, highlight: ownAuthorityId ? (a.id === ownAuthorityId ? true : false) : "other" } });
  for (const k of ["outside_public_roads", "private_roads"])
    for (const p of resolution?.[k]?.pieces || [])
      features.push({ type: "Feature", geometry: p.geometry, properties: { ...extra, authority: null, highlight: false } });
  return { type: "FeatureCollection", features };
}
