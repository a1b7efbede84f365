//! What each caller may do: the one place every route asks.
//!
//! | action | needs |
//! | --- | --- |
//! | upload (files API, tus creation) | `write`; the caller becomes the owner |
//! | change an unfinished tus upload | `write`, and being its owner |
//! | list | `read` or `write`; only one's own files, all with `admin` |
//! | download by id | `read`, or owning the file; nothing if `auth.public_read`; or a signed link |
//! | delete | `delete` and owning the file, or `admin` |
//! | create a download link | owning the file, or `admin` |
//! | `/metrics` | `admin`, nothing if `auth.open_metrics` |
//! | `/wait`, `/asyncwait`, `/fib` | nothing if `auth.open_bench` (the default), else any token |
//!
//! `admin` implies every scope and owns everything. With no tokens
//! configured, everyone may do everything. No token, or one that is not
//! configured: 401; a token without what it needs: 403.

use std::sync::Arc;

use actix_web::HttpRequest;

use super::{Caller, Scope, Who};
use crate::Settings;
use crate::error::{ApiError, NOT_OWNER};

/// Which files a listing shows.
#[derive(Debug)]
pub(crate) enum Listing {
    All,
    OwnedBy(String),
}

impl Caller {
    /// The caller holds `scope`.
    pub(crate) fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match &self.who {
            Who::Everyone => Ok(()),
            Who::Token { scopes, .. } if scopes.has(scope) => Ok(()),
            Who::Token { .. } => Err(ApiError::Forbidden(format!(
                "this token lacks the {:?} scope",
                scope_name(scope)
            ))),
            Who::Anonymous | Who::Unknown => Err(self.unauthorized()),
        }
    }

    /// The caller holds `scope` (if any) and owns what `owner` names, or is an admin.
    pub(crate) fn require_owner(
        &self,
        scope: Option<Scope>,
        owner: Option<&str>,
    ) -> Result<(), ApiError> {
        if let Some(scope) = scope {
            self.require(scope)?;
        }
        match &self.who {
            Who::Everyone => Ok(()),
            Who::Token { scopes, .. } if scopes.has(Scope::Admin) => Ok(()),
            Who::Token { name, .. } if owner == Some(&**name) => Ok(()),
            Who::Token { .. } => Err(ApiError::Forbidden(NOT_OWNER.into())),
            Who::Anonymous | Who::Unknown => Err(self.unauthorized()),
        }
    }

    /// Before anything is read: may this caller download some file by id?
    /// `Ok(true)`: any file; `Ok(false)`: only its own ([`require_owner`](Self::require_owner) next).
    pub(crate) fn may_download(&self) -> Result<bool, ApiError> {
        match &self.who {
            Who::Everyone => Ok(true),
            Who::Anonymous if self.auth().public_read => Ok(true),
            Who::Token { scopes, .. } => Ok(scopes.has(Scope::Read) || self.auth().public_read),
            Who::Anonymous | Who::Unknown => Err(self.unauthorized()),
        }
    }

    /// Whose unfinished uploads this caller may change, for the storage to
    /// check under its claim: `None` for any (an admin), else its own.
    /// `Err` unless it holds `write`.
    pub(crate) fn upload_owner(&self) -> Result<Option<String>, ApiError> {
        self.require(Scope::Write)?;
        match &self.who {
            Who::Token { name, scopes } if !scopes.has(Scope::Admin) => Ok(Some(name.to_string())),
            _ => Ok(None),
        }
    }

    /// Which files this caller lists.
    pub(crate) fn listing(&self) -> Result<Listing, ApiError> {
        match &self.who {
            Who::Everyone => Ok(Listing::All),
            Who::Token { scopes, .. } if scopes.has(Scope::Admin) => Ok(Listing::All),
            Who::Token { name, scopes } if scopes.has(Scope::Read) || scopes.has(Scope::Write) => {
                Ok(Listing::OwnedBy(name.to_string()))
            }
            Who::Token { .. } => {
                Err(ApiError::Forbidden("listing needs the \"read\" or \"write\" scope".into()))
            }
            Who::Anonymous | Who::Unknown => Err(self.unauthorized()),
        }
    }

    /// `/metrics`.
    pub(crate) fn require_metrics(&self) -> Result<(), ApiError> {
        if self.auth().open_metrics { Ok(()) } else { self.require(Scope::Admin) }
    }

    /// `/wait`, `/asyncwait`, `/fib`: the caller is identified only when they
    /// are not open, so that the open benchmark endpoints pay nothing for auth.
    pub(crate) fn require_bench(
        req: &HttpRequest,
        settings: &Arc<Settings>,
    ) -> Result<(), ApiError> {
        if settings.auth.open_bench { Ok(()) } else { Self::of(req, settings).require_token() }
    }

    /// Any configured token (or none configured).
    pub(crate) fn require_token(&self) -> Result<(), ApiError> {
        match &self.who {
            Who::Everyone | Who::Token { .. } => Ok(()),
            Who::Anonymous | Who::Unknown => Err(self.unauthorized()),
        }
    }

    fn unauthorized(&self) -> ApiError {
        ApiError::Unauthorized { bad_token: matches!(self.who, Who::Unknown) }
    }
}

fn scope_name(scope: Scope) -> &'static str {
    Scope::ALL.iter().find(|(s, _)| *s == scope).map_or("?", |(_, name)| name)
}
