//! Crash consistency: the binary is killed with SIGKILL at random points
//! while clients upload (multipart, raw, chunked, tus appends) and delete,
//! on the local backend with `fsync = true`, then restarted on the same root.
//! Whatever was acknowledged is there, whole; whatever is listed is whole;
//! `tmp/` is swept; the store opens in bounded time.
//!
//! `CRASH_ITERATIONS` sets the number of kills (CI: 8; `scripts/reliability.sh`: 60).

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::{Body, Client};
use serde_json::Value;

use crate::common::*;

/// What the clients were told, across every life of the service.
#[derive(Default)]
struct Ledger {
    /// Acknowledged files (201), by id: their SHA-256 and how they were uploaded.
    stored: HashMap<String, (String, &'static str)>,
    /// Acknowledged deletes (204).
    deleted: HashSet<String>,
    /// Files whose delete was sent but not acknowledged: either gone or whole.
    doubtful: HashMap<String, String>,
    /// The SHA-256 of every body ever sent: a listed file must be one of them, whole.
    sent: HashSet<String>,
    /// tus uploads with an acknowledged append (204), by path: the offset acknowledged, the
    /// length, and the SHA-256 of the whole.
    appended: HashMap<String, (u64, u64, String)>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn iterations() -> usize {
    std::env::var("CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(8)
}

/// One client: random operations until `stop`, recording what was acknowledged.
fn client_loop(base: &str, seed: u64, stop: &AtomicBool, ledger: &Mutex<Ledger>) {
    let http = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut rng = Rng(seed | 1);
    while !stop.load(Ordering::Relaxed) {
        let data = bytes(rng.below(3 << 20) as usize, rng.next() as u8);
        let sha = sha256_hex(&data);
        ledger.lock().unwrap().sent.insert(sha.clone());
        let stored = |r: Result<reqwest::blocking::Response, _>| -> Vec<Value> {
            match r {
                // A 201 whose body the kill cut off is not an acknowledgement.
                Ok(r) if r.status() == 201 => match r.json::<Value>() {
                    Ok(v) => v["files"].as_array().cloned().unwrap_or_else(|| vec![v]),
                    Err(_) => Vec::new(),
                },
                _ => Vec::new(),
            }
        };
        let kind = ["raw", "chunked", "multipart", "delete", "tus"][rng.below(5) as usize];
        let acked = match kind {
            "raw" => stored(http.put(format!("{base}/files/raw.bin")).body(data).send()),
            "chunked" => {
                let body = Body::new(Cursor::new(data)); // no length: chunked
                stored(http.put(format!("{base}/files/chunked.bin")).body(body).send())
            }
            "multipart" => {
                let form = Form::new().part("f", Part::bytes(data).file_name("multi.bin"));
                stored(http.post(format!("{base}/files")).multipart(form).send())
            }
            "delete" => {
                let victim = {
                    let mut ledger = ledger.lock().unwrap();
                    let id = ledger.stored.keys().next().cloned();
                    id.and_then(|id| ledger.stored.remove_entry(&id))
                };
                if let Some((id, (sha, _))) = victim {
                    let r = http.delete(format!("{base}/files/{id}")).send();
                    let mut ledger = ledger.lock().unwrap();
                    if r.is_ok_and(|r| r.status() == 204) {
                        ledger.deleted.insert(id);
                    } else {
                        ledger.doubtful.insert(id, sha);
                    }
                }
                Vec::new()
            }
            _ => tus_upload(&http, base, &data, &sha, ledger),
        };
        let mut ledger = ledger.lock().unwrap();
        for file in acked {
            assert_eq!(file["sha256"], sha.as_str(), "acknowledged with another digest");
            ledger.stored.insert(file["id"].as_str().unwrap().to_owned(), (sha.clone(), kind));
        }
    }
}

/// A tus upload in two appends; each acknowledged append is recorded.
fn tus_upload(
    http: &Client,
    base: &str,
    data: &[u8],
    sha: &str,
    ledger: &Mutex<Ledger>,
) -> Vec<Value> {
    let tus = |r: reqwest::blocking::RequestBuilder| r.header("Tus-Resumable", "1.0.0");
    let created = tus(http.post(format!("{base}/uploads/")))
        .header("Upload-Length", data.len().to_string())
        .send();
    let Some(created) = created.ok().filter(|r| r.status() == 201) else { return Vec::new() };
    let path = created.headers()["location"].to_str().unwrap().to_owned();
    let (len, half) = (data.len() as u64, data.len() / 2);
    for (offset, part) in [(0, &data[..half]), (half, &data[half..])] {
        let r = tus(http.patch(format!("{base}{path}")))
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(part.to_vec())
            .send();
        if !r.is_ok_and(|r| r.status() == 204) {
            return Vec::new();
        }
        let acked = (offset + part.len()) as u64;
        ledger.lock().unwrap().appended.insert(path.clone(), (acked, len, sha.to_owned()));
    }
    let id = path.rsplit('/').next().unwrap();
    vec![serde_json::json!({"id": id, "sha256": sha})]
}

fn listed(service: &Service) -> HashMap<String, (String, u64)> {
    let mut out = HashMap::new();
    let mut after = String::new();
    loop {
        let url = service.url(&format!("/files?limit=1000&after={after}"));
        let page: Value = client().get(url).send().unwrap().json().unwrap();
        for f in page["files"].as_array().unwrap() {
            let sha = f["sha256"].as_str().unwrap().to_owned();
            out.insert(f["id"].as_str().unwrap().to_owned(), (sha, f["size"].as_u64().unwrap()));
        }
        match page["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => return out,
        }
    }
}

fn start(root: &Path) -> (Service, Duration) {
    let began = Instant::now();
    let service = Service::spawn(&[
        ("UPLOAD__STORAGE__ROOT", root.to_str().unwrap()),
        ("UPLOAD__STORAGE__FSYNC", "true"),
    ]);
    (service, began.elapsed())
}

/// After a restart: every acknowledged file whole, nothing deleted back, nothing partial.
/// Files in `downloaded` are not downloaded again (their digest is still compared).
fn check(service: &Service, root: &Path, ledger: &Ledger, downloaded: &mut HashSet<String>) {
    let tmp: Vec<_> = std::fs::read_dir(root.join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "tmp/ not swept: {} entries", tmp.len());
    let listed = listed(service);
    for (id, (sha, kind)) in &ledger.stored {
        let (listed_sha, _) = listed.get(id).unwrap_or_else(|| {
            let on_disk = root.join("objects").join(id).exists();
            panic!("acknowledged {kind} upload {id} lost (in objects/: {on_disk})")
        });
        assert_eq!(listed_sha, sha, "{id}");
        if downloaded.insert(id.clone()) {
            assert_eq!(&sha256_hex(&service.download(id)), sha, "{id} downloads other bytes");
        }
    }
    for id in &ledger.deleted {
        assert!(!listed.contains_key(id), "deleted {id} is back");
    }
    for (id, sha) in &ledger.doubtful {
        if let Some((listed_sha, _)) = listed.get(id) {
            assert_eq!(listed_sha, sha, "{id}, whose delete was cut off, changed");
        }
    }
    for (id, (sha, _)) in &listed {
        assert!(ledger.sent.contains(sha), "{id} is listed with bytes no client sent whole");
    }
    for (path, (acked, len, sha)) in &ledger.appended {
        let id = path.rsplit('/').next().unwrap();
        if ledger.deleted.contains(id)
            || ledger.doubtful.contains_key(id)
            || downloaded.contains(id)
        {
            continue;
        }
        let r = client().head(service.url(path)).header("Tus-Resumable", "1.0.0").send().unwrap();
        assert_eq!(r.status(), 200, "{path}: an acknowledged append is lost");
        let offset: u64 = r.headers()["upload-offset"].to_str().unwrap().parse().unwrap();
        assert!(offset >= *acked && offset <= *len, "{path}: offset {offset}, acked {acked}");
        // Whole: the file, committed by now (by the HEAD, if a kill cut its commit short).
        if offset == *len {
            assert_eq!(&sha256_hex(&service.download(id)), sha, "{path}");
            downloaded.insert(id.to_owned());
        }
    }
}

#[test]
fn killed_at_random_points_it_keeps_every_acknowledged_upload_and_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut rng = Rng(0x5eed ^ u64::from(std::process::id()));
    let mut slowest_open = Duration::ZERO;
    let mut downloaded = HashSet::new();
    for iteration in 0..iterations() {
        let (service, opened) = start(&root);
        slowest_open = slowest_open.max(opened);
        check(&service, &root, &ledger.lock().unwrap(), &mut downloaded);
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..3)
            .map(|c| {
                let (base, stop, ledger) = (service.url(""), stop.clone(), ledger.clone());
                let seed = rng.next() ^ c;
                std::thread::spawn(move || client_loop(&base, seed, &stop, &ledger))
            })
            .collect();
        // The kill point: anywhere in the first 1.5 s of traffic.
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        stop.store(true, Ordering::Relaxed);
        drop(service); // SIGKILL
        for c in clients {
            c.join().unwrap();
        }
        let ledger = ledger.lock().unwrap();
        eprintln!(
            "kill {iteration}: {} files acknowledged, {} deleted, {} tus appends",
            ledger.stored.len(),
            ledger.deleted.len(),
            ledger.appended.len()
        );
    }
    let (service, opened) = start(&root);
    let ledger = ledger.lock().unwrap();
    // The last check downloads everything again.
    check(&service, &root, &ledger, &mut HashSet::new());
    assert!(ledger.stored.len() + ledger.deleted.len() > 0, "no upload was acknowledged");
    slowest_open = slowest_open.max(opened);
    eprintln!("slowest open after a kill: {slowest_open:?}");
    assert!(slowest_open < Duration::from_secs(10), "the store took {slowest_open:?} to open");
}
