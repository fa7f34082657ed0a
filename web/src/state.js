// The application's shared state and the few actions every view needs: who is signed in (`state.me`, and a
// `state.flash` message for the next page), the status line (`say`), problem+json as text (`problemText`), drawing
// the current page again (`rerender`) and signing out. Views and panels import this module, never main.js: main.js
// (the router) registers its render function here at start-up (`setRenderer`).
import { api, getToken, setToken, ApiError } from "./api.js";
import { t, problemMessage } from "./i18n.js";

export const state = { me: null };
const AUTHORITY_ROLES = ["authority_reviewer", "authority_admin"];
export const isBody = () => state.me?.organisation?.kind === "participating_body";
export const isAuthority = () => AUTHORITY_ROLES.includes(state.me?.role) && !isBody();

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
  if (location.hash === "#/login") rerender(); else location.hash = "#/login";
}
