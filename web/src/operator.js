// Operator screens: my applications, the new-application wizard (upload or draw, live resolution preview), and the
// application with its cases, information requests, supplement form and decisions.
import { TerraDraw, TerraDrawLineStringMode } from "terra-draw";
import { TerraDrawMapLibreGLAdapter } from "terra-draw-maplibre-gl-adapter";
import { api, get } from "./api.js";
import { h, field } from "./dom.js";
import { t, fmtDate, fmtDue, fmtTime, fmtLen } from "./i18n.js";
import { createMap, showGeoJSON, fit, resolutionFeatures } from "./map.js";
import { state, say, problemText, rerender, isOperator } from "./state.js";
import { sectionsTable, attachmentsList, timeline, routeSummary, moreButton, pageLimit, infoRequests, decisionBox } from "./shared.js";
import { documentsPanel, pipelinePanel } from "./panels.js";
import { exportForm } from "./exports.js";

// What attachments may be (the API checks each by content): PDF, images, CAD (DXF, DWG) and GIS files
// (GeoPackage, Shapefile zip, KML/KMZ, GeoJSON).
const ATTACHMENT_ACCEPT = ".pdf,.png,.jpg,.jpeg,.gif,.webp,.tif,.tiff,.dxf,.dwg,.gpkg,.zip,.kml,.kmz,.geojson,.json,application/pdf,image/*";

const APP_STATUSES = ["draft", "submitted", "information_requested", "granted", "partially_granted", "refused", "withdrawn"];
const KINDS = ["route_plan", "cross_section", "traffic_plan", "power_of_attorney", "statement", "photo", "other"];
const RESTRICTIONS = ["lane_narrowing", "lane_closure", "full_closure", "sidewalk_closure", "cycleway_closure", "parking_ban"];
const METHODS = ["open_trench", "micro_trenching", "mini_trenching", "directional_drilling", "press_drilling", "ploughing", "milling", "aerial", "existing_duct"];

export async function myApplicationsView(params) {
  const filter = params.get("status") || "";
  const limit = pageLimit(params);
  const qs = new URLSearchParams({ limit: String(limit) });
  if (filter) qs.append("status", filter);
  const page = await get(`/api/v1/applications?${qs}`);
  const select = h("select", { onchange: (e) => { location.hash = `#/applications${e.target.value ? `?status=${e.target.value}` : ""}`; } },
    h("option", { value: "" }, t("all")), APP_STATUSES.map((s) => h("option", { value: s, selected: s === filter }, t(`st.${s}`))));
  const row = (a) => h("tr",
    h("td", h("a", { href: `#/application/${a.id}` }, a.reference)), h("td", a.project_name || "–"),
    h("td", h("span", { class: `badge st-${a.status}` }, t(`st.${a.status}`))), h("td", fmtDate(a.submitted_at)),
    h("td", a.cases.map((c) => `${c.authority.name}: ${t(`st.${c.status}`)}`).join("; ") || "–"));
  const tbody = h("tbody", page.items.map(row));
  const table = page.items.length ? h("table.list", { id: "applications-table" },
    h("thead", h("tr", [t("reference"), t("project"), t("status"), t("received"), t("cases")].map((x) => h("th", { scope: "col" }, x)))),
    tbody) : h("p", t("none"));
  let offset = page.items.length;
  const more = moreButton(page.has_more ? offset : null, async () => {
    const next = await get(`/api/v1/applications?${qs}&offset=${offset}`);
    tbody.append(...next.items.map(row));
    offset += next.items.length;
    return next.has_more ? offset : null;
  });
  return [h("section.pane.wide", h("h1", isOperator() ? t("myApplications") : t("applications")),
    h("form.filters", { onsubmit: (e) => e.preventDefault() }, field(t("status"), select)),
    exportForm("applications", qs),
    isOperator() ? h("p", h("a.button", { href: "#/new" }, t("newApplication"))) : null, table, more)];
}

// What the wizard's file input offers: every format the server's reader takes (it recognises them by content).
const ROUTE_FILES = ".geojson,.json,application/geo+json,.zip,application/zip,.shp,.shx,.dbf,.prj,.cpg,.gpkg,.kml,.kmz,.gml,.xml,.gpx,.fgb,.dxf,.csv,.txt";

