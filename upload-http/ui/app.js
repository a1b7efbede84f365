// The page's wiring: the token field, the drop zone and picker, the
// queue, the file list and the compute panel.

import { ApiError, token } from './api.js';
import { bytes } from './format.js';
import { FileList } from './files.js';
import { setupCompute } from './compute.js';
import { probe, unfinished } from './tus.js';
import { Uploads } from './uploads.js';

const $ = (selector) => document.querySelector(selector);
const settings = document.documentElement.dataset;

const notice = $('#notice');
function notify(message, isError) {
  notice.textContent = message;
  notice.classList.toggle('error', isError);
  notice.hidden = false;
  if (isError && /access token/.test(message)) showTokenForm();
}

const tokenForm = $('#token-form');
function showTokenForm() {
  tokenForm.hidden = false;
}

const files = new FileList({
  table: $('#files'), more: $('#more'), empty: $('#files-empty'), dialog: $('#confirm-delete'), notify,
});
const refresh = () => files.reload().then(() => { notice.hidden = true; }, (e) => notify(e.message, true));

const uploads = new Uploads({
  queue: $('#queue'), overall: $('#overall'), overallBar: $('#overall-bar'), overallText: $('#overall-text'),
  onStored: () => files.stored().catch((e) => notify(e.message, true)),
});

tokenForm.addEventListener('submit', (e) => {
  e.preventDefault();
  token.set($('#token').value);
  refresh();
});
$('#token-forget').addEventListener('click', () => {
  token.clear();
  $('#token').value = '';
  refresh();
});
if (token.get()) {
  $('#token').value = token.get();
  showTokenForm();
}

const drop = $('#drop');
const picker = $('#picker');
picker.addEventListener('change', () => {
  uploads.add(picker.files);
  picker.value = '';
});
// A file dropped anywhere else would make the browser leave the page to show it.
for (const type of ['dragover', 'drop']) window.addEventListener(type, (e) => e.preventDefault());
drop.addEventListener('dragover', () => drop.classList.add('over'));
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  drop.classList.remove('over');
  uploads.add(e.dataTransfer.files);
});

$('#refresh').addEventListener('click', refresh);

setupCompute({
  form: $('#fib-form'), input: $('#fib-n'), run: $('#fib-run'), result: $('#fib-result'), rate: $('#rate'),
  maxN: Number(settings.maxN), notify,
});

async function start() {
  const tus = await probe();
  uploads.tus = tus;
  uploads.maxSize = Math.min(Number(settings.maxFileSize) || Infinity, tus?.maxSize ?? Infinity);
  $('#limit').textContent = `Up to ${bytes(uploads.maxSize)} per file.`;
  $('#mode').textContent = tus
    ? `Resumable uploads (tus)${tus.sha256 ? ', each chunk checked with SHA-256' : ''}.`
    : 'One request per file (this service has no resumable uploads).';
  const left = unfinished();
  if (left.length) {
    const hint = $('#unfinished');
    hint.textContent = `Unfinished from an earlier visit: ${left.join(', ')}. Choose the same files to continue where they stopped.`;
    hint.hidden = false;
  }
  document.body.dataset.ready = tus ? 'tus' : 'post';
  await refresh();
}

start().catch((e) => notify(e instanceof ApiError ? e.message : String(e), true));
