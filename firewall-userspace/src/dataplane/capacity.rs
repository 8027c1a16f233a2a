//! How large the maps that grow with the ruleset are made: `FW_POOL` and `FW_ENTRIES` (per
//! generation) and `FW_COUNTERS`. Fixed ceilings for 100,000-rule rulesets would hold ~90
//! MiB of kernel memory whatever the ruleset, the per-CPU counters once per CPU; sized to
//! the ruleset, a small one costs a few MiB. A ruleset that outgrows its maps gets a new
//! program instance with bigger ones (`dataplane/resize.rs`).

use firewall_common::{
    ENTRIES_PER_GENERATION, MAX_COUNTERS, POLICY_COUNTER_SLOTS, POOL_WORDS_PER_GENERATION,
};

use crate::compile::Image;

/// Elements of the sized maps: pool words and entries per generation, counter slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub pool_words: u32,
    pub entries: u32,
    pub counters: u32,
}

/// The smallest maps made: a few rules' worth, so small rulesets never resize.
const MIN: Capacity = Capacity {
    pool_words: 1 << 12,
    entries: 1 << 10,
    counters: 1 << 10,
};

/// Maps this many times larger than a ruleset would be sized get smaller ones at the next
/// change that needs a new instance anyway; see [`Capacity::fits`].
const SHRINK_FACTOR: u32 = 4;

impl Capacity {
    /// The smallest maps made, for an install that has no ruleset to size them by yet.
    pub fn minimum() -> Capacity {
        MIN
    }

    /// Exactly what `image` needs, and counter slots below `slots_end`.
    pub fn needed(image: &Image, slots_end: u32) -> Capacity {
        Capacity {
            pool_words: image.pool.len() as u32,
            entries: image
                .tables
                .iter()
                .map(|(_, t)| t.entries.len() as u32)
                .sum(),
            counters: slots_end.max(POLICY_COUNTER_SLOTS),
        }
    }

    /// The larger of two needs, for maps that must hold both generations' rulesets.
    pub fn max(self, other: Capacity) -> Capacity {
        Capacity {
            pool_words: self.pool_words.max(other.pool_words),
            entries: self.entries.max(other.entries),
            counters: self.counters.max(other.counters),
        }
    }

    /// The size to create for this need: a quarter more, rounded up to a power of two, so
    /// growing rulesets load a new instance rarely (each step doubles), within the ceilings.
    pub fn sized(self) -> Capacity {
        fn tier(need: u32, min: u32, max: u32) -> u32 {
            need.saturating_add(need / 4)
                .checked_next_power_of_two()
                .unwrap_or(max)
                .clamp(min, max)
                .max(need)
        }
        Capacity {
            pool_words: tier(self.pool_words, MIN.pool_words, POOL_WORDS_PER_GENERATION),
            entries: tier(self.entries, MIN.entries, ENTRIES_PER_GENERATION),
            counters: tier(self.counters, MIN.counters, MAX_COUNTERS),
        }
    }

    /// Whether maps of this size can take `need`.
    pub fn holds(self, need: Capacity) -> bool {
        self.pool_words >= need.pool_words
            && self.entries >= need.entries
            && self.counters >= need.counters
    }

    /// Whether maps of this size can take `need`, and are not so much larger than it that
    /// their memory is better given back.
    pub fn fits(self, need: Capacity) -> bool {
        let ideal = need.sized();
        let modest = |have: u32, ideal: u32| have / SHRINK_FACTOR < ideal;
        self.holds(need)
            && modest(self.pool_words, ideal.pool_words)
            && modest(self.entries, ideal.entries)
            && modest(self.counters, ideal.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(pool_words: u32, entries: u32, counters: u32) -> Capacity {
        Capacity {
            pool_words,
            entries,
            counters,
        }
    }

    #[test]
    fn sizes_are_powers_of_two_with_headroom_within_the_ceilings() {
        assert_eq!(need(0, 0, 0).sized(), MIN);
        assert_eq!(
            need(124_000, 10_007, 10_023).sized(),
            need(1 << 18, 1 << 14, 1 << 14)
        );
        let big = need(1_190_000, 100_007, 200_100).sized();
        assert_eq!(big, need(1 << 21, 1 << 17, 1 << 18));
        let top = need(
            POOL_WORDS_PER_GENERATION,
            ENTRIES_PER_GENERATION,
            MAX_COUNTERS,
        )
        .sized();
        assert_eq!(
            top,
            need(
                POOL_WORDS_PER_GENERATION,
                ENTRIES_PER_GENERATION,
                MAX_COUNTERS
            )
        );
    }

    #[test]
    fn maps_too_small_or_far_too_large_do_not_fit() {
        let have = need(1 << 18, 1 << 14, 1 << 14);
        assert!(have.fits(need(124_000, 10_007, 10_023)));
        assert!(have.fits(need(200_000, 10_007, 10_023)));
        assert!(!have.fits(need(270_000, 10_007, 10_023)));
        assert!(!have.fits(need(124_000, 10_007, 20_000)));
        // 10 rules in maps made for 10,000: smaller maps at the next resize.
        assert!(!have.fits(need(40, 17, 30)));
        // The smallest maps always fit a small ruleset.
        assert!(MIN.fits(need(0, 0, 0)));
    }
}
