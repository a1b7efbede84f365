//! Checksums of one append (the tus checksum extension): the bytes of an
//! append must hash to what the client announced before the upload's
//! offset moves past them.

use sha1::Digest as _;

/// A hash algorithm an append's checksum may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChecksumAlgorithm {
    /// SHA-1 (what most tus clients send).
    Sha1,
    /// SHA-256.
    Sha256,
    /// MD5.
    Md5,
}

impl ChecksumAlgorithm {
    /// Every algorithm, in the order servers advertise them.
    pub const ALL: [Self; 3] = [Self::Sha1, Self::Sha256, Self::Md5];

    /// The name tus uses (`sha1`, `sha256`, `md5`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Md5 => "md5",
        }
    }

    /// The algorithm of a tus name, case-insensitively; `None` if unsupported.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// Bytes in a digest.
    #[must_use]
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Md5 => 16,
        }
    }
}

/// The digest an append's bytes must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checksum {
    /// How it is computed.
    pub algorithm: ChecksumAlgorithm,
    /// The expected digest, `algorithm.digest_len()` bytes.
    pub digest: Vec<u8>,
}

/// Hashes one append's bytes with the algorithm of its checksum.
pub(crate) enum ChunkHasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Md5(md5::Md5),
}

impl ChunkHasher {
    pub(crate) fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
            ChecksumAlgorithm::Md5 => Self::Md5(md5::Md5::new()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Md5(h) => h.update(data),
        }
    }

    pub(crate) fn finalize(self) -> Vec<u8> {
        match self {
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Md5(h) => h.finalize().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_digests_match_the_algorithms() {
        for algorithm in ChecksumAlgorithm::ALL {
            assert_eq!(
                ChecksumAlgorithm::from_name(&algorithm.name().to_uppercase()),
                Some(algorithm)
            );
            let mut hasher = ChunkHasher::new(algorithm);
            hasher.update(b"ab");
            hasher.update(b"c");
            let digest = hasher.finalize();
            assert_eq!(digest.len(), algorithm.digest_len());
            let expected = match algorithm {
                ChecksumAlgorithm::Sha1 => "a9993e364706816aba3e25717850c26c9cd0d89d",
                ChecksumAlgorithm::Sha256 => {
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                }
                ChecksumAlgorithm::Md5 => "900150983cd24fb0d6963f7d28e17f72",
            };
            assert_eq!(hex::encode(digest), expected);
        }
        assert_eq!(ChecksumAlgorithm::from_name("crc32"), None);
    }
}
