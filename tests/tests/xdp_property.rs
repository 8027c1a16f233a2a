//! Random rulesets and random packets: the XDP classifier (through BPF_PROG_TEST_RUN) must
//! give the verdict of the reference evaluator (iptables' semantics on the rule model), and
//! move exactly the counters it says: every rule met, jumps included, or the policy. Each
//! packet comes with a (faked) conntrack lookup result: where it makes the state certain
//! (`xdp_ct_state`), rules on conntrack state are judged at XDP as netfilter would; where
//! not, they defer: XDP passes the packet marked "judged, not accepted" and counts nothing.
//! Deterministic: a fixed seed, so a failure prints a ruleset that reproduces it.

use std::{collections::BTreeMap, net::IpAddr};

use firewall_common::{
    policy_counter, xdp_meta, CHAIN_INPUT, CT_FAKE_ERROR, CT_FAKE_FOUND, CT_FAKE_REPLY,
    CT_FAKE_STATUS_SHIFT, IPS_EXPECTED, IPS_SEEN_REPLY,
};
use fwctl::compile::CompileError;
use fwctl::rules::{
    edit::Editor,
    eval::{evaluate, xdp_ct_state, CtLookup, Decision, PacketView},
    Chain, Cidr, CtState, Family, IcmpType, LogOpts, Multiport, MultiportKind, Neg, PortRange,
    RejectWith, RuleSpec, Ruleset, Target, TcpFlags, Verdict, CT_ESTABLISHED, CT_INVALID, CT_NEW,
    CT_RELATED,
};
use tests::{
    packets::{Packet, L4},
    program::{Harness, Judged, LO_IFINDEX, XDP_DROP, XDP_PASS},
};

/// xorshift64*: small, deterministic, good enough to pick from lists.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

fn cidr(s: &str) -> Cidr {
    let (a, p) = s.split_once('/').unwrap();
    Cidr {
        addr: a.parse().unwrap(),
        prefix: p.parse().unwrap(),
    }
}

struct Universe {
    family: Family,
    prefixes: Vec<Cidr>,
    addrs: Vec<IpAddr>,
    icmp_proto: u8,
    icmp_types: Vec<IcmpType>,
    icmp_values: Vec<(u8, u8)>,
}

fn universe(family: Family) -> Universe {
    match family {
        Family::V4 => Universe {
            family,
            prefixes: [
                "10.0.0.0/8",
                "10.1.0.0/16",
                "10.1.2.3/32",
                "192.168.0.0/16",
                "10.1.2.0/24",
            ]
            .map(cidr)
            .to_vec(),
            addrs: [
                "10.1.2.3",
                "10.1.9.9",
                "10.200.0.1",
                "192.168.1.1",
                "8.8.8.8",
            ]
            .map(|a| a.parse().unwrap())
            .to_vec(),
            icmp_proto: 1,
            icmp_types: vec![
                IcmpType {
                    kind: 8,
                    code_min: 0,
                    code_max: 255,
                },
                IcmpType {
                    kind: 3,
                    code_min: 4,
                    code_max: 4,
                },
                IcmpType {
                    kind: 255,
                    code_min: 0,
                    code_max: 255,
                },
                IcmpType {
                    kind: 0,
                    code_min: 0,
                    code_max: 255,
                },
            ],
            icmp_values: vec![(8, 0), (0, 0), (3, 4), (3, 1), (11, 0)],
        },
        Family::V6 => Universe {
            family,
            prefixes: [
                "fd00::/16",
                "fd00:1::/32",
                "fd00:1::5/128",
                "2001:db8::/32",
                "fd00:1:0:1::/64",
            ]
            .map(cidr)
            .to_vec(),
            addrs: [
                "fd00:1::5",
                "fd00:1:0:1::9",
                "fd00:2::1",
                "2001:db8::1",
                "2001:4860::1",
            ]
            .map(|a| a.parse().unwrap())
            .to_vec(),
            icmp_proto: 58,
            icmp_types: vec![
                IcmpType {
                    kind: 128,
                    code_min: 0,
                    code_max: 255,
                },
                IcmpType {
                    kind: 1,
                    code_min: 3,
                    code_max: 3,
                },
                IcmpType {
                    kind: 135,
                    code_min: 0,
                    code_max: 255,
                },
            ],
            icmp_values: vec![(128, 0), (129, 0), (1, 3), (1, 4), (135, 0)],
        },
    }
}

