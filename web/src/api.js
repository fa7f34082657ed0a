// Calls to the Breitband API: Bearer token from sessionStorage, problem+json errors, ETag / If-Match, and a fresh
// Idempotency-Key for every command.
const TOKEN_KEY = "breitband.token";

export const getToken = () => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (t) => (t ? sessionStorage.setItem(TOKEN_KEY, t) : sessionStorage.removeItem(TOKEN_KEY));

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

export function newKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** → {data, etag, status}; throws ApiError for every non-2xx answer. */
export async function api(path, { method = "GET", body, etag, form, headers = {} } = {}) {
  const h = { Accept: "application/json", ...headers };
  const token = getToken();
  if (token) h.Authorization = `Bearer ${token}`;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    h["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  if (method !== "GET") h["Idempotency-Key"] = newKey();
  if (etag) h["If-Match"] = etag;
  const res = await fetch(path, { method, headers: h, body: payload });
  const type = res.headers.get("content-type") || "";
  const data = res.status === 204 ? null : type.includes("json") ? await res.json() : await res.blob();
  if (!res.ok) throw new ApiError(res.status, type.includes("json") ? data : null);
  return { data, etag: res.headers.get("etag"), status: res.status };
}

export const get = async (path) => (await api(path)).data;