export async function wizardView() {
  const today = new Date();
  const iso = (d) => d.toISOString().slice(0, 10);
  const inDays = (n) => iso(new Date(today.getTime() + n * 86400000));
  const inp = (name, attrs = {}) => h("input", { name, ...attrs });
  const f = {
    project_name: inp("project_name", { required: true, maxlength: 300 }),
    operator_reference: inp("operator_reference", { maxlength: 100 }),
    description: h("textarea", { name: "description", rows: 2 }),
    contact_name: inp("contact_name", { required: true, autocomplete: "name", value: state.me.name || "" }),
    contact_email: inp("contact_email", { type: "email", autocomplete: "email", value: state.me.email || "" }),
    contact_phone: inp("contact_phone", { type: "tel", autocomplete: "tel" }),
    planned_start: inp("planned_start", { type: "date", required: true, value: inDays(35) }),
    planned_end: inp("planned_end", { type: "date", required: true, value: inDays(95) }),
    laying_method: h("select", { name: "laying_method" }, METHODS.map((m) => h("option", { value: m }, t(`lm.${m}`)))),
    depth_cm: inp("depth_cm", { type: "number", min: 1, max: 1000, value: 60 }),
    width_cm: inp("width_cm", { type: "number", min: 1, max: 500, value: 40 }),
    reduced_depth: inp("reduced_depth", { type: "checkbox" }),
    file: inp("route_file", { type: "file", multiple: true, accept: ROUTE_FILES }),
    attachments: inp("attachments", { type: "file", multiple: true, accept: ATTACHMENT_ACCEPT }),
    attachment_kind: h("select", { name: "attachment_kind" }, KINDS.map((k) => h("option", { value: k }, t(`kind.${k}`)))),
    restrictions: RESTRICTIONS.map((k) => h("input", { type: "checkbox", name: "restriction", value: k })),
    restriction_description: h("textarea", { name: "restriction_description", rows: 2, maxlength: 2000 }),
  };
  let route = null; // FeatureCollection (EPSG:4326)
  let map = null, draw = null, seq = 0, mapReady;
  const ready = new Promise((resolve) => (mapReady = resolve));
  const preview = h("div", { id: "preview", "aria-live": "polite" }, h("p", t("noRoute")));
  const mapEl = h("div.map", { id: "map", role: "region", "aria-label": t("route") });

  async function setRoute(fc, { fitMap = true } = {}) {
    route = fc;
    const mine = ++seq;
    await ready;
    if (!fc || !fc.features.length) { preview.replaceChildren(h("p", t("noRoute"))); showGeoJSON(map, "preview", { type: "FeatureCollection", features: [] }); return; }
    if (fitMap) fit(map, [fc]);
    preview.replaceChildren(h("p", t("loading")));
    try {
      const { data } = await api("/api/v1/resolve", { method: "POST", body: { type: "FeatureCollection", features: fc.features.map((x) => ({ type: "Feature", geometry: x.geometry, properties: {} })) } });
      if (mine !== seq) return;
      showGeoJSON(map, "preview", resolutionFeatures(data, null));
      preview.replaceChildren(
        h("h3", t("preview")),
        h("ul.legend", { id: "preview-authorities" }, data.authorities.map((a) => h("li", h("span.swatch.other", { "aria-hidden": "true" }), `${a.name}: ${fmtLen(a.length_m)}`))),
        h("p.muted", `${t("total")}: ${fmtLen(data.total_length_m)}; ${t("outside")}: ${fmtLen(data.outside_public_roads.length_m)}; ${t("private")}: ${fmtLen(data.private_roads.length_m)}`),
        data.warnings.length ? h("ul.warnings", data.warnings.map((w) => h("li", w.message))) : null);
    } catch (e) {
      if (mine === seq) preview.replaceChildren(h("p.error", { role: "alert" }, problemText(e)));
    }
  }

  // The file goes to the server's reader (POST /api/v1/route-file): it recognises the format, reads the CRS and
  // answers the route in EPSG:4326 with what it read; a file with several layers or without a CRS is asked about.
  const source = h("div", { id: "route-source", "aria-live": "polite" });
  async function readFile({ layer, crs } = {}) {
    const files = [...f.file.files];
    if (!files.length) return;
    const names = files.map((x) => x.name).join(", ");
    const fd = new FormData();
    for (const file of files) fd.append("file", file);
    if (layer) fd.append("layer", layer);
    if (crs) fd.append("crs", /^\d+$/.test(crs) ? `EPSG:${crs}` : crs);
    source.replaceChildren(h("p", t("loading")));
    try {
      const { data } = await api("/api/v1/route-file", { method: "POST", form: fd });
      const s = data.source;
      const what = [t(`formats.${s.format}`), `${s.crs} (${s.crs_name})`];
      if (s.layer && s.format !== "Shapefile") what.push(`${t("layerLabel")} „${s.layer}“`);
      source.replaceChildren(h("p.read", { id: "route-read" }, `${t("readAs")}: ${what.join(", ")}`),
        ...(data.warnings.length ? [h("ul.warnings", data.warnings.map((w) => h("li", w.message)))] : []));
      draw?.clear();
      await setRoute(data.route);
    } catch (e) {
      draw?.clear();
      setRoute(null);              // the previous file's route is not this file's: nothing to create from yet
      const slug = e.slug;
      if (slug === "layer-required" || slug === "unknown-layer") {
        const select = h("select", { name: "route_layer", id: "route-layer" }, (e.problem.layers || []).map((l) => h("option", { value: l }, l)));
        source.replaceChildren(h("div.card", { role: "group", "aria-labelledby": "choose-layer" },
          h("p", { id: "choose-layer" }, `${names}: ${t("chooseLayer")}`), field(t("layerLabel"), select),
          h("button", { type: "button", id: "use-layer", onclick: () => readFile({ layer: select.value, crs }) }, t("useLayer"))));
      } else if (slug === "crs-required") {
        const code = h("input", { name: "route_crs", id: "route-crs", inputmode: "numeric", placeholder: "25832", required: true });
        source.replaceChildren(h("div.card", { role: "group", "aria-labelledby": "crs-needed" },
          h("p", { id: "crs-needed" }, `${names}: ${t("crsNeeded")}`), field(t("crsCode"), code),
          h("button", { type: "button", id: "use-crs", onclick: () => code.value.trim() && readFile({ layer, crs: code.value.trim() }) }, t("useCrs"))));
      } else {
        source.replaceChildren(h("p.error", { role: "alert" }, `${names}: ${problemText(e)}`));
      }
    }
  }
  f.file.addEventListener("change", () => readFile());

  function content() {
    const method = f.laying_method.value;
    const sections = { type: "FeatureCollection", features: route.features.map((x) => {
      const lineLike = /LineString/.test(x.geometry.type);
      const p = { ...(x.properties || {}) };
      if (lineLike && !p.laying_method) {
        p.laying_method = method;
        if (!["aerial", "existing_duct"].includes(method)) {
          p.depth_cm = Number(f.depth_cm.value) || undefined;
          p.width_cm = Number(f.width_cm.value) || undefined;
        }
        if (["micro_trenching", "mini_trenching", "milling"].includes(method)) p.reduced_depth = f.reduced_depth.checked;
      }
      for (const k of Object.keys(p)) if (!["kind", "laying_method", "depth_cm", "width_cm", "reduced_depth", "label"].includes(k)) delete p[k];
      return { type: "Feature", geometry: x.geometry, properties: p };
    }) };
    return {
      project_name: f.project_name.value.trim() || null, operator_reference: f.operator_reference.value.trim() || null,
      description: f.description.value.trim() || null,
      contact: { name: f.contact_name.value.trim(), email: f.contact_email.value.trim() || null, phone: f.contact_phone.value.trim() || null },
      sections, planned_start: f.planned_start.value || null, planned_end: f.planned_end.value || null,
      traffic_restrictions: f.restrictions.filter((x) => x.checked).map((x) => ({
        kind: x.value, description: f.restriction_description.value.trim() || null })),
    };
  }

  const errorBox = h("div", { role: "alert", class: "error" });
  async function create(submit, btn) {
    errorBox.textContent = "";
    if (!route) { errorBox.textContent = t("noRoute"); return; }
    btn.disabled = true;
    try {
      const created = await api("/api/v1/applications", { method: "POST", body: content() });
      const id = created.data.id;
      let etag = created.etag;
      const files = [...f.attachments.files];
      if (files.length) {
        const ids = [];
        for (const file of files) {
          const fd = new FormData();
          fd.append("file", file);
          fd.append("kind", f.attachment_kind.value);
          ids.push((await api(`/api/v1/applications/${id}/attachments`, { method: "POST", form: fd })).data.id);
        }
        // an attachment belongs to the application once the draft lists it
        const fresh = await api(`/api/v1/applications/${id}`);
        etag = (await api(`/api/v1/applications/${id}`, { method: "PATCH", etag: fresh.etag, body: { attachment_ids: ids } })).etag;
      }
      if (submit) await api(`/api/v1/applications/${id}/submit`, { method: "POST", etag });
      state.flash = { text: submit ? t("submitted") : t("saved"), kind: "ok" };
      location.hash = `#/application/${id}`;
    } catch (e) { errorBox.textContent = problemText(e); btn.disabled = false; }
  }
  const submitBtn = h("button.primary", { type: "submit", id: "create-submit" }, t("createSubmit"));
  const draftBtn = h("button", { type: "button", onclick: (e) => create(false, e.target) }, t("saveDraft"));
  const form = h("form", { id: "wizard", onsubmit: (e) => { e.preventDefault(); create(true, submitBtn); } },
    h("fieldset.card", h("legend", t("stepData")),
      field(t("projectName"), f.project_name), field(t("operatorRef"), f.operator_reference), field(t("description"), f.description),
      h("div.row", field(t("contactName"), f.contact_name), field(t("email"), f.contact_email), field(t("phone"), f.contact_phone)),
      h("div.row", field(t("plannedStart"), f.planned_start), field(t("plannedEnd"), f.planned_end)),
      h("div.row", field(t("layingMethod"), f.laying_method), field(t("depth"), f.depth_cm), field(t("width"), f.width_cm)),
      h("label.check", f.reduced_depth, t("reducedDepth"))),
    h("fieldset.card", h("legend", t("stepRoute")),
      field(t("uploadRoute"), f.file, t("uploadRouteHelp")), source,
      h("p", h("button", { type: "button", id: "draw-line", onclick: () => { draw.setMode("linestring"); say(t("drawHelp")); } }, t("draw")), " ",
        h("button", { type: "button", onclick: () => { draw.clear(); f.file.value = ""; source.replaceChildren(); setRoute(null); } }, t("clear"))),
      h("p.help", t("drawHelp")), preview),
    h("fieldset.card", { "aria-describedby": "traffic-help" }, h("legend", t("trafficRestrictions")),
      h("p.help", { id: "traffic-help" }, t("trafficHelp")),
      h("div.row.checks", f.restrictions.map((x) => h("label.check", x, t(`tr.${x.value}`)))),
      field(t("restrictionDescription"), f.restriction_description)),
    h("fieldset.card", h("legend", t("attachments")),
      h("div.row", field(t("attachFiles"), f.attachments), field(t("attachmentKind"), f.attachment_kind))),
    h("fieldset.card", h("legend", t("stepSubmit")), errorBox, h("p", submitBtn, " ", draftBtn)));
  return {
    nodes: [h("div.split", h("section.pane", h("h1", t("wizardTitle")), form), h("section.pane.map-pane", mapEl))],
    after: async () => {
      map = await createMap(mapEl, { label: t("route") });
      showGeoJSON(map, "preview", { type: "FeatureCollection", features: [] });
      draw = new TerraDraw({ adapter: new TerraDrawMapLibreGLAdapter({ map }), modes: [new TerraDrawLineStringMode()] });
      draw.start();
      draw.on("finish", () => {
        const feats = draw.getSnapshot().filter((x) => x.geometry.type === "LineString");
        f.file.value = "";
        source.replaceChildren();
        setRoute({ type: "FeatureCollection", features: feats.map((x) => ({ type: "Feature", geometry: x.geometry, properties: {} })) }, { fitMap: false });
      });
      window.breitbandDraw = draw;
      mapReady();
    },
  };
}

