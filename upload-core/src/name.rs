use std::fmt;

use crate::Error;

/// A client-supplied file name, cleaned so it is safe to keep as metadata and
/// to echo back in a header.
///
/// It is never used to build a path: objects are stored under their
/// [`ObjectId`](crate::ObjectId). Cleaning keeps the last path component
/// (after `/` or `\`), drops control and bidi-override characters, trims
/// whitespace and bounds the length to [`FileName::MAX_BYTES`] bytes, keeping
/// a short extension.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileName(String);

impl FileName {
    /// The longest name kept, in bytes of UTF-8 (the usual file system limit).
    pub const MAX_BYTES: usize = 255;
    const MAX_EXTENSION_BYTES: usize = 16;

    /// Cleans `raw` into a file name.
    ///
    /// # Errors
    /// [`Error::InvalidName`] when nothing usable is left (empty, `.`, `..`).
    pub fn sanitize(raw: &str) -> Result<Self, Error> {
        let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let cleaned: String = last.chars().filter(|&c| !is_unsafe(c)).collect();
        let name = cleaned.trim();
        if name.is_empty() || name == "." || name == ".." {
            return Err(Error::InvalidName(
                "nothing is left once path separators and control characters are removed",
            ));
        }
        Ok(Self(truncate(name)))
    }

    /// Cleans a name that arrived as bytes, replacing invalid UTF-8 with U+FFFD.
    ///
    /// # Errors
    /// As [`FileName::sanitize`].
    pub fn sanitize_bytes(raw: &[u8]) -> Result<Self, Error> {
        Self::sanitize(&String::from_utf8_lossy(raw))
    }

    /// The cleaned name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Control characters, and the format characters that make a name display
/// differently from what it is (`evil\u{202E}gpj.exe`).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn truncate(name: &str) -> String {
    if name.len() <= FileName::MAX_BYTES {
        return name.to_owned();
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= FileName::MAX_EXTENSION_BYTES => {
            (stem, Some(ext))
        }
        _ => (name, None),
    };
    let budget = FileName::MAX_BYTES - ext.map_or(0, |e| e.len() + 1);
    let mut end = budget.min(stem.len());
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    let stem = stem[..end].trim_end();
    match ext {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(raw: &str) -> String {
        FileName::sanitize(raw).unwrap().0
    }

    #[test]
    fn keeps_only_the_last_component() {
        assert_eq!(clean("../../etc/passwd"), "passwd");
        assert_eq!(clean("a/b"), "b");
        assert_eq!(clean("C:\\x"), "x");
        assert_eq!(clean("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(clean("report final.pdf"), "report final.pdf");
        assert_eq!(clean(".bashrc"), ".bashrc");
    }

    #[test]
    fn drops_control_and_bidi_characters() {
        assert_eq!(clean("a\0b\r\nc\u{7f}.txt"), "abc.txt");
        assert_eq!(clean("evil\u{202E}gpj.exe"), "evilgpj.exe");
        assert_eq!(clean("  spaced  "), "spaced");
    }

    #[test]
    fn rejects_names_with_nothing_left() {
        for raw in ["", "   ", ".", "..", "a/", "../", "\0\0", "x/.."] {
            assert!(matches!(FileName::sanitize(raw), Err(Error::InvalidName(_))), "{raw:?}");
        }
    }

    #[test]
    fn bounds_length_on_a_char_boundary_and_keeps_the_extension() {
        let long = format!("{}.tar", "é".repeat(10_000));
        let name = clean(&long);
        assert!(name.len() <= FileName::MAX_BYTES);
        assert!(name.ends_with("é.tar"), "{name}");
        let no_ext = "x".repeat(10_000);
        assert_eq!(clean(&no_ext).len(), FileName::MAX_BYTES);
    }

    #[test]
    fn lossy_bytes_become_replacement_characters() {
        let name = FileName::sanitize_bytes(b"caf\xe9.txt").unwrap();
        assert_eq!(name.as_str(), "caf\u{FFFD}.txt");
    }
}
