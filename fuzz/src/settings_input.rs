//! How the `settings` fuzz target and its replay test (`upload-http/tests/it/fuzz_corpus.rs`,
//! which includes this file) read one input: a settings file up to a line `---`, then
//! `UPLOAD__...=value` lines for the environment.

/// The settings file's text and the environment variables of `input`.
pub fn split(input: &[u8]) -> (String, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(input);
    let (file, env) = text.split_once("\n---\n").unwrap_or((&text, ""));
    let env = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (file.to_owned(), env)
}
