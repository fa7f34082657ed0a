// Panels shared by the operator's application and the authority's case: the decision documents of cases (with
// download and verification link) and the review pipeline's progress. Both refresh themselves while something is
// still being produced, and stop when the page is left.
import { api, get } from "./api.js";
import { h } from "./dom.js";
import { t, fmtTime } from "./i18n.js";
import { state, say, problemText } from "./state.js";
import { download } from "./shared.js";

const DECIDED = ["granted", "partially_granted", "refused", "deemed_granted"];
const POLL_MS = 1500;

/** Render `load()` into `box` now and again every POLL_MS while it answers busy=true and the box is on the page. */
function live(box, load) {
  let timer = null, seen = false, misses = 0, last = null;
  const once = async () => {
    timer = null;
    let busy = false;
    try {
      const out = await load();
      busy = out.busy;
      // unchanged data: keep the nodes (focus stays, screen readers are not told the same thing again)
      if (out.key !== last) box.replaceChildren(...out.nodes.filter(Boolean));
      last = out.key;
    } catch (e) {
      last = null;
      box.replaceChildren(h("p.error", { role: "alert" }, problemText(e)));
    }
    box.setAttribute("aria-busy", busy ? "true" : "false");
    if (box.isConnected) seen = true;
    const gone = seen ? !box.isConnected : ++misses > 5;   // the page was left (or never shown)
    if (busy && !gone) timer = setTimeout(once, POLL_MS);
  };
  once();
  return { refresh: () => { if (timer) clearTimeout(timer); return once(); } };
}

// --- documents -----------------------------------------------------------------------------------------------------

/** Authority admins (their authority's documents) and tenant admins: produce a document again (a failed one, or
 * after a template fix) and revoke an issued one with a reason; /verify reports it as revoked from then on. */
function documentAdmin(doc, refresh) {
  if (!["authority_admin", "tenant_admin"].includes(state.me?.role)) return null;
  const act = async (button, path, body) => {
    button.disabled = true;
    try {
      await api(`/api/v1/documents/${doc.id}/${path}`, { method: "POST", body });
      say(t(path === "revoke" ? "docRevoked" : "docRegenerating"), "ok");
      await refresh();
    } catch (err) { say(problemText(err), "error"); button.disabled = false; }
  };
  const regen = (doc.status === "ready" || doc.status === "failed") && doc.validity !== "revoked"
    ? h("button", { type: "button", onclick: (e) => act(e.target, "regenerate") }, t("docRegenerate")) : null;
  let revoke = null;
  if (doc.status === "ready" && doc.validity === "valid") {
    const reason = h("textarea", { name: "reason", rows: 2, required: true, maxlength: 5000 });
    revoke = h("details.revoke", h("summary", t("docRevoke")),
      h("form", { onsubmit: (e) => { e.preventDefault(); act(e.submitter || e.target.querySelector("button"), "revoke", { reason: reason.value }); } },
        h("label", { class: "field" }, h("span", t("docRevokeReason")), reason),
        h("button.danger", { type: "submit" }, t("docRevokeConfirm"))));
  }
  return regen || revoke ? h("div.admin-actions", regen, revoke) : null;
}

function documentItem(doc, reference, authorityName, refresh) {
  const ready = doc.status === "ready";
  const busy = doc.status === "pending" || doc.status === "generating";
  const name = `Bescheid-${reference}-${doc.generation}.pdf`;
  return h("li.card.document", { "data-document-id": doc.id, "data-status": doc.status },
    h("h3", `${t(`docKind.${doc.kind}`)} – ${authorityName} `,
      h("span", { class: `badge doc-${doc.status} validity-${doc.validity}` },
        ready ? t(`validity.${doc.validity}`) : t(`docStatus.${doc.status}`))),
    busy ? h("p.muted", t("docGenerating")) : null,
    h("dl.facts",
      h("dt", t("decision")), h("dd", t(`st.${doc.outcome}`)),
      h("dt", t("generation")), h("dd", String(doc.generation)),
      h("dt", t("status")), h("dd", t(`docStatus.${doc.status}`)),
      ready ? [h("dt", t("signedAt")), h("dd", h("time", { datetime: doc.signed_at }, fmtTime(doc.signed_at)))] : null,
      doc.signer ? [h("dt", t("signer")), h("dd", doc.signer)] : null,
      doc.sha256 ? [h("dt", t("sha256")), h("dd", h("code.hash", doc.sha256))] : null,
      doc.revoked_reason ? [h("dt", t("docRevokeReason")), h("dd", doc.revoked_reason)] : null,
      doc.error ? [h("dt", t("docError")), h("dd.error", doc.error)] : null),
    ready ? h("p.actions",
      h("button.primary", { type: "button", "aria-label": `${t("downloadPdf")}: ${name}`, onclick: async (e) => {
        e.target.disabled = true;
        try { await download(doc.pdf_url, name); } catch (err) { say(problemText(err), "error"); }
        e.target.disabled = false;
      } }, t("downloadPdf")), " ",
      h("a.verify", { href: `/verify/${doc.id}`, target: "_blank", rel: "noopener" }, t("verifyLink"))) : null,
    documentAdmin(doc, refresh));
}

