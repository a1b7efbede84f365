//! The browser page in a real Chromium against the real binary: uploads
//! with progress, the list, download, delete; resuming after a reload and
//! after the server is killed and restarted; the fib panel; tokens and the
//! one-request fallback; and no console errors.

mod driver;
mod proxy;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use upload_http::TokenDigest;

use crate::common::{Service, client, eventually, sha256_hex, write_file};
use driver::Browser;
use proxy::Proxy;

const MIB: usize = 1 << 20;
const MINUTE: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(10);

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots")
}

fn count(selector: &str) -> String {
    format!("document.querySelectorAll({selector:?}).length")
}

/// The list's rows: `(name, sha256, id)`.
fn rows(browser: &Browser) -> Vec<(String, String, String)> {
    let rows = browser.js(
        "return [...document.querySelectorAll('#files tbody tr')]
            .map(r => [r.cells[0].innerText, r.dataset.sha256, r.dataset.id])",
        vec![],
    );
    serde_json::from_value(rows).unwrap()
}

/// Waits for the browser to finish saving `name` into its downloads folder.
fn downloaded(browser: &Browser, name: &str) -> Vec<u8> {
    let path = browser.downloads.join(name);
    // Chromium reserves the name with an empty file while it writes a
    // `.crdownload` beside it, then renames that over it.
    let in_progress = || {
        let mut entries = std::fs::read_dir(&browser.downloads).into_iter().flatten().flatten();
        entries.any(|e| e.file_name().to_string_lossy().ends_with(".crdownload"))
    };
    eventually(|| path.exists() && !in_progress());
    std::fs::read(path).unwrap()
}

/// The storage setting of a test's service: `data/` in its directory.
fn root_env(dir: &TempDir) -> (&'static str, String) {
    ("UPLOAD__STORAGE__ROOT", dir.path().join("data").to_str().unwrap().to_owned())
}

/// A test's directory, the service on its `data/` with `env` on top, and
/// Chromium saving into its `downloads/`; `None` (the test skipped) without Chromium.
fn start(env: &[(&str, &str)]) -> Option<(TempDir, Service, Browser)> {
    if !driver::installed() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, root) = root_env(&dir);
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push((key, &root));
    let service = Service::spawn(&env);
    let browser = Browser::start(&dir.path().join("downloads"));
    Some((dir, service, browser))
}

#[test]
fn the_page_uploads_three_files_with_progress_lists_downloads_and_deletes() {
    let Some((dir, service, browser)) = start(&[]) else { return };
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello from the page\n").unwrap();
    let notes_sha = sha256_hex(b"hello from the page\n");
    let medium = dir.path().join("medium.bin");
    let medium_sha = write_file(&medium, 5 * MIB, 1);
    let big = dir.path().join("big.bin");
    let big_sha = write_file(&big, 200 * MIB, 2);

    browser.goto(&service.url("/"));
    browser.wait_for("document.body.dataset.ready === 'tus'", SHORT);
    assert!(browser.text("#mode").contains("checked with SHA-256"), "{}", browser.text("#mode"));
    browser.choose_files("#picker", &[&notes, &medium, &big]);
    browser.wait_for(&format!("{} === 3", count("#queue li[data-state=done]")), MINUTE);
    let full = browser.js(
        "return [...document.querySelectorAll('progress')].every(p => p.value === p.max)",
        vec![],
    );
    assert_eq!(full, json!(true), "every bar at 100%");
    assert!(browser.text("#overall-text").contains("all stored"));

    // New uploads appear without a reload, with the digests computed here.
    browser.wait_for(&format!("{} === 3", count("#files tbody tr")), SHORT);
    let mut listed: Vec<(String, String)> =
        rows(&browser).into_iter().map(|(name, sha, _)| (name, sha)).collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("big.bin".into(), big_sha),
            ("medium.bin".into(), medium_sha),
            ("notes.txt".into(), notes_sha)
        ]
    );
    let id_of = |name: &str| rows(&browser).into_iter().find(|r| r.0 == name).unwrap().2;

    // Download through the browser, as a person clicks it.
    browser.click(&format!("#files tr[data-id='{}'] a", id_of("notes.txt")));
    assert_eq!(downloaded(&browser, "notes.txt"), b"hello from the page\n");

    // Delete, after the confirmation.
    let medium_id = id_of("medium.bin");
    browser.click(&format!("#files tr[data-id='{medium_id}'] button[aria-label^=Delete]"));
    browser.wait_for("document.querySelector('#confirm-delete').open", SHORT);
    browser.click("#delete-yes");
    browser.wait_for(&format!("{} === 2", count("#files tbody tr")), SHORT);
    let gone = client().get(service.url(&format!("/files/{medium_id}"))).send().unwrap();
    assert_eq!(gone.status(), 404);

    // Every control has a name a screen reader reads, and the picker shows keyboard focus.
    let unnamed = browser.js(
        "return [...document.querySelectorAll('button, input, a[href], progress, output')]
            .filter(e => !(e.labels?.length || e.getAttribute('aria-label') || e.textContent.trim()))
            .map(e => e.outerHTML)",
        vec![],
    );
    assert_eq!(unnamed, json!([]));
    let focus = browser.js(
        "document.querySelector('#picker').focus();
         return getComputedStyle(document.querySelector('.picker')).outlineStyle",
        vec![],
    );
    assert_ne!(focus, json!("none"));

    let shots = screenshots();
    browser.screenshot(1280, 800, "body", &shots.join("desktop-1280x800.png"));
    browser.screenshot(1280, 800, "#files", &shots.join("desktop-list-1280x800.png"));
    browser.screenshot(360, 740, "body", &shots.join("phone-360x740.png"));
    browser.screenshot(360, 740, "#files", &shots.join("phone-list-360x740.png"));
    let overflow = browser.js(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
        vec![],
    );
    assert_eq!(overflow, json!(0), "nothing wider than a 360 px screen");
    assert_eq!(browser.console_errors(&[]), Vec::<String>::new());
}

