// The console's one way to the server: the public REST API (/v1/...), with
// the signed-in access key as a bearer token. The key lives in this
// module's memory only: never in a cookie, storage, a URL or the DOM.
// Reloading or closing the page forgets it.

let key = null;
let onSignedOut = () => {};

// APIError is a refused call: HTTP status, gRPC code, stable reason (as
// docs/errors.md lists them), message and request ID.
export class APIError extends Error {
  constructor(status, code, reason, message, requestId) {
    super(message || reason || `HTTP ${status}`);
    this.name = 'APIError';
    this.status = status;
    this.code = code;
    this.reason = reason || '';
    this.requestId = requestId || '';
  }
}

// signIn checks key with the server (GetCallerAccessKey) and keeps it if
// the server takes it; it returns the key's ID, name and permissions.
export async function signIn(candidate) {
  key = candidate.trim();
  try {
    return await call('GET', '/v1/accessKeys:caller');
  } catch (err) {
    key = null;
    throw err;
  }
}

// signOut forgets the key.
export function signOut() {
  key = null;
}

export function signedIn() {
  return key !== null;
}

// whenSignedOut sets what happens when the server stops taking the key
// (it expired, was rotated or deleted): the console shows the sign-in
// page again.
export function whenSignedOut(fn) {
  onSignedOut = fn;
}

// call makes one API call. query is an object of parameters (empty values
// left out); body, if given, is sent as JSON. The answer is the parsed
// JSON body; a refusal throws APIError.
export async function call(method, path, { query, body } = {}) {
  if (key === null) {
    throw new APIError(401, 16, 'UNAUTHENTICATED', 'not signed in', '');
  }
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') {
      url.searchParams.set(k, String(v));
    }
  }
  const headers = { Authorization: `Bearer ${key}`, Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (err) {
    throw new APIError(0, 14, 'UNAVAILABLE', `the server did not answer (${err.message})`, '');
  }
  const requestId = res.headers.get('X-Request-Id') || '';
  const text = await res.text();
  let data = null;
  if (text !== '') {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    let reason = '';
    for (const d of (data && data.details) || []) {
      if (d && typeof d.reason === 'string' && String(d['@type'] || '').endsWith('google.rpc.ErrorInfo')) {
        reason = d.reason;
      }
    }
    const err = new APIError(res.status, data && data.code, reason, (data && data.message) || text.slice(0, 200), requestId);
    if (res.status === 401 && path !== '/v1/accessKeys:caller') {
      key = null;
      onSignedOut(err);
    }
    throw err;
  }
  return data || {};
}

// page reads one page of a list: query plus page_size and page_token.
export function page(path, query, size, token) {
  return call('GET', path, { query: { ...query, page_size: size, page_token: token } });
}
