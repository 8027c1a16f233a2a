//! For each field, the bitmap of entries whose conditions on that field a value satisfies,
//! for every value that can occur: per value for small domains, per elementary interval for
//! ports and ICMP type/code, per prefix of the LPM trie for addresses.

use rustc_hash::FxHashMap as HashMap;

use super::{
    flatten::{Flat, PortCond},
    pool::{Bits, Pool},
};
use crate::rules::{iface_matches, Cidr, Family, IcmpType, Neg};

/// Bitmap of the entries for which `holds` is true.
pub fn bits_where(flats: &[Flat], holds: impl Fn(&Flat) -> bool) -> Bits {
    let mut bits = Bits::new(flats.len());
    for (i, f) in flats.iter().enumerate() {
        if holds(f) {
            bits.set(i, true);
        }
    }
    bits
}

/// Value -> bitmap offset for a small domain (protocols, TCP flag bytes). `holds` is asked
/// once per distinct `key`, not once per entry, so it must depend on nothing of an entry
/// but what its key says. Entries mostly share
/// a handful of conditions on a field (`-p tcp`, none), so a 10,000-entry table with
/// conntrack classes costs ~40,000 calls instead of 10,000,000, and the same bitmaps.
pub fn per_value<K: std::hash::Hash + Eq>(
    flats: &[Flat],
    pool: &mut Pool,
    domain: u32,
    key: impl Fn(&Flat) -> K,
    holds: impl Fn(&Flat, u32) -> bool,
) -> Vec<u32> {
    // Each distinct key: an entry that has it, and every entry that has it.
    let mut groups: HashMap<K, (usize, Vec<usize>)> = HashMap::default();
    for (e, f) in flats.iter().enumerate() {
        groups
            .entry(key(f))
            .or_insert_with(|| (e, Vec::new()))
            .1
            .push(e);
    }
    let groups: Vec<(usize, Vec<usize>)> = groups.into_values().collect();
    (0..domain)
        .map(|v| {
            let mut bits = Bits::new(flats.len());
            for (first, members) in &groups {
                if holds(&flats[*first], v) {
                    for &e in members {
                        bits.set(e, true);
                    }
                }
            }
            pool.add(&bits)
        })
        .collect()
}

/// Inclusive ranges of a domain of 65536 values.
pub type Ranges = Vec<(u32, u32)>;

/// Value -> bitmap offset over 0..65536, where each entry's conditions are lists of ranges
/// (the value must be in some range of every condition). One sweep over range boundaries,
/// so the cost follows the number of ranges, not the domain times the entries.
pub fn per_interval(
    flats: &[Flat],
    pool: &mut Pool,
    conds: impl Fn(&Flat) -> Vec<Ranges>,
) -> Vec<u32> {
    const DOMAIN: u32 = 65_536;
    let mut need = vec![0usize; flats.len()];
    let mut events: Vec<(u32, usize, usize, i32)> = Vec::new(); // (at, entry, cond, delta)
    let mut cond_ids = 0usize;
    for (e, f) in flats.iter().enumerate() {
        let cs = conds(f);
        need[e] = cs.len();
        for ranges in cs {
            for (lo, hi) in ranges {
                events.push((lo, e, cond_ids, 1));
                if hi + 1 < DOMAIN {
                    events.push((hi + 1, e, cond_ids, -1));
                }
            }
            cond_ids += 1;
        }
    }
    events.sort_unstable_by_key(|ev| ev.0);
    let mut cover = vec![0i32; cond_ids];
    let mut sat = vec![0usize; flats.len()];
    let mut bits = Bits::new(flats.len());
    for (e, n) in need.iter().enumerate() {
        if *n == 0 {
            bits.set(e, true);
        }
    }
    let mut table = vec![0u32; DOMAIN as usize];
    let mut i = 0;
    let mut start = 0u32;
    while start < DOMAIN {
        while i < events.len() && events[i].0 == start {
            let (_, e, c, delta) = events[i];
            let before = cover[c] > 0;
            cover[c] += delta;
            let after = cover[c] > 0;
            if before != after {
                if after {
                    sat[e] += 1;
                } else {
                    sat[e] -= 1;
                }
                bits.set(e, sat[e] == need[e]);
            }
            i += 1;
        }
        let end = events.get(i).map_or(DOMAIN, |ev| ev.0);
        let at = pool.add(&bits);
        table[start as usize..end as usize].fill(at);
        start = end;
    }
    table
}

