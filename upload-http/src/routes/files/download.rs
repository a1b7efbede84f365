//! `GET` and `HEAD /files/{id}`: with a token, publicly, or through a
//! signed link; `Range`, `If-None-Match`, and headers that keep a browser
//! from running what it downloads.

use std::time::SystemTime;

use actix_web::body::SizedStream;
use actix_web::http::Method;
use actix_web::http::header::{
    self, Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue, HttpDate,
};
use actix_web::{HttpRequest, HttpResponse, web};
use upload_core::{ByteRange, FileInfo, ObjectId};

use super::parse_id;
use crate::auth::Caller;
use crate::auth::links::{self, LinkQuery};
use crate::error::{ApiError, ErrorBody};
use crate::openapi::Binary;
use crate::state::AppState;

/// `GET` and `HEAD /files/{id}`, and download links (`?link=...&sig=...`).
#[utoipa::path(method(get, head), path = "/files/{name}", tag = "files",
    security((), ("token" = ["read"])),
    params(
        ("name" = ObjectId, Path, description = "The file's id."),
        ("Range" = Option<String>, Header, description = "One `bytes=` range; \
            anything else is ignored and the whole file sent."),
        ("If-None-Match" = Option<String>, Header, description = "ETags (the quoted SHA-256)."),
        LinkQuery,
    ),
    responses(
        (status = 200, description = "The file, with the Content-Type it was stored with.",
            content_type = "application/octet-stream", body = Binary, headers(
                ("ETag" = String, description = "The quoted SHA-256 of the file."),
                ("Last-Modified" = String), ("Accept-Ranges" = String),
                ("Content-Disposition" = String))),
        (status = 206, description = "The requested range.", content_type = "application/octet-stream",
            body = Binary, headers(("Content-Range" = String))),
        (status = 304, description = "Not modified: an If-None-Match tag matched."),
        (status = 400, description = "`invalid_id`, `invalid_query`.", body = ErrorBody),
        (status = 403, description = "`invalid_link`, `link_used_up`, `forbidden`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 416, description = "`range_not_satisfiable`.", body = ErrorBody, headers(
            ("Content-Range" = String, description = "`bytes */<size>`"))),
        (status = 500, description = "`damaged_file`, `internal_error`.", body = ErrorBody),
        (status = 503, description = "`unavailable`.", body = ErrorBody),
    ))]
pub(crate) async fn download(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    link: web::Query<LinkQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let link = if link.is_link() {
        Some(links::verify(&state.settings.auth.link_keys, &id, &link)?)
    } else {
        None
    };
    // Anyone, or only the file's owner (known once its metadata is read).
    let any_file = link.is_some() || caller.may_download()?;
    let range =
        req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()).and_then(parse_range);
    let not_modified = |info: &FileInfo| {
        let etag = format!("\"{}\"", info.sha256);
        let tags = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok())?;
        let matched = tags
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag || t == "*");
        matched.then(|| {
            HttpResponse::NotModified()
                .insert_header((header::ETAG, etag))
                .insert_header((header::LAST_MODIFIED, last_modified(info)))
                .finish()
        })
    };
    let object = match state.storage.get(&id, range).await {
        Ok(object) => object,
        // RFC 9110 13.2.2: If-None-Match is evaluated before Range.
        Err(e @ upload_core::Error::RangeNotSatisfiable { .. }) => {
            let info = state.storage.head(&id).await.map_err(|e| state.storage_error(e))?;
            if !any_file {
                caller.require_owner(None, info.owner.as_deref())?;
            }
            return not_modified(&info).ok_or_else(|| state.storage_error(e));
        }
        Err(e) => return Err(state.storage_error(e)),
    };
    let info = &object.info;
    if !any_file {
        caller.require_owner(None, info.owner.as_deref())?;
    }
    if let Some(response) = not_modified(info) {
        return Ok(response);
    }
    // A limited link counts downloads, not the requests that resume one.
    if let Some(links::Link { id: link, max_downloads: Some(max) }) = link
        && req.method() == Method::GET
        && object.range.start == 0
    {
        state.storage.count_use(link, max).await.map_err(|e| state.storage_error(e))?;
    }
    let etag = format!("\"{}\"", info.sha256);
    let modified = last_modified(info);
    let mut response = if range.is_some() {
        let mut r = HttpResponse::PartialContent();
        let last = object.range.end.saturating_sub(1);
        r.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {}-{last}/{}", object.range.start, info.size),
        ));
        r
    } else {
        HttpResponse::Ok()
    };
    let inline = is_inline(&info.content_type, &state.settings.server.inline_types);
    response
        .insert_header((header::CONTENT_TYPE, info.content_type.as_str()))
        .insert_header((header::ETAG, etag))
        .insert_header((header::LAST_MODIFIED, modified))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_DISPOSITION, disposition(info, inline)))
        // What a browser opens from here never runs as a page of this origin.
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "sandbox"));
    if link.is_some() || caller.auth().tokens.is_some() {
        response.insert_header((header::CACHE_CONTROL, "private"));
    }
    let len = object.range.end - object.range.start;
    Ok(response.body(SizedStream::new(len, object.body)))
}

