//! One meter per rate limit. A limit's tokens live twice: in XDP's bucket (`FW_BUCKETS`,
//! `FW_HASHLIMIT`) and in netfilter's `limit` / meter set. A packet XDP checks against its
//! bucket must never be checked by netfilter's as well, nor the other way round, or a
//! packet XDP found over the limit, deferred by a later rule (a REJECT, a LOG, a state XDP
//! cannot be sure of), would find netfilter's bucket full and be accepted where iptables,
//! with one bucket, goes on to the next rule.
//!
//! So a metered entry stays at XDP only if no DEFER entry of its table can take a packet
//! it could also match, earlier or later: otherwise it becomes a DEFER itself, and
//! netfilter's bucket is the only one those packets meet. Turning entries into DEFERs can
//! overlap others, hence the repeat until nothing changes. Overlap is judged field by
//! field and errs towards "may overlap" (which only costs speed).

use firewall_common::{GUARD_HASHLIMIT, GUARD_LIMIT, NO_COUNTER, VERDICT_DEFER};

use super::flatten::{Conds, Flat, PortCond};
use crate::rules::{Cidr, Neg};

pub fn one_per_limit(flats: &mut [Flat]) {
    loop {
        let defers: Vec<Conds> = flats
            .iter()
            .filter(|f| f.entry.action == VERDICT_DEFER)
            .map(|f| f.conds.clone())
            .collect();
        let mut changed = false;
        for flat in flats.iter_mut() {
            if flat.entry.action == VERDICT_DEFER || !metered(&flat.conds) {
                continue;
            }
            if defers.iter().any(|d| may_overlap(&flat.conds, d)) {
                flat.entry.action = VERDICT_DEFER;
                flat.entry.counter = NO_COUNTER;
                // A DEFER takes every packet its fields match; netfilter checks the rest.
                flat.conds.guards.clear();
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

fn metered(conds: &Conds) -> bool {
    conds
        .guards
        .iter()
        .any(|g| g.guard.kind == GUARD_LIMIT || g.guard.kind == GUARD_HASHLIMIT)
}

/// Whether some packet could satisfy both: false only when a field rules it out.
fn may_overlap(a: &Conds, b: &Conds) -> bool {
    if let (Some(x), Some(y)) = (a.classes, b.classes) {
        if x & y == 0 {
            return false;
        }
    }
    let exact =
        |v: &[Neg<u8>]| -> Vec<u8> { v.iter().filter(|p| !p.negated).map(|p| p.value).collect() };
    let (pa, pb) = (exact(&a.proto), exact(&b.proto));
    if pa.iter().any(|p| pb.iter().any(|q| p != q)) {
        return false;
    }
    ports_meet(&a.dport, &b.dport)
        && ports_meet(&a.sport, &b.sport)
        && cidrs_meet(&a.src, &b.src)
        && cidrs_meet(&a.dst, &b.dst)
        && names_meet(&a.iface, &b.iface)
        && names_meet(&a.oiface, &b.oiface)
}

/// Every condition of both lists is one more range set a port must be in.
fn ports_meet(a: &[PortCond], b: &[PortCond]) -> bool {
    let all: Vec<&PortCond> = a.iter().chain(b).collect();
    for (i, x) in all.iter().enumerate() {
        for y in &all[i + 1..] {
            let meet = x
                .ranges
                .iter()
                .any(|r| y.ranges.iter().any(|s| r.min <= s.max && s.min <= r.max));
            if !meet {
                return false;
            }
        }
    }
    true
}

/// Two prefixes meet when one contains the other.
fn cidrs_meet(a: &[Neg<Cidr>], b: &[Neg<Cidr>]) -> bool {
    let plain = |v: &[Neg<Cidr>]| -> Vec<Cidr> {
        v.iter().filter(|c| !c.negated).map(|c| c.value).collect()
    };
    let all: Vec<Cidr> = plain(a).into_iter().chain(plain(b)).collect();
    all.iter()
        .enumerate()
        .all(|(i, x)| all[i + 1..].iter().all(|y| x.contains(y) || y.contains(x)))
}

/// Interface names as `-i` takes them (`eth+` a prefix): two meet when one can name the
/// other's interface.
fn names_meet(a: &[Neg<String>], b: &[Neg<String>]) -> bool {
    let plain = |v: &[Neg<String>]| -> Vec<String> {
        v.iter()
            .filter(|n| !n.negated)
            .map(|n| n.value.clone())
            .collect()
    };
    let all: Vec<String> = plain(a).into_iter().chain(plain(b)).collect();
    let covers = |pattern: &str, name: &str| match pattern.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix) || prefix.starts_with(name.trim_end_matches('+')),
        None => pattern == name,
    };
    all.iter()
        .enumerate()
        .all(|(i, x)| all[i + 1..].iter().all(|y| covers(x, y) || covers(y, x)))
}
