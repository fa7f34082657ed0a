// The account page: who is signed in; changing the password; the second factor (set up with a QR code and a code
// from the app, or turned off with the password); the open browser sessions (end one, sign out everywhere); the
// user's API tokens (when each expires, read-only or read-write, revoke one, create one for a program such as QGIS:
// the secret is shown once) and the GIS access. Also the set-up of the second factor a tenant requires before
// anything else (totpEnrolmentView).
import { api, get } from "./api.js";
import { h, field } from "./dom.js";
import { confirmButton } from "./shared.js";
import { t, fmtTime } from "./i18n.js";
import { state, isBody, say, problemText, signOut, loadSession, adoptSession, endedEverywhere, rerender } from "./state.js";

/** Who is signed in: name, role, organisation, tenant, when the session ends and the GIS access (OGC API). */
function meCard() {
  const m = state.me;
  return h("dl.me",
    h("dt", t("signedInAs")), h("dd", `${m.name || ""} <${m.email}>`),
    h("dt", t("role")), h("dd", isBody() ? t(`bodyRoles.${m.role}`) : t(`roles.${m.role}`)),
    h("dt", t("organisation")), h("dd", `${m.organisation.name}${isBody() ? ` (${t("orgKind.participating_body")})` : ""}`),
    h("dt", t("tenant")), h("dd", `${m.tenant.name} (${m.tenant.key})`),
    h("dt", t("sessionValidUntil")), h("dd", { id: "session-expires" }, state.session?.expires_at ? fmtTime(state.session.expires_at) : "–"));
}

function gisAccess() {
  if (isBody()) return null;
  return [h("h2", t("gisAccess")), h("p", h("code", { id: "ogc-url" }, `${location.origin}/api/v1/ogc`)),
    h("p.muted", t("gisAccessHelp")), h("ol.muted", { id: "gis-steps" }, t("gisSteps").map((step) => h("li", step)))];
}

/** A form whose submit button is disabled while the request runs; `run` returns the success text. */
function commandForm(attrs, children, run) {
  const err = h("p.error", { role: "alert" });
  const form = h("form", { ...attrs, onsubmit: async (ev) => {
    ev.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    err.textContent = "";
    try {
      const text = await run(form);
      if (text) say(text, "ok");
    } catch (e) { err.textContent = problemText(e); }
    button.disabled = false;
  } }, children, err);
  return form;
}

// --- password ---------------------------------------------------------------------------------------------------

function passwordForm() {
  const current = h("input", { type: "password", name: "current_password", autocomplete: "current-password", required: true });
  const fresh = h("input", { type: "password", name: "new_password", autocomplete: "new-password", required: true });
  const again = h("input", { type: "password", name: "new_password_repeat", autocomplete: "new-password", required: true });
  const username = h("input", { type: "email", autocomplete: "username", value: state.me.email, readonly: true, hidden: true });
  return commandForm({ id: "password-form", class: "card" }, [h("h3", t("changePassword")), username,
    field(t("currentPassword"), current),
    h("div.row", field(t("newPassword"), fresh, t("passwordPolicy")), field(t("repeatPassword"), again)),
    h("button.primary", { type: "submit" }, t("changePassword"))], async () => {
    if (fresh.value !== again.value) throw new Error(t("passwordsDiffer"));
    await api("/api/v1/me/password", { method: "POST", body: { current_password: current.value, new_password: fresh.value } });
    current.value = fresh.value = again.value = "";
    return t("passwordChanged");
  });
}

// --- second factor ----------------------------------------------------------------------------------------------

/** The QR code of the otpauth URI, from the server's SVG: shown as an image (data: URL), so no markup of it enters
 * the page. An SVG file needs the SVG namespace, which the server's inline <svg> leaves out. */
