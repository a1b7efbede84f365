//! SHA-256 whose state can be saved between the appends of an upload and
//! taken up again by another process: sha2's compression function
//! (`sha2::compress256`, with the CPU's SHA instructions where present) on
//! a state of our own, which serialises to a few dozen bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::digest::generic_array::GenericArray;

const BLOCK: usize = 64;
const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A SHA-256 computation in progress, after any number of bytes.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Sha256State {
    h: [u32; 8],
    /// Bytes hashed so far, the buffered ones included.
    len: u64,
    /// The bytes of the last, incomplete block (`len % 64` of them).
    buf: [u8; BLOCK],
}

impl Default for Sha256State {
    fn default() -> Self {
        Self { h: INITIAL, len: 0, buf: [0; BLOCK] }
    }
}

impl std::fmt::Debug for Sha256State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sha256State({} bytes)", self.len)
    }
}

impl Sha256State {
    fn buffered(&self) -> usize {
        (self.len % BLOCK as u64) as usize
    }

    /// Hashes `data` after what came before.
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        let have = self.buffered();
        self.len += data.len() as u64;
        if have > 0 {
            let take = (BLOCK - have).min(data.len());
            self.buf[have..have + take].copy_from_slice(&data[..take]);
            data = &data[take..];
            if have + take < BLOCK {
                return;
            }
            sha2::compress256(&mut self.h, &[GenericArray::clone_from_slice(&self.buf)]);
        }
        let whole = data.len() / BLOCK * BLOCK;
        let (blocks, rest) = data.split_at(whole);
        if !blocks.is_empty() {
            // Whole blocks straight from the caller's bytes: no copy.
            sha2::compress256(&mut self.h, as_blocks(blocks));
        }
        self.buf[..rest.len()].copy_from_slice(rest);
    }

    /// Bytes hashed so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The digest of everything hashed; the state itself is left as it was.
    pub(crate) fn finalize(&self) -> [u8; 32] {
        let mut state = self.h;
        let have = self.buffered();
        let mut tail = [0u8; 2 * BLOCK];
        tail[..have].copy_from_slice(&self.buf[..have]);
        tail[have] = 0x80;
        let end = if have < BLOCK - 8 { BLOCK } else { 2 * BLOCK };
        tail[end - 8..end].copy_from_slice(&(self.len * 8).to_be_bytes());
        let blocks: Vec<_> =
            tail[..end].chunks(BLOCK).map(GenericArray::clone_from_slice).collect();
        sha2::compress256(&mut state, &blocks);
        let mut out = [0u8; 32];
        for (word, bytes) in state.iter().zip(out.chunks_mut(4)) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// `h0..h7` (hex), the length and the buffered bytes (hex): the saved form.
    fn encode(&self) -> String {
        let words: String = self.h.iter().map(|w| format!("{w:08x}")).collect();
        format!("{words}:{}:{}", self.len, hex::encode(&self.buf[..self.buffered()]))
    }

    fn decode(text: &str) -> Option<Self> {
        let mut fields = text.split(':');
        let (words, len, buf) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() || words.len() != 64 {
            return None;
        }
        let mut state = Self { len: len.parse().ok()?, ..Self::default() };
        for (i, word) in state.h.iter_mut().enumerate() {
            *word = u32::from_str_radix(words.get(8 * i..8 * i + 8)?, 16).ok()?;
        }
        let buf = hex::decode(buf).ok()?;
        if buf.len() != state.buffered() {
            return None;
        }
        state.buf[..buf.len()].copy_from_slice(&buf);
        Some(state)
    }
}

/// Views whole 64-byte blocks as the array type `compress256` takes.
fn as_blocks(data: &[u8]) -> &[GenericArray<u8, sha2::digest::consts::U64>] {
    debug_assert_eq!(data.len() % BLOCK, 0);
    // SAFETY: GenericArray<u8, U64> is #[repr(transparent)] over 64 contiguous
    // bytes (size 64, alignment 1), and `data` holds exactly `len / 64` of them.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast(), data.len() / BLOCK) }
}

impl Serialize for Sha256State {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Sha256State {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::decode(&text).ok_or_else(|| serde::de::Error::custom("not a saved SHA-256 state"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    use super::*;

    proptest! {
        /// Any split of the bytes, with a save and restore between the
        /// pieces, gives sha2's one-shot digest.
        #[test]
        fn saved_and_restored_midway_it_matches_sha2(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut state = Sha256State::default();
            let mut from = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                state.update(&data[from..cut]);
                from = cut;
                let saved = serde_json::to_string(&state).unwrap();
                state = serde_json::from_str(&saved).unwrap();
            }
            prop_assert_eq!(state.len(), data.len() as u64);
            prop_assert_eq!(state.finalize(), <[u8; 32]>::from(Sha256::digest(&data)));
        }
    }

    #[test]
    fn known_digests_and_bad_saved_forms() {
        let empty = Sha256State::default().finalize();
        assert_eq!(
            hex::encode(empty),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut abc = Sha256State::default();
        abc.update(b"abc");
        assert_eq!(
            hex::encode(abc.finalize()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let good = abc.encode();
        assert_eq!(Sha256State::decode(&good), Some(abc));
        for bad in ["", "x:1:", &good.replace(":3:", ":4:"), &format!("{good}:"), &good[1..]] {
            assert_eq!(Sha256State::decode(bad), None, "{bad:?}");
        }
    }
}
