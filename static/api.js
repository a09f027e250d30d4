// JSON API calls with the CSRF header on every unsafe request.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `Request failed (${status})`);
    this.status = status;
    this.code = code;
  }
}

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';
}

export function goToLogin() {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!['GET', 'HEAD', 'OPTIONS'].includes(method)) headers['X-CSRF-Token'] = csrfToken();
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      signal, // a search aborts the request it no longer wants
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'Network error — check your connection.');
  }
  let data = null;
  try {
    data = await res.json();
  } catch { /* empty or non-JSON body */ }
  if (res.status === 401) {
    goToLogin();
    throw new ApiError(401, 'unauthorized', 'Your session has ended.');
  }
  if (!res.ok) {
    const err = data?.error ?? {};
    throw new ApiError(res.status, err.code, err.message);
  }
  return data;
}

/** true: signed in; false: session gone; null: could not tell (server down). */
export async function sessionAlive() {
  try {
    // The chat page answers 200 when signed in and 303 to /login when not (SPEC §4).
    // Unlike a 401 from the API, a redirect is not logged as an error by the browser.
    const res = await fetch('/', {
      method: 'HEAD', credentials: 'same-origin', redirect: 'manual', cache: 'no-store',
    });
    if (res.type === 'opaqueredirect') return false;
    return res.ok ? true : null;
  } catch {
    return null;
  }
}
