//! What a caller may touch through tus: its own uploads and the files they
//! became (any, for an admin), as `auth/rules.rs` decides.

use upload_core::{FileInfo, ObjectId, UploadStatus};

use crate::auth::{Caller, Scope};
use crate::error::ApiError;
use crate::state::AppState;

/// The unfinished upload, if the caller may change it (see `auth/rules.rs`).
pub(super) async fn owned_upload(
    state: &AppState,
    caller: &Caller,
    id: &ObjectId,
) -> Result<UploadStatus, ApiError> {
    caller.require(Scope::Write)?;
    let status = state.storage.upload_status(id).await.map_err(|e| state.storage_error(e))?;
    caller.require_owner(None, status.retention.owner.as_deref())?;
    Ok(status)
}

/// The file an upload became, if the caller may see it through tus.
pub(super) async fn owned_file(
    state: &AppState,
    caller: &Caller,
    id: &ObjectId,
) -> Result<FileInfo, ApiError> {
    let info = state.storage.head(id).await.map_err(|e| state.storage_error(e))?;
    caller.require_owner(None, info.owner.as_deref())?;
    Ok(info)
}
