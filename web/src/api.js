// Calls to the Breitband API from the browser: the session cookie (HttpOnly, set by the server at sign-in; this
// script never sees it), the session's CSRF token kept in memory only and sent as X-CSRF-Token with every unsafe
// request, problem+json errors, ETag / If-Match, and a fresh Idempotency-Key for every command.
// A 401 on a signed-in call means the session is gone (expired, ended, user deactivated): the handler registered
// with onSessionLost (state.js) takes the person to the sign-in page and says why. Calls made before signing in
// (the sign-in itself, links, password reset) pass `anonymous: true` and get their 401 as an ordinary error.
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

let csrfToken = null;
/** The session's CSRF token (from the sign-in answer or GET /api/v1/auth/session); null when signed out. */
export const setCsrf = (token) => { csrfToken = token || null; };

let sessionLost = () => {};
/** state.js registers what happens when the server no longer accepts the session. */
export function onSessionLost(fn) { sessionLost = fn; }

let activity = () => {};
/** state.js registers a callback for every answered call (the idle timer counts from the last request). */
export function onActivity(fn) { activity = fn; }

export class ApiError extends Error {
  constructor(status, problem, headers) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.headers = headers || new Headers();
  }

  /** The problem's type slug (".../problems/session-expired" → "session-expired"). */
  get slug() { return String(this.problem.type || "").split("/").pop(); }
}

export function newKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** → {data, etag, status}; throws ApiError for every non-2xx answer. */
export async function api(path, { method = "GET", body, etag, form, headers = {}, anonymous = false } = {}) {
  const h = { Accept: "application/json", ...headers };
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    h["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  if (method !== "GET") h["Idempotency-Key"] = newKey();
  if (UNSAFE.has(method) && csrfToken) h["X-CSRF-Token"] = csrfToken;
  if (etag) h["If-Match"] = etag;
  const res = await fetch(path, { method, headers: h, body: payload, credentials: "same-origin" });
  const type = res.headers.get("content-type") || "";
  const data = res.status === 204 ? null : type.includes("json") ? await res.json() : await res.blob();
  if (!res.ok) {
    const error = new ApiError(res.status, type.includes("json") ? data : null, res.headers);
    if (res.status === 401 && !anonymous) sessionLost(error);
    throw error;
  }
  if (!anonymous) activity();
  return { data, etag: res.headers.get("etag"), status: res.status };
}

export const get = async (path) => (await api(path)).data;

/** Download a file the API writes (exports): GET with the session cookie, the file handed to the browser under
 * the name of its Content-Disposition. Errors are thrown as ApiError like every other call. → the file name. */
export async function download(path, { accept } = {}) {
  const res = await fetch(path, { headers: accept ? { Accept: accept } : {}, credentials: "same-origin" });
  if (!res.ok) {
    const type = res.headers.get("content-type") || "";
    const error = new ApiError(res.status, type.includes("json") ? await res.json() : null, res.headers);
    if (res.status === 401) sessionLost(error);
    throw error;
  }
  activity();
  const name = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") || "")?.[1] || "export";
  const url = URL.createObjectURL(await res.blob());
  const a = Object.assign(document.createElement("a"), { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return name;
}
