use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use upload_core::{LocalConfig, StorageConfig};
use upload_http::{AppState, RawSettings};

/// Settings for a test: port 0, storage in `root`, 2 workers.
pub fn settings(root: PathBuf, tweak: impl FnOnce(&mut RawSettings)) -> upload_http::Settings {
    let mut raw = RawSettings::load(None, []).unwrap();
    raw.storage.backend = StorageConfig::Local(LocalConfig::new(root));
    raw.server.port = 0;
    raw.server.workers = 2;
    raw.compute.threads = 2;
    tweak(&mut raw);
    raw.validate().unwrap()
}

/// The real service on 127.0.0.1:0, in its own actix system, stopped on drop.
pub struct Server {
    pub url: String,
    pub dir: TempDir,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub fn start() -> Self {
        Self::with(|_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut RawSettings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path().join("data"), tweak);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let state = AppState::new(settings).await.unwrap();
                let server = upload_http::server(state, listener)?;
                tx.send(server.handle()).unwrap();
                server.await
            })
        });
        let handle = rx.recv().unwrap();
        Self { url, dir, handle, thread: Some(thread) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    /// Names in the store's `sub` directory (`objects` or `tmp`).
    pub fn entries(&self, sub: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path().join("data").join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Nothing stored, no temp file left, once uploads in flight have wound down.
    pub fn assert_nothing_stored(&self) {
        eventually(|| self.metric("uploads_in_flight") == 0.0 && self.entries("tmp").is_empty());
        assert_eq!(self.entries("objects"), Vec::<String>::new(), "objects");
        assert_eq!(self.entries("tmp"), Vec::<String>::new(), "temp files");
    }

    /// One sample of /metrics (the first line starting with `name`).
    pub fn metric(&self, name: &str) -> f64 {
        metric_at(&self.url, name)
    }

    pub fn stop_gracefully(&self) -> impl std::future::Future<Output = ()> + use<> {
        self.handle.stop(true)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `/metrics` text of the service at `base`.
pub fn metrics_at(base: &str) -> String {
    // The admin token of `auth::with_tokens`: ignored by a service without tokens.
    let request = client().get(format!("{base}/metrics"));
    crate::auth::as_caller(request, Some("admin")).send().unwrap().text().unwrap()
}

/// One sample of the service at `base` (the first line starting with `name`).
pub fn metric_at(base: &str, name: &str) -> f64 {
    let text = metrics_at(base);
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// Waits (bounded, 10 s) for a condition the server reaches on its own, such
/// as cleaning up after a client vanished: there is no event to wait on.
pub fn eventually(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "condition not reached within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
}

pub fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u64).wrapping_mul(2_654_435_761).wrapping_add(seed as u64) as u8 ^ (i >> 12) as u8
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The error code of a JSON error response.
pub fn error_code(response: reqwest::blocking::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().unwrap();
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {body}"))
            .to_owned(),
    )
}

/// Sends raw bytes on a fresh connection and reads the whole response (the server closes).
pub fn raw_exchange(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request).unwrap();
    read_response(&mut stream)
}

/// Reads one response: headers, then Content-Length bytes of body.
pub fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap() == 0 {
            break;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

/// A stored file's JSON, or the error's status and code.
pub type PutResult = Result<serde_json::Value, (u16, String)>;

/// The `upload-http` binary in a process of its own, on a free port, its
/// stderr collected; killed on drop.
pub struct Service {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Service {
    /// Starts the binary with `env` on top of port 0, 2 workers and
    /// `RUST_LOG=info,access=off`; returns once it listens.
    pub fn spawn<K: AsRef<str>, V: AsRef<str>>(env: &[(K, V)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_upload-http"))
            .env("UPLOAD__SERVER__PORT", "0")
            .env("UPLOAD__SERVER__WORKERS", "2")
            .env("RUST_LOG", "info,access=off")
            .envs(env.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let addr = loop {
            let line = lines.next().expect("the service exited before listening").unwrap();
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Self { child, addr, log, reader: Some(reader) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn metric(&self, name: &str) -> f64 {
        metric_at(&format!("http://{}", self.addr), name)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn status(&self, path: &str) -> u16 {
        client().get(self.url(path)).send().map_or(0, |r| r.status().as_u16())
    }

    pub fn assert_running(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "exited:\n{}", self.log.lock().unwrap());
        assert_eq!(self.status("/healthz"), 200);
    }

    /// `PUT /files/{name}`: the stored file's JSON, or the error's status and code.
    pub fn put(&self, name: &str, data: Vec<u8>) -> PutResult {
        let response = client().put(self.url(&format!("/files/{name}"))).body(data).send();
        match response {
            Ok(r) if r.status().is_success() => Ok(r.json().unwrap()),
            Ok(r) => Err(error_code(r)),
            Err(e) => Err((0, e.to_string())),
        }
    }

    pub fn download(&self, id: &str) -> Vec<u8> {
        let response = client().get(self.url(&format!("/files/{id}"))).send().unwrap();
        assert_eq!(response.status(), 200, "GET {id}");
        response.bytes().unwrap().to_vec()
    }

    /// Sends SIGTERM and waits: the exit status and everything the process wrote to stderr.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = self.child.wait().unwrap();
        // The pipe closes with the process: the reader has every line once it ends.
        self.reader.take().unwrap().join().unwrap();
        (status, self.log.lock().unwrap().clone())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `len` pseudo-random bytes to `path`, 1 MiB at a time; returns their SHA-256.
pub fn write_file(path: &Path, len: usize, seed: u64) -> String {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = Sha256::new();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        let n = left.min(block.len());
        file.write_all(&block[..n]).unwrap();
        hasher.update(&block[..n]);
        left -= n;
    }
    file.flush().unwrap();
    hex::encode(hasher.finalize())
}

/// A small file system mounted for a test, unmounted on drop.
pub struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    /// A tmpfs of `size` (`mount`'s syntax, e.g. `4m`) at `at`; `None` where this process
    /// may not mount (not root, or a container without the capability).
    pub fn tmpfs(at: PathBuf, size: &str) -> Option<Self> {
        let size = format!("size={size}");
        let status =
            Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(&at).status();
        status.ok()?.success().then_some(Self { at })
    }

    /// An ext4 of `mib` MiB in `image`, loop-mounted at `at`; `None` as for [`Self::tmpfs`].
    pub fn ext4(at: PathBuf, image: &Path, mib: u64) -> Option<Self> {
        std::fs::File::create(image).ok()?.set_len(mib << 20).ok()?;
        let made = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image).status();
        if !made.ok()?.success() {
            return None;
        }
        let status = Command::new("mount").args(["-o", "loop"]).arg(image).arg(&at).status();
        status.ok()?.success().then_some(Self { at })
    }

    pub fn path(&self) -> &Path {
        &self.at
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}
