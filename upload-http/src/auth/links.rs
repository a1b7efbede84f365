//! Download links: `/files/<id>?link=<link id>&expires=<unix time>&max=<n>&sig=<signature>`,
//! signed with HMAC-SHA256 over the file id, the link id, the expiry and the
//! download limit, by the first of `auth.link_key`; any of them verifies, so a
//! key is rotated by putting the new one first and removing the old one once
//! its links have expired.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use time::OffsetDateTime;
use upload_core::ObjectId;

use crate::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

/// A link's query parameters, as sent.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LinkQuery {
    /// A download link's id (the link's other parameters come with it).
    link: Option<String>,
    /// The link's expiry, in Unix seconds.
    expires: Option<String>,
    /// The most downloads the link allows.
    max: Option<String>,
    /// The link's signature.
    sig: Option<String>,
}

impl LinkQuery {
    /// Whether the request presents a link at all.
    pub(crate) fn is_link(&self) -> bool {
        self.sig.is_some() || self.link.is_some()
    }
}

/// What a valid link allows.
#[derive(Debug)]
pub(crate) struct Link {
    /// Counts the link's downloads.
    pub(crate) id: ObjectId,
    /// The most downloads it allows, if limited.
    pub(crate) max_downloads: Option<u64>,
}

/// The query string of a new link.
pub(crate) fn sign(
    key: &[u8],
    file: &ObjectId,
    link: &ObjectId,
    expires: OffsetDateTime,
    max: Option<u64>,
) -> String {
    let expires = expires.unix_timestamp();
    let max_text = max.map(|m| m.to_string()).unwrap_or_default();
    let sig = mac(key, file, link, expires, &max_text).finalize().into_bytes();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig);
    let max = max.map(|m| format!("&max={m}")).unwrap_or_default();
    format!("link={link}&expires={expires}{max}&sig={sig}")
}

/// Checks a link to `file` against every key: 403 if it is tampered with,
/// signed by no current key, or expired.
pub(crate) fn verify(keys: &[Vec<u8>], file: &ObjectId, q: &LinkQuery) -> Result<Link, ApiError> {
    let invalid = || ApiError::InvalidLink("the link is not valid for this file".into());
    let (Some(link), Some(expires), Some(sig)) = (&q.link, &q.expires, &q.sig) else {
        return Err(invalid());
    };
    let link: ObjectId = link.parse().map_err(|_| invalid())?;
    let expires_at: i64 = expires.parse().map_err(|_| invalid())?;
    let max_text = q.max.as_deref().unwrap_or("");
    let max_downloads = match q.max.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| invalid())?),
    };
    let sig =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig).map_err(|_| invalid())?;
    // `verify_slice` compares in constant time.
    let signed = keys
        .iter()
        .any(|key| mac(key, file, &link, expires_at, max_text).verify_slice(&sig).is_ok());
    if !signed {
        return Err(invalid());
    }
    if OffsetDateTime::now_utc().unix_timestamp() >= expires_at {
        return Err(ApiError::InvalidLink("the link has expired".into()));
    }
    Ok(Link { id: link, max_downloads })
}

fn mac(key: &[u8], file: &ObjectId, link: &ObjectId, expires: i64, max: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("fastupload-link-v1\n{file}\n{link}\n{expires}\n{max}").as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `link=...&expires=...`, as the query extractor reads it.
    fn query(text: &str) -> LinkQuery {
        let mut q = LinkQuery::default();
        for pair in text.split('&') {
            let (k, v) = pair.split_once('=').unwrap();
            let v = Some(v.to_owned());
            match k {
                "link" => q.link = v,
                "expires" => q.expires = v,
                "max" => q.max = v,
                "sig" => q.sig = v,
                _ => {}
            }
        }
        q
    }

    #[test]
    fn links_verify_until_tampered_with_expired_or_unsigned() {
        let (old, new) = (b"k".repeat(32), b"n".repeat(32));
        let (file, link) = (ObjectId::new(), ObjectId::new());
        let soon = OffsetDateTime::now_utc() + time::Duration::hours(1);
        let signed = sign(&old, &file, &link, soon, Some(3));
        let both = [new.clone(), old.clone()];
        let valid = verify(&both, &file, &query(&signed)).unwrap();
        assert_eq!((valid.id, valid.max_downloads), (link, Some(3)));
        // Another file, another limit, a dropped limit, a key no longer listed.
        let old_only = std::slice::from_ref(&old);
        assert!(verify(old_only, &ObjectId::new(), &query(&signed)).is_err());
        assert!(verify(old_only, &file, &query(&signed.replace("max=3", "max=30"))).is_err());
        assert!(verify(old_only, &file, &query(&signed.replace("&max=3", ""))).is_err());
        assert!(verify(&[new], &file, &query(&signed)).is_err());
        let past = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        let expired = sign(&old, &file, &link, past, None);
        let err = verify(&[old], &file, &query(&expired)).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }
}
