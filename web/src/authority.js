// Road authority screens: inbox (list + map) and the case with its decision form.
import { api, get } from "./api.js";
import { h, field } from "./dom.js";
import { t, fmtDate, fmtDue, fmtTime, fmtLen } from "./i18n.js";
import { createMap, showGeoJSON, fit, resolutionFeatures } from "./map.js";
import { state, say, problemText, rerender } from "./state.js";
import { sectionsTable, attachmentsList, timeline, routeSummary, moreButton, pageLimit, infoRequests, decisionBox } from "./shared.js";
import { documentsPanel, pipelinePanel } from "./panels.js";
import { statementsSection, adoptionFieldset } from "./participation.js";
import { exportForm } from "./exports.js";

const CASE_STATUSES = ["received", "incomplete", "in_review", "granted", "partially_granted", "refused", "deemed_granted", "forwarded", "withdrawn", "closed"];
const OPEN = ["received", "incomplete", "in_review"];

export async function inboxView(params) {
  const filter = params.get("status") || "open";
  const statuses = filter === "open" || filter === "overdue" ? OPEN : filter === "all" ? [] : [filter];
  const qs = new URLSearchParams({ limit: String(pageLimit(params)) });
  if (filter === "overdue") qs.append("overdue", "true");
  statuses.forEach((s) => qs.append("status", s));
  const page = await get(`/api/v1/cases?${qs}`);
  const select = h("select", { name: "status", onchange: (e) => { location.hash = `#/inbox?status=${e.target.value}`; } },
    [["open", t("open")], ["overdue", t("overdueOnly")], ["all", t("all")], ...CASE_STATUSES.map((s) => [s, t(`st.${s}`)])]
      .map(([v, l]) => h("option", { value: v, selected: v === filter }, l)));
  const row = (c, i) => h("tr", { class: c.overdue ? "overdue" : null },
    h("td", String(i + 1)),
    h("td", h("a", { href: `#/case/${c.id}` }, c.reference)),
    h("td", c.project_name || "–"), h("td", c.applicant.name),
    h("td", h("span", { class: `badge st-${c.status}` }, t(`st.${c.status}`))),
    h("td", fmtDate(c.complete_at || c.received_at)),
    h("td", fmtDate(c.decision_due), c.decision_due_moved
      ? h("small.moved", { title: c.decision_due_moved }, ` (${t("movedFrom")} ${fmtDate(c.decision_due_statutory)})`) : null),
    h("td.num", c.overdue ? h("strong", t("overdue")) : c.days_left ?? "–"),
    h("td.num", fmtLen(c.length_m)));
  const tbody = h("tbody", page.items.map(row));
  const table = page.items.length ? h("table.list", { id: "inbox-table" },
    h("caption.sr", t("inbox")),
    h("thead", h("tr", ["#", t("reference"), t("project"), t("applicant"), t("status"), t("received"), t("due"), t("daysLeft"), t("length")].map((x) => h("th", { scope: "col" }, x)))),
    tbody) : h("p", t("none"));
  // keyset paging: the next page continues after the last case shown, in the same legal order
  let shown = page.items.length;
  const more = moreButton(page.next, async (cursor) => {
    const next = await get(`/api/v1/cases?${qs}&after=${encodeURIComponent(cursor)}`);
    tbody.append(...next.items.map((c, i) => row(c, shown + i)));
    shown += next.items.length;
    return next.next;
  });
  const mapEl = h("div.map", { id: "map", role: "region", "aria-label": t("map") });
  return {
    nodes: [h("div.split",
      h("section.pane", h("h1", `${t("inbox")} – ${state.me.organisation.name}`),
        h("form.filters", { onsubmit: (e) => e.preventDefault() }, field(t("status"), select)),
        exportForm("cases", qs), table, more),
      h("section.pane.map-pane", mapEl))],
    after: async () => {
      const map = await createMap(mapEl);
      // the cases' own parts (their pieces) on top of the applications tile layer
      const details = await Promise.all(page.items.slice(0, 50).map((c) => get(`/api/v1/cases/${c.id}`).catch(() => null)));
      // each piece carries what its popup shows (map.js routePopup): reference, state, due date and days left, applicant
      const features = details.filter(Boolean).flatMap((c) => (c.part?.pieces || []).map((p) => ({
        type: "Feature", geometry: p.geometry, properties: { highlight: true, case_id: c.id, reference: c.application.reference,
          project_name: c.application.project_name, case_status: c.status, decision_due: c.decision_due, days_left: c.days_left,
          operator: c.application.applicant?.name } })));
      const fc = { type: "FeatureCollection", features };
      showGeoJSON(map, "inbox", fc);
      fit(map, [fc]);
      for (const layer of ["inbox-line", "inbox-point"]) {
        map.on("mouseenter", layer, () => (map.getCanvas().style.cursor = "pointer"));
        map.on("mouseleave", layer, () => (map.getCanvas().style.cursor = ""));
      }
    },
  };
}

