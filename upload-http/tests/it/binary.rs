//! The shipped binary itself: its settings errors, `--print-config`, the
//! access log and the exit on SIGTERM.

use std::process::Command;

use crate::common::Service;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_upload-http"))
}

#[test]
fn one_access_line_per_request_and_exit_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let service =
        Service::spawn(&[("UPLOAD__STORAGE__ROOT", root.to_str().unwrap()), ("RUST_LOG", "info")]);
    for (path, status) in [("/healthz", 200), ("/asyncwait?duration=0", 200), ("/nope", 404)] {
        assert_eq!(service.status(path), status, "{path}");
    }
    // Access lines wait up to 100 ms in a buffer: the exit must still write every one.
    let (status, log) = service.terminate();
    assert!(status.success(), "{status}\n{log}");
    for request in [
        "GET /healthz HTTP/1.1\" 200 ",
        "GET /asyncwait?duration=0 HTTP/1.1\" 200 ",
        "GET /nope HTTP/1.1\" 404 ",
    ] {
        let lines =
            log.lines().filter(|l| l.contains("INFO  access] 127.0.0.1 \"") && l.contains(request));
        assert_eq!(lines.count(), 1, "{request} in\n{log}");
    }
    assert!(log.lines().last().is_some_and(|l| l.ends_with("stopped")), "{log}");
}

#[test]
fn a_bad_setting_stops_the_binary_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value, named) in [
        ("UPLOAD__SERVER__PORT", "eighty", "server.port"),
        ("UPLOAD__LIMITS__MAX_FILE_SIZE", "lots", "limits.max_file_size"),
        ("UPLOAD__COMPUTE__TIMEOUT", "soon", "compute.timeout"),
    ] {
        let out = binary()
            .current_dir(dir.path())
            .env(key, value)
            .env("RUST_BACKTRACE", "1") // even so: a bad setting is not a crash
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{key}={value}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: ") && last.contains(named), "{key}={value}: {err}");
        assert!(!err.contains("backtrace"), "{key}={value}: {err}");
    }
    assert!(!dir.path().join("data").exists(), "nothing is created before the settings are valid");
}

#[test]
fn print_config_shows_the_effective_settings_from_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.toml");
    std::fs::write(
        &file,
        "[server]\nport = 9100\nworkers = 3\n[limits]\nmax_file_size = \"5MiB\"\n",
    )
    .unwrap();
    let out = binary()
        .args(["--config", file.to_str().unwrap(), "--print-config"])
        .env("UPLOAD__SERVER__PORT", "9123")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let toml: toml::Table = String::from_utf8(out.stdout).unwrap().parse().unwrap();
    assert_eq!(
        toml["server"]["port"].as_integer(),
        Some(9123),
        "the environment wins over the file"
    );
    assert_eq!(toml["server"]["workers"].as_integer(), Some(3), "the file wins over the defaults");
    assert_eq!(toml["limits"]["max_file_size"].as_str(), Some("5MiB"));
    assert_eq!(toml["storage"]["fsync"].as_bool(), Some(true), "defaults fill the rest");
}

#[test]
fn a_flood_of_malformed_requests_is_one_info_line_not_an_error_each() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let service = Service::spawn(&[("UPLOAD__STORAGE__ROOT", root.to_str().unwrap())]);
    for i in 0..50 {
        let response =
            crate::common::raw_exchange(service.addr(), format!("GARB{i} \0\r\n\r\n").as_bytes());
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    }
    let (_, log) = service.terminate();
    assert!(!log.contains("ERROR"), "{log}");
    let told = log.lines().filter(|l| l.contains("INFO  client] client connection error"));
    assert_eq!(told.count(), 1, "{log}");
}
