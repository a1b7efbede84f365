//! The committed fuzz corpora (`fuzz/corpus/`) replayed on every test run: the seeds and every
//! input a fuzz run has turned into a regression case. `scripts/fuzz.sh` explores from them;
//! these tests keep what it found fixed.

use std::path::{Path, PathBuf};

use crate::common::*;

#[path = "../../../fuzz/src/exchange.rs"]
mod exchange;
#[path = "../../../fuzz/src/settings_input.rs"]
mod settings_input;

/// The committed corpus of `target`, or the one under `$FUZZ_CORPUS` (e.g. `target/fuzz-corpus`,
/// where a fuzz run keeps what it found).
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    // A relative `$FUZZ_CORPUS` is taken from the workspace root, where the fuzz script runs
    // (tests run in the crate's directory).
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = std::env::var_os("FUZZ_CORPUS")
        .map_or_else(|| workspace.join("fuzz/corpus"), |dir| workspace.join(dir));
    let dir = root.join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 2, "{} holds no corpus", dir.display());
    inputs
}

/// The statuses of every response in `answer`, in order.
fn statuses(answer: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(answer);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// Each request input, sent as the `request` target sends it to a service set up as the
/// target's: no 5xx, and the service still answers after.
#[test]
fn request_corpus_gets_no_server_error() {
    let server = Server::with(|raw| {
        raw.limits.max_file_size = upload_http::Size::Text("256KiB".into());
        raw.compute.max_n = 20;
        raw.auth.link_key = vec!["fuzz-link-key-0123456789abcdef-0123456789".into()];
    });
    let (mut answered, mut stored) = (0, 0);
    for (path, request) in corpus("request") {
        let statuses = statuses(&exchange::exchange(&server.addr(), &request));
        assert!(statuses.iter().all(|s| *s < 500), "{}: {statuses:?}", path.display());
        answered += usize::from(!statuses.is_empty());
        stored += usize::from(statuses.contains(&201));
    }
    // The seeds are well-formed requests, uploads among them: a replay whose requests never reach
    // the handlers tests only the parser.
    assert!(answered >= 9 && stored >= 3, "{answered} inputs answered, {stored} stored");
    assert_eq!(client().get(server.url("/healthz")).send().unwrap().status(), 200);
}

/// Each settings input (a settings file, then `---` and `UPLOAD__` lines) loads and validates
/// to settings or an error, without a panic.
#[test]
fn settings_corpus_loads_or_errs() {
    let dir = tempfile::tempdir().unwrap();
    let mut valid = 0;
    for (_, input) in corpus("settings") {
        let (file, env) = settings_input::split(&input);
        let path = dir.path().join("settings.toml");
        std::fs::write(&path, file).unwrap();
        if let Ok(raw) = upload_http::RawSettings::load(Some(&path), env) {
            valid += usize::from(raw.validate().is_ok());
        }
    }
    assert!(valid >= 1, "no seed is a valid settings file");
}
