//! The fast table (`FW_FAST`, `FW_FASTCT`): for every (fast class, key value) of an INPUT
//! table, the outcome all its packets get, where one entry (or the policy) decides them all.
//!
//! A key fixes the protocol, the TCP flag class (SYN or not) and the destination port (ICMP
//! type and code). For each key the first entry some packet with that key can reach is
//! found; if every packet with that key satisfies that entry (its other fields cannot
//! fail: no address, source port, guard or undecided flag condition) and the entry decides
//! without charging anything but its own counter, its verdict and counter are the key's
//! outcome. Entries before it cannot match any packet of the key, so the classifier would
//! find the same entry: first match and counters stay exact by construction. Anything else
//! is 0, "ask the classifier". Where the ruleset uses conntrack state, the same is done
//! once per conntrack class, so a packet whose class decides it needs only the lookup.
//!
//! Conditions are judged field by field, so "can reach" is a superset and "every packet
//! satisfies" a subset of the truth: errors only ever send packets to the classifier.

use rustc_hash::FxHashMap as HashMap;

use firewall_common::{
    fast_final, FastCt, ACTION_CONTINUE, CT_CLASSES, FAST_BY_CLASS, FAST_CLASSES,
    FAST_CT_PER_GENERATION, FAST_FINAL, FAST_ICMP, FAST_KEYS, FAST_NO_SLOT, FAST_TCP, FAST_TCP_SYN,
    FAST_UDP, FAST_VERDICT_DROP_RAW, NO_COUNTER, VERDICT_DEFER, VERDICT_DROP_RAW,
};

use super::{
    fields::{icmp_ranges, iface_holds, port_ranges, Ranges},
    flatten::{Flat, ALL_CLASSES},
};
use crate::rules::{eval::PacketView, Family};

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// The `FW_FASTCT` elements of one generation, deduplicated; index 0 stands for none.
#[derive(Debug, Default)]
pub struct ByClass {
    pub outcomes: Vec<FastCt>,
    index: HashMap<FastCt, u32>,
}

impl ByClass {
    /// The index of `outcomes`, or 0 (the classifier decides) when the generation's share
    /// of the map is full.
    fn add(&mut self, outcomes: FastCt) -> u32 {
        if let Some(&i) = self.index.get(&outcomes) {
            return i;
        }
        if self.outcomes.is_empty() {
            self.outcomes.push(FastCt::default());
        }
        let i = self.outcomes.len() as u32;
        if i >= FAST_CT_PER_GENERATION {
            return 0;
        }
        self.outcomes.push(outcomes);
        self.index.insert(outcomes, i);
        i
    }
}

/// What a table needs to know of its chain to build its fast table.
pub struct Chain<'a> {
    pub family: Family,
    /// Names of the interfaces packets can arrive on: the attached ones, and "" for one the
    /// compiled ruleset does not know.
    pub inputs: &'a [&'a str],
    /// The policy's `fast_final` outcome.
    pub policy: u32,
    pub uses_ct: bool,
}

/// An entry as the fast table sees it.
struct Shape {
    /// Per fast class: some / every packet of the class satisfies the entry's conditions
    /// on the fields the key does not fix (conntrack state aside).
    possible: [bool; FAST_CLASSES as usize],
    certain: [bool; FAST_CLASSES as usize],
    /// Destination ports (TCP and UDP keys) and ICMP type/codes (ICMP keys) it allows.
    ports: Ranges,
    icmp: Ranges,
    classes: Option<u8>,
    /// The entry's outcome if it can be a key's outcome.
    outcome: Option<u32>,
}

/// Which conntrack class the outcome is for: any (no lookup made), or one.
#[derive(Clone, Copy)]
enum View {
    Any,
    Class(u32),
}

