// Breitband web app: hash routes, one view at a time. No framework.
import "./style.css";
import { api, get, getToken, setToken, ApiError } from "./api.js";
import { h, field } from "./dom.js";
import { t, lang, setLang, fmtDate, fmtTime, fmtLen, problemMessage } from "./i18n.js";
import { inboxView, caseView } from "./authority.js";
import { myApplicationsView, wizardView, applicationView } from "./operator.js";
import { statementsView, statementView } from "./statements.js";
import { accountView } from "./account.js";

export const state = { me: null };
const main = document.getElementById("main");
const AUTHORITY_ROLES = ["authority_reviewer", "authority_admin"];
export const isBody = () => state.me?.organisation?.kind === "participating_body";
export const isAuthority = () => AUTHORITY_ROLES.includes(state.me?.role) && !isBody();
const home = () => (isBody() ? "#/statements" : isAuthority() ? "#/inbox" : "#/applications");

export function say(text, kind = "info") {
  const s = document.getElementById("status");
  s.className = `status ${kind}`;
  s.textContent = text || "";
}

export function problemText(e) {
  if (!(e instanceof ApiError)) return String(e?.message || e);
  const p = e.problem;
  const errs = (p.errors || []).map((x) => `${x.field || x.loc?.join(".") || ""}: ${x.message || x.msg || ""}`);
  const known = problemMessage(p.type);
  if (known) return [known, `${t("details")}: ${(errs.length ? errs : [p.detail]).filter(Boolean).join("; ")}`].join(" – ");
  return (errs.length ? [p.title, ...errs] : [p.title, p.detail]).filter(Boolean).join(" – ");
}

function shell() {
  document.documentElement.lang = lang;
  document.querySelector(".skip").textContent = t("skip");
  const langBtn = document.getElementById("lang");
  langBtn.textContent = t("lang");
  langBtn.setAttribute("lang", lang === "de" ? "en" : "de");
  const logout = document.getElementById("logout");
  logout.textContent = t("logout");
  logout.hidden = !state.me;
  const who = document.getElementById("who");
  who.replaceChildren(state.me ? h("a", { href: "#/me", title: t("account") }, `${state.me.name || state.me.email} · ${state.me.organisation.name}`) : "");
  const nav = document.getElementById("nav");
  nav.replaceChildren();
  if (!state.me) return;
  const links = isBody() ? [["#/statements", t("statementRequests")]] : isAuthority() ? [["#/inbox", t("inbox")]]
    : state.me.role === "operator_member" ? [["#/applications", t("myApplications")], ["#/new", t("newApplication")]]
      : [["#/applications", t("applications")], ["#/statements", t("statements")]];
  const here = location.hash.split("?")[0];
  nav.append(h("ul", links.map(([href, label]) => h("li", h("a", { href, "aria-current": here === href ? "page" : null }, label)))));
}

async function loadMe() {
  if (!getToken()) { state.me = null; return; }
  try { state.me = await get("/api/v1/me"); }
  catch (e) { state.me = null; if (e.status === 401) setToken(null); else throw e; }
}

function loginView() {
  const input = h("input", { type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const err = h("p.error", { role: "alert" });
  const form = h("form.card.narrow", { onsubmit: async (ev) => {
    ev.preventDefault();
    setToken(input.value.trim());
    try {
      await loadMe();
      if (!state.me) throw new Error(t("loginFailed"));
      location.hash = home();
    } catch (e) { setToken(null); err.textContent = `${t("loginFailed")}: ${problemText(e)}`; }
  } },
  h("h1", t("loginTitle")), field(t("tokenLabel"), input, t("tokenHelp")), err,
  h("button.primary", { type: "submit" }, t("login")));
  return [form];
}

export function meCard() {
  const m = state.me;
  return h("dl.me",
    h("dt", t("signedInAs")), h("dd", `${m.name || ""} <${m.email}>`),
    h("dt", t("role")), h("dd", isBody() ? t(`bodyRoles.${m.role}`) : t(`roles.${m.role}`)),
    h("dt", t("organisation")), h("dd", `${m.organisation.name}${isBody() ? ` (${t("orgKind.participating_body")})` : ""}`),
    h("dt", t("tenant")), h("dd", `${m.tenant.name} (${m.tenant.key})`),
    h("dt", t("sessionValidUntil")), h("dd", { id: "session-expires" }, m.token_expires_at ? fmtTime(m.token_expires_at) : t("noExpiry")),
    isBody() ? null : [h("dt", t("gisAccess")), h("dd",
      h("code", { id: "ogc-url" }, `${location.origin}/api/v1/ogc`), h("p.muted", t("gisAccessHelp")))]);
}

let rendering = 0;
async function render() {
  const mine = ++rendering;
  say(state.flash?.text || "", state.flash?.kind);
  state.flash = null;
  if (state.me === null && getToken()) await loadMe().catch((e) => say(problemText(e), "error"));
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  if (!state.me && parts[0] !== "login") { location.hash = "#/login"; return; }
  shell();
  let view;
  try {
    main.replaceChildren(h("p.loading", t("loading")));
    switch (parts[0]) {
      case "login": view = loginView(); break;
      case "me": view = accountView(); break;
      case "inbox": view = await inboxView(params); break;
      case "case": view = await caseView(parts[1]); break;
      case "applications": view = await myApplicationsView(params); break;
      case "application": view = await applicationView(parts[1]); break;
      case "new": view = await wizardView(); break;
      case "statements": view = await statementsView(params); break;
      case "statement": view = await statementView(parts[1]); break;
      default: location.hash = home(); return;
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { setToken(null); state.me = null; location.hash = "#/login"; return; }
    view = [h("p.error", { role: "alert" }, problemText(e))];
  }
  if (mine !== rendering) return;
  const nodes = Array.isArray(view) ? view : view.nodes;
  main.replaceChildren(...nodes);
  const heading = main.querySelector("h1");
  if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  if (view.after) {
    try { await view.after(); } catch (e) { say(problemText(e), "error"); }
  }
}

export function rerender() { return render(); }

document.getElementById("lang").addEventListener("click", () => { setLang(lang === "de" ? "en" : "de"); render(); });
/** Sign out: the server revokes the token first (a copy of it is useless from then on), then the browser forgets it.
 * A token the server no longer accepts (401) is simply forgotten; any other failure is said, since the token may
 * still be valid. */
export async function signOut() {
  if (getToken()) {
    try { await api("/api/v1/me/logout", { method: "POST" }); }
    catch (e) { if (!(e instanceof ApiError && e.status === 401)) state.flash = { text: `${t("logoutFailed")} ${problemText(e)}`, kind: "error" }; }
  }
  setToken(null);
  state.me = null;
  if (location.hash === "#/login") render(); else location.hash = "#/login";
}

document.getElementById("logout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", render);
render();

export { api, get, fmtDate, fmtLen };
