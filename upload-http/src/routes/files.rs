//! The files API: multipart and raw uploads, listing, download, delete.

use std::time::SystemTime;

use actix_multipart::Multipart;
use actix_web::body::SizedStream;
use actix_web::http::Method;
use actix_web::http::header::{
    self, Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue, HeaderMap,
    HttpDate,
};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use upload_core::{ByteRange, FileInfo, FileName, ObjectId, PutGroup, PutOptions};

use crate::error::{ApiError, BodyError};
use crate::settings::Limits;
use crate::state::AppState;

/// The body of a multipart upload's 201: every file stored, in part order.
#[derive(Debug, Serialize)]
pub(crate) struct Stored {
    pub(crate) files: Vec<FileInfo>,
}

/// `POST /files` and `POST /`: every part with a filename is streamed to storage.
pub(crate) async fn upload_multipart(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.settings.limits;
    check_declared_length(req.headers(), limits.max_request_size, "the request body")?;
    let is_multipart =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data")
        });
    if !is_multipart {
        return Err(ApiError::UnsupportedMediaType("expected a multipart/form-data body".into()));
    }
    let body = state.body(payload);
    let mut multipart = Multipart::new(req.headers(), body);
    // All or nothing, whatever ends the request: dropped with this future
    // (client gone, shutdown), the group takes its files back.
    let mut stored = PutGroup::new(&state.storage);
    let result = async {
        while let Some(field) = multipart.next().await {
            let field =
                field.map_err(|e| ApiError::from_body(BodyError::from_multipart(e), limits))?;
            let Some(filename) = field.content_disposition().and_then(part_filename) else {
                continue; // a plain form field
            };
            if filename.is_empty() {
                continue; // what browsers send for a file input left empty
            }
            if stored.len() == limits.max_files_per_request {
                return Err(ApiError::TooManyFiles(limits.max_files_per_request));
            }
            let opts = PutOptions {
                filename: FileName::sanitize(&filename).ok(),
                content_type: field.content_type().map(ToString::to_string),
                max_size: Some(limits.max_file_size),
                expected_sha256: None,
            };
            let _in_flight = state.metrics.upload_in_flight();
            let field = field.map(|chunk| chunk.map_err(BodyError::from_multipart));
            stored.put(field, opts).await.map_err(|e| state.storage_error(e))?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        // Gone before the answer: a client told the request failed will send it again.
        stored.discard().await;
        return Err(e);
    }
    if stored.is_empty() {
        return Err(ApiError::bad_request("no_file", "the request has no part with a filename"));
    }
    Ok(HttpResponse::Created().json(Stored { files: stored.keep() }))
}

/// `PUT /files/{filename}`: the raw body is the file.
pub(crate) async fn upload_raw(
    state: web::Data<AppState>,
    req: HttpRequest,
    filename: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.settings.limits;
    let filename = FileName::sanitize(&filename).map_err(|e| state.storage_error(e))?;
    let headers = req.headers();
    if !headers.contains_key(header::CONTENT_LENGTH)
        && !headers.contains_key(header::TRANSFER_ENCODING)
    {
        return Err(ApiError::LengthRequired);
    }
    check_declared_length(req.headers(), limits.max_file_size, "the file")?;
    let content_type = match headers.get(header::CONTENT_TYPE) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_content_type",
                        "Content-Type is not visible ASCII",
                    )
                })?
                .to_owned(),
        ),
    };
    let opts = PutOptions {
        filename: Some(filename),
        content_type,
        max_size: Some(limits.max_file_size),
        expected_sha256: content_digest(&req)?,
    };
    let _in_flight = state.metrics.upload_in_flight();
    let body = state.body(payload).map(|chunk| chunk.map_err(BodyError::from_payload));
    let info = state.storage.put(body, opts).await.map_err(|e| state.storage_error(e))?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/files/{}", info.id)))
        .json(info))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<String>,
    after: Option<String>,
}

