// The public /v1 API, with the API key from sessionStorage as the bearer token (no cookies).

const KEY = "amlcp.console.key";

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || null;
  }
}

export function storedKey() {
  return sessionStorage.getItem(KEY);
}

export function storeKey(secret) {
  sessionStorage.setItem(KEY, secret);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

export function enc(value) {
  return encodeURIComponent(value);
}

/** Call the API; resolves to {status, body, etag} or rejects with ApiError. */
export async function call(method, path, { body, ifMatch, query, key } = {}) {
  const secret = key || storedKey();
  const headers = { Accept: "application/json, application/problem+json" };
  if (secret) headers.Authorization = `Bearer ${secret}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (ifMatch) headers["If-Match"] = ifMatch;
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { detail: text.slice(0, 300) };
    }
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return { status: response.status, body: parsed, etag: response.headers.get("ETag") };
}

export const get = (path, query) => call("GET", path, { query }).then((r) => r.body);

/** Every page of a list (bounded: a console shows at most `max` items). */
export async function listAll(path, query = {}, max = 1000) {
  const items = [];
  let cursor = null;
  do {
    const page = await get(path, { ...query, limit: 200, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

export function tenantPath(t) {
  return `/v1/tenants/${enc(t)}`;
}

export function workspacePath(t, w) {
  return `${tenantPath(t)}/workspaces/${enc(w)}`;
}

export function endpointPath(t, w, e) {
  return `${workspacePath(t, w)}/endpoints/${enc(e)}`;
}

/** The policy resource of a scope: tenant, workspace (w) or endpoint (w and e). */
export function policyPath(t, w, e) {
  if (e) return `${endpointPath(t, w, e)}/policy`;
  if (w) return `${workspacePath(t, w)}/policy`;
  return `${tenantPath(t)}/policy`;
}
