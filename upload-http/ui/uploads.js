// The upload queue: one line per chosen file with its bar, bytes, rate and
// time left, and a cancel button; an overall bar; PARALLEL files at a time.
// Files go through tus when the service offers it, else as one multipart
// POST /files each.

import { errorOf, send } from './api.js';
import { bytes, duration } from './format.js';
import { TusUpload } from './tus.js';

const PARALLEL = 2;
/** The rate is measured over this window: steady, yet quick to show a stall. */
const RATE_WINDOW_MS = 3000;

/** One multipart POST, for a service without tus. */
async function postFile(file, onProgress, signal) {
  const form = new FormData();
  form.append('file', file, file.name);
  const xhr = await send('POST', '/files', { body: form, onProgress, signal });
  if (xhr.status !== 201) throw await errorOf(xhr.status, xhr.responseText);
  return JSON.parse(xhr.responseText).files[0].id;
}

function element(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

class Item {
  constructor(file, onCancel) {
    this.file = file;
    this.sent = 0;
    this.state = 'waiting';
    this.samples = [];
    this.controller = new AbortController();
    this.bar = element('progress', { max: Math.max(file.size, 1), value: 0 });
    this.bar.setAttribute('aria-label', `${file.name} progress`);
    this.text = element('span', { className: 'figures', textContent: `Waiting · ${bytes(file.size)}` });
    this.cancel = element('button', { type: 'button', textContent: 'Cancel' });
    this.cancel.setAttribute('aria-label', `Cancel ${file.name}`);
    this.cancel.addEventListener('click', () => onCancel(this));
    this.li = element('li', {}, element('span', { className: 'name', textContent: file.name }),
      this.cancel, this.bar, this.text);
    this.li.dataset.name = file.name;
  }

  /** `moved`: the position was reported (a resume), not bytes sent, so the rate starts over. */
  progress(sent, moved) {
    const now = performance.now();
    this.started ??= now;
    if (moved) this.samples = [];
    this.sent = sent;
    this.bar.value = sent;
    this.samples.push([now, sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > RATE_WINDOW_MS) this.samples.shift();
    const [t0, s0] = this.samples[0];
    const rate = now > t0 ? ((sent - s0) * 1000) / (now - t0) : 0;
    const left = rate > 0 ? duration((this.file.size - sent) / rate) : '…';
    this.say(`${bytes(sent)} of ${bytes(this.file.size)} · ${bytes(rate)}/s · ${left} left`);
  }

  finish(state, message) {
    this.state = state;
    this.li.className = state;
    this.li.dataset.state = state;
    this.cancel.hidden = true;
    if (state === 'done') this.bar.value = this.bar.max;
    this.say(message);
  }

  say(message) {
    this.text.textContent = message;
  }
}

export class Uploads {
  /** `onStored(id)` after each file is stored; `maxSize` in bytes. */
  constructor({ queue, overall, overallBar, overallText, onStored }) {
    Object.assign(this, { queue, overall, overallBar, overallText, onStored });
    this.items = [];
    this.active = 0;
    this.tus = null;
    this.maxSize = Infinity;
  }

  add(files) {
    for (const file of files) {
      const item = new Item(file, (it) => this.cancel(it));
      this.items.push(item);
      this.queue.append(item.li);
      if (file.size > this.maxSize) {
        item.finish('failed', `${bytes(file.size)} is over the limit of ${bytes(this.maxSize)}: not sent.`);
      }
    }
    this.pump();
    this.total();
  }

  pump() {
    while (this.active < PARALLEL) {
      const item = this.items.find((it) => it.state === 'waiting');
      if (!item) return;
      item.state = 'sending';
      this.active += 1;
      this.send(item).finally(() => {
        this.active -= 1;
        this.pump();
      });
    }
  }

  async send(item) {
    const onProgress = (sent, moved) => {
      item.progress(sent, moved);
      this.total();
    };
    const signal = item.controller.signal;
    const started = performance.now();
    try {
      let id;
      if (this.tus) {
        item.tus = new TusUpload(item.file, {
          sha256: this.tus.sha256,
          onProgress,
          onRetry: (e, wait) => item.say(`${e.message} Trying again in ${duration(wait / 1000)}…`),
        });
        id = await item.tus.run(signal);
      } else {
        id = await postFile(item.file, onProgress, signal);
      }
      const seconds = (performance.now() - (item.started ?? started)) / 1000;
      const rate = seconds >= 0.05 ? ` (${bytes(item.file.size / seconds)}/s)` : '';
      item.finish('done', `Stored · ${bytes(item.file.size)} in ${seconds.toFixed(1)} s${rate}`);
      item.li.dataset.id = id;
      this.onStored(id);
    } catch (e) {
      if (e.name === 'AbortError') return;
      item.finish('failed', `Failed: ${e.message}`);
    } finally {
      this.total();
    }
  }

  cancel(item) {
    if (item.state === 'done' || item.state === 'failed') return;
    item.controller.abort();
    item.tus?.terminate();
    item.finish('cancelled', 'Cancelled');
    this.total();
  }

  total() {
    const counted = this.items.filter((it) => it.state !== 'cancelled' && it.state !== 'failed');
    const size = counted.reduce((sum, it) => sum + it.file.size, 0);
    const sent = counted.reduce((sum, it) => sum + (it.state === 'done' ? it.file.size : it.sent), 0);
    const left = counted.filter((it) => it.state !== 'done').length;
    this.overall.hidden = this.items.length === 0;
    this.overallBar.max = Math.max(size, 1);
    this.overallBar.value = sent;
    this.overallText.textContent = `${bytes(sent)} of ${bytes(size)} · ${left ? `${left} to go` : 'all stored'}`;
  }
}
