// The account page: who is signed in, the GIS access, and the user's own API tokens (when each expires, revoke one,
// create one for a program such as QGIS; the secret of a new token is shown once).
import { api, get } from "./api.js";
import { h, field } from "./dom.js";
import { t, fmtTime } from "./i18n.js";
import { state, isBody, say, problemText, signOut } from "./state.js";

/** Who is signed in: name, role, organisation, tenant, when the session ends and the GIS access (OGC API). */
function meCard() {
  const m = state.me;
  return h("dl.me",
    h("dt", t("signedInAs")), h("dd", `${m.name || ""} <${m.email}>`),
    h("dt", t("role")), h("dd", isBody() ? t(`bodyRoles.${m.role}`) : t(`roles.${m.role}`)),
    h("dt", t("organisation")), h("dd", `${m.organisation.name}${isBody() ? ` (${t("orgKind.participating_body")})` : ""}`),
    h("dt", t("tenant")), h("dd", `${m.tenant.name} (${m.tenant.key})`),
    h("dt", t("sessionValidUntil")), h("dd", { id: "session-expires" }, m.token_expires_at ? fmtTime(m.token_expires_at) : t("noExpiry")),
    isBody() ? null : [h("dt", t("gisAccess")), h("dd",
      h("code", { id: "ogc-url" }, `${location.origin}/api/v1/ogc`), h("p.muted", t("gisAccessHelp")),
      h("ol.muted", { id: "gis-steps" }, t("gisSteps").map((step) => h("li", step))))]);
}

const tokenState = (tk, now) => (tk.revoked_at ? "revoked" : tk.expires_at && new Date(tk.expires_at) <= now ? "expired" : "active");

function tokensTable(tokens, reload) {
  if (!tokens.length) return h("p", t("none"));
  const now = new Date();
  const revoke = async (button, tk) => {
    button.disabled = true;
    try {
      await api(`/api/v1/me/tokens/${tk.id}`, { method: "DELETE" });
      say(t("tokenRevokedMsg").replace("{name}", tk.name), "ok");
      await reload();
    } catch (e) { say(problemText(e), "error"); button.disabled = false; }
  };
  const row = (tk) => {
    const st = tokenState(tk, now);
    const label = st === "revoked" ? `${t("tokenStates.revoked")} ${fmtTime(tk.revoked_at)}` : t(`tokenStates.${st}`);
    const action = st !== "active" ? null : tk.current
      ? h("button", { type: "button", onclick: () => signOut() }, t("endSession"))
      : h("button", { type: "button", "aria-label": t("revokeToken").replace("{name}", tk.name),
        onclick: (e) => revoke(e.target, tk) }, t("revoke"));
    return h("tr", { "data-token-id": tk.id, class: `token-${st}` },
      h("td", tk.name, tk.current ? h("span.badge.current", t("thisSession")) : null),
      h("td", h("code", `${tk.prefix}…`)), h("td", fmtTime(tk.created_at)),
      h("td", tk.expires_at ? fmtTime(tk.expires_at) : t("noExpiry")), h("td", fmtTime(tk.last_used_at)),
      h("td", h("span", { class: `badge tk-${st}` }, label)), h("td", action));
  };
  return h("table.list", { id: "tokens-table" },
    h("thead", h("tr", [t("tokenName"), t("tokenPrefix"), t("created"), t("expires"), t("lastUsed"), t("status"), ""]
      .map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", tokens.map(row)));
}

function createForm(reload, shown) {
  const name = h("input", { name: "name", required: true, maxlength: 200, autocomplete: "off" });
  const days = h("input", { name: "expires_in_days", type: "number", min: 1, max: 365, value: 90, required: true });
  return h("form.card", { id: "token-create", onsubmit: async (e) => {
    e.preventDefault();
    const button = e.target.querySelector("button");
    button.disabled = true;
    try {
      const { data } = await api("/api/v1/me/tokens", { method: "POST", body: { name: name.value, expires_in_days: Number(days.value) } });
      shown.replaceChildren(h("div.card.secret", { role: "status" },
        h("p", h("strong", t("tokenCreated"))),
        h("p", h("code", { id: "new-token" }, data.token)),
        h("p.muted", `${t("expires")}: ${fmtTime(data.expires_at)}`)));
      name.value = "";
      days.value = 90;
      await reload();
    } catch (err) { say(problemText(err), "error"); }
    button.disabled = false;
  } },
  h("h3", t("newToken")),
  h("div.row", field(t("tokenName"), name, t("tokenNameHelp")), field(t("validDays"), days, t("validDaysHelp"))),
  h("button.primary", { type: "submit" }, t("create")));
}

export function accountView() {
  const box = h("div", { id: "tokens", "aria-busy": "true" }, h("p.loading", t("loading")));
  const shown = h("div");
  const reload = async () => {
    const tokens = await get("/api/v1/me/tokens");
    box.replaceChildren(tokensTable(tokens, reload));
    box.setAttribute("aria-busy", "false");
  };
  const nodes = [h("section.pane.wide", h("h1", t("account")), meCard(),
    h("h2", t("tokens")), h("p.muted", t("tokensHelp")), box, shown, createForm(reload, shown))];
  return { nodes, after: reload };
}
