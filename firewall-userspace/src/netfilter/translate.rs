//! A rule's matches as tests netfilter can run one after the other. An nftables rule is a
//! conjunction; what iptables expresses as a disjunction (a negated port range, a
//! multiport list, `--ports`) becomes several rules whose conditions are disjoint, so a
//! packet matches at most one of them and first-match order, jumps and RETURN behave
//! exactly as the single iptables rule does. Their counters are summed back per rule.

use thiserror::Error;

use crate::rules::{
    port_set, Cidr, Family, IcmpType, MultiportKind, Neg, PortRange, RuleSpec, TcpFlags,
    CT_ESTABLISHED, CT_INVALID, CT_NEW, CT_RELATED, CT_UNTRACKED,
};

/// One primitive test of an nftables rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Test {
    /// `iifname`/`oifname`; `prefix` compares only the name's bytes (`tun+`).
    Iface {
        out: bool,
        name: String,
        prefix: bool,
        equal: bool,
    },
    Addr {
        src: bool,
        cidr: Cidr,
        equal: bool,
    },
    Proto {
        proto: u8,
        equal: bool,
    },
    /// The transport port is in `min..=max`.
    Port {
        src: bool,
        min: u16,
        max: u16,
    },
    IcmpType {
        kind: u8,
        equal: bool,
    },
    IcmpCode {
        min: u8,
        max: u8,
    },
    TcpFlags {
        mask: u8,
        comp: u8,
        equal: bool,
    },
    /// `any`: the packet's state is one of `states`; otherwise none of them.
    CtState {
        states: u8,
        any: bool,
    },
}

/// The disjoint conjunctions a rule's matches become; empty when nothing can match.
pub type Alternatives = Vec<Vec<Test>>;

/// More nftables rules than this for one iptables rule is refused rather than installed.
pub const MAX_ALTERNATIVES: usize = 256;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TranslateError {
    #[error(
        "the rule needs {0} netfilter rules (at most {MAX_ALTERNATIVES}): split its port lists"
    )]
    TooManyAlternatives(usize),
    #[error(transparent)]
    Set(crate::sets::SetRefError),
}

/// Every way a packet can satisfy `spec`, as disjoint conjunctions of tests.
pub fn alternatives(spec: &RuleSpec, family: Family) -> Result<Alternatives, TranslateError> {
    let mut out: Alternatives = vec![Vec::new()];
    let fields: [Alternatives; 9] = [
        iface(&spec.in_iface, false),
        iface(&spec.out_iface, true),
        addr(&spec.src, true),
        addr(&spec.dst, false),
        single(spec.proto.as_ref().map(|p| Test::Proto {
            proto: p.value,
            equal: !p.negated,
        })),
        port(&spec.sport, true),
        port(&spec.dport, false),
        multiport(spec),
        icmp_flags_ct(spec, family),
    ];
    for field in fields {
        let mut next = Vec::new();
        for prefix in &out {
            for alt in &field {
                next.push(prefix.iter().chain(alt).cloned().collect());
            }
        }
        if next.len() > MAX_ALTERNATIVES {
            return Err(TranslateError::TooManyAlternatives(next.len()));
        }
        out = next;
    }
    Ok(out)
}

/// No condition: one empty conjunction. A single test: one conjunction of it.
fn single(test: Option<Test>) -> Alternatives {
    vec![test.into_iter().collect()]
}

fn iface(m: &Option<Neg<String>>, out: bool) -> Alternatives {
    let Some(m) = m else {
        return single(None);
    };
    let (name, prefix) = match m.value.strip_suffix('+') {
        Some(p) => (p, true),
        None => (m.value.as_str(), false),
    };
    if prefix && name.is_empty() {
        // `+` matches every name; `! -i +` none.
        return if m.negated { vec![] } else { single(None) };
    }
    single(Some(Test::Iface {
        out,
        name: name.to_string(),
        prefix,
        equal: !m.negated,
    }))
}

fn addr(m: &Option<Neg<Cidr>>, src: bool) -> Alternatives {
    single(m.as_ref().and_then(|m| {
        // A /0 is no condition; iptables drops it the same way.
        (m.value.prefix > 0).then_some(Test::Addr {
            src,
            cidr: m.value,
            equal: !m.negated,
        })
    }))
}