export async function caseView(id) {
  const res = await api(`/api/v1/cases/${id}`);
  const c = res.data;
  const etag = res.etag;
  const app = await get(`/api/v1/applications/${c.application.id}`);
  const [version, history, statements] = await Promise.all([
    get(`/api/v1/applications/${app.id}/versions/${c.application_version}`).catch(() => null),
    get(`/api/v1/applications/${c.application.id}/history`),
    get(`/api/v1/cases/${c.id}/statements`).catch(() => ({ statements: [], adoptable: null }))]);
  const mapEl = h("div.map", { id: "map", role: "region", "aria-label": t("route") });
  const info = h("section.pane",
    h("p", h("a", { href: "#/inbox" }, `← ${t("inbox")}`)),
    h("h1", `${c.application.reference} – ${c.application.project_name || ""}`),
    h("dl.facts",
      h("dt", t("applicant")), h("dd", c.application.applicant.name),
      h("dt", t("status")), h("dd", h("span", { class: `badge st-${c.status}`, id: "case-status" }, t(`st.${c.status}`))),
      h("dt", t("received")), h("dd", fmtTime(c.received_at)),
      OPEN.includes(c.status) ? [h("dt", t("completenessEnd")), h("dd", { id: "completeness-end" }, fmtDue(c.deadlines?.completeness))] : null,
      h("dt", t("deadlineEnd")), h("dd", { class: c.overdue ? "overdue" : null, id: "deadline-end" }, `${fmtDue(c.deadlines?.decision)}${c.days_left != null ? ` (${c.days_left} ${t("daysLeft")})` : ""}${c.overdue ? ` – ${t("overdue")}` : ""}`),
      h("dt", t("yourPart")), h("dd", fmtLen(c.part?.length_m))),
    c.decision ? [h("h2", t("decision")), decisionBox(c)] : null,
    c.decision || c.status === "deemed_granted" ? documentsPanel([c], c.application.reference) : null,
    h("details.actions", { open: true }, h("summary", h("h2", t("decide"))), await commandForms(c, etag, statements.adoptable)),
    statementsSection(statements),
    routeSummary(app, state.me.organisation.id),
    h("h2", t("sections")), sectionsTable(version?.content?.sections || app.content.sections),
    h("h2", t("attachments")), attachmentsList(app),
    c.information_requests?.length ? [h("h2", t("infoRequests")), infoRequests(c)] : null,
    pipelinePanel(app.id),
    h("h2", t("timeline")), timeline(history));
  return {
    nodes: [h("div.split", info, h("section.pane.map-pane", mapEl))],
    after: async () => {
      const map = await createMap(mapEl, { label: t("route") });
      const about = { case_id: c.id, reference: c.application.reference, project_name: c.application.project_name,
        case_status: c.status, decision_due: c.decision_due, days_left: c.days_left, operator: c.application.applicant?.name };
      const fc = version?.resolution ? resolutionFeatures(version.resolution, c.authority.id, about)
        : { type: "FeatureCollection", features: (c.part?.pieces || []).map((p) => ({ type: "Feature", geometry: p.geometry, properties: { ...about, highlight: true } })) };
      showGeoJSON(map, "route", fc);
      fit(map, [fc]);
    },
  };
}

function lines(text) { return text.split("\n").map((s) => s.trim()).filter(Boolean); }

