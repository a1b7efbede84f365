// The file list: GET /files a page at a time, in upload order; copy a
// digest, download, delete after a confirmation.

import { api, token } from './api.js';
import { bytes, time } from './format.js';

const PAGE = 50;

function cell(label, className, ...children) {
  const td = document.createElement('td');
  td.dataset.label = label;
  if (className) td.className = className;
  td.append(...children);
  return td;
}

function button(text, label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'link';
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
}

/** One grid cell's worth of nodes. */
function group(...nodes) {
  const span = document.createElement('span');
  span.append(...nodes);
  return span;
}

/** Saves `href` under `name` without leaving the page. */
function save(href, name) {
  const a = document.createElement('a');
  a.href = href;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
}

export class FileList {
  /** `notify(message, isError)` shows what went wrong. */
  constructor({ table, more, empty, dialog, notify }) {
    Object.assign(this, { tbody: table.tBodies[0], more, empty, dialog, notify });
    this.complete = false;
    this.chain = Promise.resolve();
    more.addEventListener('click', () => this.serial(() => this.load()).catch((e) => notify(e.message, true)));
    dialog.querySelector('#delete-cancel').addEventListener('click', () => dialog.close());
    dialog.querySelector('#delete-yes').addEventListener('click', () => this.confirmDelete());
  }

  /** Runs `step` after every earlier one: loads never race each other. */
  serial(step) {
    const run = this.chain.then(step);
    this.chain = run.catch(() => {});
    return run;
  }

  /** From the first page again. */
  reload() {
    return this.serial(async () => {
      this.tbody.replaceChildren();
      this.complete = false;
      await this.load();
    });
  }

  /**
   * A file just stored. Ids follow creation, not completion, so it may
   * belong before rows already shown: when the list reaches the end, it
   * is fetched again whole, else the file shows on a later page.
   */
  stored() {
    return this.serial(async () => {
      if (!this.complete) return;
      const rows = [];
      let after = null;
      do {
        const query = new URLSearchParams({ limit: '1000' });
        if (after) query.set('after', after);
        const page = await (await api(`/files?${query}`)).json();
        rows.push(...page.files.map((file) => this.row(file)));
        after = page.next;
      } while (after);
      this.tbody.replaceChildren(...rows);
      this.empty.hidden = rows.length > 0;
    });
  }

  /** The next page, after the last row shown. */
  async load() {
    const query = new URLSearchParams({ limit: String(PAGE) });
    const last = this.tbody.lastElementChild?.dataset.id;
    if (last) query.set('after', last);
    const page = await (await api(`/files?${query}`)).json();
    this.tbody.append(...page.files.map((file) => this.row(file)));
    this.complete = !page.next;
    this.more.hidden = this.complete;
    this.empty.hidden = this.tbody.rows.length > 0;
  }

  row(file) {
    const name = file.filename ?? file.id;
    const tr = document.createElement('tr');
    tr.dataset.id = file.id;
    tr.dataset.sha256 = file.sha256;
    const digest = document.createElement('code');
    digest.textContent = `${file.sha256.slice(0, 12)}…`;
    digest.title = file.sha256;
    const copy = button('Copy', `Copy the SHA-256 of ${name}`, () => this.copy(file.sha256, copy));
    const download = document.createElement('a');
    download.href = `/files/${file.id}`;
    download.download = name;
    download.textContent = 'Download';
    download.setAttribute('aria-label', `Download ${name}`);
    download.addEventListener('click', (e) => {
      // A token cannot ride on a plain link: a signed link for one download does.
      if (token.get()) {
        e.preventDefault();
        this.signedDownload(file.id, name).catch((err) => this.notify(err.message, true));
      }
    });
    const remove = button('Delete', `Delete ${name}`, () => this.askDelete(tr, name));
    tr.append(
      cell('Name', 'name', name),
      cell('Size', 'num', bytes(file.size)),
      cell('Type', '', file.content_type),
      cell('Created', 'num', time(file.created_at)),
      cell('SHA-256', 'sha', group(digest, ' ', copy)),
      cell('', 'actions', download, remove),
    );
    return tr;
  }

  async copy(text, b) {
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = 'Copied';
      setTimeout(() => { b.textContent = 'Copy'; }, 1500);
    } catch {
      // No clipboard outside secure contexts: show it to copy by hand.
      this.notify(`SHA-256: ${text}`, false);
    }
  }

  async signedDownload(id, name) {
    try {
      const response = await api(`/files/${id}/links`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ expires_in: '5m', max_downloads: 1 }),
      });
      save((await response.json()).path, name);
    } catch (e) {
      if (e.code !== 'links_disabled') throw e;
      // No link key configured: fetched with the token (held in memory, so for modest sizes).
      const blob = await (await api(`/files/${id}`)).blob();
      const url = URL.createObjectURL(blob);
      save(url, name);
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    }
  }

  askDelete(tr, name) {
    this.pending = tr;
    this.dialog.querySelector('#delete-name').textContent = name;
    this.dialog.showModal();
    this.dialog.querySelector('#delete-cancel').focus();
  }

  async confirmDelete() {
    const tr = this.pending;
    this.dialog.close();
    try {
      await api(`/files/${tr.dataset.id}`, { method: 'DELETE' });
      tr.remove();
      this.empty.hidden = this.tbody.rows.length > 0;
    } catch (e) {
      this.notify(e.message, true);
    }
  }
}