/// `GET /files?limit=&after=`
pub(crate) async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    const MAX_LIMIT: usize = 1000;
    let limit = match query.limit.as_deref() {
        None => 100,
        Some(text) => {
            text.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                )
            })?
        }
    };
    let after = match query.after.as_deref() {
        None | Some("") => None,
        Some(text) => Some(parse_id(text)?),
    };
    let page = state.storage.list(after, limit).await.map_err(|e| state.storage_error(e))?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET` and `HEAD /files/{id}`.
pub(crate) async fn download(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
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
            return not_modified(&info).ok_or_else(|| state.storage_error(e));
        }
        Err(e) => return Err(state.storage_error(e)),
    };
    let info = &object.info;
    if let Some(response) = not_modified(info) {
        return Ok(response);
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
    response
        .insert_header((header::CONTENT_TYPE, info.content_type.as_str()))
        .insert_header((header::ETAG, etag))
        .insert_header((header::LAST_MODIFIED, modified))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_DISPOSITION, attachment(info)));
    let len = object.range.end - object.range.start;
    Ok(response.body(SizedStream::new(len, object.body)))
}

/// `DELETE /files/{id}`
pub(crate) async fn delete(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    state.storage.delete(&id).await.map_err(|e| state.storage_error(e))?;
    Ok(HttpResponse::NoContent().finish())
}

fn last_modified(info: &FileInfo) -> HttpDate {
    HttpDate::from(SystemTime::from(info.created_at))
}

fn parse_id(text: &str) -> Result<ObjectId, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request("invalid_id", format!("{:?} is not a file id", truncate(text)))
    })
}

fn truncate(text: &str) -> &str {
    text.char_indices().nth(64).map_or(text, |(i, _)| &text[..i])
}

/// The 413 an upload route answers before reading anything when the
/// client announces too much; also asked before `100 Continue` is sent,
/// which happens before routing: a new upload route must be added here.
pub(crate) fn check_upload_length(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    limits: &Limits,
) -> Result<(), ApiError> {
    match (method, path) {
        (&Method::PUT, path) if path.starts_with("/files/") => {
            check_declared_length(headers, limits.max_file_size, "the file")
        }
        (&Method::POST, "/files" | "/") => {
            check_declared_length(headers, limits.max_request_size, "the request body")
        }
        (&Method::PATCH, path) if path.starts_with("/uploads/") => {
            check_declared_length(headers, limits.max_file_size, "the upload")
        }
        (&Method::POST, path) if path.starts_with("/uploads") => {
            check_declared_length(headers, limits.max_file_size, "the upload")
        }
        _ => Ok(()),
    }
}

/// A 413 before reading anything, when the client announces too much.
fn check_declared_length(
    headers: &HeaderMap,
    limit: u64,
    what: &'static str,
) -> Result<(), ApiError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit => Err(ApiError::TooLarge { limit, what }),
        _ => Ok(()),
    }
}

/// The part's file name: `filename*` (RFC 6266/5987) if given, else `filename`.
fn part_filename(cd: &ContentDisposition) -> Option<String> {
    if let Some(ext) = cd.get_filename_ext() {
        return Some(String::from_utf8_lossy(&ext.value).into_owned());
    }
    cd.get_filename().map(str::to_owned)
}

/// `Content-Disposition: attachment` with an ASCII fallback and the UTF-8 name in `filename*`.
fn attachment(info: &FileInfo) -> ContentDisposition {
    let name = info.filename.clone().unwrap_or_else(|| info.id.to_string());
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' }).collect();
    let ascii = ascii.replace(['"', '\\'], "_");
    ContentDisposition {
        disposition: DispositionType::Attachment,
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

/// The SHA-256 of `Content-Digest` (RFC 9530), if the client sent one.
fn content_digest(req: &HttpRequest) -> Result<Option<[u8; 32]>, ApiError> {
    let Some(value) = req.headers().get("content-digest") else { return Ok(None) };
    let invalid = || {
        ApiError::bad_request(
            "invalid_digest",
            "Content-Digest must look like sha-256=:<base64 of 32 bytes>:",
        )
    };
    let value = value.to_str().map_err(|_| invalid())?;
    for member in value.split(',') {
        let Some((algorithm, digest)) = member.trim().split_once('=') else {
            return Err(invalid());
        };
        if !algorithm.trim().eq_ignore_ascii_case("sha-256") {
            continue; // other algorithms may be ignored
        }
        let b64 = digest
            .trim()
            .strip_prefix(':')
            .and_then(|d| d.strip_suffix(':'))
            .ok_or_else(invalid)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| invalid())?;
        return <[u8; 32]>::try_from(bytes).map(Some).map_err(|_| invalid());
    }
    Ok(None)
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
