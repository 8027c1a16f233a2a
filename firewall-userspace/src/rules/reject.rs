//! `-j REJECT [--reject-with TYPE]`: what goes back to the sender, with iptables' and
//! ip6tables' names for it (libipt_REJECT.c, libip6t_REJECT.c in iptables 1.8.9).
//!
//! Netfilter sends the answer (netfilter/exprs.rs `reject`: the ICMP or ICMPv6 code below,
//! or a TCP reset); XDP leaves REJECT rules to it.

use serde::{Deserialize, Serialize};

use super::Family;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectWith {
    /// ICMP 3/0; ICMPv6 1/0 (no route).
    NetUnreachable,
    /// ICMP 3/1; ICMPv6 1/3 (address unreachable).
    HostUnreachable,
    /// ICMP 3/3; ICMPv6 1/4: the default.
    PortUnreachable,
    /// ICMP 3/2. IPv4 only.
    ProtoUnreachable,
    /// ICMP 3/9. IPv4 only.
    NetProhibited,
    /// ICMP 3/10 (RHEL's and CentOS's default last rule). IPv4 only.
    HostProhibited,
    /// ICMP 3/13; ICMPv6 1/1.
    AdminProhibited,
    TcpReset,
    /// ICMPv6 1/5 (source address failed ingress/egress policy). IPv6 only.
    PolicyFail,
    /// ICMPv6 1/6 (reject route to destination). IPv6 only.
    RejectRoute,
}

/// One type as a tool names it: listed name, alias, and the ICMP(v6) destination
/// unreachable code sent (None: a TCP reset).
struct Name {
    with: RejectWith,
    name: &'static str,
    alias: &'static str,
    code: Option<u8>,
}

const fn n(with: RejectWith, name: &'static str, alias: &'static str, code: Option<u8>) -> Name {
    Name {
        with,
        name,
        alias,
        code,
    }
}

/// iptables' table, in its order: a prefix picks the first entry it fits.
const V4: [Name; 8] = [
    n(
        RejectWith::NetUnreachable,
        "icmp-net-unreachable",
        "net-unreach",
        Some(0),
    ),
    n(
        RejectWith::HostUnreachable,
        "icmp-host-unreachable",
        "host-unreach",
        Some(1),
    ),
    n(
        RejectWith::ProtoUnreachable,
        "icmp-proto-unreachable",
        "proto-unreach",
        Some(2),
    ),
    n(
        RejectWith::PortUnreachable,
        "icmp-port-unreachable",
        "port-unreach",
        Some(3),
    ),
    n(
        RejectWith::NetProhibited,
        "icmp-net-prohibited",
        "net-prohib",
        Some(9),
    ),
    n(
        RejectWith::HostProhibited,
        "icmp-host-prohibited",
        "host-prohib",
        Some(10),
    ),
    n(RejectWith::TcpReset, "tcp-reset", "tcp-rst", None),
    n(
        RejectWith::AdminProhibited,
        "icmp-admin-prohibited",
        "admin-prohib",
        Some(13),
    ),
];

/// ip6tables' table, in its order.
const V6: [Name; 7] = [
    n(
        RejectWith::NetUnreachable,
        "icmp6-no-route",
        "no-route",
        Some(0),
    ),
    n(
        RejectWith::AdminProhibited,
        "icmp6-adm-prohibited",
        "adm-prohibited",
        Some(1),
    ),
    n(
        RejectWith::HostUnreachable,
        "icmp6-addr-unreachable",
        "addr-unreach",
        Some(3),
    ),
    n(
        RejectWith::PortUnreachable,
        "icmp6-port-unreachable",
        "port-unreach",
        Some(4),
    ),
    n(RejectWith::TcpReset, "tcp-reset", "tcp-reset", None),
    n(
        RejectWith::PolicyFail,
        "icmp6-policy-fail",
        "policy-fail",
        Some(5),
    ),
    n(
        RejectWith::RejectRoute,
        "icmp6-reject-route",
        "reject-route",
        Some(6),
    ),
];

fn table(family: Family) -> &'static [Name] {
    match family {
        Family::V4 => &V4,
        Family::V6 => &V6,
    }
}