async function commandForms(c, etag, adoptable) {
  const allowed = c.allowed_commands || [];
  if (!allowed.length) return h("p", t("noCommands"));
  const run = async (name, body, form) => {
    const btn = form.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      await api(`/api/v1/cases/${c.id}/${name}`, { method: "POST", body, etag });
      await rerender();
      say(t("sent"), "ok");
    } catch (e) { say(problemText(e), "error"); btn.disabled = false; }
  };
  const out = [];
  if (allowed.includes("decision")) {
    const [conds, reasons] = await Promise.all([get("/api/v1/conditions"), get("/api/v1/refusal-reasons")]);
    const outcome = (v, label, checked) => h("label.radio", h("input", { type: "radio", name: "outcome", value: v, checked }), label);
    const condBoxes = conds.filter((x) => x.active).map((x) => h("label.check", h("input", { type: "checkbox", name: "condition", value: x.code }), h("span", h("strong", x.title), " ", h("span.muted", x.text))));
    const reasonBoxes = reasons.filter((x) => x.active).map((x) => h("label.check", h("input", { type: "checkbox", name: "reason", value: x.code }), h("span", h("strong", x.title), " ", h("span.muted", x.text))));
    const free = h("textarea", { name: "additional", rows: 3 });
    const expl = h("textarea", { name: "explanation", rows: 3 });
    const reasonsSet = h("fieldset", { hidden: true }, h("legend", t("reasons")), reasonBoxes);
    const adoption = adoptionFieldset(adoptable);
    const form = h("form.card", { id: "form-decision", onchange: (e) => {
      if (e.target.name === "outcome") reasonsSet.hidden = e.target.value === "granted";   // reasons: refusals only
    }, onsubmit: (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      const adopted = adoption.collect();
      const uniq = (xs) => [...new Set(xs)];
      run("decision", { outcome: fd.get("outcome"), conditions: uniq([...adopted.conditions, ...fd.getAll("condition")]),
        additional_conditions: uniq([...adopted.additional_conditions, ...lines(fd.get("additional") || "")]),
        reasons: fd.get("outcome") === "granted" ? [] : fd.getAll("reason"), explanation: (fd.get("explanation") || "").trim() || null }, form);
    } },
    h("h3", t("decide")),
    h("fieldset", h("legend", t("decision")), outcome("granted", t("grant"), true), outcome("partially_granted", t("partialGrant")), outcome("refused", t("refuse"))),
    adoption.node,
    h("fieldset", h("legend", t("conditions")), condBoxes),
    field(t("freeConditions"), free),
    reasonsSet,
    field(t("explanation"), expl),
    h("button.primary", { type: "submit" }, t("submitDecision")));
    out.push(form);
  }
  if (allowed.includes("request-information")) {
    const msg = h("textarea", { name: "message", rows: 3, required: true });
    const items = h("textarea", { name: "items", rows: 2 });
    const form = h("form.card", { id: "form-request-information", onsubmit: (e) => {
      e.preventDefault();
      run("request-information", { message: msg.value.trim(), items: lines(items.value) }, form);
    } }, h("h3", t("requestInfo")), field(t("message"), msg), field(t("items"), items), h("button", { type: "submit" }, t("send")));
    out.push(form);
  }
  if (allowed.includes("confirm-complete")) {
    const form = h("form.card", { id: "form-confirm-complete", onsubmit: (e) => { e.preventDefault(); run("confirm-complete", {}, form); } },
      h("h3", t("confirmComplete")), h("button", { type: "submit" }, t("confirmComplete")));
    out.push(form);
  }
  if (allowed.includes("forward")) {
    const orgs = (await get("/api/v1/organisations?kind=road_authority")).filter((o) => o.id !== c.authority.id);
    const to = h("select", { name: "to", required: true }, h("option", { value: "" }, "–"), orgs.map((o) => h("option", { value: o.id }, o.name)));
    const reason = h("textarea", { name: "reason", rows: 2, required: true });
    const form = h("form.card", { id: "form-forward", onsubmit: (e) => {
      e.preventDefault();
      run("forward", { to_organisation_id: to.value, reason: reason.value.trim() }, form);
    } }, h("h3", t("forward")), field(t("forwardTo"), to), field(t("reason"), reason), h("button", { type: "submit" }, t("forward")));
    out.push(form);
  }
  if (allowed.includes("extend-deadline")) {
    const reason = h("textarea", { name: "reason", rows: 2, required: true });
    const form = h("form.card", { id: "form-extend-deadline", onsubmit: (e) => {
      e.preventDefault();
      run("extend-deadline", { reason: reason.value.trim() }, form);
    } }, h("h3", t("extend")), field(t("reason"), reason), h("button", { type: "submit" }, t("extend")));
    out.push(form);
  }
  return h("div.commands", out);
}
