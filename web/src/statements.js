// Participation (Beteiligung): the screens of a participating body (its statement requests, answering one). The
// statements of other bodies on the road authority's case and the proposed conditions to adopt into the decision are
// in participation.js, shared with authority.js.
import { api, get } from "./api.js";
import { h, field } from "./dom.js";
import { t, fmtDate, fmtTime, fmtLen } from "./i18n.js";
import { state, problemText, rerender } from "./state.js";
import { createMap, showGeoJSON, fit } from "./map.js";
import { sectionsTable, attachmentsList } from "./shared.js";
import { occasion, triggersList, answerBlock, closedBlock } from "./participation.js";

const ANSWERS = ["agree", "agree_with_conditions", "object"];

export async function statementsView(params) {
  const filter = params.get("status") || "requested";
  const qs = new URLSearchParams({ limit: "200" });
  if (filter !== "all") qs.append("status", filter);
  const [page, decisions] = await Promise.all([get(`/api/v1/statements?${qs}`),
    get("/api/v1/cases?limit=200").catch(() => ({ items: [] }))]);
  const select = h("select", { name: "status", onchange: (e) => { location.hash = `#/statements?status=${e.target.value}`; } },
    [["requested", t("stmtStatus.requested")], ["answered", t("stmtStatus.answered")], ["superseded", t("stmtStatus.superseded")],
      ["withdrawn", t("stmtStatus.withdrawn")], ["closed", t("stmtStatus.closed")], ["all", t("all")]].map(([v, l]) => h("option", { value: v, selected: v === filter }, l)));
  const table = page.items.length ? h("table.list", { id: "statements-table" },
    h("caption.sr", t("statementRequests")),
    h("thead", h("tr", [t("reference"), t("project"), t("occasion"), t("requested"), t("due"), t("status")].map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", page.items.map((s) => h("tr", { class: s.overdue ? "overdue" : null },
      h("td", h("a", { href: `#/statement/${s.id}` }, s.application.reference)),
      h("td", s.application.project_name || "–"),
      h("td", (s.triggers || []).map(occasion).join("; ")),
      h("td", fmtDate(s.requested_at)),
      h("td", `${fmtDate(s.due_on)}${s.overdue ? ` – ${t("overdue")}` : ""}`),
      h("td", h("span", { class: `badge stmt-${s.status}` }, t(`stmtStatus.${s.status}`))))))) : h("p", t("none"));
  // the decisions this body issues together with the consent (§ 127 (5) TKG): its cases, in legal order
  const own = decisions.items.filter((c) => c.kind && c.kind !== "consent");
  const decisionsTable = own.length ? [h("h2", { id: "body-decisions-heading" }, t("bodyDecisions")),
    h("table.list", { id: "body-decisions" },
      h("thead", h("tr", [t("reference"), t("project"), t("kind"), t("due"), t("status")].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", own.map((c) => h("tr", { class: c.overdue ? "overdue" : null },
        h("td", h("a", { href: `#/case/${c.id}` }, c.reference)), h("td", c.project_name || "–"),
        h("td", t(`kindOf.${c.kind}`)), h("td", fmtDate(c.decision_due)),
        h("td", h("span", { class: `badge st-${c.status}` }, t(`st.${c.status}`)))))))] : null;
  return [h("section.pane.wide", h("h1", `${t("statementRequests")} – ${state.me.organisation.name}`),
    decisionsTable,
    h("form.filters", { onsubmit: (e) => e.preventDefault() }, field(t("status"), select)), table)];
}

/** The traffic restrictions the applicant stated: kind, road, period and description. */
export function restrictionsList(restrictions) {
  if (!restrictions?.length) return h("p", { id: "traffic-restrictions" }, t("noRestrictions"));
  return h("ul.plain", { id: "traffic-restrictions" }, restrictions.map((r) => h("li",
    h("strong", t(`tr.${r.kind}`)),
    r.road ? ` – ${r.road}` : "",
    r.start || r.end ? ` (${fmtDate(r.start)} – ${fmtDate(r.end)})` : "",
    r.description ? h("p", r.description) : null)));
}

/** What the body is asked about (the statement detail's `application`): applicant, planned period, restrictions,
 * affected road authorities, sections and attachments; the route itself goes on the map. */