impl RejectWith {
    fn entry(self, family: Family) -> Option<&'static Name> {
        table(family).iter().find(|e| e.with == self)
    }

    /// The name `-L`, `-S` and save print; None for a type the family does not have (the
    /// parser never makes one).
    pub fn name(self, family: Family) -> &'static str {
        self.entry(family)
            .map_or("icmp-port-unreachable", |e| e.name)
    }

    /// As iptables reads `--reject-with`: the first type whose name or alias starts with
    /// `text`, ignoring case (`host-prohib`, `ICMP-HOST`, even `net`).
    pub fn from_name(text: &str, family: Family) -> Option<RejectWith> {
        let fits =
            |full: &str| full.len() >= text.len() && full[..text.len()].eq_ignore_ascii_case(text);
        table(family)
            .iter()
            .find(|e| fits(e.name) || fits(e.alias))
            .map(|e| e.with)
    }

    /// The destination unreachable code netfilter sends (ICMP type 3, or ICMPv6 type 1);
    /// None for a TCP reset.
    pub fn icmp_code(self, family: Family) -> Option<u8> {
        self.entry(family).and_then(|e| e.code)
    }

    /// Every type of `family`, for tests and help.
    pub fn all(family: Family) -> impl Iterator<Item = RejectWith> {
        table(family).iter().map(|e| e.with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What iptables 1.8.9 saved for each `--reject-with` given (run in a namespace).
    #[test]
    fn names_read_and_print_as_iptables() {
        let v4 = [
            ("icmp-host-prohibited", "icmp-host-prohibited"),
            ("host-prohib", "icmp-host-prohibited"),
            ("icmp-net-prohibited", "icmp-net-prohibited"),
            ("net-prohib", "icmp-net-prohibited"),
            ("icmp-admin-prohibited", "icmp-admin-prohibited"),
            ("ICMP-HOST", "icmp-host-unreachable"),
            ("icmp-host-u", "icmp-host-unreachable"),
            ("tcp-rst", "tcp-reset"),
            ("net", "icmp-net-unreachable"),
            ("port", "icmp-port-unreachable"),
            ("proto", "icmp-proto-unreachable"),
            ("", "icmp-net-unreachable"),
        ];
        for (given, saved) in v4 {
            let with = RejectWith::from_name(given, Family::V4).unwrap();
            assert_eq!(with.name(Family::V4), saved, "{given}");
        }
        let v6 = [
            ("no-route", "icmp6-no-route"),
            ("adm-prohibited", "icmp6-adm-prohibited"),
            ("addr-unreach", "icmp6-addr-unreachable"),
            ("port-unreach", "icmp6-port-unreachable"),
            ("tcp-reset", "tcp-reset"),
            ("policy-fail", "icmp6-policy-fail"),
            ("icmp6-reject-route", "icmp6-reject-route"),
            ("reject-route", "icmp6-reject-route"),
        ];
        for (given, saved) in v6 {
            let with = RejectWith::from_name(given, Family::V6).unwrap();
            assert_eq!(with.name(Family::V6), saved, "{given}");
        }
        for bad in ["icmp-host-prohibited", "icmp-port-unreachable", "nope"] {
            assert_eq!(RejectWith::from_name(bad, Family::V6), None, "{bad}");
        }
        assert_eq!(RejectWith::from_name("icmp6-no-route", Family::V4), None);
    }

    #[test]
    fn every_type_has_its_code() {
        let codes: Vec<Option<u8>> = RejectWith::all(Family::V4)
            .map(|w| w.icmp_code(Family::V4))
            .collect();
        assert_eq!(
            codes,
            [
                Some(0),
                Some(1),
                Some(2),
                Some(3),
                Some(9),
                Some(10),
                None,
                Some(13)
            ]
        );
        let codes: Vec<Option<u8>> = RejectWith::all(Family::V6)
            .map(|w| w.icmp_code(Family::V6))
            .collect();
        assert_eq!(
            codes,
            [Some(0), Some(1), Some(3), Some(4), None, Some(5), Some(6)]
        );
    }
}
