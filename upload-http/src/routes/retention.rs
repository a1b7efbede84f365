//! Who owns an upload and how long it lives: the same for every way of
//! uploading (multipart, raw, tus).

use std::time::Duration;

use upload_core::Retention;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::settings::Settings;

/// The header (and, lowercased with `_`, the multipart field and tus
/// metadata key) that asks for a lifetime: `1h`, `30m`, `7d`, or seconds.
pub(crate) const EXPIRES_AFTER: &str = "expires-after";

/// The retention of what `caller` uploads, asking for `requested` (if any).
pub(crate) fn retention(
    caller: &Caller,
    requested: Option<&[u8]>,
    settings: &Settings,
) -> Result<Retention, ApiError> {
    let lifetime = match requested {
        None => settings.files.default_lifetime,
        Some(text) => Some(parse(text)?),
    };
    if let (Some(lifetime), Some(max)) = (lifetime, settings.limits.max_lifetime)
        && lifetime > max
    {
        return Err(ApiError::bad_request(
            "invalid_lifetime",
            format!(
                "a file may live at most {} (limits.max_lifetime)",
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(Retention { owner: caller.owner(), lifetime })
}

fn parse(text: &[u8]) -> Result<Duration, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_lifetime",
            "Expires-After must be a duration such as 1h, 30m or 7d, or a number of seconds",
        )
    };
    let text = std::str::from_utf8(text).map_err(|_| invalid())?.trim();
    let lifetime = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text).map_err(|_| invalid())?,
    };
    if lifetime.is_zero() { Err(invalid()) } else { Ok(lifetime) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_read_as_people_write_them() {
        assert_eq!(parse(b"3600").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse(b" 1h 30m ").unwrap(), Duration::from_secs(5400));
        for bad in [&b"0"[..], b"soon", b"-1", b"\xff"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