const PORTS: [PortRange; 5] = [
    PortRange { min: 22, max: 22 },
    PortRange { min: 53, max: 53 },
    PortRange {
        min: 1000,
        max: 2000,
    },
    PortRange { min: 0, max: 1023 },
    PortRange { min: 80, max: 80 },
];
const PACKET_PORTS: [u16; 7] = [22, 53, 80, 1000, 1500, 2001, 40000];
const FLAGS: [u8; 5] = [0x02, 0x12, 0x10, 0x00, 0x3f];

fn maybe<T>(rng: &mut Rng, percent: u64, value: impl FnOnce(&mut Rng) -> T) -> Option<Neg<T>> {
    if !rng.chance(percent) {
        return None;
    }
    let negated = rng.chance(30);
    Some(Neg {
        value: value(rng),
        negated,
    })
}

fn random_spec(rng: &mut Rng, u: &Universe, targets: &[Target]) -> RuleSpec {
    let mut spec = RuleSpec::any(rng.pick(targets));
    spec.in_iface = maybe(rng, 20, |r| {
        r.pick(&["lo", "l+", "eth0", "tun+"]).to_string()
    });
    spec.src = maybe(rng, 30, |r| r.pick(&u.prefixes));
    spec.dst = maybe(rng, 20, |r| r.pick(&u.prefixes));
    if rng.chance(60) {
        let proto = rng.pick(&[6u8, 17, u.icmp_proto, 47]);
        // Matches that need a protocol only come with it, un-negated, as iptables requires.
        let negated = rng.chance(15);
        spec.proto = Some(Neg {
            value: proto,
            negated,
        });
        if !negated && (proto == 6 || proto == 17) {
            spec.sport = maybe(rng, 25, |r| r.pick(&PORTS));
            spec.dport = maybe(rng, 40, |r| r.pick(&PORTS));
            spec.multiport = maybe(rng, 20, |r| Multiport {
                kind: r.pick(&[
                    MultiportKind::Sports,
                    MultiportKind::Dports,
                    MultiportKind::Ports,
                ]),
                ports: vec![r.pick(&PORTS), r.pick(&PORTS)],
            });
            if proto == 6 {
                spec.tcp_flags = maybe(rng, 25, |r| {
                    r.pick(&[
                        TcpFlags {
                            mask: 0x17,
                            comp: 0x02,
                        },
                        TcpFlags {
                            mask: 0x3f,
                            comp: 0,
                        },
                        TcpFlags {
                            mask: 0x12,
                            comp: 0x12,
                        },
                    ])
                });
            }
        }
        if !negated && proto == u.icmp_proto {
            spec.icmp = maybe(rng, 50, |r| r.pick(&u.icmp_types));
        }
    }
    spec.ctstate = maybe(rng, 12, |r| CtState {
        states: r.pick(&[
            CT_NEW,
            CT_ESTABLISHED | CT_RELATED,
            CT_INVALID,
            CT_NEW | CT_ESTABLISHED,
        ]),
        legacy: r.chance(30),
    });
    spec
}