#[test]
fn an_upload_resumes_after_a_reload_a_network_drop_and_a_server_restart() {
    let Some((dir, service, browser)) = start(&[]) else { return };
    let proxy = Proxy::start(service.addr());
    let file = dir.path().join("resumed.bin");
    let sha = write_file(&file, 80 * MIB, 3);
    let sent = "(document.querySelector('#queue progress')?.value ?? 0)";
    let upload_url = "(Object.entries(localStorage).find(([k]) => k.startsWith('fastupload.upload:'))?.[1] ?? null)";
    let retrying = "/Trying again/.test(document.querySelector('#queue li').innerText)";

    // Paced, so that each interruption falls mid-way.
    proxy.pace(20_000_000);
    browser.goto(&proxy.url("/"));
    browser.wait_for("document.body.dataset.ready === 'tus'", SHORT);
    browser.choose_files("#picker", &[&file]);
    browser.wait_for(&format!("{sent} > {}", 4 * MIB), MINUTE);
    let url = browser.js(&format!("return {upload_url}"), vec![]);
    assert!(url.as_str().is_some_and(|u| u.starts_with("/uploads/")), "{url}");

    // A reload: the page names the unfinished file, and choosing it again continues it.
    browser.goto(&proxy.url("/"));
    browser.wait_for("!document.querySelector('#unfinished').hidden", SHORT);
    assert!(browser.text("#unfinished").contains("resumed.bin"));
    browser.choose_files("#picker", &[&file]);
    // Past the first 32 MiB chunk: that much is stored (and synced) on the server.
    browser.wait_for(&format!("{sent} > {}", 40 * MIB), MINUTE);
    assert_eq!(browser.js(&format!("return {upload_url}"), vec![]), url, "the same upload");

    // Slower still, so that the upload cannot end before each fault however
    // the machine schedules this test.
    proxy.pace(2_000_000);

    // The network drops: the page retries by itself and goes on.
    proxy.cut();
    browser.wait_for(retrying, MINUTE);
    proxy.restore();
    browser.wait_for(&format!("!({retrying}) && {sent} > {}", 36 * MIB), MINUTE);

    // The server is killed mid-PATCH and started again: the page waits for it.
    drop(service);
    browser.wait_for(retrying, MINUTE);
    let service = Service::spawn(&[root_env(&dir)]);
    proxy.point_at(service.addr());
    proxy.pace(0);
    browser.wait_for(&format!("{} === 1", count("#queue li[data-state=done]")), MINUTE);
    browser.wait_for(&format!("{} === 1", count("#files tbody tr")), SHORT);

    let id = url.as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    assert_eq!(rows(&browser), [("resumed.bin".to_owned(), sha.clone(), id.clone())]);
    let stored = client().get(service.url(&format!("/files/{id}"))).send().unwrap();
    assert_eq!(sha256_hex(&stored.bytes().unwrap()), sha);
    assert_eq!(browser.js(&format!("return {upload_url}"), vec![]), Value::Null, "forgotten");

    // Cancelled mid-way: the service is told to drop what it holds.
    proxy.pace(20_000_000);
    browser.choose_files("#picker", &[&file]);
    let second = "document.querySelectorAll('#queue progress')[1]";
    browser.wait_for(&format!("({second}?.value ?? 0) > {}", 4 * MIB), MINUTE);
    let cancelled = browser.js(&format!("return {upload_url}"), vec![]);
    browser.click("#queue li:nth-child(2) button[aria-label^=Cancel]");
    browser.wait_for(&format!("{} === 1", count("#queue li[data-state=cancelled]")), SHORT);
    let gone = || {
        let head = client().head(service.url(cancelled.as_str().unwrap()));
        head.header("Tus-Resumable", "1.0.0").send().unwrap().status() == 404
    };
    eventually(gone);
    // While the server was away its requests failed at the network level, and
    // right after the drop a PATCH may find the cut one still winding up (423,
    // retried); nothing else.
    assert_eq!(browser.console_errors(&["net::ERR_", "423 (Locked)"]), Vec::<String>::new());
}

