//! A set's members as the kernel holds them: the value each member gets in the XDP trie,
//! and the elements of the netfilter set.
//!
//! In a `hash:net`, prefixes may nest (10.0.0.0/8 and 10.1.0.0/16), and with timeouts they
//! expire apart. An address is in the set while any member containing it is. The trie
//! answers with the longest prefix only, so each member's value is the latest expiry among
//! the members that contain it; netfilter's interval sets refuse overlapping intervals, so
//! the members become disjoint pieces, each with the latest expiry of the members over it.
//! Pieces never cross a top-level member's bounds, so a change within one top-level member
//! rewrites only that member's pieces.

use super::model::{containing, Member, Members, SetKind};
use crate::rules::Family;

/// A run of addresses (inclusive) with one protocol/port and expiry (0: never).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Piece {
    pub start: u128,
    pub end: u128,
    pub proto: u8,
    pub port: u16,
    pub expiry: u64,
}

/// 0 (never) as the latest of times.
fn later(a: u64, b: u64) -> u64 {
    if a == 0 || b == 0 {
        0
    } else {
        a.max(b)
    }
}

/// The trie values and the netfilter pieces of `members` (in `Members` order).
pub fn layout<'a>(
    members: impl Iterator<Item = (&'a Member, &'a u64)>,
    kind: SetKind,
    family: Family,
) -> (Vec<(Member, u64)>, Vec<Piece>) {
    if kind != SetKind::HashNet {
        let values: Vec<(Member, u64)> = members.map(|(m, e)| (*m, *e)).collect();
        let pieces = values
            .iter()
            .map(|(m, e)| Piece {
                start: m.addr,
                end: m.addr,
                proto: m.proto,
                port: m.port,
                expiry: *e,
            })
            .collect();
        return (values, pieces);
    }
    struct Open {
        start: u128,
        end: u128,
        expiry: u64,
        /// The first address of the member not yet in a piece; None past the last address.
        cursor: Option<u128>,
        top: usize,
    }
    let mut values = Vec::new();
    let mut pieces: Vec<(usize, Piece)> = Vec::new();
    let mut emit = |top: usize, start: u128, end: u128, expiry: u64| {
        if let Some((t, last)) = pieces.last_mut() {
            if *t == top && last.expiry == expiry && last.end.checked_add(1) == Some(start) {
                last.end = end;
                return;
            }
        }
        pieces.push((
            top,
            Piece {
                start,
                end,
                proto: 0,
                port: 0,
                expiry,
            },
        ));
    };
    let mut stack: Vec<Open> = Vec::new();
    let mut tops = 0;
    let close = |o: Open, emit: &mut dyn FnMut(usize, u128, u128, u64)| {
        if let Some(c) = o.cursor.filter(|c| *c <= o.end) {
            emit(o.top, c, o.end, o.expiry);
        }
    };
    for (m, own) in members {
        let (s, e) = m.range(family);
        while let Some(top) = stack.last() {
            if top.start <= s && e <= top.end {
                break;
            }
            if let Some(o) = stack.pop() {
                close(o, &mut emit);
            }
        }
        let (expiry, top) = match stack.last_mut() {
            Some(parent) => {
                if let Some(c) = parent.cursor.filter(|c| *c < s) {
                    emit(parent.top, c, s - 1, parent.expiry);
                }
                parent.cursor = e.checked_add(1);
                (later(*own, parent.expiry), parent.top)
            }
            None => {
                tops += 1;
                (*own, tops)
            }
        };
        values.push((*m, expiry));
        stack.push(Open {
            start: s,
            end: e,
            expiry,
            cursor: Some(s),
            top,
        });
    }
    while let Some(o) = stack.pop() {
        close(o, &mut emit);
    }
    (values, pieces.into_iter().map(|(_, p)| p).collect())
}

