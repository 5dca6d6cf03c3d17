//! Byte-level mutations in the manner of AFL's "havoc" stage: a few stacked
//! edits of a corpus input — bit flips, interesting integers written in
//! binary and in ASCII, dictionary tokens, deletions, duplications and
//! splices with another input. Every mutation is a pure function of the
//! input, the corpus and the RNG, so `(seed, iteration)` reproduces it.

use rand::{Rng, RngCore};

/// Binary integers that break size arithmetic: 0, ±1, signed and unsigned
/// boundaries of every width, powers of two near allocation limits.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    1 << 62,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// Numbers as text, for JSON, `.npy` headers and label files.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "-0",
    "2147483648",
    "4294967296",
    "4611686018427387904",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "1e-308",
    "-1e308",
    "NaN",
    "Infinity",
    "0.5",
    "1e9",
];

/// Mutates inputs of one target.
pub struct Mutator<'a> {
    /// The corpus (splice partners).
    pub corpus: &'a [Vec<u8>],
    /// Format tokens worth inserting (`"input_dim"`, pickle opcodes, ...).
    pub dictionary: &'a [&'a [u8]],
    /// Inputs are cut to this length.
    pub max_len: usize,
}

impl Mutator<'_> {
    /// A mutant of `input`: 1 to 8 stacked edits.
    pub fn mutate(&self, input: &[u8], rng: &mut impl RngCore) -> Vec<u8> {
        let mut out = input.to_vec();
        let edits = 1 << rng.random_range(0..4);
        for _ in 0..edits {
            self.edit(&mut out, rng);
        }
        out.truncate(self.max_len);
        out
    }

    fn edit(&self, out: &mut Vec<u8>, rng: &mut impl RngCore) {
        let len = out.len();
        let pos = |rng: &mut dyn RngCore, extra: usize| rng.random_range(0..len + extra);
        match rng.random_range(0..11) {
            // A bit.
            0 if len > 0 => {
                let i = pos(rng, 0);
                out[i] ^= 1 << rng.random_range(0..8);
            }
            // A byte.
            1 if len > 0 => {
                let i = pos(rng, 0);
                out[i] = rng.random();
            }
            // An interesting integer, little- or big-endian, of 1–8 bytes.
            2 if len > 0 => {
                let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
                let width = [1, 2, 4, 8][rng.random_range(0..4)];
                let bytes = if rng.random() {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                let bytes = if rng.random() || width == 8 {
                    &bytes[..width]
                } else {
                    &bytes[8 - width..]
                };
                let i = pos(rng, 0);
                for (k, b) in bytes.iter().enumerate() {
                    if let Some(slot) = out.get_mut(i + k) {
                        *slot = *b;
                    }
                }
            }
            // A run of ASCII digits replaced by a hostile number.
            3 => {
                let digits: Vec<usize> = (0..len).filter(|&i| out[i].is_ascii_digit()).collect();
                let text = NUMBERS[rng.random_range(0..NUMBERS.len())].as_bytes();
                if digits.is_empty() {
                    let i = pos(rng, 1);
                    out.splice(i..i, text.iter().copied());
                } else {
                    let start = digits[rng.random_range(0..digits.len())];
                    let end = (start..len)
                        .find(|&i| !out[i].is_ascii_digit())
                        .unwrap_or(len);
                    out.splice(start..end, text.iter().copied());
                }
            }
            // A dictionary token, inserted or overwriting.
            4 | 5 if !self.dictionary.is_empty() => {
                let token = self.dictionary[rng.random_range(0..self.dictionary.len())];
                let i = pos(rng, 1);
                if rng.random() {
                    out.splice(i..i, token.iter().copied());
                } else {
                    let end = (i + token.len()).min(len);
                    out.splice(i..end, token.iter().copied());
                }
            }
            // Delete a range.
            6 if len > 0 => {
                let i = pos(rng, 0);
                let n = rng.random_range(1..=(len - i).min(64));
                out.drain(i..i + n);
            }
            // Duplicate a range.
            7 if len > 0 => {
                let i = pos(rng, 0);
                let n = rng.random_range(1..=(len - i).min(64));
                let chunk: Vec<u8> = out[i..i + n].to_vec();
                let at = pos(rng, 1);
                out.splice(at..at, chunk);
            }
            // Truncate.
            8 if len > 0 => {
                let i = pos(rng, 0);
                out.truncate(i);
            }
            // Splice: our head, another input's tail.
            9 if !self.corpus.is_empty() => {
                let other = &self.corpus[rng.random_range(0..self.corpus.len())];
                if !other.is_empty() {
                    let i = pos(rng, 1);
                    let j = rng.random_range(0..other.len());
                    out.truncate(i);
                    out.extend_from_slice(&other[j..]);
                }
            }
            // Random bytes inserted.
            _ => {
                let i = pos(rng, 1);
                let n = rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                out.splice(i..i, bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mutations_are_reproducible_and_bounded() {
        let corpus = vec![b"{\"a\": 12}".to_vec(), vec![0u8; 40]];
        let m = Mutator {
            corpus: &corpus,
            dictionary: &[b"input_dim"],
            max_len: 64,
        };
        let run = |seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            (0..200)
                .map(|i| m.mutate(&corpus[i % 2], &mut rng))
                .collect::<Vec<_>>()
        };
        let a = run(3);
        assert_eq!(a, run(3));
        assert_ne!(a, run(4));
        assert!(a.iter().all(|x| x.len() <= 64));
        // The edits do change inputs, and not always in the same way.
        let changed = a
            .iter()
            .filter(|x| **x != corpus[0] && **x != corpus[1])
            .count();
        assert!(changed > 150, "{changed}");
        let distinct: std::collections::HashSet<_> = a.iter().collect();
        assert!(distinct.len() > 150, "{}", distinct.len());
    }
}
