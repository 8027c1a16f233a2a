//! Bitmaps of classifier entries, stored deduplicated and sparse in the generation's pool.
//!
//! Layout of one bitmap at offset `b`, for a table whose bitmaps have `n` summary words:
//! `pool[b..b+n]` are the summary words (bit `w % 64` of word `w / 64` set when bitmap word
//! `w` is not zero); `pool[b+n..b+2n]` count the non-zero words before each summary word;
//! then come the non-zero words in order. Word `w` is therefore
//! `pool[b + 2n + prefix[w/64] + popcount(summary[w/64] & below(w % 64))]`, and a search
//! scans summary words, not all words: its cost follows the entries that match, not the
//! number of rules.

use std::collections::HashMap;

/// A dense set of entries being computed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bits {
    pub words: Vec<u64>,
}

impl Bits {
    pub fn new(entries: usize) -> Bits {
        Bits {
            words: vec![0; entries.div_ceil(64).max(1)],
        }
    }

    pub fn set(&mut self, i: usize, on: bool) {
        let (w, b) = (i / 64, i % 64);
        if on {
            self.words[w] |= 1 << b;
        } else {
            self.words[w] &= !(1 << b);
        }
    }

    pub fn get(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }
}

/// The pool of one generation being built, shared by its tables.
#[derive(Default)]
pub struct Pool {
    pub words: Vec<u64>,
    seen: HashMap<(usize, Vec<u64>), u32>,
}

impl Pool {
    /// Stores `bits` (once per distinct content and summary size) and returns its offset.
    pub fn add(&mut self, bits: &Bits, summary_words: usize) -> u32 {
        let key = (summary_words, bits.words.clone());
        if let Some(&at) = self.seen.get(&key) {
            return at;
        }
        let at = self.words.len() as u32;
        let mut summary = vec![0u64; summary_words];
        let mut nonzero = Vec::new();
        for (w, &word) in bits.words.iter().enumerate() {
            if word != 0 {
                summary[w / 64] |= 1 << (w % 64);
                nonzero.push(word);
            }
        }
        let mut prefix = Vec::with_capacity(summary_words);
        let mut before = 0u64;
        for s in &summary {
            prefix.push(before);
            before += s.count_ones() as u64;
        }
        self.words.extend(summary);
        self.words.extend(prefix);
        self.words.extend(nonzero);
        self.seen.insert(key, at);
        at
    }
}

/// Reads word `w` of the bitmap at `at`, as the XDP program does (for tests).
pub fn word(pool: &[u64], at: u32, summary_words: usize, w: usize) -> u64 {
    let b = at as usize;
    let (s, bit) = (w / 64, w % 64);
    let summary = pool[b + s];
    if summary & (1 << bit) == 0 {
        return 0;
    }
    let below = summary & ((1u64 << bit) - 1);
    pool[b + 2 * summary_words + pool[b + summary_words + s] as usize + below.count_ones() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_bitmaps_read_back_and_dedupe() {
        let mut pool = Pool::default();
        let mut a = Bits::new(64 * 130);
        for i in [0, 5, 64 * 70 + 3, 64 * 129 + 63] {
            a.set(i, true);
        }
        let nsum = 3;
        let at = pool.add(&a, nsum);
        assert_eq!(pool.add(&a, nsum), at, "same content, same offset");
        for w in 0..130 {
            assert_eq!(word(&pool.words, at, nsum, w), a.words[w], "word {w}");
        }
        let b = Bits::new(64 * 130);
        let at_b = pool.add(&b, nsum);
        assert_ne!(at_b, at);
        assert!((0..130).all(|w| word(&pool.words, at_b, nsum, w) == 0));
    }
}
