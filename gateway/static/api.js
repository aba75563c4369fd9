// Calls to the service's HTTP API. Same origin, so the HttpOnly `rw_session` cookie set
// at login goes with every request and the page never holds the token itself.
// URLs are relative to the page so the dashboard also works behind a path prefix.

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/** Called on any 401, so the app can show the login page wherever it happens. */
let onUnauthenticated = () => {};
export function setUnauthenticatedHandler(fn) { onUnauthenticated = fn; }

export async function request(method, path, { query, body, quiet401 = false } = {}) {
  const url = new URL(path, document.baseURI);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401 && !quiet401) onUnauthenticated();
    throw new ApiError(response.status, data?.error, errorDetail(data));
  }
  return data;
}

// Our routes answer {"error", "detail"}; FastAPI's validation answers
// {"detail": [{"loc", "msg"}]}; show either as one readable line.
function errorDetail(data) {
  if (!data) return "";
  if (typeof data.detail === "string") return data.detail;
  if (Array.isArray(data.detail)) {
    return data.detail.map((d) => `${(d.loc ?? []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return data.error ?? "";
}

export const get = (path, query, opts) => request("GET", path, { query, ...opts });
export const post = (path, body, opts) => request("POST", path, { body, ...opts });