impl Shape {
    fn of(flat: &Flat, chain: &Chain) -> Shape {
        let c = &flat.conds;
        let iface: Vec<bool> = chain
            .inputs
            .iter()
            .map(|name| iface_holds(&c.iface, name) && iface_holds(&c.oiface, ""))
            .collect();
        let any_iface = iface.iter().any(|&b| b);
        let every_iface = iface.iter().all(|&b| b);
        let addr_possible = c
            .src
            .iter()
            .chain(&c.dst)
            .all(|n| !(n.negated && n.value.prefix == 0));
        let addr_certain = c
            .src
            .iter()
            .chain(&c.dst)
            .all(|n| !n.negated && n.value.prefix == 0);
        let sport = intersect_all(port_ranges(&c.sport));
        let sport_any = sport == [(0, 65_535)];
        let icmp_proto = match chain.family {
            Family::V4 => 1u8,
            Family::V6 => 58,
        };
        let mut possible = [false; FAST_CLASSES as usize];
        let mut certain = [false; FAST_CLASSES as usize];
        for class in 0..FAST_CLASSES {
            let proto = match class {
                FAST_TCP_SYN | FAST_TCP => 6u8,
                FAST_UDP => 17,
                _ => icmp_proto,
            };
            let proto_ok = c.proto.iter().all(|n| (n.value == proto) != n.negated);
            let ported = class != FAST_ICMP;
            // Ports exist for TCP and UDP keys only; ICMP fields for ICMP keys only.
            let (sport_possible, sport_certain) = if ported {
                (!sport.is_empty(), sport_any)
            } else {
                (c.sport.is_empty(), c.sport.is_empty())
            };
            let no_other_key = if ported {
                c.icmp.is_empty()
            } else {
                c.dport.is_empty()
            };
            let (flags_possible, flags_certain) = match class {
                _ if c.tcp_flags.is_empty() => (true, true),
                FAST_TCP_SYN | FAST_TCP => {
                    let syn = class == FAST_TCP_SYN;
                    let in_class = (0..=255u8).filter(|v| {
                        (v & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN) == syn
                    });
                    let holds = |v: u8| {
                        c.tcp_flags
                            .iter()
                            .all(|n| ((v & n.value.mask) == n.value.comp) != n.negated)
                    };
                    let mut some = false;
                    let mut every = true;
                    for v in in_class {
                        let h = holds(v);
                        some |= h;
                        every &= h;
                    }
                    (some, every)
                }
                _ => (c.tcp_flags.is_empty(), c.tcp_flags.is_empty()),
            };
            let i = class as usize;
            possible[i] = any_iface
                && addr_possible
                && proto_ok
                && sport_possible
                && no_other_key
                && flags_possible;
            certain[i] = possible[i]
                && every_iface
                && addr_certain
                && sport_certain
                && flags_certain
                && c.guards.is_empty();
        }
        let e = &flat.entry;
        // A DEFER counts nothing wherever it is; anything else must charge its own counter
        // alone (no jump rules around it, no RETURN charging the policy).
        let outcome = if e.action == VERDICT_DEFER {
            Some(fast_final(VERDICT_DEFER, FAST_NO_SLOT))
        } else if e.action != ACTION_CONTINUE && e.depth == 0 && e.counter != NO_COUNTER {
            let verdict = match e.action {
                VERDICT_DROP_RAW => FAST_VERDICT_DROP_RAW,
                v => v,
            };
            Some(fast_final(verdict, e.counter))
        } else {
            None
        };
        Shape {
            possible,
            certain,
            ports: intersect_all(port_ranges(&c.dport)),
            icmp: intersect_all(icmp_ranges(&c.icmp, chain.family)),
            classes: c.classes,
            outcome,
        }
    }

    fn ct_possible(&self, view: View) -> bool {
        match view {
            View::Any => self.classes.is_none_or(|c| c != 0),
            View::Class(k) => self.classes.is_none_or(|c| c & (1 << k) != 0),
        }
    }

    fn ct_certain(&self, view: View) -> bool {
        match view {
            View::Any => self.classes.is_none_or(|c| c & ALL_CLASSES == ALL_CLASSES),
            View::Class(k) => self.classes.is_none_or(|c| c & (1 << k) != 0),
        }
    }
}