export async function applicationView(id) {
  const res = await api(`/api/v1/applications/${id}`);
  const app = res.data;
  const [history, versions, cases] = await Promise.all([
    get(`/api/v1/applications/${id}/history`), get(`/api/v1/applications/${id}/versions`),
    Promise.all(app.cases.map((c) => get(`/api/v1/cases/${c.id}`).catch(() => null)))]);
  const current = versions.find((v) => v.number === app.version) || versions[versions.length - 1];
  const allowed = app.allowed_commands || [];
  const waiting = cases.filter((c) => c && (c.information_requests || []).some((r) => !r.answered_at));
  const mapEl = h("div.map", { id: "map", role: "region", "aria-label": t("route") });
  const nodes = h("section.pane",
    h("p", h("a", { href: "#/applications" }, `← ${isOperator() ? t("myApplications") : t("applications")}`)),
    h("h1", `${app.reference} – ${app.content.project_name || ""}`),
    h("dl.facts", h("dt", t("status")), h("dd", h("span", { class: `badge st-${app.status}`, id: "application-status" }, t(`st.${app.status}`))),
      h("dt", t("version")), h("dd", String(app.version)), h("dt", t("received")), h("dd", fmtTime(app.submitted_at))),
    allowed.includes("submit") ? h("p", h("button.primary", { type: "button", onclick: async (e) => {
      e.target.disabled = true;
      try { await api(`/api/v1/applications/${id}/submit`, { method: "POST", etag: res.etag }); await rerender(); say(t("submitted"), "ok"); }
      catch (err) { say(problemText(err), "error"); e.target.disabled = false; }
    } }, t("submit"))) : null,
    routeSummary(app, null),
    h("h2", t("cases")),
    cases.filter(Boolean).length ? h("ul.plain.cases", cases.filter(Boolean).map((c) => h("li.card",
      h("h3", `${c.authority.name} – `, h("span", { class: `badge st-${c.status}` }, t(`st.${c.status}`))),
      h("p.muted", `${t("deadlineEnd")}: ${fmtDue(c.deadlines?.decision)}`),
      c.information_requests?.length ? [h("h4", t("infoRequests")), infoRequests(c)] : null,
      c.decision ? [h("h4", t("decision")), decisionBox(c)] : null))) : h("p", t("none")),
    app.cases.length ? documentsPanel(cases.filter(Boolean), app.reference) : null,
    app.status !== "draft" ? pipelinePanel(app.id) : null,
    allowed.includes("supplements") ? supplementForm(app, res.etag, waiting) : null,
    h("h2", t("sections")), sectionsTable(app.content.sections),
    h("h2", t("attachments")), attachmentsList(app),
    h("h2", t("timeline")), timeline(history));
  return {
    nodes: [h("div.split", nodes, h("section.pane.map-pane", mapEl))],
    after: async () => {
      const map = await createMap(mapEl, { label: t("route") });
      const fc = current?.resolution ? resolutionFeatures(current.resolution, null)
        : { type: "FeatureCollection", features: (app.content.sections?.features || []).map((x) => ({ ...x, properties: { highlight: "other" } })) };
      showGeoJSON(map, "route", fc);
      fit(map, [fc]);
    },
  };
}

