// Breitband web app: hash routes, one view at a time. No framework.
// The router: the only module that imports the views. Shared state and actions live in state.js; render() is
// registered there (setRenderer) so a view can draw its page again without importing this module.
// Signing in is by the session cookie (state.js loadSession asks the server on load); the public pages (sign-in,
// forgotten password, invitation and reset links) need none. A session the tenant restricts until the second
// factor is set up shows only that set-up.
import "./style.css";
import { ApiError } from "./api.js";
import { h } from "./dom.js";
import { t, lang, setLang } from "./i18n.js";
import { state, isBody, isAuthority, isOperator, isTenantAdmin, canAdminister, mustEnrolTotp, say, problemText,
  setRenderer, signOut, loadSession, rememberReturn, PUBLIC_ROUTES } from "./state.js";
import { inboxView, caseView } from "./authority.js";
import { myApplicationsView, wizardView, applicationView } from "./operator.js";
import { statementsView, statementView } from "./statements.js";
import { accountView, totpEnrolmentView } from "./account.js";
import { loginView, forgotView, linkView } from "./signin.js";
import { usersView, organisationsView, securityView } from "./admin.js";

const main = document.getElementById("main");
const home = () => (isBody() ? "#/statements" : isAuthority() ? "#/inbox" : "#/applications");

function navLinks() {
  const work = isBody() ? [["#/statements", t("statementRequests")]] : isAuthority() ? [["#/inbox", t("inbox")]]
    : isOperator() ? [["#/applications", t("myApplications")], ["#/new", t("newApplication")]]
      : [["#/applications", t("applications")], ["#/statements", t("statements")]];
  const admin = !canAdminister() ? [] : [["#/admin/users", t("adminUsers")],
    ...(isTenantAdmin() ? [["#/admin/organisations", t("adminOrgs")], ["#/admin/security", t("adminSecurity")]]
      : [["#/admin/organisations", t("adminOwnOrg")]])];
  return [...work, ...admin];
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
  if (!state.me || mustEnrolTotp()) return;
  const here = location.hash.split("?")[0];
  nav.append(h("ul", navLinks().map(([href, label]) => h("li", h("a", { href, "aria-current": here === href ? "page" : null }, label)))));
}

/** Where a request for a page leads: the sign-in page without a session, the second-factor set-up while the
 * session is restricted to it, home from a public page when signed in. → a hash to go to, or null to stay. */
function redirect(route) {
  if (!state.me) {
    if (PUBLIC_ROUTES.includes(route)) return null;
    rememberReturn();
    return "#/login";
  }
  if (mustEnrolTotp()) return route === "setup-2fa" ? null : "#/setup-2fa";
  if (route === "setup-2fa" || route === "login" || route === "forgot") {
    const back = state.returnTo;
    state.returnTo = null;
    return back || home();
  }
  return null;
}

async function pickView(parts, params) {
  switch (parts[0]) {
    case "login": return loginView(params, home);
    case "forgot": return forgotView();
    case "link": return linkView(parts[1], home);
    case "setup-2fa": return totpEnrolmentView(home);
    case "me": return accountView();
    case "admin": return parts[1] === "organisations" ? organisationsView()
      : parts[1] === "security" && isTenantAdmin() ? securityView(params) : usersView(params);
    case "inbox": return inboxView(params);
    case "case": return caseView(parts[1]);
    case "applications": return myApplicationsView(params);
    case "application": return applicationView(parts[1]);
    case "new": return wizardView();
    case "statements": return statementsView(params);
    case "statement": return statementView(parts[1]);
    default: return null;
  }
}

let rendering = 0;
async function render() {
  const mine = ++rendering;
  say(state.flash?.text || "", state.flash?.kind);
  state.flash = null;
  if (!state.checked) await loadSession().catch((e) => say(problemText(e), "error"));
  if (mine !== rendering) return;
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  const to = redirect(parts[0]);
  if (to && to !== location.hash) { location.hash = to; return; }
  shell();
  let view;
  try {
    main.replaceChildren(h("p.loading", t("loading")));
    view = await pickView(parts, params);
    if (!view) { location.hash = home(); return; }
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;      // state.js has taken the person to sign in
    view = [h("p.error", { role: "alert" }, problemText(e))];
  }
  if (mine !== rendering) return;
  const nodes = Array.isArray(view) ? view : view.nodes;
  main.replaceChildren(...nodes);
  const heading = main.querySelector("h1");
  if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  if (view.after) {
    try { await view.after(); } catch (e) { if (!(e instanceof ApiError && e.status === 401)) say(problemText(e), "error"); }
  }
}

setRenderer(render);

document.getElementById("lang").addEventListener("click", () => { setLang(lang === "de" ? "en" : "de"); render(); });
document.getElementById("logout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", render);
render();