/// The values every condition allows: the intersection of unions of inclusive ranges.
fn intersect_all(conds: Vec<Ranges>) -> Ranges {
    let mut acc: Ranges = vec![(0, 65_535)];
    for mut ranges in conds {
        ranges.sort_unstable();
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < acc.len() && j < ranges.len() {
            let lo = acc[i].0.max(ranges[j].0);
            let hi = acc[i].1.min(ranges[j].1);
            if lo <= hi {
                out.push((lo, hi));
            }
            if acc[i].1 < ranges[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        acc = out;
    }
    acc
}

/// Values over the key space as consecutive runs from 0: each run's end (exclusive) and
/// the value every key in it has.
type Runs<T> = Vec<(usize, T)>;

/// For every key value, the first entry (in order) among `entries` whose ranges hold it,
/// or None, as runs. The answer can only change where a range starts or ends, so the key
/// space is cut there and each piece is assigned once (a "next unassigned piece" forest
/// skips assigned runs): the cost follows the ranges, not the 65,536 key values, which a
/// small ruleset's every change would otherwise pay for each class and view.
fn first_covering<'a>(entries: impl Iterator<Item = (usize, &'a Ranges)>) -> Runs<Option<usize>> {
    const N: usize = FAST_KEYS as usize;
    let entries: Vec<(usize, &Ranges)> = entries.collect();
    let mut starts = vec![0usize];
    for &(lo, hi) in entries.iter().flat_map(|(_, r)| r.iter()) {
        let (lo, hi) = (lo as usize, hi as usize);
        if lo < N && lo <= hi {
            starts.push(lo);
            if hi + 1 < N {
                starts.push(hi + 1);
            }
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let pieces = starts.len();
    let mut first = vec![None; pieces];
    // next[p]: the first unassigned piece >= p is found by following the links.
    let mut next: Vec<usize> = (0..=pieces).collect();
    fn find(next: &mut [usize], mut p: usize) -> usize {
        let mut root = p;
        while next[root] != root {
            root = next[root];
        }
        while next[p] != root {
            let up = next[p];
            next[p] = root;
            p = up;
        }
        root
    }
    let mut left = pieces;
    for (e, ranges) in entries {
        for &(lo, hi) in ranges {
            let (lo, hi) = (lo as usize, hi as usize);
            if lo >= N || lo > hi {
                continue;
            }
            // `lo` starts a piece, and `hi + 1` the piece after the range's last.
            let mut p = find(&mut next, starts.partition_point(|&s| s < lo));
            while p < pieces && starts[p] <= hi {
                first[p] = Some(e);
                left -= 1;
                next[p] = p + 1;
                p = find(&mut next, p + 1);
            }
        }
        if left == 0 {
            break;
        }
    }
    (0..pieces)
        .map(|p| (starts.get(p + 1).copied().unwrap_or(N), first[p]))
        .collect()
}

/// A packet's fast class and key value, as the XDP program computes them
/// (firewall-ebpf/src/fast.rs), or None when the table has no key for it.
pub fn key(pkt: &PacketView) -> Option<(u32, u32)> {
    if pkt.fragment {
        return None;
    }
    let icmp = match pkt.family {
        Family::V4 => 1,
        Family::V6 => 58,
    };
    match (pkt.proto, pkt.ports, pkt.tcp_flags, pkt.icmp) {
        (6, Some((_, dport)), Some(flags), _) => {
            let syn = flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN;
            Some((if syn { FAST_TCP_SYN } else { FAST_TCP }, dport as u32))
        }
        (17, Some((_, dport)), _, _) => Some((FAST_UDP, dport as u32)),
        (p, _, _, Some((kind, code))) if p == icmp => {
            Some((FAST_ICMP, (kind as u32) << 8 | code as u32))
        }
        _ => None,
    }
}

/// The `FW_FAST` words of one INPUT table, `FAST_CLASSES * FAST_KEYS` of them class by
/// class, as runs of equal words: a few hundred runs where the words are a megabyte (a
/// change's compile built, zeroed and faulted in that megabyte per family before).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Words {
    /// (end, word): the word of every index from the previous run's end up to `end`.
    runs: Runs<u32>,
}

impl Words {
    fn push(&mut self, end: usize, word: u32) {
        match self.runs.last_mut() {
            Some(last) if last.1 == word => last.0 = end,
            _ => self.runs.push((end, word)),
        }
    }

    /// How many words the table holds.
    pub fn len(&self) -> usize {
        self.runs.last().map_or(0, |r| r.0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The word at `index`, if the table holds that many.
    pub fn get(&self, index: usize) -> Option<u32> {
        let run = self.runs.partition_point(|r| r.0 <= index);
        self.runs.get(run).map(|r| r.1)
    }

    /// The words packed two per u64 (the even one low), as runs of (count, value): how
    /// `FW_FAST` stores them (firewall_common::FAST_ELEMENTS). An odd last word pairs
    /// with 0.
    pub fn pairs(&self) -> Vec<(usize, u64)> {
        let mut out: Vec<(usize, u64)> = Vec::with_capacity(self.runs.len() * 2);
        let mut push = |n: usize, v: u64| match out.last_mut() {
            Some(last) if last.1 == v => last.0 += n,
            _ if n > 0 => out.push((n, v)),
            _ => {}
        };
        // The even word of a pair whose odd word is still to come.
        let mut low: Option<u32> = None;
        let mut start = 0;
        for &(end, word) in &self.runs {
            let mut n = end - start;
            start = end;
            if let Some(lo) = low.take() {
                push(1, lo as u64 | (word as u64) << 32);
                n -= 1;
            }
            push(n / 2, word as u64 | (word as u64) << 32);
            if n % 2 == 1 {
                low = Some(word);
            }
        }
        if let Some(lo) = low {
            push(1, lo as u64);
        }
        out
    }

    /// Every word, in order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let mut start = 0;
        self.runs.iter().flat_map(move |&(end, word)| {
            let n = end - start;
            start = end;
            std::iter::repeat_n(word, n)
        })
    }
}

/// The `FW_FAST` words of one INPUT table: `FAST_CLASSES * FAST_KEYS` of them, class by
/// class. `by_class` collects the per-class outcomes the words point to.
pub fn table(flats: &[Flat], chain: &Chain, by_class: &mut ByClass) -> Words {
    let shapes: Vec<Shape> = flats.iter().map(|f| Shape::of(f, chain)).collect();
    let mut words = Words::default();
    for class in 0..FAST_CLASSES {
        let outcomes = |view: View| -> Runs<u32> {
            let reachable = shapes
                .iter()
                .enumerate()
                .filter(|(_, s)| s.possible[class as usize] && s.ct_possible(view));
            let first = first_covering(reachable.map(|(e, s)| {
                (
                    e,
                    if class == FAST_ICMP {
                        &s.icmp
                    } else {
                        &s.ports
                    },
                )
            }));
            first
                .into_iter()
                .map(|(end, found)| {
                    let word = match found {
                        None => chain.policy,
                        Some(e) => {
                            let s = &shapes[e];
                            match s.outcome {
                                Some(o) if s.certain[class as usize] && s.ct_certain(view) => o,
                                _ => 0,
                            }
                        }
                    };
                    (end, word)
                })
                .collect()
        };
        let any = outcomes(View::Any);
        let per_class: Vec<Runs<u32>> = match chain.uses_ct {
            true => (0..CT_CLASSES).map(|k| outcomes(View::Class(k))).collect(),
            false => Vec::new(),
        };
        // One sweep over all views' runs: a word per piece where none of them changes.
        let mut at = vec![0usize; 1 + per_class.len()];
        let mut v = 0;
        while v < FAST_KEYS as usize {
            let end = std::iter::once(&any)
                .chain(&per_class)
                .zip(&at)
                .map(|(runs, &i)| runs[i].0)
                .min()
                .unwrap_or(FAST_KEYS as usize);
            let word = any[at[0]].1;
            let word = if word != 0 || per_class.is_empty() {
                word
            } else {
                let mut o = FastCt::default();
                for (out, (runs, &i)) in o.by_class.iter_mut().zip(per_class.iter().zip(&at[1..])) {
                    *out = runs[i].1;
                }
                // Only where every class is decided: the program then looks the packet up
                // once and is done; anywhere else the classifier makes the one lookup.
                match o.by_class.iter().all(|&w| w & FAST_FINAL != 0) {
                    true => match by_class.add(o) {
                        0 => 0,
                        i => FAST_BY_CLASS | i,
                    },
                    false => 0,
                }
            };
            words.push((class * FAST_KEYS) as usize + end, word);
            for (runs, i) in std::iter::once(&any).chain(&per_class).zip(at.iter_mut()) {
                if runs[*i].0 == end {
                    *i += 1;
                }
            }
            v = end;
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_merge_equal_runs_and_expand_in_order() {
        let mut w = Words::default();
        w.push(3, 7);
        w.push(5, 7);
        w.push(6, 1);
        assert_eq!(w.runs, vec![(5, 7), (6, 1)]);
        assert_eq!(w.len(), 6);
        assert_eq!(w.iter().collect::<Vec<_>>(), vec![7, 7, 7, 7, 7, 1]);
        // 7 7 | 7 7 | 7 1 (the odd pair packs low first).
        assert_eq!(
            w.pairs(),
            vec![(2, 7 | 7 << 32), (1, 7 | 1 << 32)],
            "{:?}",
            w.pairs()
        );
        let mut odd = w.clone();
        odd.push(7, 9);
        assert_eq!(odd.pairs().last(), Some(&(1, 9)));
        let each: Vec<Option<u32>> = (0..7).map(|i| w.get(i)).collect();
        assert_eq!(
            each,
            [7, 7, 7, 7, 7, 1]
                .map(Some)
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn ranges_intersect() {
        assert_eq!(intersect_all(vec![]), vec![(0, 65_535)]);
        assert_eq!(
            intersect_all(vec![vec![(0, 10), (20, 30)], vec![(5, 25)]]),
            vec![(5, 10), (20, 25)]
        );
        assert!(intersect_all(vec![vec![(0, 10)], vec![(11, 20)]]).is_empty());
    }

    /// The value of key `v` in `runs`.
    fn at<T: Copy>(runs: &Runs<T>, v: usize) -> T {
        runs.iter()
            .find(|(end, _)| v < *end)
            .expect("runs cover the keys")
            .1
    }

    #[test]
    fn first_entry_wins_each_value() {
        let a: Ranges = vec![(10, 20)];
        let b: Ranges = vec![(0, 65_535)];
        let c: Ranges = vec![(15, 15)];
        let first = first_covering([(0, &a), (1, &b), (2, &c)].into_iter());
        assert_eq!(at(&first, 9), Some(1));
        assert_eq!(at(&first, 10), Some(0));
        assert_eq!(at(&first, 15), Some(0));
        assert_eq!(at(&first, 20), Some(0));
        assert_eq!(at(&first, 21), Some(1));
        assert_eq!(at(&first, 65_535), Some(1));
        let first = first_covering([(2, &c)].into_iter());
        assert_eq!(at(&first, 14), None);
        assert_eq!(at(&first, 15), Some(2));
        assert_eq!(at(&first, 16), None);
        assert_eq!(first.last().map(|r| r.0), Some(65_536));
    }

    /// The runs against a value-by-value reading of the same entries, on random ranges.
    #[test]
    fn runs_agree_with_each_value() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = |n: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % u64::from(n)) as u32
        };
        for _ in 0..50 {
            let entries: Vec<Ranges> = (0..rand(8))
                .map(|_| {
                    (0..1 + rand(3))
                        .map(|_| {
                            let lo = rand(65_536);
                            (lo, (lo + rand(3_000)).min(65_535))
                        })
                        .collect()
                })
                .collect();
            let runs = first_covering(entries.iter().enumerate());
            for v in (0..65_536u32).step_by(7).chain([0, 65_535]) {
                let want = entries
                    .iter()
                    .position(|r| r.iter().any(|&(lo, hi)| lo <= v && v <= hi));
                assert_eq!(at(&runs, v as usize), want, "key {v} of {entries:?}");
            }
        }
    }
}