pub fn port_ranges(conds: &[PortCond]) -> Vec<Ranges> {
    conds
        .iter()
        .map(|c| {
            c.ranges
                .iter()
                .map(|r| (r.min as u32, r.max as u32))
                .collect()
        })
        .collect()
}

/// ICMP conditions as ranges of `type << 8 | code`; `any` (type 255 on IPv4) is everything.
pub fn icmp_ranges(conds: &[Neg<IcmpType>], family: Family) -> Vec<Ranges> {
    conds
        .iter()
        .map(|c| {
            let t = c.value;
            let any = family == Family::V4 && t.kind == 255;
            let inside: Ranges = if any {
                vec![(0, 65_535)]
            } else {
                let base = (t.kind as u32) << 8;
                vec![(base | t.code_min as u32, base | t.code_max as u32)]
            };
            if !c.negated {
                return inside;
            }
            let (lo, hi) = inside[0];
            let mut out = Vec::new();
            if lo > 0 {
                out.push((0, lo - 1));
            }
            if hi < 65_535 {
                out.push((hi + 1, 65_535));
            }
            out
        })
        .collect()
}

pub fn iface_holds(conds: &[Neg<String>], name: &str) -> bool {
    conds
        .iter()
        .all(|c| iface_matches(&c.value, name) != c.negated)
}

/// Bitmap offset per prefix of the LPM trie. An address's longest matching prefix P
/// satisfies a condition `-s Q` exactly when Q contains P (every condition prefix is in the
/// trie, so Q is either an ancestor of P or misses all of P's addresses), and `! -s Q` when
/// it does not.
pub fn per_prefix(
    flats: &[Flat],
    pool: &mut Pool,
    family: Family,
    conds: impl Fn(&Flat) -> &Vec<Neg<Cidr>>,
) -> Vec<(Cidr, u32)> {
    let mut index: HashMap<(u8, u128), Vec<(usize, bool)>> = HashMap::default();
    let mut positives = vec![0usize; flats.len()];
    let mut base = Bits::new(flats.len());
    for (e, f) in flats.iter().enumerate() {
        for c in conds(f) {
            index
                .entry((c.value.prefix, c.value.bits()))
                .or_default()
                .push((e, c.negated));
            if !c.negated {
                positives[e] += 1;
            }
        }
        // With no prefix of its own in play, an entry passes unless it needs one.
        base.set(e, positives[e] == 0);
    }
    let any = Cidr {
        addr: match family {
            Family::V4 => std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            Family::V6 => std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        },
        prefix: 0,
    };
    let mut prefixes: Vec<Cidr> = flats
        .iter()
        .flat_map(|f| conds(f).iter().map(|c| c.value))
        .collect();
    prefixes.push(any);
    prefixes.sort_by_key(|c| (c.prefix, c.bits()));
    prefixes.dedup();

    let mut pos_hits = vec![0usize; flats.len()];
    let mut neg_hits = vec![0usize; flats.len()];
    let mut out = Vec::with_capacity(prefixes.len());
    for p in prefixes {
        let mut touched = Vec::new();
        for len in 0..=p.prefix {
            let mask = u128::MAX.checked_shl(128 - len as u32).unwrap_or(0);
            if let Some(list) = index.get(&(len, p.bits() & mask)) {
                for &(e, negated) in list {
                    if negated {
                        neg_hits[e] += 1;
                    } else {
                        pos_hits[e] += 1;
                    }
                    touched.push(e);
                }
            }
        }
        let mut bits = base.clone();
        for &e in &touched {
            bits.set(e, pos_hits[e] == positives[e] && neg_hits[e] == 0);
        }
        for &e in &touched {
            pos_hits[e] = 0;
            neg_hits[e] = 0;
        }
        out.push((p, pool.add(&bits)));
    }
    out
}
