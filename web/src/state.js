// The application's shared state and the few actions every view needs: who is signed in (`state.me`, the session's
// limits in `state.session`, and a `state.flash` message for the next page), the status line (`say`),
// problem+json as text (`problemText`), drawing the current page again (`rerender`), the roles, and starting,
// losing and ending a session. Views and panels import this module, never main.js: main.js (the router) registers
// its render function here at start-up (`setRenderer`).
import { api, setCsrf, onSessionLost, onActivity, ApiError } from "./api.js";
import { t, problemMessage } from "./i18n.js";

export const state = { me: null, session: null, checked: false, returnTo: null, signInReason: null, flash: null };
const AUTHORITY_ROLES = ["authority_reviewer", "authority_admin"];
const OPERATOR_ROLES = ["operator_member", "operator_admin"];
const ADMIN_ROLES = ["tenant_admin", "authority_admin", "operator_admin"];
// Routes one reaches without a session.
export const PUBLIC_ROUTES = ["login", "forgot", "link"];

export const isBody = () => state.me?.organisation?.kind === "participating_body";
export const isAuthority = () => AUTHORITY_ROLES.includes(state.me?.role) && !isBody();
/** operator_admin is an operator who also administers the organisation: same screens as operator_member. */
export const isOperator = () => OPERATOR_ROLES.includes(state.me?.role);
export const isTenantAdmin = () => state.me?.role === "tenant_admin";
/** Who may open the user and organisation administration (tenant admins the tenant's, the others their own org's). */
export const canAdminister = () => ADMIN_ROLES.includes(state.me?.role);
/** A session that may do nothing but set up the second factor the tenant requires for the role. */
export const mustEnrolTotp = () => state.session?.restricted === "totp-enrolment";

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

let renderer = null;
/** main.js registers its render function here at start-up. */
export function setRenderer(fn) { renderer = fn; }
/** Draw the current route again (after a command changed what it shows). */
export function rerender() { return renderer(); }

// --- the session ------------------------------------------------------------------------------------------------

let idleTimer = null;
let idleMs = 0;

/** When the server would end the session for idleness, ask it (GET /api/v1/auth/session): if it has ended, the
 * page goes to the sign-in page at once instead of at the next click. Every answered call starts the count again
 * (the server counts from the last request too). */
function armIdleTimer() {
  clearTimeout(idleTimer);
  if (!state.me || !idleMs) return;
  idleTimer = setTimeout(() => { api("/api/v1/auth/session").catch(() => {}); }, idleMs + 1500);
}

/** Take over a session the server started or confirmed (sign-in answer, link answer or GET /api/v1/auth/session). */
export function adoptSession(answer) {
  state.me = answer.user;
  state.checked = true;
  state.signInReason = null;
  state.session = {
    expires_at: answer.expires_at,
    restricted: answer.restricted ?? (answer.totp_enrolment_required ? "totp-enrolment" : null),
  };
  idleMs = answer.idle_timeout_s != null ? answer.idle_timeout_s * 1000
    : Math.max(0, new Date(answer.idle_expires_at) - new Date());
  setCsrf(answer.csrf_token);
  armIdleTimer();
}

function forgetSession() {
  clearTimeout(idleTimer);
  state.me = null;
  state.session = null;
  setCsrf(null);
}

/** On load: is there a session (the cookie is HttpOnly, so only the server can tell)? */
export async function loadSession() {
  try {
    const { data, status } = await api("/api/v1/auth/session", { anonymous: true });
    if (status === 204) forgetSession();            // no session cookie: simply not signed in
    else adoptSession(data);
  }
  catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) throw e;
    forgetSession();
    state.signInReason = ["session-expired", "session-ended", "user-deactivated"].includes(e.slug) ? e.slug : null;
  }
  state.checked = true;
}

const routeOf = (hash) => hash.replace(/^#\/?/, "").split(/[/?]/)[0];

/** Remember where the person was (to return there after signing in again), unless it is a public page. */
export function rememberReturn(hash = location.hash) {
  if (hash && !PUBLIC_ROUTES.includes(routeOf(hash)) && hash !== "#/") state.returnTo = hash;
}

/** The server refused the session (401 on a signed-in call): to the sign-in page, saying why. */
function lost(error) {
  if (!state.me) return;
  forgetSession();
  state.signInReason = error.slug || "session-expired";
  rememberReturn();
  if (routeOf(location.hash) === "login") rerender(); else location.hash = "#/login";
}

onSessionLost(lost);
onActivity(armIdleTimer);

/** Sign out: the server ends the session (and clears the cookie); a session signed in at the tenant's identity
 * provider is also ended there (the answer's logout_url). A session the server no longer accepts (401) is simply
 * forgotten; any other failure is said, since the session may still be open. */
export async function signOut() {
  let logoutUrl = null;
  try { logoutUrl = (await api("/api/v1/auth/logout", { method: "POST", anonymous: true })).data?.logout_url; }
  catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) {
      say(`${t("logoutFailed")} ${problemText(e)}`, "error");
      return;
    }
  }
  forgetSession();
  state.returnTo = null;
  if (logoutUrl) { location.assign(logoutUrl); return; }
  state.flash = { text: t("signedOut"), kind: "ok" };
  if (routeOf(location.hash) === "login") rerender(); else location.hash = "#/login";
}

/** The server has ended this session together with the others ("sign out everywhere"): to the sign-in page. */
export function endedEverywhere(text) {
  forgetSession();
  state.returnTo = null;
  state.flash = { text, kind: "ok" };
  location.hash = "#/login";
}
