//! Values as people write them in settings (`"1GiB"`, `"30s"`, `"idle"`)
//! and their checked conversion, each error naming its key. Sizes are read
//! by `bytesize`, durations by `humantime`: the dialect of every crate here.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A problem with the settings, reported before anything starts.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings: {0}")]
pub struct SettingsError(pub(super) String);

/// A size as written in settings: bytes, or text such as `"20MiB"`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    /// A number of bytes.
    Bytes(u64),
    /// Human-readable, e.g. `"1GiB"`, `"512 KB"`.
    Text(String),
}

/// A duration as written in settings: seconds, or text such as `"30s"`, `"1m 30s"`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Span {
    /// Seconds.
    Seconds(f64),
    /// Human-readable, e.g. `"500ms"`, `"30s"`.
    Text(String),
}

/// A compute priority as written in settings: a niceness, or `"idle"` (`SCHED_IDLE`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Nice {
    /// A niceness, -20..=19.
    Level(i64),
    /// `"idle"`.
    Text(String),
}

pub(super) fn at_least_one(key: &str, n: usize) -> Result<usize, SettingsError> {
    if n == 0 { Err(SettingsError(format!("{key}: must be at least 1"))) } else { Ok(n) }
}

pub(super) fn size(key: &str, value: &Size) -> Result<u64, SettingsError> {
    let bytes = size_or_zero(key, value)?;
    if bytes == 0 {
        return Err(SettingsError(format!("{key}: must be more than 0 bytes")));
    }
    Ok(bytes)
}

pub(super) fn size_or_zero(key: &str, value: &Size) -> Result<u64, SettingsError> {
    Ok(match value {
        Size::Bytes(n) => *n,
        Size::Text(text) => text
            .trim()
            .parse::<bytesize::ByteSize>()
            .map_err(|e| {
                SettingsError(format!("{key}: {text:?} is not a size such as \"20MiB\": {e}"))
            })?
            .as_u64(),
    })
}

pub(super) fn span(key: &str, value: &Span) -> Result<Duration, SettingsError> {
    match value {
        Span::Seconds(secs) => Duration::try_from_secs_f64(*secs)
            .map_err(|_| SettingsError(format!("{key}: {secs} is not a number of seconds"))),
        Span::Text(text) => humantime::parse_duration(text.trim()).map_err(|e| {
            SettingsError(format!("{key}: {text:?} is not a duration such as \"30s\": {e}"))
        }),
    }
}

pub(super) fn priority(value: &Nice) -> Result<compute::Priority, SettingsError> {
    match value {
        Nice::Text(text) if text.trim().eq_ignore_ascii_case("idle") => Ok(compute::Priority::Idle),
        Nice::Level(n @ -20..=19) => Ok(compute::Priority::Nice(*n as i32)),
        Nice::Level(n) => Err(SettingsError(format!("compute.nice: {n} is not within -20..=19"))),
        Nice::Text(text) => Err(SettingsError(format!(
            "compute.nice: {text:?} is neither \"idle\" nor a niceness within -20..=19"
        ))),
    }
}

pub(super) fn positive(key: &str, value: &Span) -> Result<Duration, SettingsError> {
    let d = span(key, value)?;
    if d.is_zero() { Err(SettingsError(format!("{key}: must be more than 0"))) } else { Ok(d) }
}
