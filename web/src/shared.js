// Pieces shared by the authority and operator screens.
import { api } from "./api.js";
import { h } from "./dom.js";
import { t, fmtTime, fmtLen } from "./i18n.js";

export function sectionsTable(sections) {
  const feats = sections?.features || [];
  if (!feats.length) return h("p", t("none"));
  return h("table.list",
    h("thead", h("tr", ["#", t("layingMethod"), t("depth"), t("width"), t("reducedDepth")].map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", feats.map((f, i) => {
      const p = f.properties || {};
      return h("tr", h("td", p.label || String(i + 1)), h("td", p.laying_method ? t(`lm.${p.laying_method}`) : (p.kind || f.geometry?.type)),
        h("td.num", p.depth_cm ?? "–"), h("td.num", p.width_cm ?? "–"),
        h("td", p.reduced_depth == null ? "–" : p.reduced_depth ? t("yes") : t("no")));
    })));
}

/** Download through the API client (a refusal comes back as problem+json and is shown, not saved as a file):
 * fetched as a blob with the session cookie, saved through an object URL. */
export async function download(url, fileName) {
  const { data } = await api(url, { headers: { Accept: "application/pdf, application/octet-stream, image/*, application/problem+json" } });
  const a = h("a", { href: URL.createObjectURL(data), download: fileName, hidden: true });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

export function attachmentsList(app) {
  if (!app.attachments?.length) return h("p", t("none"));
  return h("ul.plain", app.attachments.map((a) => h("li",
    h("button.link-button", { type: "button", onclick: () => download(a.url, a.file_name) }, a.file_name),
    ` (${t(`kind.${a.kind}`)}, ${Math.ceil(a.size_bytes / 1024)} KB, ${fmtTime(a.created_at)})`)));
}

export function timeline(history) {
  if (!history?.length) return h("p", t("none"));
  return h("ol.timeline", { id: "timeline" }, history.map((r) => h("li",
    h("time", { datetime: r.at }, fmtTime(r.at)), " ",
    h("strong", t(`cmd.${r.command}`)),
    r.status_before !== r.status_after && r.status_after
      ? ` (${r.status_before ? `${t(`st.${r.status_before}`)} → ` : ""}${t(`st.${r.status_after}`)})` : "",
    r.actor?.name || r.actor?.email ? ` – ${t("by")} ${r.actor.name || r.actor.email}` : "")));
}

/** Authorities of the application's route with their lengths; the caller's own authority first and marked. */
export function routeSummary(app, ownOrgId) {
  const r = app.route;
  if (!r) return null;
  return h("div",
    h("h2", t("authorities")),
    h("ul.legend", (r.by_authority || []).map((c) => h("li", { class: c.authority.id === ownOrgId ? "own" : null },
      h("span", { class: `swatch ${ownOrgId ? (c.authority.id === ownOrgId ? "own" : "grey") : "other"}`, "aria-hidden": "true" }),
      `${c.authority.name}: ${fmtLen(c.length_m)} – ${t(`st.${c.status}`)}`))),
    h("p.muted", `${t("total")}: ${fmtLen(r.total_length_m)}; ${t("outside")}: ${fmtLen(r.outside_public_roads_m)}; ${t("private")}: ${fmtLen(r.private_roads_m)}`),
    r.warnings?.length ? h("ul.warnings", r.warnings.map((w) => h("li", w.message))) : null);
}

/** The information requests of a case, with the applicant's answers. */
export function infoRequests(c) {
  return h("ul.plain", c.information_requests.map((r) => h("li",
    h("p", h("strong", fmtTime(r.requested_at || r.at)), " ", r.message),
    r.items?.length ? h("ul", r.items.map((i) => h("li", i))) : null,
    r.answered_at || r.supplement ? h("p.muted", `${t("answer")}: ${fmtTime(r.answered_at)} ${r.supplement?.message || ""}`) : null)));
}

/** A case's decision: outcome, conditions, reasons and explanation. */
export function decisionBox(c) {
  const d = c.decision;
  return h("div.decision", { id: "decision" },
    h("p", h("strong", t(`st.${d.outcome || c.status}`)), ` – ${fmtTime(c.decided_at)}`),
    (d.conditions || []).length ? h("ul", d.conditions.map((x) => h("li", typeof x === "string" ? x : `${x.code ? x.code + ": " : ""}${x.title || ""} ${x.text || ""}`))) : null,
    (d.additional_conditions || []).length ? h("ul", d.additional_conditions.map((x) => h("li", x))) : null,
    (d.reasons || []).length ? h("ul", d.reasons.map((x) => h("li", typeof x === "string" ? x : `${x.code}: ${x.title || ""}`))) : null,
    d.explanation ? h("p", d.explanation) : null);
}

/** Page size of the lists: `limit` in the view's parameters (1–200), else 100. */
export function pageLimit(params) {
  const n = Number.parseInt(params.get("limit") || "", 10);
  return Number.isFinite(n) && n >= 1 && n <= 200 ? n : 100;
}

/** "Load more" under a list: `loadNext(position)` appends the following page and returns the next position, or
 * null after the last page. Hidden when there is nothing more; errors are shown beside it. */
export function moreButton(position, loadNext) {
  const err = h("span.error", { role: "alert" });
  const button = h("button", { type: "button", id: "load-more", hidden: position == null, onclick: async () => {
    button.disabled = true;
    err.textContent = "";
    try {
      position = await loadNext(position);
      button.hidden = position == null;
    } catch (e) {
      err.textContent = e.message || String(e);
    } finally {
      button.disabled = false;
    }
  } }, t("loadMore"));
  return h("p.more", button, " ", err);
}

/** A button that asks before it acts: the first click shows the question with "yes" and "cancel" in its place
 * (no modal window; keyboard and screen readers follow it as ordinary content). */
export function confirmButton(label, question, yesLabel, action, { danger = true, id } = {}) {
  const wrap = h("span.confirm");
  const first = h(danger ? "button.danger" : "button", { type: "button", id, onclick: () => {
    const yes = h("button.danger", { type: "button", onclick: async () => {
      yes.disabled = true;
      try { await action(); } finally { yes.disabled = false; }
    } }, yesLabel);
    const no = h("button", { type: "button", onclick: () => wrap.replaceChildren(first) }, t("cancel"));
    wrap.replaceChildren(h("span.question", { role: "alert" }, question), " ", yes, " ", no);
    yes.focus();
  } }, label);
  wrap.append(first);
  return wrap;
}