function qrImage(svg) {
  const standalone = /^<svg\b[^>]*\bxmlns=/.test(svg) ? svg : svg.replace(/^<svg\b/, '<svg xmlns="http://www.w3.org/2000/svg"');
  return h("img.qr", { src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(standalone)}`,
    alt: t("totpQrAlt"), width: 200, height: 200 });
}

/** Start the set-up (a new secret from the server), show it, and confirm with a code; `done` runs afterwards. */
function totpSetup(box, done) {
  const start = async (button) => {
    button.disabled = true;
    try {
      const { data } = await api("/api/v1/me/totp", { method: "POST" });
      const code = h("input", { name: "code", autocomplete: "one-time-code", inputmode: "numeric", required: true,
        pattern: "[0-9 ]{6,8}", maxlength: 8 });
      box.replaceChildren(h("ol.steps-plain", { id: "totp-setup" },
        h("li", t("totpStep1")),
        h("li", t("totpStep2"), h("div.qr-box", qrImage(data.qr_svg),
          h("p.muted", t("totpManual"), " ", h("code", { id: "totp-secret" }, data.secret)))),
        h("li", commandForm({ id: "totp-confirm" }, [field(t("totpCode"), code, t("totpCodeHelp")),
          h("button.primary", { type: "submit" }, t("totpConfirm"))], async () => {
          await api("/api/v1/me/totp/confirm", { method: "POST", body: { code: code.value.replace(/\s/g, "") } });
          await done();
          return t("totpEnabledMsg");
        }))));
    } catch (e) { say(problemText(e), "error"); button.disabled = false; }
  };
  return h("button.primary", { type: "button", id: "totp-start", onclick: (e) => start(e.target) }, t("totpEnable"));
}

function totpCard() {
  const box = h("div");
  const on = state.me.totp_enabled;
  const reload = async () => { await loadSession(); await rerender(); };
  if (!on) box.append(h("p", t("totpOffHelp")), totpSetup(box, reload));
  else if (state.me.totp_required) box.append(h("p", t("totpRequiredHelp")));
  else {
    const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
    box.append(commandForm({ id: "totp-disable" }, [h("p", t("totpDisableHelp")), field(t("currentPassword"), password),
      h("button.danger", { type: "submit" }, t("totpDisable"))], async () => {
      await api("/api/v1/me/totp", { method: "DELETE", body: { password: password.value } });
      await reload();
      return t("totpDisabledMsg");
    }));
  }
  return h("section.card", { id: "totp" }, h("h3", t("totp"), " ",
    h("span", { class: `badge ${on ? "tk-active" : "tk-expired"}`, id: "totp-state" }, on ? t("totpOn") : t("totpOff"))), box);
}

/** The page a session restricted by the tenant's rules shows: set up the second factor, then carry on. */
export function totpEnrolmentView(home) {
  const box = h("div");
  box.append(totpSetup(box, async () => {
    await loadSession();
    state.flash = { text: t("totpEnabledMsg"), kind: "ok" };
    location.hash = state.returnTo || home();
    state.returnTo = null;
  }));
  return [h("section.card.narrow", h("h1", t("totpRequiredTitle")), h("p", t("totpRequiredIntro")), box,
    h("p", h("button.link-button", { type: "button", onclick: () => signOut() }, t("logout"))))];
}

// --- sessions ---------------------------------------------------------------------------------------------------

/** "Firefox on Windows" from a user agent string: enough to recognise one's devices, not a full parser. */
export function device(ua) {
  if (!ua) return t("unknownDevice");
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrome\/|Chromium\//.test(ua) ? "Chrome"
    : /Safari\//.test(ua) ? "Safari" : /breitband CLI|curl|python|httpx/i.test(ua) ? ua.split(/[ /]/)[0] : null;
  const os = /Windows/.test(ua) ? "Windows" : /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS"
    : /Mac OS X/.test(ua) ? "macOS" : /Linux/.test(ua) ? "Linux" : null;
  if (!browser) return ua.slice(0, 60);
  return os ? t("browserOn").replace("{browser}", browser).replace("{os}", os) : browser;
}

function sessionsTable(list, reload) {
  const end = async (button, s) => {
    if (s.current) { await signOut(); return; }
    button.disabled = true;
    try {
      await api(`/api/v1/me/sessions/${s.id}`, { method: "DELETE" });
      say(t("sessionEndedMsg"), "ok");
      await reload();
    } catch (e) { say(problemText(e), "error"); button.disabled = false; }
  };
  return h("div.table-scroll", h("table.list", { id: "sessions-table" },
    h("thead", h("tr", [t("device"), t("address"), t("since"), t("lastSeen"), t("signInMethod"), ""].map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", list.map((s) => h("tr", { "data-session-id": s.id },
      h("td", { title: s.user_agent || "" }, device(s.user_agent), s.current ? h("span.badge.current", t("thisSession")) : null),
      h("td", s.client_ip || "–"), h("td", fmtTime(s.created_at)), h("td", fmtTime(s.last_seen_at)),
      h("td", t(`method.${s.method}`), s.mfa ? ` + ${t("secondFactor")}` : ""),
      h("td", h("button", { type: "button", "aria-label": s.current ? t("logout") : t("endSessionOf").replace("{device}", device(s.user_agent)),
        onclick: (e) => end(e.target, s) }, s.current ? t("logout") : t("endSession"))))))));
}

function sessionsSection() {
  const box = h("div", { id: "sessions", "aria-busy": "true" }, h("p.loading", t("loading")));
  const reload = async () => {
    box.replaceChildren(sessionsTable(await get("/api/v1/me/sessions"), reload));
    box.setAttribute("aria-busy", "false");
  };
  const everywhere = confirmButton(t("endAll"), t("endAllConfirm"), t("endAllYes"), async () => {
    try {
      await api("/api/v1/me/sessions/end-all", { method: "POST" });
      endedEverywhere(t("endedEverywhere"));
    } catch (err) { say(problemText(err), "error"); }
  }, { id: "end-all" });
  return { nodes: [h("h2", t("sessions")), h("p.muted", t("sessionsHelp")), box, h("p", everywhere)], reload };
}

// --- tokens -----------------------------------------------------------------------------------------------------

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
    const action = st !== "active" ? null : h("button", { type: "button", "aria-label": t("revokeToken").replace("{name}", tk.name),
      onclick: (e) => revoke(e.target, tk) }, t("revoke"));
    return h("tr", { "data-token-id": tk.id, class: `token-${st}` },
      h("td", tk.name), h("td", h("code", `${tk.prefix}…`)), h("td", t(`scope.${tk.scope || "write"}`)),
      h("td", fmtTime(tk.created_at)), h("td", tk.expires_at ? fmtTime(tk.expires_at) : t("noExpiry")), h("td", fmtTime(tk.last_used_at)),
      h("td", h("span", { class: `badge tk-${st}` }, label)), h("td", action));
  };
  return h("div.table-scroll", h("table.list", { id: "tokens-table" },
    h("thead", h("tr", [t("tokenName"), t("tokenPrefix"), t("tokenScope"), t("created"), t("expires"), t("lastUsed"), t("status"), ""]
      .map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", tokens.map(row))));
}

/** The secret of a new token, once, with a button that copies it. */
function secretCard(data) {
  const copy = h("button", { type: "button", id: "copy-token", onclick: async () => {
    try { await navigator.clipboard.writeText(data.token); say(t("copied"), "ok"); }
    catch { say(t("copyFailed"), "error"); }
  } }, t("copy"));
  return h("div.card.secret", { role: "status" }, h("p", h("strong", t("tokenCreated"))),
    h("p.secret-line", h("code", { id: "new-token" }, data.token), copy),
    h("p.muted", `${t("tokenScope")}: ${t(`scope.${data.scope || "write"}`)} · ${t("expires")}: ${fmtTime(data.expires_at)}`));
}

function createForm(reload, shown) {
  const name = h("input", { name: "name", required: true, maxlength: 200, autocomplete: "off" });
  const days = h("input", { name: "expires_in_days", type: "number", min: 1, max: 365, value: 90, required: true });
  const scope = h("select", { name: "scope" }, h("option", { value: "read" }, t("scope.read")),
    h("option", { value: "write", selected: true }, t("scope.write")));
  return commandForm({ id: "token-create", class: "card" }, [h("h3", t("newToken")),
    h("div.row", field(t("tokenName"), name, t("tokenNameHelp")), field(t("tokenScope"), scope, t("tokenScopeHelp")),
      field(t("validDays"), days, t("validDaysHelp"))),
    h("button.primary", { type: "submit" }, t("create"))], async () => {
    const { data } = await api("/api/v1/me/tokens", { method: "POST",
      body: { name: name.value, expires_in_days: Number(days.value), scope: scope.value } });
    shown.replaceChildren(secretCard(data));
    name.value = "";
    days.value = 90;
    await reload();
    return null;
  });
}

export async function accountView() {
  adoptSession(await get("/api/v1/auth/session"));   // the second factor's state and the session's limits, as now
  const box = h("div", { id: "tokens", "aria-busy": "true" }, h("p.loading", t("loading")));
  const shown = h("div");
  const reloadTokens = async () => {
    box.replaceChildren(tokensTable(await get("/api/v1/me/tokens"), reloadTokens));
    box.setAttribute("aria-busy", "false");
  };
  const sessions = sessionsSection();
  const nodes = [h("section.pane.wide.account", h("h1", t("account")), meCard(),
    h("h2", t("security")), passwordForm(), totpCard(),
    ...sessions.nodes,
    h("h2", t("tokens")), h("p.muted", t("tokensHelp")), box, shown, createForm(reloadTokens, shown),
    gisAccess())];
  return { nodes, after: () => Promise.all([reloadTokens(), sessions.reload()]) };
}
