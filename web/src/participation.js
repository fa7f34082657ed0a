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
