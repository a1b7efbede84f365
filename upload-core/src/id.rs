use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::Error;

/// A server-generated object id: a UUIDv7, so ids sort in creation order.
///
/// Only the canonical lowercase hyphenated form parses, so an id taken from
/// a URL always names exactly one object and can never name a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId(Uuid);

impl ObjectId {
    /// A new id, later than every id this process made before.
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for ObjectId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl FromStr for ObjectId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidId(s.chars().take(64).collect());
        let uuid = Uuid::try_parse(s).map_err(|_| invalid())?;
        // Uuid also accepts braces, URNs, uppercase and the simple form; one spelling per object.
        if s.len() != 36 || uuid.as_hyphenated().to_string() != s {
            return Err(invalid());
        }
        Ok(Self(uuid))
    }
}

/// A string in UUID form, as it is serialised.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ObjectId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::Custom("uuid".into())))
            .description(Some("A server-generated UUIDv7, lowercase and hyphenated."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ObjectId {}

impl Serialize for ObjectId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sorts_by_creation() {
        let ids: Vec<ObjectId> = (0..1000).map(|_| ObjectId::new()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
        let id = ids[0];
        assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id);
    }

    #[test]
    fn rejects_everything_but_the_canonical_form() {
        let id = ObjectId::new().to_string();
        for bad in [
            String::new(),
            "..".into(),
            "../../etc/passwd".into(),
            id.to_uppercase(),
            id.replace('-', ""),
            format!("{{{id}}}"),
            format!("urn:uuid:{id}"),
            format!("{id}/"),
            format!("{id}\0"),
        ] {
            assert!(matches!(bad.parse::<ObjectId>(), Err(Error::InvalidId(_))), "{bad:?}");
        }
    }
}
