//! Bitmaps of classifier entries, stored deduplicated and sparse in the generation's pool.
//!
//! A table's entries are split in groups of 4096 (64 words of 64 bits); a table has at most
//! 32 groups, so one word says which groups of a bitmap are not empty. Layout of a bitmap
//! at offset `b`:
//!
//! - `pool[b]`: bit g set when group g has a set bit;
//! - for the i-th non-empty group: `pool[b + 1 + 2i]` has bit k set when word k of the
//!   group is not zero, and `pool[b + 2 + 2i]` counts the non-zero words of the groups
//!   before it;
//! - then the non-zero words in order.
//!
//! A bitmap costs one word plus two per non-empty group plus its non-zero words, so a rule
//! that matches one address costs a few words however many rules the table has, and a
//! search visits groups and words that can match, not all of them.

use std::hash::{Hash, Hasher};

// FxHash: the keys come from the operator's own ruleset (nobody to defend against), and
// SipHash was a tenth of compiling 10,000 rules.
use rustc_hash::{FxHashMap as HashMap, FxHasher};

/// Words per group, and groups per bitmap.
pub const GROUP_WORDS: usize = 64;
pub const MAX_GROUPS: usize = 64;

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
}

/// The pool of one generation being built, shared by its tables.
#[derive(Default)]
pub struct Pool {
    pub words: Vec<u64>,
    /// Fingerprint of an encoding -> its offsets (collisions are told apart by content).
    seen: HashMap<u64, Vec<u32>>,
}

/// The sparse form of a bitmap, as stored.
fn encode(bits: &Bits) -> Vec<u64> {
    let mut top = 0u64;
    let mut groups = Vec::new();
    let mut nonzero = Vec::new();
    for (g, chunk) in bits.words.chunks(GROUP_WORDS).enumerate() {
        let mut summary = 0u64;
        let before = nonzero.len() as u64;
        for (k, &word) in chunk.iter().enumerate() {
            if word != 0 {
                summary |= 1 << k;
                nonzero.push(word);
            }
        }
        if summary != 0 {
            top |= 1 << g;
            groups.push(summary);
            groups.push(before);
        }
    }
    let mut out = Vec::with_capacity(1 + groups.len() + nonzero.len());
    out.push(top);
    out.extend(groups);
    out.extend(nonzero);
    out
}

impl Pool {
    /// Stores `bits` (once per distinct content) and returns its offset.
    pub fn add(&mut self, bits: &Bits) -> u32 {
        let encoded = encode(bits);
        let mut h = FxHasher::default();
        encoded.hash(&mut h);
        let key = h.finish();
        if let Some(offsets) = self.seen.get(&key) {
            for &at in offsets {
                let at_us = at as usize;
                if self.words.get(at_us..at_us + encoded.len()) == Some(encoded.as_slice()) {
                    return at;
                }
            }
        }
        let at = self.words.len() as u32;
        self.words.extend(&encoded);
        self.seen.entry(key).or_default().push(at);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads word `w` of the bitmap at `at`, as the XDP program does (for tests).
    fn word(pool: &[u64], at: u32, w: usize) -> u64 {
        let b = at as usize;
        let (g, k) = (w / GROUP_WORDS, w % GROUP_WORDS);
        let top = pool[b];
        if top & (1 << g) == 0 {
            return 0;
        }
        let gi = (top & ((1u64 << g) - 1)).count_ones() as usize;
        let groups = top.count_ones() as usize;
        let summary = pool[b + 1 + 2 * gi];
        if summary & (1 << k) == 0 {
            return 0;
        }
        let before = pool[b + 2 + 2 * gi] as usize;
        let below = (summary & ((1u64 << k) - 1)).count_ones() as usize;
        pool[b + 1 + 2 * groups + before + below]
    }

    #[test]
    fn sparse_bitmaps_read_back_and_dedupe() {
        let mut pool = Pool::default();
        let mut a = Bits::new(64 * 130);
        for i in [0, 5, 64 * 70 + 3, 64 * 129 + 63] {
            a.set(i, true);
        }
        let at = pool.add(&a);
        assert_eq!(pool.add(&a), at, "same content, same offset");
        for w in 0..130 {
            assert_eq!(word(&pool.words, at, w), a.words[w], "word {w}");
        }
        // Three groups with bits, three non-zero words (0 and 5 share one): 1 + 2*3 + 3.
        assert_eq!(pool.words.len() - at as usize, 10);
        let b = Bits::new(64 * 130);
        let at_b = pool.add(&b);
        assert_ne!(at_b, at);
        assert!((0..130).all(|w| word(&pool.words, at_b, w) == 0));
    }
}