fn port_tests(ranges: &[PortRange], src: bool) -> Alternatives {
    ranges
        .iter()
        .map(|r| {
            vec![Test::Port {
                src,
                min: r.min,
                max: r.max,
            }]
        })
        .collect()
}

fn port(m: &Option<Neg<PortRange>>, src: bool) -> Alternatives {
    match m {
        None => single(None),
        Some(m) => port_tests(&port_set(&[m.value], m.negated), src),
    }
}

fn multiport(spec: &RuleSpec) -> Alternatives {
    let Some(m) = &spec.multiport else {
        return single(None);
    };
    let list = &m.value.ports;
    match m.value.kind {
        MultiportKind::Sports => port_tests(&port_set(list, m.negated), true),
        MultiportKind::Dports => port_tests(&port_set(list, m.negated), false),
        MultiportKind::Ports => {
            let hit = port_set(list, false);
            let miss = port_set(list, true);
            let both = |s: &[PortRange], d: &[PortRange]| -> Alternatives {
                let mut out = Vec::new();
                for a in port_tests(s, true) {
                    for b in port_tests(d, false) {
                        out.push(a.iter().chain(&b).cloned().collect());
                    }
                }
                out
            };
            if m.negated {
                // Neither port in the list.
                both(&miss, &miss)
            } else {
                // The source port in the list, or else the destination port.
                let mut out = port_tests(&hit, true);
                out.extend(both(&miss, &hit));
                out
            }
        }
    }
}

/// ICMP type, TCP flags and conntrack state: at most one alternative set is not trivial
/// (ICMP splits), so they share one product step.
fn icmp_flags_ct(spec: &RuleSpec, family: Family) -> Alternatives {
    let mut out = icmp(&spec.icmp, family);
    let mut extra = Vec::new();
    if let Some(f) = &spec.tcp_flags {
        extra.push(tcp_flags(f));
    }
    if let Some(c) = &spec.ctstate {
        extra.push(Test::CtState {
            states: c.value.states,
            any: !c.negated,
        });
    }
    for alt in &mut out {
        alt.extend(extra.iter().cloned());
    }
    out
}

fn tcp_flags(f: &Neg<TcpFlags>) -> Test {
    Test::TcpFlags {
        mask: f.value.mask,
        comp: f.value.comp,
        equal: !f.negated,
    }
}

fn icmp(m: &Option<Neg<IcmpType>>, family: Family) -> Alternatives {
    let Some(m) = m else {
        return single(None);
    };
    let t = m.value;
    if family == Family::V4 && t.kind == 255 {
        // `any`: every ICMP packet, or none.
        return if m.negated { vec![] } else { single(None) };
    }
    let kind = |equal| Test::IcmpType {
        kind: t.kind,
        equal,
    };
    let all_codes = t.code_min == 0 && t.code_max == u8::MAX;
    if !m.negated {
        let mut alt = vec![kind(true)];
        if !all_codes {
            alt.push(Test::IcmpCode {
                min: t.code_min,
                max: t.code_max,
            });
        }
        return vec![alt];
    }
    let mut out = vec![vec![kind(false)]];
    if t.code_min > 0 {
        out.push(vec![
            kind(true),
            Test::IcmpCode {
                min: 0,
                max: t.code_min - 1,
            },
        ]);
    }
    if t.code_max < u8::MAX {
        out.push(vec![
            kind(true),
            Test::IcmpCode {
                min: t.code_max + 1,
                max: u8::MAX,
            },
        ]);
    }
    out
}

