// The compute panel: fib(n) on the server's pool, and meanwhile a live
// count of /asyncwait round-trips, so a person sees cheap requests flow.

import { api, withToken } from './api.js';

/** Counts round-trips until `signal`; shows the rate every half second. */
async function countRoundTrips(output, signal) {
  const started = performance.now();
  let total = 0;
  let recent = 0;
  let since = started;
  const tick = setInterval(() => {
    const now = performance.now();
    output.value = `${Math.round((recent * 1000) / (now - since))} per second`;
    recent = 0;
    since = now;
  }, 500);
  try {
    while (!signal.aborted) {
      const response = await fetch('/asyncwait?duration=0', { headers: withToken(), signal });
      if (!response.ok) throw new Error(`/asyncwait answered ${response.status}`);
      total += 1;
      recent += 1;
    }
  } catch (e) {
    if (e.name !== 'AbortError') output.value = e.message;
  } finally {
    clearInterval(tick);
  }
  const seconds = (performance.now() - started) / 1000;
  if (total) output.value = `${Math.round(total / seconds)} per second on average while fib ran`;
}

export function setupCompute({ form, input, run, result, rate, maxN, notify }) {
  if (maxN >= 0) input.max = String(maxN);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const n = input.valueAsNumber;
    run.disabled = true;
    result.value = `fib(${n}) running…`;
    const stop = new AbortController();
    const counting = countRoundTrips(rate, stop.signal);
    const started = performance.now();
    try {
      const body = await (await api(`/fib/${n}`)).json();
      const seconds = (performance.now() - started) / 1000;
      result.value = `fib(${body.n}) = ${body.fib} in ${seconds.toFixed(2)} s`;
    } catch (err) {
      result.value = 'failed';
      notify(err.message, true);
    } finally {
      stop.abort();
      await counting;
      run.disabled = false;
    }
  });
}
