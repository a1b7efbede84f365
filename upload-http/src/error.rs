//! Every error response comes from here: one table decides the status and
//! the `code`, so clients can rely on both.

use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::body::Cutoff;

/// tus's status for an append whose checksum does not match (460, "Checksum Mismatch").
fn checksum_mismatch() -> StatusCode {
    StatusCode::from_u16(460).expect("460 is within 100..1000")
}

/// Why a caller may not touch what another token's owner stored.
pub(crate) const NOT_OWNER: &str = "this belongs to another token's owner";

/// An error as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `code` says how.
    #[error("{message}")]
    BadRequest {
        /// snake_case reason.
        code: &'static str,
        /// For humans.
        message: String,
    },
    /// No token, or one that is not configured.
    #[error("{}", if *bad_token { "the bearer token is not valid" } else { "this needs a token: send Authorization: Bearer <token>" })]
    Unauthorized {
        /// A token was sent, and it is not valid.
        bad_token: bool,
    },
    /// The token may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A download link that is tampered with, expired or signed by no current key.
    #[error("{0}")]
    InvalidLink(String),
    /// A download link used as many times as it allows.
    #[error("the link has been used as many times as it allows")]
    LinkUsedUp,
    /// Download links need `auth.link_key`.
    #[error("download links are off: set auth.link_key to turn them on")]
    LinksDisabled,
    /// No such file.
    #[error("no file with id {0}")]
    NotFound(String),
    /// No route for this path.
    #[error("no route for {0}")]
    NoRoute(String),
    /// The path exists, the method is not served there.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// A raw upload needs Content-Length or chunked encoding.
    #[error("a request body with Content-Length or Transfer-Encoding: chunked is required")]
    LengthRequired,
    /// A size limit was exceeded.
    #[error("{what} exceeds the limit of {limit} bytes ({human})", human = bytesize::ByteSize(*limit).display().iec())]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
        /// What exceeded it.
        what: &'static str,
    },
    /// More files than a request may carry.
    #[error("a request may carry at most {0} files")]
    TooManyFiles(usize),
    /// The body is not of a type this endpoint takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The Range lies outside the file.
    #[error("range not satisfiable: the file has {size} bytes")]
    RangeNotSatisfiable {
        /// The file's size.
        size: u64,
    },
    /// The client was too slow to send its request.
    #[error("no data received for {0:?}")]
    RequestTimeout(std::time::Duration),
    /// The client sent its body below the minimum rate.
    #[error("the body arrived at {rate} bytes/s, below the minimum of {min} bytes/s")]
    BodyTooSlow {
        /// Bytes per second measured.
        rate: u64,
        /// The minimum (`server.min_body_rate`).
        min: u64,
    },
    /// A tus append that does not start at the upload's offset.
    #[error("the upload is at offset {0}; send Upload-Offset: {0}")]
    OffsetMismatch(u64),
    /// Another request is appending to, completing or removing this upload.
    #[error("upload {0} is busy with another request; retry later")]
    Locked(String),
    /// A resumable upload that expired.
    #[error("upload {0} has expired; start a new one")]
    Expired(String),
    /// The bytes of a tus append do not match its `Upload-Checksum`.
    #[error("{0}")]
    UploadChecksumMismatch(String),
    /// A tus append to an upload that has become a file.
    #[error("upload {0} is complete: it takes no more bytes")]
    UploadComplete(String),
    /// A tus request of another protocol version, or of none.
    #[error("tus version {0:?} is not supported; this server speaks Tus-Resumable: 1.0.0")]
    UnsupportedTusVersion(String),
    /// An upload would take more than a quota allows; nothing of it is kept.
    #[error("{whose} would exceed the quota of {limit} bytes ({human}); nothing was stored", human = bytesize::ByteSize(*limit).display().iec())]
    QuotaExceeded {
        /// The quota, in bytes.
        limit: u64,
        /// Whose: the store's or the token's.
        whose: &'static str,
    },
    /// The storage device is full.
    #[error("storage is full")]
    StorageFull,
    /// The compute pool is full.
    #[error("compute pool is busy ({0} jobs running or queued); retry later")]
    ComputeBusy(usize),
    /// Every thread of `/wait` is asleep.
    #[error("{0} blocking waits are running, the most allowed; retry later")]
    WaitBusy(usize),
    /// The compute job ran past its deadline and was stopped.
    #[error("computation exceeded its time limit and was stopped")]
    ComputeTimeout,
    /// Storage cannot be reached or used right now.
    #[error("storage is unavailable; retry later")]
    Unavailable,
    /// The file's stored metadata is damaged (logged once by the store).
    #[error("file {0} is damaged and cannot be read; the service's log says why")]
    Damaged(String),
    /// A bug or an I/O failure; details are logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 400 with its code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    /// The one table: status and code of every error.
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::InvalidLink(_) => (StatusCode::FORBIDDEN, "invalid_link"),
            Self::LinkUsedUp => (StatusCode::FORBIDDEN, "link_used_up"),
            Self::LinksDisabled => (StatusCode::NOT_IMPLEMENTED, "links_disabled"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::NoRoute(_) => (StatusCode::NOT_FOUND, "no_route"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::LengthRequired => (StatusCode::LENGTH_REQUIRED, "length_required"),
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::TooManyFiles(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_files"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::RangeNotSatisfiable { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            Self::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::BodyTooSlow { .. } => (StatusCode::REQUEST_TIMEOUT, "body_too_slow"),
            Self::OffsetMismatch(_) => (StatusCode::CONFLICT, "offset_mismatch"),
            Self::Locked(_) => (StatusCode::LOCKED, "locked"),
            Self::Expired(_) => (StatusCode::GONE, "expired"),
            Self::UploadComplete(_) => (StatusCode::FORBIDDEN, "upload_complete"),
            Self::UploadChecksumMismatch(_) => (checksum_mismatch(), "checksum_mismatch"),
            Self::UnsupportedTusVersion(_) => {
                (StatusCode::PRECONDITION_FAILED, "unsupported_version")
            }
            Self::StorageFull => (StatusCode::INSUFFICIENT_STORAGE, "storage_full"),
            Self::QuotaExceeded { .. } => (StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded"),
            Self::ComputeBusy(_) => (StatusCode::SERVICE_UNAVAILABLE, "compute_busy"),
            Self::ComputeTimeout => (StatusCode::SERVICE_UNAVAILABLE, "compute_timeout"),
            Self::WaitBusy(_) => (StatusCode::SERVICE_UNAVAILABLE, "wait_busy"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Damaged(_) => (StatusCode::INTERNAL_SERVER_ERROR, "damaged_file"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        if let Self::Internal(detail) = self {
            log::error!("internal error: {detail}");
        }
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if let Self::RangeNotSatisfiable { size } = self {
            response.insert_header((header::CONTENT_RANGE, format!("bytes */{size}")));
        }
        if let Self::Unauthorized { bad_token } = self {
            let challenge = if *bad_token {
                "Bearer realm=\"fastupload\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"fastupload\""
            };
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        if let Self::OffsetMismatch(offset) = self {
            response.insert_header(("Upload-Offset", *offset));
        }
        response.json(ErrorBody { error: ErrorDetail { code, message: self.to_string() } })
    }
}

/// The body of every error response: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// snake_case, one per row of the status table; each response's
    /// description names the codes it may carry.
    #[schema(example = "not_found")]
    pub(crate) code: &'static str,
    /// For people: what was wrong, naming limits and values.
    pub(crate) message: String,
}

/// What went wrong with a request body, classified where actix's own
/// (non-`Send`) errors are at hand, so storage can carry it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error(transparent)]
    Cutoff(#[from] Cutoff),
    #[error("malformed multipart body: {0}")]
    Malformed(String),
    /// A part's headers went past [`MAX_HEADERS`](crate::multipart::MAX_HEADERS).
    #[error(
        "a part's headers, or the text before the first boundary, exceed the limit of {} bytes",
        crate::multipart::MAX_HEADERS
    )]
    PartHeadersTooLarge,
    #[error("the request body could not be read: {0}")]
    Incomplete(String),
}

impl BodyError {
    pub(crate) fn from_payload(e: PayloadError) -> Self {
        match e {
            PayloadError::Io(io) if Cutoff::of_io(&io).is_some() => {
                let inner = io.into_inner().expect("checked above");
                Self::Cutoff(*inner.downcast::<Cutoff>().expect("checked above"))
            }
            other => Self::Incomplete(other.to_string()),
        }
    }
}

impl ApiError {
    /// Maps a storage error; `limits` names the limits in the messages.
    pub(crate) fn from_storage(e: upload_core::Error, limits: &crate::settings::Limits) -> Self {
        use upload_core::Error as E;
        match e {
            E::NotFound(id) => Self::NotFound(id),
            E::TooLarge { limit } => Self::TooLarge { limit, what: "the file" },
            E::ChecksumMismatch { expected, actual } => Self::bad_request(
                "digest_mismatch",
                format!(
                    "the body's SHA-256 is {actual}, not {expected} as Content-Digest says; nothing was stored"
                ),
            ),
            E::InvalidId(id) => Self::bad_request("invalid_id", format!("{id:?} is not a file id")),
            E::InvalidName(why) => Self::bad_request("invalid_filename", why),
            E::RangeNotSatisfiable { size } => Self::RangeNotSatisfiable { size },
            E::StorageFull => Self::StorageFull,
            E::OffsetMismatch { offset } => Self::OffsetMismatch(offset),
            E::Locked(id) => Self::Locked(id),
            E::NotOwner(_) => Self::Forbidden(NOT_OWNER.into()),
            E::Expired(id) => Self::Expired(id),
            e @ E::AppendChecksumMismatch { .. } => Self::UploadChecksumMismatch(e.to_string()),
            E::InvalidUpload(why) => Self::bad_request("invalid_upload", why),
            E::UsedUp(_) => Self::LinkUsedUp,
            E::Damaged { id, .. } => Self::Damaged(id),
            E::Unavailable(detail) => {
                log::warn!("storage unavailable: {detail}");
                Self::Unavailable
            }
            E::Body(source) => match source.downcast::<BodyError>() {
                Ok(body) => Self::from_body(*body, limits),
                Err(other) => Self::bad_request("incomplete_body", other.to_string()),
            },
            other => Self::Internal(other.to_string()),
        }
    }

    pub(crate) fn from_body(e: BodyError, limits: &crate::settings::Limits) -> Self {
        match e {
            BodyError::Cutoff(Cutoff::TooLarge) => {
                Self::TooLarge { limit: limits.max_request_size, what: "the request body" }
            }
            BodyError::Cutoff(Cutoff::Silent(after)) => Self::RequestTimeout(after),
            BodyError::Cutoff(Cutoff::TooSlow { rate, min }) => Self::BodyTooSlow { rate, min },
            BodyError::Cutoff(Cutoff::Quota { limit, whose }) => {
                Self::QuotaExceeded { limit, whose }
            }
            BodyError::Malformed(_) | BodyError::PartHeadersTooLarge => {
                Self::bad_request("invalid_multipart", e.to_string())
            }
            BodyError::Incomplete(_) => Self::bad_request("incomplete_body", e.to_string()),
        }
    }

    /// Maps a compute error.
    pub(crate) fn from_compute(e: compute::Error) -> Self {
        use compute::Error as E;
        match e {
            E::Busy { max_jobs } => Self::ComputeBusy(max_jobs),
            E::DeadlineExceeded => Self::ComputeTimeout,
            E::Overflow { n, max } => Self::bad_request(
                "invalid_n",
                format!("n = {n} is above the largest allowed, {max}"),
            ),
            // The client has gone: nobody reads this.
            E::Cancelled => Self::Unavailable,
            other => Self::Internal(other.to_string()),
        }
    }
}