/// nftables' `ct state` bits for the model's conntrack states.
pub fn nft_ct_bits(states: u8) -> u32 {
    [
        (CT_INVALID, 1),
        (CT_ESTABLISHED, 2),
        (CT_RELATED, 4),
        (CT_NEW, 8),
        (CT_UNTRACKED, 64),
    ]
    .into_iter()
    .filter(|(ours, _)| states & ours != 0)
    .map(|(_, nft)| nft)
    .fold(0, |a, b| a | b)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::rules::{
        eval::{matches, PacketView},
        iface_matches,
        parse::{parse_args, Command},
    };

    /// What netfilter would decide for one test, written from nftables' semantics, not
    /// from the model's (that is what is being compared).
    fn holds(t: &Test, p: &PacketView, ct: u8) -> bool {
        match t {
            Test::Iface {
                out,
                name,
                prefix,
                equal,
            } => {
                let actual = if *out {
                    p.out_iface.clone().unwrap_or_default()
                } else {
                    p.iface.clone()
                };
                let hit = if *prefix {
                    actual.as_bytes().starts_with(name.as_bytes())
                } else {
                    actual == *name
                };
                hit == *equal
            }
            Test::Addr { src, cidr, equal } => {
                let a: IpAddr = if *src { p.src } else { p.dst };
                let host = Cidr {
                    addr: a,
                    prefix: cidr.family().max_prefix(),
                };
                cidr.contains(&host) == *equal
            }
            Test::Proto { proto, equal } => (p.proto == *proto) == *equal,
            // A packet without ports (non-first fragment) breaks the rule.
            Test::Port { src, min, max } => p.ports.is_some_and(|(s, d)| {
                let v = if *src { s } else { d };
                *min <= v && v <= *max
            }),
            Test::IcmpType { kind, equal } => p.icmp.is_some_and(|(k, _)| (k == *kind) == *equal),
            Test::IcmpCode { min, max } => p.icmp.is_some_and(|(_, c)| *min <= c && c <= *max),
            Test::TcpFlags { mask, comp, equal } => {
                p.tcp_flags.is_some_and(|f| ((f & mask) == *comp) == *equal)
            }
            Test::CtState { states, any } => ((ct & states) != 0) == *any,
        }
    }

    fn specs(line: &str) -> Vec<RuleSpec> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        match parse_args(&args)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .command
        {
            Command::Append(_, specs) => specs,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn packets(family: Family) -> Vec<PacketView> {
        let addrs: Vec<IpAddr> = match family {
            Family::V4 => ["10.0.0.1", "10.0.1.7", "192.168.5.5"],
            Family::V6 => ["2001:db8::1", "2001:db8:1::7", "fe80::5"],
        }
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let icmp_proto = if family == Family::V4 { 1 } else { 58 };
        let mut out = Vec::new();
        for (i, iface) in ["eth0", "tun3", "lo"].iter().enumerate() {
            for (j, &src) in addrs.iter().enumerate() {
                let dst = addrs[(j + 1) % addrs.len()];
                let base = PacketView {
                    family,
                    iface: iface.to_string(),
                    out_iface: (i == 1).then(|| "eth1".to_string()),
                    src,
                    dst,
                    proto: 6,
                    ports: None,
                    tcp_flags: None,
                    icmp: None,
                    ct_state: None,
                    fragment: false,
                };
                for (s, d) in [(22, 80), (80, 22), (1024, 443), (53, 53), (65535, 0)] {
                    for flags in [0x02u8, 0x12, 0x10] {
                        out.push(PacketView {
                            ports: Some((s, d)),
                            tcp_flags: Some(flags),
                            ..base.clone()
                        });
                    }
                    out.push(PacketView {
                        proto: 17,
                        ports: Some((s, d)),
                        ..base.clone()
                    });
                }
                for icmp in [(8, 0), (3, 3), (3, 1), (0, 0), (128, 0)] {
                    out.push(PacketView {
                        proto: icmp_proto,
                        icmp: Some(icmp),
                        ..base.clone()
                    });
                }
                // A non-first fragment: no ports, flags or ICMP header.
                out.push(base.clone());
            }
        }
        out
    }

    /// Every rule form fwctl accepts: the disjoint alternatives match exactly the packets
    /// the model's semantics match, and never two at once.
    #[test]
    fn alternatives_match_what_the_rule_matches() {
        let lines = [
            "-A INPUT -i eth0 -j ACCEPT",
            "-A INPUT ! -i eth0 -j ACCEPT",
            "-A INPUT -i tun+ -j ACCEPT",
            "-A INPUT ! -i tun+ -j DROP",
            "-A INPUT -i + -j DROP",
            "-A FORWARD -o eth1 -j DROP",
            "-A FORWARD ! -o eth+ -j DROP",
            "-A INPUT -s 10.0.0.0/24 -j DROP",
            "-A INPUT ! -s 10.0.0.0/16 ! -d 10.0.1.0/24 -j DROP",
            "-A INPUT -p tcp --dport 22 -j ACCEPT",
            "-A INPUT -p tcp ! --dport 22 -j ACCEPT",
            "-A INPUT -p udp --sport 50:60 -j ACCEPT",
            "-A INPUT -p udp ! --sport 50:60 -j ACCEPT",
            "-A INPUT ! -p tcp -j DROP",
            "-A INPUT -p tcp -m multiport --dports 22,80,443,80:90 -j ACCEPT",
            "-A INPUT -p tcp -m multiport ! --dports 22,80 -j ACCEPT",
            "-A INPUT -p tcp -m multiport --ports 22,80 -j ACCEPT",
            "-A INPUT -p tcp -m multiport ! --ports 22,80 -j ACCEPT",
            "-A INPUT -p tcp -m multiport --sports 0:1023 -j ACCEPT",
            "-A INPUT -p icmp --icmp-type echo-request -j ACCEPT",
            "-A INPUT -p icmp ! --icmp-type echo-request -j ACCEPT",
            "-A INPUT -p icmp --icmp-type port-unreachable -j ACCEPT",
            "-A INPUT -p icmp ! --icmp-type port-unreachable -j ACCEPT",
            "-A INPUT -p icmp --icmp-type any -j ACCEPT",
            "-A INPUT -p icmp ! --icmp-type any -j ACCEPT",
            "-A INPUT -p tcp --syn -j DROP",
            "-A INPUT -p tcp ! --syn -j DROP",
            "-A INPUT -p tcp --tcp-flags SYN,ACK SYN,ACK -j DROP",
            "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
            "-A INPUT -m conntrack ! --ctstate NEW -j ACCEPT",
            "-A INPUT -m state --state NEW -p tcp --dport 22 -j ACCEPT",
        ];
        let v6_lines = [
            "-6 -A INPUT -s 2001:db8::/32 -p ipv6-icmp --icmpv6-type echo-request -j ACCEPT",
            "-6 -A INPUT ! -d 2001:db8:1::/48 -p icmpv6 ! --icmpv6-type destination-unreachable -j ACCEPT",
        ];
        let mut checked = 0;
        for (family, lines) in [(Family::V4, &lines[..]), (Family::V6, &v6_lines[..])] {
            let packets = packets(family);
            for line in lines {
                for spec in specs(line) {
                    let alts = alternatives(&spec, family).unwrap();
                    for p in &packets {
                        for ct in [CT_NEW, CT_ESTABLISHED, CT_RELATED, CT_INVALID] {
                            let seen = PacketView {
                                ct_state: Some(ct),
                                ..p.clone()
                            };
                            let model = matches(&spec, &seen);
                            let hits = alts
                                .iter()
                                .filter(|alt| alt.iter().all(|t| holds(t, p, ct)))
                                .count();
                            assert!(hits <= 1, "{line}: {hits} alternatives hold for {p:?}");
                            assert_eq!(hits == 1, model, "{line}: {p:?} ct {ct}: {alts:?}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
        // The model's interface semantics agree with the prefix compare used here.
        assert!(iface_matches("tun+", "tun3") && !iface_matches("tun+", "eth0"));
    }

    #[test]
    fn ct_bits_follow_nftables() {
        assert_eq!(nft_ct_bits(CT_ESTABLISHED | CT_RELATED), 6);
        assert_eq!(nft_ct_bits(CT_NEW), 8);
        assert_eq!(nft_ct_bits(CT_INVALID | CT_UNTRACKED), 65);
    }

    #[test]
    fn explosive_port_lists_are_refused() {
        let spec = &specs(
            "-A INPUT -p tcp ! --sport 5:6 -m multiport ! --ports 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29 -j DROP",
        )[0];
        assert!(matches!(
            alternatives(spec, Family::V4),
            Err(TranslateError::TooManyAlternatives(_))
        ));
    }
}
