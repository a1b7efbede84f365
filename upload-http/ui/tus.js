// A tus 1.0 client for one file: creation, then PATCHes of CHUNK bytes,
// each with its SHA-256 (checksum extension) when the service and the
// browser can; transient failures retried with backoff from the offset a
// HEAD reports; the upload's URL kept in localStorage so that choosing the
// same file after a reload continues it.

import { ApiError, errorOf, pause, send } from './api.js';

const TUS = { 'Tus-Resumable': '1.0.0' };
/** Bytes per PATCH: large enough that the per-request commit is rare. */
const CHUNK = 32 * 1024 * 1024;
const MAX_BACKOFF_MS = 10_000;
/** A request that moves no byte for this long is given up and retried (Uppy waits as long). */
const STALL_MS = 30_000;
const KEY_PREFIX = 'fastupload.upload:';

/** What `OPTIONS /uploads/` announces; null when the service has no tus endpoint. */
export async function probe() {
  try {
    const r = await fetch('/uploads/', { method: 'OPTIONS' });
    if (!r.ok || !r.headers.get('Tus-Version')) return null;
    const algorithms = (r.headers.get('Tus-Checksum-Algorithm') || '').split(',').map((a) => a.trim());
    return {
      maxSize: Number(r.headers.get('Tus-Max-Size')) || Infinity,
      // Web Crypto exists only in secure contexts (https, localhost).
      sha256: algorithms.includes('sha256') && Boolean(globalThis.crypto?.subtle),
    };
  } catch {
    return null;
  }
}

/** Names of files whose uploads an earlier visit left unfinished. */
export function unfinished() {
  return Object.keys(localStorage)
    .filter((k) => k.startsWith(KEY_PREFIX))
    .map((k) => JSON.parse(k.slice(KEY_PREFIX.length))[0]);
}

function base64(bytes) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

export class TusUpload {
  /** `onProgress(bytes, moved)` (`moved`: a position the service reported), `onRetry(error, waitMs)`. */
  constructor(file, { sha256, onProgress, onRetry }) {
    this.file = file;
    this.sha256 = sha256;
    this.onProgress = onProgress;
    this.onRetry = onRetry;
    this.key = KEY_PREFIX + JSON.stringify([file.name, file.size, file.lastModified]);
    this.url = localStorage.getItem(this.key);
    this.failures = 0;
  }

  /** Uploads to the end; resolves to the stored file's id. */
  async run(signal) {
    for (;;) {
      try {
        let offset = this.url ? await this.head(signal) : null;
        if (offset === null) offset = await this.create(signal);
        while (offset < this.file.size) offset = await this.patch(offset, signal);
        localStorage.removeItem(this.key);
        return this.url.split('/').pop();
      } catch (e) {
        if (!(e instanceof ApiError) || !e.transient) throw e;
        const wait = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.failures);
        this.failures += 1;
        this.onRetry(e, wait);
        await pause(wait, signal);
      }
    }
  }

  /**
   * Cancelled: the service drops what it holds (best effort). The PATCH
   * just cut off may still be winding up there (423): asked again, briefly.
   */
  async terminate() {
    localStorage.removeItem(this.key);
    for (let attempt = 0; this.url && attempt < 6; attempt += 1) {
      const xhr = await send('DELETE', this.url, { headers: TUS }).catch(() => null);
      if (xhr?.status !== 423) return;
      await pause(100 * 2 ** attempt);
    }
  }

  /** The stored offset; null when the upload is gone (expired, or not this token's). */
  async head(signal) {
    const xhr = await send('HEAD', this.url, { headers: TUS, signal, stallMs: STALL_MS });
    if ([403, 404, 410].includes(xhr.status)) {
      this.url = null;
      localStorage.removeItem(this.key);
      return null;
    }
    if (xhr.status !== 200) throw await errorOf(xhr.status, '');
    const offset = Number(xhr.getResponseHeader('Upload-Offset'));
    this.onProgress(offset, true);
    return offset;
  }

  async create(signal) {
    const encoder = new TextEncoder();
    const metadata = [['filename', this.file.name], ['filetype', this.file.type]]
      .filter(([, value]) => value)
      .map(([key, value]) => `${key} ${base64(encoder.encode(value))}`);
    const headers = { ...TUS, 'Upload-Length': String(this.file.size) };
    if (metadata.length) headers['Upload-Metadata'] = metadata.join(',');
    const xhr = await send('POST', '/uploads/', { headers, signal, stallMs: STALL_MS });
    if (xhr.status !== 201) throw await errorOf(xhr.status, xhr.responseText);
    this.url = new URL(xhr.getResponseHeader('Location'), location.href).pathname;
    localStorage.setItem(this.key, this.url);
    this.onProgress(0, true);
    return 0;
  }

  /** The chunk at `offset`, read and hashed (when checksums are on) ahead of its turn. */
  prepare(offset) {
    const end = Math.min(offset + CHUNK, this.file.size);
    const blob = this.file.slice(offset, end);
    if (!this.sha256) return { offset, end, ready: Promise.resolve([blob, null]) };
    // The body is the Blob, which the browser streams from the file; the
    // digest comes from a separate read. Sending the read ArrayBuffer instead
    // costs a third of the upload rate (BENCHMARKS.md, "The browser page").
    const ready = blob.arrayBuffer().then(async (buffer) => {
      const digest = await crypto.subtle.digest('SHA-256', buffer);
      return [blob, `sha256 ${base64(new Uint8Array(digest))}`];
    });
    return { offset, end, ready };
  }

  async patch(offset, signal) {
    const chunk = this.next?.offset === offset ? this.next : this.prepare(offset);
    const [body, checksum] = await chunk.ready;
    // The next chunk is read and hashed while this one travels.
    this.next = chunk.end < this.file.size ? this.prepare(chunk.end) : null;
    const headers = { ...TUS, 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' };
    if (checksum) headers['Upload-Checksum'] = checksum;
    const onProgress = (sent) => this.onProgress(offset + sent);
    const xhr = await send('PATCH', this.url, { headers, body, signal, onProgress, stallMs: STALL_MS });
    const header = xhr.getResponseHeader('Upload-Offset');
    const stored = header === null ? NaN : Number(header);
    if (xhr.status === 204) {
      this.failures = 0;
      this.onProgress(stored);
      return stored;
    }
    // Another tab or an earlier attempt moved it: go on from where it is.
    if (xhr.status === 409 && Number.isFinite(stored)) return stored;
    const error = await errorOf(xhr.status, xhr.responseText);
    // 460: the bytes changed on the way; sending them again is the remedy.
    if (xhr.status === 460) throw new ApiError(503, error.code, error.message);
    throw error;
  }
}
