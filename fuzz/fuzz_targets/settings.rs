//! The settings loader: a settings file (the input up to a line `---`) and environment
//! variables (`UPLOAD__...=value` lines after it), loaded and validated. It must answer with
//! settings or an error, never panic.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

#[path = "../src/settings_input.rs"]
mod settings_input;

fuzz_target!(|input: &[u8]| {
    let (file, env) = settings_input::split(input);
    let Ok(mut settings_file) = tempfile::Builder::new().suffix(".toml").tempfile() else {
        return;
    };
    if settings_file.write_all(file.as_bytes()).is_err() {
        return;
    }
    if let Ok(raw) = upload_http::RawSettings::load(Some(settings_file.path()), env) {
        let _ = raw.validate();
    }
});