/// A ruleset with user chains (each may jump only to later ones: no loops) in one family.
/// `large`: 1,000 rules in INPUT, without jumps (each would inline its chain again, past
/// the restarts XDP allows).
fn random_ruleset(rng: &mut Rng, u: &Universe, large: bool) -> Ruleset {
    let mut e = Editor::new(Ruleset::default());
    let family = u.family;
    let policy = if rng.chance(50) {
        Verdict::Drop
    } else {
        Verdict::Accept
    };
    e.policy(family, Chain::Input, policy).unwrap();
    let chains: Vec<String> = (0..rng.below(3)).map(|i| format!("C{i}")).collect();
    for c in &chains {
        e.new_chain(family, c).unwrap();
    }
    // REJECT and LOG: netfilter's to carry out, so XDP defers where they match.
    let reject = Target::Reject(RejectWith::PortUnreachable, family);
    let log = Target::Log(LogOpts {
        prefix: None,
        level: 4,
    });
    for (i, c) in chains.iter().enumerate() {
        let mut targets = vec![
            Target::Accept,
            Target::Drop,
            Target::Return,
            Target::Return,
            log.clone(),
        ];
        targets.extend(chains[i + 1..].iter().map(|n| Target::Jump(n.clone())));
        for _ in 0..1 + rng.below(4) {
            let spec = random_spec(rng, u, &targets);
            e.append(family, c, vec![spec]).unwrap();
        }
    }
    let mut targets = vec![Target::Accept, Target::Drop, Target::Return, reject, log];
    if !large {
        targets.extend(chains.iter().map(|n| Target::Jump(n.clone())));
    }
    let count = if large { 1_000 } else { 1 + rng.below(12) };
    for _ in 0..count {
        let spec = random_spec(rng, u, &targets);
        e.append(family, "INPUT", vec![spec]).unwrap();
    }
    e.ruleset
}

/// A conntrack lookup result and its encoding for the program's fake lookup.
fn random_lookup(rng: &mut Rng) -> (CtLookup, u32) {
    let found = |reply: bool, status: u64| {
        let word = CT_FAKE_FOUND
            | if reply { CT_FAKE_REPLY } else { 0 }
            | (status as u32) << CT_FAKE_STATUS_SHIFT;
        (CtLookup::Found { reply, status }, word)
    };
    match rng.below(6) {
        0 => (CtLookup::Miss, 0),
        1 => (CtLookup::Failed, CT_FAKE_ERROR),
        2 => found(true, IPS_SEEN_REPLY),
        3 => found(false, IPS_SEEN_REPLY),
        4 => found(false, IPS_EXPECTED),
        _ => found(rng.chance(20), 0),
    }
}

fn random_packet(rng: &mut Rng, u: &Universe) -> (Packet, PacketView) {
    let src = rng.pick(&u.addrs);
    let dst = rng.pick(&u.addrs);
    let proto = rng.pick(&[6u8, 17, u.icmp_proto, 47]);
    let l4 = match proto {
        6 => L4::Tcp {
            sport: rng.pick(&PACKET_PORTS),
            dport: rng.pick(&PACKET_PORTS),
        },
        17 => L4::Udp {
            sport: rng.pick(&PACKET_PORTS),
            dport: rng.pick(&PACKET_PORTS),
        },
        1 => L4::Icmp,
        58 => L4::Icmpv6,
        p => L4::Other(p),
    };
    let mut pkt = Packet::new(&src.to_string(), &dst.to_string(), l4);
    pkt.tcp_flags = rng.pick(&FLAGS);
    pkt.icmp = rng.pick(&u.icmp_values);
    let fragment = rng.chance(10);
    if fragment {
        pkt.frag_offset = 100;
    }
    let has_l4 = !fragment;
    let view = PacketView {
        family: u.family,
        iface: "lo".into(),
        out_iface: None,
        src,
        dst,
        proto,
        ports: match l4 {
            L4::Tcp { sport, dport } | L4::Udp { sport, dport } if has_l4 => Some((sport, dport)),
            _ => None,
        },
        tcp_flags: (proto == 6 && has_l4).then_some(pkt.tcp_flags),
        icmp: (proto == u.icmp_proto && has_l4).then_some(pkt.icmp),
        ct_state: None,
        fragment,
    };
    (pkt, view)
}

