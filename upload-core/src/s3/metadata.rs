//! A stored object's [`FileInfo`] as S3 user metadata, and back.

use object_store::{Attribute, Attributes, GetResult};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Error, FileInfo, ObjectId, Result};

/// Metadata keys (`x-amz-meta-*`).
const META_SHA256: &str = "sha256";
const META_CREATED: &str = "created-at";
const META_FILENAME: &str = "filename";
const META_OWNER: &str = "owner";
const META_EXPIRES: &str = "expires-at";

/// Header values must be visible ASCII: the file name is percent-encoded.
const FILENAME_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'_').remove(b' ');

pub(super) fn attributes(info: &FileInfo) -> Attributes {
    let created = info.created_at.format(&Rfc3339).expect("a UTC time formats as RFC 3339");
    let mut attrs = Attributes::new();
    attrs.insert(Attribute::ContentType, info.content_type.clone().into());
    attrs.insert(Attribute::Metadata(META_SHA256.into()), info.sha256.clone().into());
    attrs.insert(Attribute::Metadata(META_CREATED.into()), created.into());
    for (key, text) in [(META_FILENAME, &info.filename), (META_OWNER, &info.owner)] {
        if let Some(text) = text {
            let encoded = percent_encoding::utf8_percent_encode(text, FILENAME_ESCAPES).to_string();
            attrs.insert(Attribute::Metadata(key.into()), encoded.into());
        }
    }
    if let Some(at) = info.expires_at {
        let at = at.format(&Rfc3339).expect("a UTC time formats as RFC 3339");
        attrs.insert(Attribute::Metadata(META_EXPIRES.into()), at.into());
    }
    attrs
}

pub(super) fn file_info(id: ObjectId, result: &GetResult) -> Result<FileInfo> {
    let attrs = &result.attributes;
    let meta = |key: &'static str| attrs.get(&Attribute::Metadata(key.into())).map(|v| &**v);
    let foreign = |what: &str| Error::Damaged {
        id: id.to_string(),
        reason: format!("no valid {what} metadata; it was not stored by this service"),
    };
    let sha256 = meta(META_SHA256)
        .filter(|s| crate::parse_sha256_hex(s).is_some())
        .ok_or_else(|| foreign(META_SHA256))?;
    let created_at = meta(META_CREATED)
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .ok_or_else(|| foreign(META_CREATED))?;
    let text = |key: &'static str| match meta(key) {
        Some(encoded) => percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .map(|text| Some(text.into_owned()))
            .map_err(|_| foreign(key)),
        None => Ok(None),
    };
    let expires_at = match meta(META_EXPIRES) {
        Some(at) => Some(OffsetDateTime::parse(at, &Rfc3339).map_err(|_| foreign(META_EXPIRES))?),
        None => None,
    };
    Ok(FileInfo {
        id,
        filename: text(META_FILENAME)?,
        size: result.meta.size,
        sha256: sha256.to_owned(),
        content_type: attrs
            .get(&Attribute::ContentType)
            .map_or(crate::DEFAULT_CONTENT_TYPE, |v| &**v)
            .to_owned(),
        created_at,
        owner: text(META_OWNER)?,
        expires_at,
    })
}
