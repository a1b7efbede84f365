// Calls to the service: the access token (kept for this tab only, in
// sessionStorage) goes on every request, and a failure becomes an
// ApiError whose message a person can act on.

const TOKEN_KEY = 'fastupload.token';

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || '',
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value.trim()),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** `headers` with the token's `Authorization`, when there is one. */
export function withToken(headers = {}) {
  const value = token.get();
  return value ? { ...headers, Authorization: `Bearer ${value}` } : headers;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** Worth trying again: the network, a restart, a busy or locked upload. */
  get transient() {
    return this.status === 0 || this.status === 423 || this.status === 429 || this.status >= 500;
  }
}

const HINTS = {
  401: 'This needs an access token: enter one at the top of the page.',
  403: 'Your access token does not allow this.',
};

/** The error a response stands for: the service's JSON `{error: {code, message}}` when it has one. */
export async function errorOf(status, text) {
  let code = `http_${status}`;
  let message = `The service answered ${status}.`;
  try {
    const body = JSON.parse(await text);
    code = body.error.code;
    message = body.error.message;
  } catch {
    // Not the service's JSON (a proxy's page, say): the status says enough.
  }
  if (HINTS[status]) message = `${HINTS[status]} (${message})`;
  return new ApiError(status, code, message);
}

export const unreachable = () => new ApiError(0, 'network', 'The service cannot be reached.');

/** `fetch` with the token; resolves to the response if it is a 2xx, throws ApiError otherwise. */
export async function api(path, { method = 'GET', headers = {}, body, signal } = {}) {
  let response;
  try {
    response = await fetch(path, { method, headers: withToken(headers), body, signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw unreachable();
  }
  if (!response.ok) throw await errorOf(response.status, response.text());
  return response;
}

/** A short pause that ends early on `signal`. */
export function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new DOMException('cancelled', 'AbortError'));
    }, { once: true });
  });
}

/**
 * One request by XMLHttpRequest, for the upload progress `fetch` does not
 * report: resolves to the XHR once the service answers, whatever the status.
 * With `stallMs`, a request that makes no progress for that long (a peer
 * gone without a word) is given up as unreachable.
 */
export function send(method, url, { headers = {}, body = null, onProgress, signal, stallMs = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    let timer;
    let stalled = false;
    const watch = () => {
      clearTimeout(timer);
      if (stallMs) {
        timer = setTimeout(() => {
          stalled = true;
          xhr.abort();
        }, stallMs);
      }
    };
    const abort = () => xhr.abort();
    const settle = (then, value) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      then(value);
    };
    xhr.open(method, url);
    for (const [name, value] of Object.entries(withToken(headers))) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => {
      watch();
      onProgress?.(e.loaded);
    };
    xhr.onload = () => settle(resolve, xhr);
    xhr.onerror = () => settle(reject, unreachable());
    xhr.onabort = () => settle(reject, stalled ? unreachable() : new DOMException('cancelled', 'AbortError'));
    if (signal?.aborted) return xhr.onabort();
    signal?.addEventListener('abort', abort);
    watch();
    xhr.send(body);
  });
}
