// Numbers as a person reads them.

// Binary units, as the service's settings are written (max_file_size = "1GiB").
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** Bytes as 1.5 GiB, 20 B, 1 MiB. */
export function bytes(n) {
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? Math.round(n) : parseFloat(n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0))} ${UNITS[i]}`;
}

/** Seconds as 45 s, 3 min 20 s, 2 h 5 min. */
export function duration(seconds) {
  if (!Number.isFinite(seconds)) return '…';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** An RFC 3339 time in the reader's locale. */
export function time(rfc3339) {
  return new Date(rfc3339).toLocaleString();
}
