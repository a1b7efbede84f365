//! `cargo bench -p upload-http --bench auth`: what the token check costs a request.
//! `/asyncwait?duration=0` through the whole app (routing, telemetry, handler), in
//! process so that no socket or client noise hides a per-request cost of a few hundred
//! nanoseconds; with auth off (no tokens) and on (`auth.open_bench = false`: every request
//! presents its bearer token and is checked against 8 configured digests). Rounds
//! interleaved; medians and fastest rounds, and the reference from the same run.

use std::time::Instant;

use actix_web::test;
use upload_http::{AppState, RawSettings, RawToken, TokenDigest};

const REQUESTS: u32 = 100_000;
const ROUNDS: usize = 9;
const TOKEN: &str = "fu_bench_token_0123456789abcdefghijklmnopqrstuv";

fn settings(dir: &std::path::Path, auth: bool) -> upload_http::Settings {
    let mut raw = RawSettings::load(None, []).expect("defaults");
    raw.storage.backend = upload_core::StorageConfig::Local(upload_core::LocalConfig::new(dir));
    if auth {
        raw.auth.tokens = (0..8)
            .map(|i| RawToken::Table {
                name: format!("t{i}"),
                scopes: vec!["read".into()],
                // The one presented is the last one compared.
                sha256: TokenDigest::of(&if i == 7 { TOKEN.into() } else { format!("{TOKEN}{i}") })
                    .to_hex(),
            })
            .collect();
        raw.auth.link_key = vec!["bench-link-key-0123456789abcdef0123456789".into()];
        raw.auth.open_bench = false;
    }
    raw.validate().expect("valid settings")
}

fn main() {
    let rt = actix_web::rt::System::new();
    let dirs = [tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir")];
    let (off, on) = rt.block_on(async {
        let off = AppState::new(settings(dirs[0].path(), false)).await.expect("state");
        let on = AppState::new(settings(dirs[1].path(), true)).await.expect("state");
        (
            test::init_service(upload_http::app(off)).await,
            test::init_service(upload_http::app(on)).await,
        )
    });
    let mut ns = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (i, app) in [&off, &on].into_iter().enumerate() {
            let start = Instant::now();
            rt.block_on(async {
                for _ in 0..REQUESTS {
                    let req = test::TestRequest::get()
                        .uri("/asyncwait?duration=0")
                        .insert_header(("Authorization", format!("Bearer {TOKEN}")))
                        .to_request();
                    let response = test::call_service(app, req).await;
                    assert_eq!(response.status(), 200);
                }
            });
            ns[i].push(start.elapsed().as_nanos() as f64 / f64::from(REQUESTS));
        }
    }
    // The median, and the fastest round: the one this shared machine disturbed least.
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0])
    };
    let ((off, off_min), (on, on_min)) = (stats(&mut ns[0]), stats(&mut ns[1]));
    println!("/asyncwait in process, {REQUESTS} requests x {ROUNDS} rounds (median, fastest):");
    println!("  auth off (no tokens)                {off:>6.0} {off_min:>6.0} ns/request");
    println!("  auth on (bearer checked, 8 tokens)  {on:>6.0} {on_min:>6.0} ns/request");
    println!(
        "  the check: {:+.0} ns per request ({:+.0} between the fastest rounds)",
        on - off,
        on_min - off_min
    );
}
