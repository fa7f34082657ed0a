// Participation (Beteiligung) pieces shared by the participating body's screens (statements.js) and the road
// authority's case (authority.js): a statement with its occasion and answer, the case's statements section, and the
// decision form's fieldset of proposed conditions to adopt.
import { h } from "./dom.js";
import { t, fmtDate, fmtTime } from "./i18n.js";

function conditionText(c) {
  return c.code ? `${c.code}${c.title ? ` – ${c.title}` : ""}: ${c.text || ""}` : c.text;
}

/** Why the body is asked, in the user's language: traffic restrictions by kind and Gemeinde; areas as the rule
 * worded it (name, designation and length). */
export function occasion(tr) {
  if (tr.trigger === "traffic_restriction")
    return `${t("trafficRestrictions")} (${(tr.restrictions || []).map((k) => t(`tr.${k}`)).join(", ")})${tr.gemeinde?.name ? ` – ${tr.gemeinde.name}` : ""}`;
  return tr.reason || tr.rule;
}

export function triggersList(s) {
  const items = (s.triggers || []).map((tr) => h("li", occasion(tr)));
  return items.length ? h("ul.triggers", items) : null;
}

export function answerBlock(s) {
  if (!s.answer) return null;
  return h("div.statement-answer",
    h("p", h("strong", { class: `answer-${s.answer}` }, t(`answerOf.${s.answer}`)),
      ` – ${t("answeredAt")} ${fmtTime(s.answered_at)}${s.answered_by ? ` ${t("answeredBy")} ${s.answered_by}` : ""}`),
    s.conditions?.length ? [h("p", h("strong", t("proposedConditions"))), h("ul", s.conditions.map((c) => h("li", conditionText(c))))] : null,
    s.reasons ? h("p", s.reasons) : null);
}

/** Why an unanswered request was closed (application decided or withdrawn, route changed), and when. */
export function closedBlock(s) {
  if (!s.closed_reason) return null;
  return h("p.statement-closed", { "data-closed-reason": s.closed_reason },
    `${t("closedAt")} ${fmtTime(s.closed_at)}: ${t(`closeReason.${s.closed_reason}`)}`);
}

function statementCard(s) {
  return h("li.card.statement", { "data-statement-id": s.id, "data-status": s.status },
    h("h3", `${s.body.name} (${t(`roleOf.${s.role}`)}) `, h("span", { class: `badge stmt-${s.status}` }, t(`stmtStatus.${s.status}`))),
    h("dl.facts",
      h("dt", t("requested")), h("dd", fmtTime(s.requested_at)),
      h("dt", t("due")), h("dd", { class: s.overdue ? "overdue" : null }, `${fmtDate(s.due_on)}${s.overdue ? ` – ${t("overdue")}` : ""}`),
      h("dt", t("version")), h("dd", String(s.version))),
    h("p.muted", t("occasion")), triggersList(s),
    closedBlock(s),
    answerBlock(s));
}

/** The statements on the authority's case (GET /cases/{id}/statements), as a section. */
export function statementsSection(view) {
  return h("section.panel", { "aria-labelledby": "statements-heading" },
    h("h2", { id: "statements-heading" }, t("statementsOf")),
    view.statements.length ? h("ul.plain", { id: "statements" }, view.statements.map(statementCard)) : h("p", { id: "statements" }, t("none")));
}

/** The decision form's fieldset of proposed conditions; `collect()` → {conditions, additional_conditions}. */
export function adoptionFieldset(adoptable) {
  const sources = adoptable?.sources || [];
  const boxes = sources.map((src, i) => h("label.check",
    h("input", { type: "checkbox", name: "adopt", value: String(i) }),
    h("span", src.code ? h("strong", src.code) : null, src.code ? " " : null, src.text || "",
      src.body ? h("span.muted", ` (${t("proposedBy")} ${src.body})`) : null)));
  const set = h("fieldset", { id: "adopt-conditions" }, h("legend", t("adopt")), boxes);
  return {
    node: boxes.length ? set : null,
    collect() {
      const out = { conditions: [], additional_conditions: [] };
      for (const b of set.querySelectorAll("input[name=adopt]:checked")) {
        const src = sources[Number(b.value)];
        if (src.code) out.conditions.push(src.code);
        else if (src.text) out.additional_conditions.push(src.text);
      }
      return out;
    },
  };
}

/** The decision form's list of statements still pending (GET /cases/{id}/statements `pending`) and the checkbox that
 * confirms deciding without them; `confirmed()` → the value of `confirm_pending_statements`. */