const ROUNDS: usize = 400;
const PACKETS: usize = 40;

#[test]
fn xdp_agrees_with_the_reference_evaluator() {
    let mut h = Harness::load().expect("loading the XDP program (run as root)");
    let mut rng = Rng(0x5eed_f00d_1234_5678);
    let mut checked = 0;
    let mut deferred = 0;
    let mut known = 0;
    let mut large = 0;
    for round in 0..ROUNDS {
        let family = if round % 2 == 0 {
            Family::V4
        } else {
            Family::V6
        };
        let u = universe(family);
        let ruleset = loop {
            // One round in 40 has 1,000 rules: the search past many words and groups.
            let ruleset = random_ruleset(&mut rng, &u, round % 40 == 39);
            match h.install(ruleset.clone()) {
                Ok(()) => break ruleset,
                // Jumps inlined into many places can exceed the restarts XDP allows; the
                // compiler refuses such rulesets, which is not what this test is about.
                Err(e)
                    if matches!(
                        e.downcast_ref::<CompileError>(),
                        Some(CompileError::TooManyReturns(_))
                    ) => {}
                Err(e) => panic!("round {round}: {e:#}"),
            }
        };
        let rules = ruleset.family(family);
        large += usize::from(rules.input.rules.len() >= 1_000);
        let policy_slot = policy_counter(family.index(), CHAIN_INPUT);
        let mut slots: Vec<u32> = rules.all_rules().map(|r| r.slot).collect();
        slots.push(policy_slot);
        for _ in 0..PACKETS {
            let (pkt, mut view) = random_packet(&mut rng, &u);
            let (lookup, fake) = random_lookup(&mut rng);
            view.ct_state = xdp_ct_state(&view, pkt.frag_offset != 0, lookup);
            known += usize::from(view.ct_state.is_some());
            h.fake_ct(fake).unwrap();
            let before: Vec<u64> = slots
                .iter()
                .map(|&s| h.maps.counter(s).unwrap().packets)
                .collect();
            let got = h.judge(&pkt.bytes(), LO_IFINDEX).unwrap();
            let want = evaluate(rules, Chain::Input, &view);
            let mut moved = BTreeMap::new();
            for (i, &s) in slots.iter().enumerate() {
                let d = h.maps.counter(s).unwrap().packets - before[i];
                if d > 0 {
                    moved.insert(s, d);
                }
            }
            let mut expected = BTreeMap::new();
            for s in want
                .counted
                .iter()
                .copied()
                .chain(want.policy.then_some(policy_slot))
            {
                *expected.entry(s).or_insert(0u64) += 1;
            }
            let generation = h.generation().unwrap();
            let verdict = match want.verdict {
                Decision::Accept => Judged {
                    action: XDP_PASS,
                    meta: Some(xdp_meta(generation, true)),
                },
                Decision::Defer => Judged {
                    action: XDP_PASS,
                    meta: Some(xdp_meta(generation, false)),
                },
                Decision::Drop => Judged {
                    action: XDP_DROP,
                    meta: None,
                },
            };
            deferred += usize::from(want.verdict == Decision::Defer);
            assert!(
                got == verdict && moved == expected,
                "round {round}: packet {view:?} ({lookup:?})\nXDP {got:x?} (want {verdict:x?}), counters {moved:?} (want {expected:?})\nruleset:\n{}",
                fwctl::cli::list::list_rules(rules, &fwctl::cli::list::chain_names(rules, None).unwrap())
            );
            checked += 1;
        }
    }
    assert_eq!(checked, ROUNDS * PACKETS);
    // Enough deferred packets that the property says something about them.
    assert!(
        deferred > checked / 50,
        "only {deferred} of {checked} deferred"
    );
    // And enough packets whose state XDP knew.
    assert!(known > checked / 4, "only {known} of {checked} known");
    assert_eq!(large, ROUNDS / 40, "rounds with 1,000 rules");
}
