//! Loading and validating settings: defaults, file, environment, errors.

use super::*;

fn load(env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    RawSettings::load(None, env.iter().map(|(k, v)| (k.to_string(), v.to_string())))?.validate()
}

#[test]
fn defaults_are_as_documented() {
    let s = load(&[]).unwrap();
    assert_eq!((s.server.host.as_str(), s.server.port), ("127.0.0.1", 8000));
    assert_eq!(s.limits.max_file_size, 1 << 30);
    assert_eq!(s.limits.max_files_per_request, 100);
    assert_eq!((s.compute.max_n, s.compute.priority), (46, compute::Priority::Idle));
    assert_eq!(s.compute.timeout, Duration::from_secs(30));
    assert_eq!((s.server.min_body_rate, s.server.max_connections), (1024, 10_000));
    assert_eq!(s.bench.max_waits, 1024);
    assert_eq!(s.uploads.expire_after, Duration::from_secs(24 * 3600));
    assert!(s.server.cors_origins.is_empty());
    match s.storage {
        StorageConfig::Local(local) => {
            assert!(local.fsync && local.direct_io && local.root.ends_with("data"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn environment_overrides_with_human_units() {
    let s = load(&[
        ("UPLOAD__SERVER__PORT", "9000"),
        ("UPLOAD__LIMITS__MAX_FILE_SIZE", "20MiB"),
        ("UPLOAD__COMPUTE__TIMEOUT", "1m 30s"),
        ("UPLOAD__COMPUTE__NICE", "5"),
        ("UPLOAD__STORAGE__FSYNC", "false"),
        ("UPLOAD__STORAGE__DIRECT_IO", "false"),
        ("UPLOAD__STORAGE__ROOT", "/srv/uploads"),
        // Empty means unset: an override file can clear a key of another backend.
        ("UPLOAD__STORAGE__BUCKET", ""),
        ("OTHER__SERVER__PORT", "1"),
    ])
    .unwrap();
    assert_eq!(s.server.port, 9000);
    assert_eq!(s.limits.max_file_size, 20 << 20);
    assert_eq!(s.compute.timeout, Duration::from_secs(90));
    assert_eq!(s.compute.priority, compute::Priority::Nice(5));
    match s.storage {
        StorageConfig::Local(local) => {
            assert!(!local.fsync && !local.direct_io);
            assert_eq!(local.root, Path::new("/srv/uploads"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn s3_is_configured_from_the_environment_and_its_secret_never_printed() {
    let env = [
        ("UPLOAD__STORAGE__TYPE", "s3"),
        ("UPLOAD__STORAGE__BUCKET", "uploads"),
        ("UPLOAD__STORAGE__PART_SIZE", "16MiB"),
        ("UPLOAD__STORAGE__CONCURRENCY", "8"),
        ("UPLOAD__STORAGE__SECRET_ACCESS_KEY", "s3cret"),
    ];
    let raw = RawSettings::load(None, env.map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap();
    match &raw.validate().unwrap().storage {
        StorageConfig::S3(s3) => {
            assert_eq!((s3.bucket.as_str(), s3.concurrency), ("uploads", 8));
            assert_eq!(s3.part_size.as_u64(), 16 << 20);
            assert!(s3.path_style && s3.prefix.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let printed = raw.to_toml().unwrap();
    assert!(!printed.contains("s3cret") && printed.contains("<redacted>"), "{printed}");
}

#[test]
fn a_file_sits_between_defaults_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.toml");
    std::fs::write(
        &file,
        "[server]\nport = 7000\nworkers = 3\n[limits]\nmax_file_size = 1048576\n",
    )
    .unwrap();
    let env = [("UPLOAD__SERVER__PORT".to_string(), "7001".to_string())];
    let s = RawSettings::load(Some(&file), env).unwrap().validate().unwrap();
    assert_eq!((s.server.port, s.server.workers, s.limits.max_file_size), (7001, 3, 1 << 20));
}

#[test]
fn bad_values_are_named() {
    for (key, value, needle) in [
        ("UPLOAD__LIMITS__MAX_FILE_SIZE", "lots", "limits.max_file_size"),
        ("UPLOAD__COMPUTE__TIMEOUT", "soon", "compute.timeout"),
        ("UPLOAD__COMPUTE__MAX_N", "93", "compute.max_n"),
        ("UPLOAD__COMPUTE__NICE", "25", "compute.nice"),
        ("UPLOAD__COMPUTE__NICE", "low", "compute.nice"),
        ("UPLOAD__SERVER__WORKERS", "0", "server.workers"),
        ("UPLOAD__UPLOADS__EXPIRE_AFTER", "0s", "uploads.expire_after"),
        ("UPLOAD__UPLOADS__SWEEP_INTERVAL", "often", "uploads.sweep_interval"),
        ("UPLOAD__SERVER__PORT", "70000", "port"),
        ("UPLOAD__STORAGE__TYPE", "floppy", "floppy"),
        ("UPLOAD__STORAGE__FSYCN", "false", "fsycn"),
    ] {
        let err = load(&[(key, value)]).unwrap_err().to_string();
        assert!(err.contains(needle), "{key}={value}: {err}");
    }
}

#[test]
fn printed_settings_load_back() {
    let raw = RawSettings::load(None, []).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("printed.toml");
    std::fs::write(&file, raw.to_toml().unwrap()).unwrap();
    RawSettings::load(Some(&file), []).unwrap().validate().unwrap();
}

#[test]
fn cors_origins_are_a_comma_separated_list() {
    let s = load(&[("UPLOAD__SERVER__CORS_ORIGINS", "https://a.example,http://b.example:8080")])
        .unwrap();
    assert_eq!(s.server.cors_origins, ["https://a.example", "http://b.example:8080"]);
    let any = load(&[("UPLOAD__SERVER__CORS_ORIGINS", "*")]).unwrap();
    assert_eq!(any.server.cors_origins, ["*"]);
}

const DIGEST: &str = "cb7c46e511337988dfa284da885557f48320bb7dacfafec65cd04aa0960e1c79";
const KEY: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn tokens_come_from_the_environment_as_lines_and_from_a_file_as_tables() {
    let line = format!("ci:write+read:{DIGEST},ops:admin:{DIGEST}");
    let s = load(&[("UPLOAD__AUTH__TOKENS", &line), ("UPLOAD__AUTH__LINK_KEY", KEY)]).unwrap();
    let tokens = s.auth.tokens.unwrap();
    let names: Vec<_> = tokens.iter().map(|t| (&*t.name, t.scopes.names())).collect();
    assert_eq!(names, [("ci", vec!["read", "write"]), ("ops", vec!["admin"])]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.toml");
    let text = format!(
        "[server]\nhost = \"0.0.0.0\"\n[auth]\nlink_key = [\"{KEY}\"]\n\
         tokens = [{{ name = \"ci\", scopes = [\"write\"], sha256 = \"{DIGEST}\" }}]\n"
    );
    std::fs::write(&file, text).unwrap();
    let raw = RawSettings::load(Some(&file), []).unwrap();
    assert_eq!(raw.validate().unwrap().auth.tokens.unwrap()[0].name.as_ref(), "ci");
    let printed = raw.to_toml().unwrap();
    assert!(!printed.contains(KEY) && printed.contains(DIGEST), "{printed}");
}

#[test]
fn bad_auth_and_lifetime_values_are_named() {
    let token = format!("ci:write:{DIGEST}");
    for (env, needle) in [
        (vec![("UPLOAD__AUTH__TOKENS", "ci:write")], "auth.tokens"),
        (vec![("UPLOAD__AUTH__TOKENS", &*format!("ci:owner:{DIGEST}"))], "\"owner\""),
        (vec![("UPLOAD__AUTH__TOKENS", "ci:write:abc")], "sha256"),
        (vec![("UPLOAD__AUTH__TOKENS", &*format!("c i:write:{DIGEST}"))], "auth.tokens"),
        (vec![("UPLOAD__AUTH__TOKENS", &*format!("{token},{token}"))], "used twice"),
        (vec![("UPLOAD__AUTH__TOKENS", &*token)], "auth.link_key"),
        (
            vec![("UPLOAD__AUTH__TOKENS", &*token), ("UPLOAD__AUTH__LINK_KEY", "short")],
            "auth.link_key",
        ),
        (vec![("UPLOAD__AUTH__TOKENS", &*token), ("UPLOAD__AUTH__MODE", "open")], "auth.mode"),
        (vec![("UPLOAD__AUTH__MODE", "closed")], "auth.mode"),
        (vec![("UPLOAD__SERVER__HOST", "0.0.0.0")], "auth.tokens"),
        (vec![("UPLOAD__SERVER__HOST", "example.org")], "auth.tokens"),
        (vec![("UPLOAD__AUTH__MAX_LINK_LIFETIME", "0s")], "auth.max_link_lifetime"),
        (vec![("UPLOAD__SERVER__INLINE_TYPES", "png")], "server.inline_types"),
        (vec![("UPLOAD__LIMITS__MAX_LIFETIME", "0s")], "limits.max_lifetime"),
        (vec![("UPLOAD__LIMITS__MAX_TOTAL_SIZE", "lots")], "limits.max_total_size"),
        (
            vec![("UPLOAD__LIMITS__MAX_TOTAL_SIZE_PER_TOKEN", "0")],
            "limits.max_total_size_per_token",
        ),
        (vec![("UPLOAD__STORAGE__DEFAULT_LIFETIME", "never")], "storage.default_lifetime"),
        (vec![("UPLOAD__STORAGE__SWEEP_INTERVAL", "often")], "storage.sweep_interval"),
        (
            vec![
                ("UPLOAD__STORAGE__DEFAULT_LIFETIME", "2d"),
                ("UPLOAD__LIMITS__MAX_LIFETIME", "1d"),
            ],
            "storage.default_lifetime",
        ),
    ] {
        let err = load(&env).unwrap_err().to_string();
        assert!(err.contains(needle), "{env:?}: {err}");
    }
    // Loopback addresses need no tokens; "open" serves any address.
    for host in ["127.0.0.1", "::1", "[::1]", "localhost"] {
        assert!(load(&[("UPLOAD__SERVER__HOST", host)]).unwrap().auth.tokens.is_none(), "{host}");
    }
    let open = load(&[("UPLOAD__SERVER__HOST", "0.0.0.0"), ("UPLOAD__AUTH__MODE", "open")]);
    assert!(open.unwrap().auth.tokens.is_none());
}