/// Whether the stored (normalised) media type is on the inline list.
fn is_inline(content_type: &str, inline_types: &[String]) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    inline_types.iter().any(|t| t == essence)
}

fn last_modified(info: &FileInfo) -> HttpDate {
    HttpDate::from(SystemTime::from(info.created_at))
}

/// `Content-Disposition` with an ASCII fallback and the UTF-8 name in
/// `filename*`: neither carries the client's text raw.
fn disposition(info: &FileInfo, inline: bool) -> ContentDisposition {
    let name = info.filename.clone().unwrap_or_else(|| info.id.to_string());
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' }).collect();
    let ascii = ascii.replace(['"', '\\'], "_");
    ContentDisposition {
        disposition: if inline { DispositionType::Inline } else { DispositionType::Attachment },
        parameters: vec![
            DispositionParam::Filename(ascii),
            DispositionParam::FilenameExt(ExtendedValue {
                charset: Charset::Ext("UTF-8".into()),
                language_tag: None,
                value: name.into_bytes(),
            }),
        ],
    }
}

/// One `bytes=` range; anything else (other units, several ranges, bad
/// syntax) is ignored as RFC 9110 allows, and the whole file is sent.
fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (position(first.trim())?, position(last.trim())?);
    match (first, last) {
        (None, Some(last)) => Some(ByteRange::Suffix(last)),
        (Some(first), None) => Some(ByteRange::From(first)),
        (Some(first), Some(last)) => {
            (first <= last).then_some(ByteRange::Inclusive { first, last })
        }
        (None, None) => None,
    }
}

/// A range position: `Some(None)` if absent; digits past `u64::MAX` are
/// `u64::MAX`, which no file reaches, so a start there is unsatisfiable
/// (416) rather than bad syntax that would be ignored.
fn position(text: &str) -> Option<Option<u64>> {
    if text.is_empty() {
        return Some(None);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Some(text.parse().unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_or_are_ignored() {
        assert_eq!(parse_range("bytes=0-0"), Some(ByteRange::Inclusive { first: 0, last: 0 }));
        assert_eq!(parse_range("bytes=5-"), Some(ByteRange::From(5)));
        assert_eq!(parse_range("bytes=-5"), Some(ByteRange::Suffix(5)));
        let huge = "bytes=99999999999999999999-";
        assert_eq!(parse_range(huge), Some(ByteRange::From(u64::MAX)));
        assert_eq!(
            parse_range("bytes=0-99999999999999999999"),
            Some(ByteRange::Inclusive { first: 0, last: u64::MAX })
        );
        for ignored in
            ["bytes=5-1", "bytes=0-1,3-4", "items=0-1", "bytes=-", "bytes=a-b", "bytes=+1-", ""]
        {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
    }
}
