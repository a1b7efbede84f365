//! The media type a client sends, parsed and stored normalised: it is echoed
//! in `Content-Type` on every download, so nothing the client wrote is kept
//! verbatim.

/// The media type stored when the client gives none, or one that does not parse.
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Charsets kept: the ones browsers decode without surprises (UTF-7, for
/// one, has been used to smuggle script past filters).
const CHARSETS: [&str; 6] =
    ["utf-8", "us-ascii", "iso-8859-1", "windows-1252", "utf-16le", "utf-16be"];

/// `type/subtype`, lowercase, with a `charset` parameter only if it is one
/// of [`CHARSETS`]; other parameters are dropped. Anything that is not a
/// media type (RFC 9110 8.3.1) is [`DEFAULT_CONTENT_TYPE`].
pub(crate) fn normalize(raw: Option<&str>) -> String {
    let Some(parsed) = raw.and_then(|raw| raw.trim().parse::<mime::Mime>().ok()) else {
        return DEFAULT_CONTENT_TYPE.to_owned();
    };
    let essence = parsed.essence_str().to_ascii_lowercase();
    if essence.len() > 127 || parsed.type_() == mime::STAR || parsed.subtype() == mime::STAR {
        return DEFAULT_CONTENT_TYPE.to_owned();
    }
    match parsed.get_param(mime::CHARSET).map(|c| c.as_str().to_ascii_lowercase()) {
        Some(charset) if CHARSETS.contains(&charset.as_str()) => {
            format!("{essence}; charset={charset}")
        }
        _ => essence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_are_stored_normalised_or_not_at_all() {
        for (sent, stored) in [
            (None, DEFAULT_CONTENT_TYPE),
            (Some("text/plain; charset=utf-8"), "text/plain; charset=utf-8"),
            (Some("Text/HTML; Charset=\"UTF-8\""), "text/html; charset=utf-8"),
            (Some("text/html; charset=utf-7"), "text/html"),
            (Some("image/png; name=x"), "image/png"),
            (Some("text/html\" onload=\"x"), DEFAULT_CONTENT_TYPE),
            (Some("text/plain\r\nX-Evil: 1"), DEFAULT_CONTENT_TYPE),
            (Some("plain"), DEFAULT_CONTENT_TYPE),
            (Some("é/x"), DEFAULT_CONTENT_TYPE),
            (Some("*/*"), DEFAULT_CONTENT_TYPE),
            (Some(""), DEFAULT_CONTENT_TYPE),
        ] {
            assert_eq!(normalize(sent), stored, "{sent:?}");
        }
        assert_eq!(normalize(Some(&format!("a/{}", "b".repeat(200)))), DEFAULT_CONTENT_TYPE);
    }
}
