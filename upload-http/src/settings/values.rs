//! Values as people write them in settings (`"1GiB"`, `"30s"`, `"idle"`)
//! and their checked conversion, each error naming its key. Sizes and
//! durations are [`upload_core::units`]: one dialect for every setting.

use std::time::Duration;

use serde::{Deserialize, Serialize};
pub use upload_core::units::{Size, Span};

/// A problem with the settings, reported before anything starts.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings: {0}")]
pub struct SettingsError(pub(crate) String);

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
    value.bytes().map_err(|e| SettingsError(format!("{key}: {e}")))
}

pub(super) fn span(key: &str, value: &Span) -> Result<Duration, SettingsError> {
    value.duration().map_err(|e| SettingsError(format!("{key}: {e}")))
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

/// Origins as browsers send them (`scheme://host[:port]`, no path), or `*`.
pub(super) fn origins(key: &str, values: &[String]) -> Result<Vec<String>, SettingsError> {
    values
        .iter()
        .map(|value| value.trim())
        .filter(|value| !value.is_empty())
        .map(|value| {
            let valid = value == "*"
                || value.split_once("://").is_some_and(|(scheme, host)| {
                    matches!(scheme, "http" | "https")
                        && !host.is_empty()
                        && !host.contains(['/', '?', '#', ' ', ','])
                });
            if valid {
                Ok(value.to_owned())
            } else {
                Err(SettingsError(format!(
                    "{key}: {value:?} is not an origin such as https://example.org or *"
                )))
            }
        })
        .collect()
}

/// An optional value, checked by `check` when present.
pub(super) fn optional<T, U>(
    check: fn(&str, &T) -> Result<U, SettingsError>,
    key: &str,
    value: &Option<T>,
) -> Result<Option<U>, SettingsError> {
    value.as_ref().map(|v| check(key, v)).transpose()
}

/// Media types (`type/subtype`), lowercase.
pub(super) fn media_types(key: &str, values: &[String]) -> Result<Vec<String>, SettingsError> {
    values
        .iter()
        .map(|value| value.trim().to_ascii_lowercase())
        .filter(|value| !value.is_empty())
        .map(|value| match value.split_once('/') {
            Some((t, s))
                if [t, s].iter().all(|part| {
                    !part.is_empty()
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
                }) =>
            {
                Ok(value)
            }
            _ => Err(SettingsError(format!(
                "{key}: {value:?} is not a media type such as image/png"
            ))),
        })
        .collect()
}