/// The addresses a change of `member` can affect the layout of: the range of the outermost
/// member of `members` containing it, or its own.
pub fn region(members: &Members, member: &Member, family: Family) -> (u128, u128) {
    containing(members, member, family)
        .next()
        .unwrap_or(*member)
        .range(family)
}

/// The members of `members` that lie within `range`.
pub fn within(
    members: &Members,
    range: (u128, u128),
) -> impl Iterator<Item = (&Member, &u64)> + '_ {
    let from = Member {
        addr: range.0,
        prefix: 0,
        proto: 0,
        port: 0,
    };
    let to = Member {
        addr: range.1,
        prefix: u8::MAX,
        proto: u8::MAX,
        port: u16::MAX,
    };
    members.range(from..=to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sets::model::parse_member;

    fn members(list: &[(&str, u64)]) -> Members {
        list.iter()
            .map(|(t, e)| {
                (
                    parse_member(t, SetKind::HashNet, Family::V4).unwrap()[0],
                    *e,
                )
            })
            .collect()
    }

    fn ip(text: &str) -> u128 {
        u32::from(text.parse::<std::net::Ipv4Addr>().unwrap()) as u128
    }

    #[test]
    fn nested_prefixes_without_timeouts_are_their_outermost() {
        let m = members(&[("10.0.0.0/8", 0), ("10.1.0.0/16", 0), ("11.0.0.0/24", 0)]);
        let (values, pieces) = layout(m.iter(), SetKind::HashNet, Family::V4);
        assert!(values.iter().all(|(_, e)| *e == 0));
        let spans: Vec<(u128, u128)> = pieces.iter().map(|p| (p.start, p.end)).collect();
        assert_eq!(
            spans,
            [
                (ip("10.0.0.0"), ip("10.255.255.255")),
                (ip("11.0.0.0"), ip("11.0.0.255"))
            ]
        );
    }

    #[test]
    fn nested_prefixes_expire_apart() {
        // The /8 expires at 100, the /16 inside it never, the /24 inside that at 50.
        let m = members(&[("10.0.0.0/8", 100), ("10.1.0.0/16", 0), ("10.1.2.0/24", 50)]);
        let (values, pieces) = layout(m.iter(), SetKind::HashNet, Family::V4);
        let v: Vec<u64> = values.iter().map(|(_, e)| *e).collect();
        // The /24 lives as long as the /16 around it.
        assert_eq!(v, [100, 0, 0]);
        let spans: Vec<(u128, u128, u64)> =
            pieces.iter().map(|p| (p.start, p.end, p.expiry)).collect();
        assert_eq!(
            spans,
            [
                (ip("10.0.0.0"), ip("10.0.255.255"), 100),
                (ip("10.1.0.0"), ip("10.1.255.255"), 0),
                (ip("10.2.0.0"), ip("10.255.255.255"), 100),
            ]
        );
    }

    #[test]
    fn adjacent_members_stay_apart() {
        let m = members(&[("10.0.0.0/24", 0), ("10.0.1.0/24", 0)]);
        let (_, pieces) = layout(m.iter(), SetKind::HashNet, Family::V4);
        assert_eq!(pieces.len(), 2);
    }

    #[test]
    fn a_region_is_the_outermost_member_around() {
        let m = members(&[("10.0.0.0/8", 0), ("10.1.0.0/16", 0)]);
        let inner = parse_member("10.1.2.0/24", SetKind::HashNet, Family::V4).unwrap()[0];
        assert_eq!(
            region(&m, &inner, Family::V4),
            (ip("10.0.0.0"), ip("10.255.255.255"))
        );
        assert_eq!(within(&m, region(&m, &inner, Family::V4)).count(), 2);
        let outside = parse_member("12.0.0.0/8", SetKind::HashNet, Family::V4).unwrap()[0];
        assert_eq!(
            region(&m, &outside, Family::V4),
            (ip("12.0.0.0"), ip("12.255.255.255"))
        );
    }
}
