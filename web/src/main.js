// Breitband web app: hash routes, one view at a time. No framework.
// The router: the only module that imports the views. Shared state and actions live in state.js; render() is
// registered there (setRenderer) so a view can draw its page again without importing this module.
import "./style.css";
import { get, getToken, setToken, ApiError } from "./api.js";
import { h, field } from "./dom.js";
import { t, lang, setLang } from "./i18n.js";
import { state, isBody, isAuthority, say, problemText, setRenderer, signOut } from "./state.js";
import { inboxView, caseView } from "./authority.js";
import { myApplicationsView, wizardView, applicationView } from "./operator.js";
import { statementsView, statementView } from "./statements.js";
import { accountView } from "./account.js";

const main = document.getElementById("main");
const home = () => (isBody() ? "#/statements" : isAuthority() ? "#/inbox" : "#/applications");

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

setRenderer(render);

document.getElementById("lang").addEventListener("click", () => { setLang(lang === "de" ? "en" : "de"); render(); });
document.getElementById("logout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", render);
render();