/** The documents of the given cases ({id, status, authority: {name}}); `reference` names the downloaded files. */
export function documentsPanel(cases, reference) {
  const box = h("div", { id: "documents", "aria-live": "polite" }, h("p", t("loading")));
  const panel = h("section.panel", { "aria-labelledby": "documents-heading" }, h("h2", { id: "documents-heading" }, t("documents")), box);
  const ctl = live(box, async () => {
    const lists = await Promise.all(cases.map((c) => get(`/api/v1/cases/${c.id}/documents`).then((docs) => [c, docs])));
    let busy = false;
    const items = [];
    for (const [c, docs] of lists) {
      if (!docs.length && DECIDED.includes(c.status)) {
        busy = true;   // decided, the document task has not created its row yet
        items.push(h("li.card.document", { "data-status": "pending" },
          h("h3", `${c.authority.name} `, h("span.badge.doc-pending", t("docStatus.pending"))), h("p.muted", t("docGenerating"))));
      }
      for (const d of docs) {
        if (d.status === "pending" || d.status === "generating") busy = true;
        items.push(documentItem(d, reference, c.authority.name, () => ctl.refresh()));
      }
    }
    return { busy, key: JSON.stringify(lists.map(([, docs]) => docs)), nodes: items.length ? [h("ul.plain.documents", items)] : [h("p", t("docsNone"))] };
  });
  return panel;
}

// --- pipeline ------------------------------------------------------------------------------------------------------

function findings(step) {
  const f = step.result?.plausibility?.findings || [];
  if (!f.length) return null;
  return h("ul.findings", f.map((x) => h("li", { class: `sev-${x.severity}` }, x.message)));
}

function stepItem(appId, step, onRetry) {
  return h("li", { class: `step state-${step.status}`, "data-step": step.name },
    h("span.step-name", t(`step.${step.name}`)), " ",
    h("span", { class: `badge step-${step.status}` }, t(`stepStatus.${step.status}`)),
    step.finished_at ? h("span.muted", ` ${fmtTime(step.finished_at)}`) : null,
    step.attempts > 1 ? h("span.muted", ` (${t("attempts")}: ${step.attempts})`) : null,
    step.error ? h("p.error", step.error) : null,
    (step.allowed_commands || []).includes("retry") ? h("p", h("button", { type: "button", onclick: async (e) => {
      e.target.disabled = true;
      try { await api(`/api/v1/applications/${appId}/pipeline/${step.name}/retry`, { method: "POST" }); say(t("retried"), "ok"); await onRetry(); }
      catch (err) { say(problemText(err), "error"); e.target.disabled = false; }
    } }, `${t("retry")}: ${t(`step.${step.name}`)}`)) : null,
    findings(step));
}

export function pipelinePanel(appId) {
  const box = h("div", { id: "pipeline", "aria-live": "polite" }, h("p", t("loading")));
  const panel = h("section.panel", { "aria-labelledby": "pipeline-heading" }, h("h2", { id: "pipeline-heading" }, t("pipeline")), box);
  const ctl = live(box, async () => {
    const p = await get(`/api/v1/applications/${appId}/pipeline`);
    if (!p.runs.length) return { busy: false, nodes: [h("p", t("pipelineNone"))] };
    const [run, ...older] = p.runs;
    // a failed run keeps its later steps pending until a retry: only the run's own status says it is still going
    const busy = p.runs.some((r) => r.status === "pending" || r.status === "running");
    return { busy, key: JSON.stringify(p.runs), nodes: [
      h("p", `${t("run")} ${t("version")} ${run.version} (${t(`trigger.${run.trigger}`)}), ${fmtTime(run.created_at)}: `,
        h("span", { class: `badge step-${run.status}`, id: "pipeline-status" }, t(`stepStatus.${run.status}`))),
      h("ol.steps", run.steps.map((s) => stepItem(appId, s, () => ctl.refresh()))),
      older.length ? h("details", h("summary", t("earlierRuns")), h("ul", older.map((r) =>
        h("li", `${t("version")} ${r.version} (${t(`trigger.${r.trigger}`)}), ${fmtTime(r.created_at)}: ${t(`stepStatus.${r.status}`)}`)))) : null] };
  });
  return panel;
}
