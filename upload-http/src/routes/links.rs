//! `POST /files/{id}/links`: a download link that works without a token,
//! until it expires or has been used `max_downloads` times.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use upload_core::ObjectId;

use super::files::parse_id;
use crate::auth::{Caller, links};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The most a link request's JSON may take.
const MAX_REQUEST: usize = 4096;

/// How long a link lives unless the request says.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The request body (optional, JSON).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewLink {
    /// `"1h"`, `"30m"`, or seconds; at most `auth.max_link_lifetime`; 1 h if absent.
    #[schema(schema_with = lifetime_schema)]
    #[serde(default, with = "upload_core::units::duration_option")]
    expires_in: Option<Duration>,
    /// Downloads allowed, across every replica; unlimited if absent.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_u64)]
    max_downloads: Option<u64>,
}

/// What `expires_in` takes: a duration as text, or seconds.
fn lifetime_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).examples(["1h"]))
        .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "`\"1h\"`, `\"30m\"`, or seconds; at most `auth.max_link_lifetime`; 1 h if absent.",
        ))
        .build()
        .into()
}

/// The 201 body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedLink {
    /// The absolute URL, as this request reached the service.
    pub(crate) url: String,
    /// The same, from the path on.
    pub(crate) path: String,
    /// When the link stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) expires_at: OffsetDateTime,
    /// Downloads allowed; `null`: unlimited.
    pub(crate) max_downloads: Option<u64>,
}

/// `POST /files/{id}/links`: a signed download link that works without a token.
#[utoipa::path(post, path = "/files/{id}/links", operation_id = "create_link", tag = "files", security(("token" = [])),
    params(("id" = ObjectId, Path, description = "The file's id.")),
    request_body(content = Option<NewLink>, content_type = "application/json",
        description = "Optional; an empty body takes the defaults."),
    responses(
        (status = 201, description = "The link.", body = CreatedLink),
        (status = 400, description = "`invalid_id`, `invalid_link_request`, `incomplete_body`.",
            body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 413, description = "`too_large`: the JSON exceeds 4 KiB.", body = ErrorBody),
        (status = 501, description = "`links_disabled`: `auth.link_key` is not set.", body = ErrorBody),
        (status = 503, description = "`unavailable`.", body = ErrorBody),
    ))]
pub(crate) async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let auth = &state.settings.auth;
    let Some(key) = auth.link_keys.first() else { return Err(ApiError::LinksDisabled) };
    caller.require_token()?;
    let id = parse_id(&id)?;
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("incomplete_body", e.to_string()))?;
        body.extend_from_slice(&chunk);
        if body.len() > MAX_REQUEST {
            let limit = MAX_REQUEST as u64;
            return Err(ApiError::TooLarge { limit, what: "a link request" });
        }
    }
    let new: NewLink = if body.iter().all(u8::is_ascii_whitespace) {
        NewLink::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_link_request", e.to_string()))?
    };
    let info = state.storage.head(&id).await.map_err(|e| state.storage_error(e))?;
    caller.require_owner(None, info.owner.as_deref())?;
    let lifetime = new.expires_in.unwrap_or(DEFAULT_LIFETIME);
    if lifetime.is_zero() || lifetime > auth.max_link_lifetime {
        return Err(ApiError::bad_request(
            "invalid_link_request",
            format!(
                "expires_in must be more than 0 and at most {} (auth.max_link_lifetime)",
                humantime::format_duration(auth.max_link_lifetime)
            ),
        ));
    }
    // The upper bound is the API description's (a signed 64-bit integer), so clients in any language can hold it.
    if new.max_downloads.is_some_and(|max| max == 0 || max > i64::MAX as u64) {
        return Err(ApiError::bad_request(
            "invalid_link_request",
            format!("max_downloads must be from 1 to {}", i64::MAX),
        ));
    }
    let expires_at = OffsetDateTime::now_utc() + lifetime;
    let query = links::sign(key, &id, &ObjectId::new(), expires_at, new.max_downloads);
    let path = format!("/files/{id}?{query}");
    let conn = req.connection_info();
    let url = format!("{}://{}{path}", conn.scheme(), conn.host());
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(CreatedLink { url, path, expires_at, max_downloads: new.max_downloads }))
}