#[test]
fn the_fib_panel_counts_round_trips_while_fib_runs() {
    let Some((_dir, service, browser)) = start(&[]) else { return };
    browser.goto(&service.url("/"));
    browser.wait_for("document.body.dataset.ready", SHORT);
    browser.js("document.querySelector('#fib-n').value = '42'", vec![]);
    browser.click("#fib-run");
    // The counter moves while the result is still pending.
    browser.wait_for(
        "/running/.test(document.querySelector('#fib-result').value)
            && parseInt(document.querySelector('#rate').value) > 0",
        MINUTE,
    );
    browser.wait_for(
        "/fib\\(42\\) = 433494437 in/.test(document.querySelector('#fib-result').value)",
        MINUTE,
    );
    assert!(browser.text("#rate").contains("per second on average"), "{}", browser.text("#rate"));
    assert_eq!(browser.console_errors(&[]), Vec::<String>::new());
}

#[test]
fn with_tokens_the_page_asks_for_one_and_without_tus_it_posts_each_file() {
    let token = "fu_page_test_token";
    let tokens = format!("page:read+write+delete:{}", TokenDigest::of(token).to_hex());
    let Some((dir, service, browser)) = start(&[
        ("UPLOAD__AUTH__TOKENS", &tokens),
        ("UPLOAD__AUTH__LINK_KEY", "page-test-link-key-0123456789abcdef0123"),
        ("UPLOAD__UPLOADS__RESUMABLE", "false"),
        ("UPLOAD__LIMITS__MAX_FILE_SIZE", "1MiB"),
    ]) else {
        return;
    };
    let small = dir.path().join("small.bin");
    let small_sha = write_file(&small, 300_000, 4);
    let large = dir.path().join("too-large.bin");
    write_file(&large, 2 * MIB, 5);
    browser.goto(&service.url("/"));
    browser.wait_for("document.body.dataset.ready === 'post'", SHORT);
    assert!(browser.text("#mode").contains("One request per file"));

    // Refused: a clear message and the token field, never a blank page.
    browser.wait_for("!document.querySelector('#notice').hidden", SHORT);
    assert!(
        browser.text("#notice").contains("needs an access token"),
        "{}",
        browser.text("#notice")
    );
    browser.wait_for("!document.querySelector('#token-form').hidden", SHORT);
    browser.type_into("#token", token);
    browser.click("#token-form button[type=submit]");
    browser.wait_for("document.querySelector('#notice').hidden", SHORT);

    browser.choose_files("#picker", &[&small, &large]);
    browser.wait_for(&format!("{} === 1", count("#queue li[data-state=done]")), MINUTE);
    let refused = browser.text("#queue li[data-state=failed]");
    assert!(refused.contains("2 MiB is over the limit of 1 MiB: not sent"), "{refused}");
    browser.wait_for(&format!("{} === 1", count("#files tbody tr")), SHORT);
    let (name, sha, id) = rows(&browser).remove(0);
    assert_eq!((name.as_str(), sha.as_str()), ("small.bin", small_sha.as_str()));

    // A plain link cannot carry the token: the page makes a signed one.
    browser.click(&format!("#files tr[data-id='{id}'] a"));
    assert_eq!(sha256_hex(&downloaded(&browser, "small.bin")), small_sha);

    // A file dropped on the zone: WebDriver cannot drag from the desktop, so
    // the drop event carries a file made in the page, as a real drop's would.
    browser.js(
        "const data = new DataTransfer();
         data.items.add(new File(['dropped bytes'], 'dropped.txt', { type: 'text/plain' }));
         document.querySelector('#drop').dispatchEvent(
             new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));",
        vec![],
    );
    browser.wait_for(&format!("{} === 2", count("#files tbody tr")), SHORT);
    let dropped = rows(&browser).into_iter().find(|r| r.0 == "dropped.txt").expect("listed");
    assert_eq!(dropped.1, sha256_hex(b"dropped bytes"));
    browser.screenshot(1280, 800, "body", &screenshots().join("tokens-fallback-1280x800.png"));
    // The 401 before the token, and the OPTIONS probe of the absent tus endpoint.
    let errors = browser.console_errors(&[
        "401 (Unauthorized)",
        "/uploads/ - Failed to load resource: the server responded with a status of 404",
    ]);
    assert_eq!(errors, Vec::<String>::new());
}
