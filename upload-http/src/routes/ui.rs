//! The browser page: `GET /` for a browser (`Accept: text/html`), and
//! `/ui/` with its scripts and styles, embedded in the binary from
//! `upload-http/ui/`. Open to everyone: the page holds no data, and every
//! call it makes is checked like any other client's.

use std::sync::LazyLock;

use actix_web::http::header::Header;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, mime, web};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::ops::ServiceInfo;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../../ui/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the page; `index.html` first.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("format.js", JS),
    asset!("tus.js", JS),
    asset!("uploads.js", JS),
    asset!("files.js", JS),
    asset!("compute.js", JS),
];

/// The page runs only its own scripts and styles, talks only to this origin,
/// and cannot be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Each asset's validator: its content hash, so a new binary never serves a stale copy.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
                .expect("hex is a valid header value")
        })
        .collect()
});

/// `GET /`: the page for a browser, the service's JSON for everyone else
/// (`curl`, `requests` and the original client send `Accept: */*`).
#[utoipa::path(method(get, head), path = "/", tag = "page",
    params(("Accept" = Option<String>, Header, description = "Naming `text/html` gets the page.")),
    responses((status = 200, description = "The page, or which service this is.", headers(
            ("Vary" = String, description = "`Accept`")),
        content((ServiceInfo = "application/json"), (String = "text/html; charset=utf-8")))))]
pub(crate) async fn root(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let mut response =
        if wants_html(&req) { page(state, req).await } else { super::ops::service_info().await };
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// `GET /ui/`: the page, with the limits it checks before sending filled in.
#[utoipa::path(method(get, head), path = "/ui/", tag = "page", responses(
    (status = 200, description = "The page.", body = String, content_type = "text/html; charset=utf-8",
        headers(("ETag" = String), ("Content-Security-Policy" = String))),
    (status = 304, description = "Not modified."),
))]
pub(crate) async fn page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let settings = &state.settings;
    let (max_file_size, max_n) = (settings.limits.max_file_size, settings.compute.max_n);
    let html = String::from_utf8_lossy(ASSETS[0].body)
        .replace("{{max_file_size}}", &max_file_size.to_string())
        .replace("{{max_n}}", &max_n.to_string());
    let base = ETAGS[0].to_str().unwrap_or_default().trim_matches('"');
    let etag = format!("\"{base}-{max_file_size}-{max_n}\"");
    serve(&req, ASSETS[0].content_type, html.into_bytes().into(), &etag)
}

/// `GET /ui/{file}`: one of the page's files.
#[utoipa::path(method(get, head), path = "/ui/{file}", tag = "page",
    params(("file" = String, Path, description = "`app.js`, `style.css`, ...")),
    responses(
        (status = 200, description = "The file.", headers(("ETag" = String)), content(
            (String = "text/javascript; charset=utf-8"), (String = "text/css; charset=utf-8"),
            (String = "text/html; charset=utf-8"))),
        (status = 304, description = "Not modified."),
        (status = 404, description = "`no_route`: no such file.", body = ErrorBody),
    ))]
pub(crate) async fn file(
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let index = ASSETS
        .iter()
        .position(|a| a.name == name.as_str())
        .ok_or_else(|| ApiError::NoRoute(req.path().chars().take(200).collect()))?;
    let asset = &ASSETS[index];
    let etag = ETAGS[index].to_str().unwrap_or_default();
    Ok(serve(&req, asset.content_type, Bytes::from_static(asset.body), etag))
}

/// Whether the client names `text/html` among what it accepts (not with `q=0`).
fn wants_html(req: &HttpRequest) -> bool {
    header::Accept::parse(req).is_ok_and(|accept| {
        accept.iter().any(|range| {
            range.item.type_() == mime::TEXT
                && range.item.subtype() == mime::HTML
                && range.quality > header::Quality::ZERO
        })
    })
}

fn serve(req: &HttpRequest, content_type: &str, body: Bytes, etag: &str) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let mut response = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, etag))
        // Revalidated on every load: a cheap 304, and never an old script beside a new page.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if fresh {
        return response.finish();
    }
    response.content_type(content_type).body(body)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn only_a_client_that_names_html_gets_the_page() {
        for (accept, html) in [
            (None, false),
            (Some("*/*"), false),
            (Some("application/json"), false),
            (Some("text/*"), false),
            (Some("text/html"), true),
            (Some("TEXT/HTML;charset=utf-8"), true),
            (Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"), true),
            (Some("application/json, text/html;q=0"), false),
            (Some("text/html; q=0.0"), false),
            (Some("text/html;q=0.1"), true),
        ] {
            let mut req = TestRequest::get();
            if let Some(accept) = accept {
                req = req.insert_header((header::ACCEPT, accept));
            }
            assert_eq!(wants_html(&req.to_http_request()), html, "{accept:?}");
        }
    }

    #[test]
    fn every_asset_is_named_once_and_the_page_stays_small() {
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(total < 60 * 1024, "the page is {total} bytes");
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(ASSETS[..i].iter().all(|b| b.name != a.name), "{}", a.name);
        }
    }
}
