//! Who is calling: `Authorization: Bearer <token>` checked against the
//! configured tokens' SHA-256 digests. What each caller may do is decided
//! in one place, [`rules`]; download links are signed in [`links`].

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub(crate) mod links;
mod rules;
mod token;

pub(crate) use rules::Listing;
pub use token::NewToken;

use crate::settings::{AuthSettings, Settings, TokenEntry};
use crate::state::AppState;

/// One thing a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Download any file by id.
    Read = 1,
    /// Upload; list and change one's own files and uploads.
    Write = 2,
    /// Delete one's own files.
    Delete = 4,
    /// Everything, on everyone's files, and `/metrics`.
    Admin = 8,
}

impl Scope {
    const ALL: [(Self, &'static str); 4] = [
        (Self::Read, "read"),
        (Self::Write, "write"),
        (Self::Delete, "delete"),
        (Self::Admin, "admin"),
    ];
}

/// What a token may do: a set of scopes (`admin` implies the others).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Reads scope names.
    ///
    /// # Errors
    /// An unknown name, or none at all.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut scopes = Self(0);
        for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
            let (scope, _) =
                Scope::ALL.iter().find(|(_, known)| known.eq_ignore_ascii_case(name)).ok_or_else(
                    || format!("unknown scope {name:?}: use read, write, delete or admin"),
                )?;
            scopes.0 |= *scope as u8;
        }
        if scopes.0 == 0 {
            return Err("a token needs at least one scope: read, write, delete or admin".into());
        }
        Ok(scopes)
    }

    pub(crate) fn has(self, scope: Scope) -> bool {
        self.0 & (scope as u8 | Scope::Admin as u8) != 0
    }

    /// The scope names, in their usual order.
    pub fn names(self) -> Vec<&'static str> {
        Scope::ALL.iter().filter(|(s, _)| self.0 & *s as u8 != 0).map(|(_, n)| *n).collect()
    }
}

/// The SHA-256 of a token: all the settings keep of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `token`.
    #[must_use]
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// 64 hex digits.
    #[must_use]
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut digest = [0; 32];
        hex::decode_to_slice(text, &mut digest).ok().map(|()| Self(digest))
    }

    /// As 64 lowercase hex digits.
    #[must_use]
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

/// Who sent a request, as far as its `Authorization` header says.
#[derive(Clone, Debug)]
pub(crate) enum Who {
    /// No tokens are configured: everyone may do everything.
    Everyone,
    /// No `Authorization` header.
    Anonymous,
    /// An `Authorization` header that names no configured token.
    Unknown,
    /// A configured token.
    Token { name: Arc<str>, scopes: Scopes },
}

/// The caller of a request, with the settings that decide what it may do.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) who: Who,
    settings: Arc<Settings>,
}

impl Caller {
    pub(crate) fn of(req: &HttpRequest, settings: &Arc<Settings>) -> Self {
        let who = match &settings.auth.tokens {
            None => Who::Everyone,
            Some(tokens) => match req.headers().get(header::AUTHORIZATION) {
                None => Who::Anonymous,
                Some(value) => identify(value.to_str().ok(), tokens),
            },
        };
        Self { who, settings: Arc::clone(settings) }
    }

    pub(crate) fn auth(&self) -> &AuthSettings {
        &self.settings.auth
    }

    /// The owner recorded on what this caller stores.
    pub(crate) fn owner(&self) -> Option<String> {
        match &self.who {
            Who::Token { name, .. } => Some(name.to_string()),
            _ => None,
        }
    }
}

/// The token an `Authorization` value presents, among `tokens`.
fn identify(value: Option<&str>, tokens: &[TokenEntry]) -> Who {
    let presented = value.and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| TokenDigest::of(token.trim()))
    });
    let Some(presented) = presented else { return Who::Unknown };
    // Every digest compared, each in constant time: timing tells nothing of which matched.
    let mut found = Who::Unknown;
    for entry in tokens {
        if bool::from(digests_equal(&entry.digest.0, &presented.0)) {
            found = Who::Token { name: Arc::clone(&entry.name), scopes: entry.scopes };
        }
    }
    found
}

/// Equality of two digests without a branch on their bytes: the differences of
/// four words OR-ed together, then one constant-time test (`subtle` compares a
/// slice a byte at a time, each behind an optimisation barrier: ~40 ns per digest).
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> subtle::Choice {
    let word = |d: &[u8; 32], i: usize| {
        u64::from_ne_bytes(d[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    };
    let diff = (0..4).fold(0u64, |diff, i| diff | (word(a, i) ^ word(b, i)));
    diff.ct_eq(&0)
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().expect("the app registers its state");
        ready(Ok(Self::of(req, &state.settings)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_admin_implies_all() {
        let rw = Scopes::parse(["write", " READ "]).unwrap();
        assert!(rw.has(Scope::Read) && rw.has(Scope::Write) && !rw.has(Scope::Delete));
        assert_eq!(rw.names(), ["read", "write"]);
        let admin = Scopes::parse(["admin"]).unwrap();
        assert!(Scope::ALL.iter().all(|(s, _)| admin.has(*s)));
        assert!(Scopes::parse(["owner"]).unwrap_err().contains("\"owner\""));
        assert!(Scopes::parse([""]).is_err());
    }

    #[test]
    fn digests_are_equal_only_when_every_byte_is() {
        let d = TokenDigest::of("fu_secret").0;
        assert!(bool::from(digests_equal(&d, &d)));
        for i in 0..32 {
            let mut other = d;
            other[i] ^= 1;
            assert!(!bool::from(digests_equal(&d, &other)), "byte {i}");
        }
    }

    #[test]
    fn digests_round_trip_as_hex() {
        let d = TokenDigest::of("fu_secret");
        assert_eq!(TokenDigest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(TokenDigest::from_hex("zz"), None);
    }
}