function subjectSection(a) {
  const route = a.route;
  return h("section", { id: "statement-subject", "aria-labelledby": "subject-heading" },
    h("h2", { id: "subject-heading" }, t("askedAbout")),
    h("p.muted", t("askedAboutHelp")),
    h("dl.facts",
      h("dt", t("applicant")), h("dd", a.applicant?.name || "–"),
      h("dt", t("plannedPeriod")), h("dd", { id: "planned-period" }, `${fmtDate(a.planned_start)} – ${fmtDate(a.planned_end)}`),
      h("dt", t("version")), h("dd", String(a.version ?? "–")),
      a.description ? [h("dt", t("description")), h("dd", a.description)] : null),
    h("h3", t("trafficRestrictions")), restrictionsList(a.traffic_restrictions),
    route ? [h("h3", t("authorities")),
      h("ul.plain", { id: "subject-authorities" }, (route.authorities || []).map((x) => h("li", `${x.name}: ${fmtLen(x.length_m)}`))),
      h("p.muted", `${t("total")}: ${fmtLen(route.total_length_m)}; ${t("outside")}: ${fmtLen(route.outside_public_roads_m)}; ${t("private")}: ${fmtLen(route.private_roads_m)}`)] : null,
    h("h3", t("sections")), sectionsTable(a.sections),
    h("h3", t("attachments")), attachmentsList(a));
}

export async function statementView(id) {
  const res = await api(`/api/v1/statements/${id}`);
  const s = res.data;
  const nodes = [h("p", h("a", { href: "#/statements" }, `← ${t("backToStatements")}`)),
    h("h1", `${s.application.reference} – ${s.application.project_name || ""}`),
    h("dl.facts",
      h("dt", t("body")), h("dd", `${s.body.name} (${t(`roleOf.${s.role}`)})`),
      h("dt", t("status")), h("dd", h("span", { class: `badge stmt-${s.status}`, id: "statement-status" }, t(`stmtStatus.${s.status}`))),
      h("dt", t("requested")), h("dd", fmtTime(s.requested_at)),
      h("dt", t("due")), h("dd", { class: s.overdue ? "overdue" : null }, `${fmtDate(s.due_on)}${s.overdue ? ` – ${t("overdue")}` : ""}`),
      h("dt", t("version")), h("dd", String(s.version))),
    h("h2", t("occasion")), triggersList(s) || h("p", t("none")),
    closedBlock(s),
    s.answer ? [h("h2", t("yourAnswer")), answerBlock(s)] : null,
    subjectSection(s.application)];
  if ((s.allowed_commands || []).includes("answer")) nodes.push(await answerForm(s, res.etag));
  const features = (s.application.sections?.features || []).filter((f) => f.geometry).map((f) => ({
    type: "Feature", geometry: f.geometry,
    properties: { ...(f.properties || {}), highlight: true, reference: s.application.reference } }));
  const fc = { type: "FeatureCollection", features };
  const mapEl = h("div.map", { id: "map", role: "region", "aria-label": t("route") });
  return {
    nodes: [h("div.split", h("section.pane", nodes), h("section.pane.map-pane", mapEl))],
    after: async () => {
      const map = await createMap(mapEl, { label: t("route") });
      showGeoJSON(map, "route", fc);
      fit(map, [fc]);
    },
  };
}

async function answerForm(s, etag) {
  const conds = (await get("/api/v1/conditions")).filter((x) => x.active);
  const choice = (v, checked) => h("label.radio", h("input", { type: "radio", name: "answer", value: v, checked }), t(`answerOf.${v}`));
  const condSet = h("fieldset", { hidden: true }, h("legend", t("conditions")),
    conds.map((x) => h("label.check", h("input", { type: "checkbox", name: "condition", value: x.code }),
      h("span", h("strong", x.title), " ", h("span.muted", x.text)))));
  const free = h("textarea", { name: "free", rows: 3 });
  const freeField = field(t("statementConditions"), free);
  freeField.hidden = true;
  const reasons = h("textarea", { name: "reasons", rows: 4 });
  const btn = h("button.primary", { type: "submit" }, t("sendStatement"));
  const err = h("div.error", { role: "alert" });
  const form = h("form.card", { id: "form-statement", onchange: (e) => {
    if (e.target.name !== "answer") return;
    const withConditions = e.target.value === "agree_with_conditions";
    condSet.hidden = !withConditions;
    freeField.hidden = !withConditions;
    reasons.required = e.target.value === "object";
  }, onsubmit: async (e) => {
    e.preventDefault();
    err.textContent = "";
    const fd = new FormData(form);
    const answer = fd.get("answer");
    const body = { answer, reasons: (fd.get("reasons") || "").trim() || null };
    body.conditions = answer === "agree_with_conditions"
      ? [...fd.getAll("condition").map((code) => ({ code })),
        ...String(fd.get("free") || "").split("\n").map((x) => x.trim()).filter(Boolean).map((text) => ({ text }))]
      : [];
    btn.disabled = true;
    try {
      await api(`/api/v1/statements/${s.id}/answer`, { method: "POST", etag, body });
      state.flash = { text: t("answered"), kind: "ok" };
      await rerender();
    } catch (ex) { err.textContent = problemText(ex); btn.disabled = false; }
  } },
  h("h2", t("yourAnswer")),
  h("fieldset", h("legend", t("answerKind")), ANSWERS.map((v, i) => choice(v, i === 0))),
  condSet, freeField, field(t("statementReasons"), reasons), err, btn);
  return form;
}