export function pendingFieldset(pending) {
  if (!pending?.length) return { node: null, confirmed: () => false };
  const box = h("input", { type: "checkbox", name: "confirm_pending_statements", id: "confirm-pending", required: true });
  const node = h("fieldset", { id: "pending-statements" }, h("legend", t("pendingStatements")),
    h("ul", pending.map((p) => h("li", { "data-statement-id": p.id },
      `${p.body.name} (${t(`roleOf.${p.role}`)}) – ${t("due")} ${fmtDate(p.due_on)}`))),
    h("p.muted", t("pendingStatementsHint")),
    h("label.check", box, h("span", t("confirmPending"))));
  return { node, confirmed: () => box.checked };
}

/** The further decisions the works need (§ 127 (5) TKG) on the consent case: kind, body, state, deadline. */
export function relatedSection(c) {
  const items = c.related_decisions || [];
  if (!items.length) return null;
  return h("section.panel", { "aria-labelledby": "related-heading" },
    h("h2", { id: "related-heading" }, t("relatedDecisions")),
    h("p.muted", t("relatedHint")),
    h("ul.plain", { id: "related-decisions" }, items.map((r) => h("li.card", { "data-case-id": r.case_id, "data-kind": r.kind },
      h("h3", `${t(`kindOf.${r.kind}`)} – ${r.body.name} `, h("span", { class: `badge st-${r.status}` }, t(`st.${r.status}`))),
      h("dl.facts",
        h("dt", t("due")), h("dd", fmtDate(r.decision_due)),
        r.decided_at ? [h("dt", t("decidedAt")), h("dd", fmtTime(r.decided_at))] : null),
      (r.triggers || []).length ? h("ul.triggers", r.triggers.map((tr) => h("li", tr.reason || tr.rule))) : null))));
}

/** The consent's decision form: the further decisions still open and the reason to decide without them;
 * `value()` → related_missing_reason (null when none is open). */
export function relatedMissingFieldset(c) {
  const open = (c.related_decisions || []).filter((r) => ["received", "incomplete", "in_review"].includes(r.status));
  if (!open.length) return { node: null, value: () => null };
  const reason = h("textarea", { name: "related_missing_reason", id: "related-missing-reason", rows: 2, required: true });
  const node = h("fieldset", { id: "related-missing" }, h("legend", t("relatedOpen")),
    h("ul", open.map((r) => h("li", `${t(`kindOf.${r.kind}`)} – ${r.body.name}`))),
    h("p.muted", t("relatedOpenHint")),
    h("label", { for: "related-missing-reason" }, t("relatedMissingReason")), reason);
  return { node, value: () => reason.value.trim() || null };
}

/** A traffic order's form data (period, times of day, traffic signs plan, detour), prefilled from what the
 * application declares; `value()` → the decision's `traffic_order`. */
export function trafficOrderFieldset(c, attachments) {
  const p = c.proposed_order || {};
  const start = h("input", { type: "date", name: "period_start", required: true, value: p.period_start || "" });
  const end = h("input", { type: "date", name: "period_end", required: true, value: p.period_end || "" });
  const from = h("input", { type: "time", name: "time_start", value: "07:00" });
  const until = h("input", { type: "time", name: "time_end", value: "18:00" });
  const days = [1, 2, 3, 4, 5, 6, 7].map((d) => h("label.check", h("input", { type: "checkbox", name: "weekday", value: String(d), checked: d <= 5 }), t(`weekday.${d}`)));
  const allDay = h("input", { type: "checkbox", name: "all_day" });
  const plans = attachments.filter((a) => a.kind === "traffic_plan");
  const plan = h("select", { name: "signs_plan", required: true }, h("option", { value: "" }, "–"),
    plans.map((a, i) => h("option", { value: a.id, selected: i === 0 }, a.file_name)));
  const detour = h("textarea", { name: "detour", rows: 2 });
  const measures = h("textarea", { name: "measures", rows: 2 });
  const restrictions = (p.restrictions || []).map((r) => h("li", `${t(`tr.${r.kind}`)}${r.road ? ` – ${r.road}` : ""}${r.description ? `: ${r.description}` : ""}`));
  const node = h("fieldset", { id: "traffic-order" }, h("legend", t("trafficOrder")),
    restrictions.length ? [h("p.muted", t("declaredRestrictions")), h("ul", restrictions)] : null,
    h("label", t("periodStart"), start), h("label", t("periodEnd"), end),
    h("fieldset", h("legend", t("timesOfDay")), days, h("label", t("from"), from), h("label", t("until"), until),
      h("label.check", allDay, t("allDay"))),
    h("label", t("signsPlan"), plan), plans.length ? null : h("p.error", t("noSignsPlan")),
    h("label", t("detour"), detour), h("label", t("measures"), measures));
  return {
    node,
    value() {
      const weekdays = [...node.querySelectorAll("input[name=weekday]:checked")].map((b) => Number(b.value));
      return { period_start: start.value, period_end: end.value, signs_plan_attachment_id: plan.value,
        times_of_day: allDay.checked ? [] : [{ weekdays, start: from.value, end: until.value }],
        detour: detour.value.trim() || null, measures: measures.value.trim() || null };
    },
  };
}