function supplementForm(app, etag, waiting) {
  const msg = h("textarea", { name: "message", rows: 3, required: true });
  const file = h("input", { type: "file", name: "file", accept: ATTACHMENT_ACCEPT });
  const btn = h("button.primary", { type: "submit" }, t("send"));
  const form = h("form.card", { id: "form-supplement", onsubmit: async (e) => {
    e.preventDefault();
    btn.disabled = true;
    try {
      const ids = [];
      if (file.files[0]) {
        const fd = new FormData();
        fd.append("file", file.files[0]);
        fd.append("kind", "other");
        ids.push((await api(`/api/v1/applications/${app.id}/attachments`, { method: "POST", form: fd })).data.id);
      }
      // the attachment changed the application's version: read the ETag again
      const fresh = ids.length ? (await api(`/api/v1/applications/${app.id}`)).etag : etag;
      await api(`/api/v1/applications/${app.id}/supplements`, { method: "POST", etag: fresh, body: { message: msg.value.trim(), attachment_ids: ids } });
      await rerender();
      say(t("sent"), "ok");
    } catch (err) { say(problemText(err), "error"); btn.disabled = false; }
  } },
  h("h2", t("supplement")),
  waiting.length ? h("p", waiting.map((c) => c.authority.name).join(", ")) : null,
  field(t("answer"), msg), field(t("attachFile"), file), btn);
  return form;
}
