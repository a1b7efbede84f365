//! Any bytes as an HTTP/1.1 request, sent over a real socket to the real service (local store,
//! tus on, download links on), in this process so that the fuzzer sees its coverage: actix's
//! parser, then our routes' parsing of multipart bodies, `Range`, `Content-Digest`,
//! `If-None-Match`, file names, ids, queries and the tus headers. Any panic is a crash
//! (libfuzzer-sys aborts on one).
#![no_main]

use std::net::TcpListener;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../src/exchange.rs"]
mod exchange;

/// The service's address: started once, on 127.0.0.1:0, in a directory kept for the run.
fn service() -> &'static str {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        let root = dir.join("data").to_string_lossy().into_owned();
        let env = [
            ("UPLOAD__STORAGE__ROOT", root.as_str()),
            ("UPLOAD__STORAGE__FSYNC", "false"),
            ("UPLOAD__SERVER__WORKERS", "1"),
            ("UPLOAD__COMPUTE__THREADS", "1"),
            ("UPLOAD__COMPUTE__MAX_N", "20"),
            ("UPLOAD__LIMITS__MAX_FILE_SIZE", "256KiB"),
            ("UPLOAD__AUTH__LINK_KEY", "fuzz-link-key-0123456789abcdef-0123456789"),
        ];
        let env = env.map(|(k, v)| (k.to_owned(), v.to_owned()));
        let raw = upload_http::RawSettings::load(None, env).expect("the settings load");
        let settings = raw.validate().expect("valid settings");
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let addr = listener.local_addr().expect("an address").to_string();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let state = upload_http::AppState::new(settings).await.expect("the store opens");
                upload_http::server(state, listener).expect("the server starts").await
            })
        });
        addr
    })
}

fuzz_target!(|request: &[u8]| {
    exchange::exchange(service(), request);
});
