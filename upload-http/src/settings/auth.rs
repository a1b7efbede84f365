//! `[auth]`: API tokens (kept only as SHA-256 digests), what stays open, and
//! the keys that sign download links.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{SettingsError, Span, positive};
use crate::auth::{Scopes, TokenDigest};

/// `[auth]` as read.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// `auth.mode`: `"tokens"` (the default: tokens if any are set, and with
    /// none the service serves only a loopback address) or `"open"` (no
    /// tokens, any address: everyone may do everything).
    pub mode: String,
    /// `auth.tokens`: `{ name, scopes, sha256 }` tables, or
    /// `"name:scope+scope:sha256"` lines (as `upload-http token new` prints them).
    #[serde(default)]
    pub tokens: Vec<RawToken>,
    /// `auth.public_read`: anyone may download a file by its id.
    pub public_read: bool,
    /// `auth.open_metrics`: `/metrics` needs no token.
    pub open_metrics: bool,
    /// `auth.open_bench`: `/wait`, `/asyncwait` and `/fib` need no token.
    pub open_bench: bool,
    /// `auth.link_key`: secrets that sign download links: the first signs, all verify.
    #[serde(default)]
    pub link_key: Vec<String>,
    /// `auth.max_link_lifetime`: the longest a download link may live.
    pub max_link_lifetime: Span,
}

/// A token as configured.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawToken {
    /// `{ name = "ci", scopes = ["write", "read"], sha256 = "<64 hex digits>" }`
    Table {
        /// Who holds it: recorded as the owner of what it uploads.
        name: String,
        /// `read`, `write`, `delete`, `admin`.
        scopes: Vec<String>,
        /// SHA-256 of the token, hex.
        sha256: String,
    },
    /// `"ci:write+read:<64 hex digits>"`
    Line(String),
}

/// One validated token.
#[derive(Clone, Debug)]
pub struct TokenEntry {
    /// Its name.
    pub name: std::sync::Arc<str>,
    /// What it may do.
    pub scopes: Scopes,
    /// SHA-256 of the token.
    pub digest: TokenDigest,
}

/// Validated `[auth]`.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// `None`: nobody authenticates, everyone may do everything.
    pub tokens: Option<Vec<TokenEntry>>,
    /// Anyone may download a file by id.
    pub public_read: bool,
    /// `/metrics` is open.
    pub open_metrics: bool,
    /// The benchmark endpoints are open.
    pub open_bench: bool,
    /// Link keys, the signing one first.
    pub link_keys: Vec<Vec<u8>>,
    /// The longest a link may live.
    pub max_link_lifetime: Duration,
}

/// The shortest link key accepted, in bytes.
const MIN_LINK_KEY: usize = 32;

impl RawAuth {
    pub(super) fn validate(&self, host: &str) -> Result<AuthSettings, SettingsError> {
        let tokens = self.tokens.iter().map(RawToken::validate).collect::<Result<Vec<_>, _>>()?;
        for (i, token) in tokens.iter().enumerate() {
            if tokens[..i].iter().any(|other| other.name == token.name) {
                return Err(SettingsError(format!(
                    "auth.tokens: the name {:?} is used twice",
                    token.name
                )));
            }
        }
        let open = match self.mode.trim() {
            "open" if !tokens.is_empty() => {
                return Err(SettingsError(
                    "auth.mode: \"open\" serves everyone without tokens, yet auth.tokens are set: remove one".into(),
                ));
            }
            "open" => true,
            "tokens" if tokens.is_empty() && !is_loopback(host) => {
                return Err(SettingsError(format!(
                    "auth.tokens: none are set, and server.host = {host:?} is not a loopback address: \
                     anyone who reaches it could read and delete every file. Add tokens \
                     (`upload-http token new --name NAME --scopes read,write` prints one), \
                     or set auth.mode = \"open\" to serve everyone"
                )));
            }
            "tokens" => tokens.is_empty(),
            other => {
                return Err(SettingsError(format!(
                    "auth.mode: {other:?} is neither \"tokens\" nor \"open\""
                )));
            }
        };
        let link_keys: Vec<Vec<u8>> = self
            .link_key
            .iter()
            .map(|key| key.trim())
            .filter(|key| !key.is_empty())
            .map(|key| {
                if key.len() < MIN_LINK_KEY {
                    Err(SettingsError(format!(
                        "auth.link_key: each key needs at least {MIN_LINK_KEY} characters (`openssl rand -hex 32` makes one)"
                    )))
                } else {
                    Ok(key.as_bytes().to_vec())
                }
            })
            .collect::<Result<_, _>>()?;
        if !open && link_keys.is_empty() {
            return Err(SettingsError(
                "auth.link_key: required when auth.tokens are set, to sign download links (`openssl rand -hex 32` makes one)".into(),
            ));
        }
        Ok(AuthSettings {
            tokens: (!open).then_some(tokens),
            public_read: self.public_read,
            open_metrics: self.open_metrics,
            open_bench: self.open_bench,
            link_keys,
            max_link_lifetime: positive("auth.max_link_lifetime", &self.max_link_lifetime)?,
        })
    }
}

impl RawToken {
    fn validate(&self) -> Result<TokenEntry, SettingsError> {
        let (name, scopes, digest) = match self {
            Self::Table { name, scopes, sha256 } => {
                (name.as_str(), scopes.iter().map(String::as_str).collect(), sha256.as_str())
            }
            Self::Line(line) => {
                let mut fields = line.trim().splitn(3, ':');
                match (fields.next(), fields.next(), fields.next()) {
                    (Some(name), Some(scopes), Some(digest)) => {
                        (name, scopes.split('+').collect::<Vec<_>>(), digest)
                    }
                    _ => {
                        return Err(SettingsError(
                            "auth.tokens: expected \"name:scope+scope:sha256\" or a table with name, scopes and sha256".into(),
                        ));
                    }
                }
            }
        };
        let name = name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
        {
            return Err(SettingsError(format!(
                "auth.tokens: the name {name:?} must be 1 to 64 letters, digits or -_.@"
            )));
        }
        let scopes = Scopes::parse(scopes.iter().copied())
            .map_err(|e| SettingsError(format!("auth.tokens: {name}: {e}")))?;
        let digest = TokenDigest::from_hex(digest.trim()).ok_or_else(|| {
            SettingsError(format!(
                "auth.tokens: {name}: sha256 must be 64 hex digits, the SHA-256 of the token"
            ))
        })?;
        Ok(TokenEntry { name: name.into(), scopes, digest })
    }
}

/// A literal loopback address, or `localhost`.
fn is_loopback(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
