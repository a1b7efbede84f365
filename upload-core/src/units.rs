//! Sizes and durations as people write them in settings, the one dialect of
//! every setting in the workspace: a size is a number of bytes or text that
//! `bytesize` reads (`"20MiB"`, `"512 KB"`); a duration is a number of
//! seconds or text that `humantime` reads (`"500ms"`, `"1m 30s"`).
//!
//! ```
//! use upload_core::units::{Size, Span};
//! assert_eq!(Size::Text("2KiB".into()).bytes(), Ok(2048));
//! assert_eq!(Span::Seconds(1.5).duration(), Ok(std::time::Duration::from_millis(1500)));
//! assert!(Span::Text("soon".into()).duration().unwrap_err().contains("\"soon\""));
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A size as written: bytes, or text such as `"20MiB"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    /// A number of bytes.
    Bytes(u64),
    /// Human-readable, e.g. `"1GiB"`, `"512 KB"`.
    Text(String),
}

impl Size {
    /// The number of bytes.
    ///
    /// # Errors
    /// Text that is not a size, quoted in the message.
    pub fn bytes(&self) -> Result<u64, String> {
        match self {
            Self::Bytes(n) => Ok(*n),
            Self::Text(text) => text
                .trim()
                .parse::<bytesize::ByteSize>()
                .map(|b| b.as_u64())
                .map_err(|e| format!("{text:?} is not a size such as \"20MiB\": {e}")),
        }
    }
}

/// A duration as written: seconds, or text such as `"30s"`, `"1m 30s"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Span {
    /// Seconds.
    Seconds(f64),
    /// Human-readable, e.g. `"500ms"`, `"30s"`.
    Text(String),
}

impl Span {
    /// The duration.
    ///
    /// # Errors
    /// A negative or unrepresentable number, or text that is not a duration.
    pub fn duration(&self) -> Result<Duration, String> {
        match self {
            Self::Seconds(secs) => Duration::try_from_secs_f64(*secs)
                .map_err(|_| format!("{secs} is not a number of seconds")),
            Self::Text(text) => humantime::parse_duration(text.trim())
                .map_err(|e| format!("{text:?} is not a duration such as \"30s\": {e}")),
        }
    }
}

/// A `Duration` field read as a [`Span`] and written as `humantime` text:
/// `#[serde(with = "upload_core::units::duration")]`.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use super::Span;

    /// Writes `"30s"`, `"1m 30s"`.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    /// Reads a [`Span`].
    ///
    /// # Errors
    /// A value that is not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Span::deserialize(d)?.duration().map_err(D::Error::custom)
    }
}

/// An `Option<Duration>` field as [`duration`] writes one, `None` as nothing:
/// `#[serde(default, with = "upload_core::units::duration_option")]`.
pub mod duration_option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `"30s"`, or nothing.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Reads a [`Span`](super::Span), or nothing.
    ///
    /// # Errors
    /// A value that is not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::duration")] Duration);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(d)| d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        assert_eq!(Size::Bytes(7).bytes(), Ok(7));
        assert_eq!(Size::Text(" 1 MiB ".into()).bytes(), Ok(1 << 20));
        assert!(
            Size::Text("lots".into()).bytes().unwrap_err().starts_with("\"lots\" is not a size")
        );
        assert_eq!(Span::Text("1m 30s".into()).duration(), Ok(Duration::from_secs(90)));
        assert!(Span::Seconds(-1.0).duration().is_err());
    }
}
