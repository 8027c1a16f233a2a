//! Random rulesets and random packets (proptest): the XDP classifier (through
//! BPF_PROG_TEST_RUN) must give the verdict of the reference evaluator (iptables' semantics
//! on the rule model), and move exactly the counters it says: every rule met, jumps
//! included, or the policy. Each packet comes with a (faked) conntrack lookup result: where
//! it makes the state certain (`xdp_ct_state`), rules on conntrack state are judged at XDP
//! as netfilter would; where not, they defer: XDP passes the packet marked "judged, not
//! accepted" and counts nothing.
//!
//! Rulesets and packets are proptest values, so a failure shrinks to a small ruleset and
//! one packet, printed as iptables-save text. The seed is fixed (runs are reproducible);
//! `PROPTEST_RNG_SEED=N` explores others.

use std::{cell::RefCell, collections::BTreeMap, net::IpAddr};

use firewall_common::{
    policy_counter, xdp_meta, CHAIN_INPUT, CT_FAKE_ERROR, CT_FAKE_FOUND, CT_FAKE_REPLY,
    CT_FAKE_STATUS_SHIFT, FAST_FINAL, IPS_EXPECTED, IPS_SEEN_REPLY,
};
use fwctl::rules::{
    edit::Editor,
    eval::{evaluate, xdp_ct_state, CtLookup, Decision, Outcome, PacketView},
    Chain, Cidr, CtState, Family, FamilyRules, IcmpType, LogOpts, Multiport, MultiportKind, Neg,
    PortRange, RejectWith, RuleSpec, Ruleset, Target, TcpFlags, Verdict, CT_ESTABLISHED,
    CT_INVALID, CT_NEW, CT_RELATED,
};
use proptest::{
    collection::vec,
    option,
    prelude::*,
    sample::select,
    strategy::{NewTree, ValueTree},
    test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner},
};
use tests::{
    packets::{Packet, L4},
    program::{Harness, Judged, LO_IFINDEX, XDP_DROP, XDP_PASS},
};

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

/// A match present `percent` of the time, negated in 30% of those.
fn maybe<T: Clone + std::fmt::Debug>(
    percent: u32,
    value: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<Neg<T>>> {
    option::weighted(
        f64::from(percent) / 100.0,
        (value, prop::bool::weighted(0.3)).prop_map(|(value, negated)| Neg { value, negated }),
    )
}

/// A rule of `u`'s family with one of `targets`: every matcher, negations included.
fn rule(u: &Universe, targets: Vec<Target>) -> impl Strategy<Value = RuleSpec> {
    let icmp_proto = u.icmp_proto;
    let ports = || select(PORTS.to_vec());
    let multiport = (
        select(vec![
            MultiportKind::Sports,
            MultiportKind::Dports,
            MultiportKind::Ports,
        ]),
        vec(ports(), 2),
    )
        .prop_map(|(kind, ports)| Multiport { kind, ports });
    let tcp_flags = select(vec![
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
    ]);
    let ctstate = (
        select(vec![
            CT_NEW,
            CT_ESTABLISHED | CT_RELATED,
            CT_INVALID,
            CT_NEW | CT_ESTABLISHED,
        ]),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(states, legacy)| CtState { states, legacy });
    let proto = option::weighted(
        0.6,
        (
            select(vec![6u8, 17, icmp_proto, 47]),
            prop::bool::weighted(0.15),
        )
            .prop_map(|(value, negated)| Neg { value, negated }),
    );
    (
        select(targets),
        maybe(
            20,
            select(vec!["lo", "l+", "eth0", "tun+"]).prop_map(String::from),
        ),
        maybe(30, select(u.prefixes.clone())),
        maybe(20, select(u.prefixes.clone())),
        proto,
        maybe(25, ports()),
        maybe(40, ports()),
        maybe(20, multiport),
        maybe(25, tcp_flags),
        maybe(50, select(u.icmp_types.clone())),
        maybe(12, ctstate),
    )
        .prop_map(
            move |(target, in_iface, src, dst, proto, sport, dport, multiport, flags, icmp, ct)| {
                // Matches that need a protocol only come with it, un-negated, as iptables
                // requires.
                let plain = proto.as_ref().filter(|p| !p.negated).map(|p| p.value);
                let ports = matches!(plain, Some(6 | 17));
                RuleSpec {
                    in_iface,
                    src,
                    dst,
                    proto,
                    sport: sport.filter(|_| ports),
                    dport: dport.filter(|_| ports),
                    multiport: multiport.filter(|_| ports),
                    tcp_flags: flags.filter(|_| plain == Some(6)),
                    icmp: icmp.filter(|_| plain == Some(icmp_proto)),
                    ctstate: ct,
                    ..RuleSpec::any(target)
                }
            },
        )
}

/// The rules of a ruleset in one family, before the editor puts them in.
#[derive(Clone, Debug)]
struct Rules {
    family: Family,
    policy: Verdict,
    /// User chains `C0`, `C1`, ...: each jumps only to later ones (no loops).
    chains: Vec<Vec<RuleSpec>>,
    input: Vec<RuleSpec>,
}

impl Rules {
    fn ruleset(&self) -> Ruleset {
        let family = self.family;
        let mut e = Editor::new(Ruleset::default());
        e.policy(family, Chain::Input, self.policy).unwrap();
        for i in 0..self.chains.len() {
            e.new_chain(family, &chain_name(i)).unwrap();
        }
        for (i, rules) in self.chains.iter().enumerate() {
            for spec in rules {
                e.append(family, &chain_name(i), vec![spec.clone()])
                    .unwrap();
            }
        }
        for spec in &self.input {
            e.append(family, "INPUT", vec![spec.clone()]).unwrap();
        }
        e.ruleset
    }
}

fn chain_name(i: usize) -> String {
    format!("C{i}")
}

/// Up to two user chains of 1-4 rules and 1-12 rules in INPUT; or, `large`, 1,000 rules in
/// INPUT without jumps (each would inline its chain again, past the restarts XDP allows).
/// A large ruleset shrinks first to the shortest failing run of its first rules.
fn rules(family: Family, large: bool) -> impl Strategy<Value = Rules> {
    let u = universe(family);
    // REJECT and LOG: netfilter's to carry out, so XDP defers where they match.
    let reject = Target::Reject(RejectWith::PortUnreachable, family);
    let log = Target::Log(LogOpts {
        prefix: None,
        level: 4,
        flags: 0,
    });
    (any::<bool>(), 0..3usize).prop_flat_map(move |(drop, n)| {
        let jumps = |from: usize| (from..n).map(|j| Target::Jump(chain_name(j)));
        let chains: Vec<_> = (0..n)
            .map(|i| {
                let mut targets = vec![
                    Target::Accept,
                    Target::Drop,
                    Target::Return,
                    Target::Return,
                    log.clone(),
                ];
                targets.extend(jumps(i + 1));
                vec(rule(&u, targets), 1..=4)
            })
            .collect();
        let mut targets = vec![
            Target::Accept,
            Target::Drop,
            Target::Return,
            reject.clone(),
            log.clone(),
        ];
        let input = if large {
            (Prefix(LARGE), vec(rule(&u, targets), LARGE))
                .prop_map(|(n, mut rules)| {
                    rules.truncate(n);
                    rules
                })
                .boxed()
        } else {
            targets.extend(jumps(0));
            vec(rule(&u, targets), 1..=12).boxed()
        };
        let policy = if drop { Verdict::Drop } else { Verdict::Accept };
        (Just(policy), chains, input).prop_map(move |(policy, chains, input)| Rules {
            family,
            policy,
            chains,
            input,
        })
    })
}

/// How many of a list's first elements to keep: all `.0` when generated, then halving
/// toward the shortest that still fails (proptest's ranges generate anywhere in the range,
/// and a vector shrinks one element per step: a thousand steps of installing a ruleset).
#[derive(Debug)]
struct Prefix(usize);

struct PrefixTree {
    /// Lengths below `lo` passed; `hi` is the shortest known to fail.
    lo: usize,
    hi: usize,
    current: usize,
}

impl Strategy for Prefix {
    type Tree = PrefixTree;
    type Value = usize;

    fn new_tree(&self, _: &mut TestRunner) -> NewTree<Self> {
        Ok(PrefixTree {
            lo: 0,
            hi: self.0,
            current: self.0,
        })
    }
}

impl ValueTree for PrefixTree {
    type Value = usize;

    fn current(&self) -> usize {
        self.current
    }

    /// The current length failed: try half way down to the longest that passed.
    fn simplify(&mut self) -> bool {
        self.hi = self.current;
        if self.lo >= self.hi {
            return false;
        }
        self.current = self.lo + (self.hi - self.lo) / 2;
        true
    }

    /// The current length passed: try half way up to the shortest that failed.
    fn complicate(&mut self) -> bool {
        if self.current >= self.hi {
            return false;
        }
        self.lo = self.current + 1;
        self.current = self.lo + (self.hi - self.lo) / 2;
        true
    }
}

/// A packet, and the conntrack lookup result the program is told it got.
#[derive(Clone, Debug)]
struct Probe {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    icmp: (u8, u8),
    fragment: bool,
    lookup: CtLookup,
}

fn probe(u: &Universe) -> impl Strategy<Value = Probe> {
    let found = |reply: bool, status: u64| CtLookup::Found { reply, status };
    let lookup = prop_oneof![
        Just(CtLookup::Miss),
        Just(CtLookup::Failed),
        Just(found(true, IPS_SEEN_REPLY)),
        Just(found(false, IPS_SEEN_REPLY)),
        Just(found(false, IPS_EXPECTED)),
        prop::bool::weighted(0.2).prop_map(move |reply| found(reply, 0)),
    ];
    (
        select(u.addrs.clone()),
        select(u.addrs.clone()),
        select(vec![6u8, 17, u.icmp_proto, 47]),
        select(PACKET_PORTS.to_vec()),
        select(PACKET_PORTS.to_vec()),
        select(FLAGS.to_vec()),
        select(u.icmp_values.clone()),
        prop::bool::weighted(0.1),
        lookup,
    )
        .prop_map(
            |(src, dst, proto, sport, dport, tcp_flags, icmp, fragment, lookup)| Probe {
                src,
                dst,
                proto,
                sport,
                dport,
                tcp_flags,
                icmp,
                fragment,
                lookup,
            },
        )
}

impl Probe {
    /// The frame, what the reference evaluator sees of it, and the fake lookup's word.
    fn build(&self, u: &Universe) -> (Packet, PacketView, u32) {
        let (sport, dport) = (self.sport, self.dport);
        let l4 = match self.proto {
            6 => L4::Tcp { sport, dport },
            17 => L4::Udp { sport, dport },
            1 => L4::Icmp,
            58 => L4::Icmpv6,
            p => L4::Other(p),
        };
        let mut pkt = Packet::new(&self.src.to_string(), &self.dst.to_string(), l4);
        pkt.tcp_flags = self.tcp_flags;
        pkt.icmp = self.icmp;
        if self.fragment {
            pkt.frag_offset = 100;
        }
        let has_l4 = !self.fragment;
        let mut view = PacketView {
            family: u.family,
            iface: "lo".into(),
            out_iface: None,
            src: self.src,
            dst: self.dst,
            proto: self.proto,
            ports: matches!(l4, L4::Tcp { .. } | L4::Udp { .. })
                .then_some((sport, dport))
                .filter(|_| has_l4),
            tcp_flags: (self.proto == 6 && has_l4).then_some(self.tcp_flags),
            icmp: (self.proto == u.icmp_proto && has_l4).then_some(self.icmp),
            ct_state: None,
            fragment: self.fragment,
        };
        view.ct_state = xdp_ct_state(&view, self.fragment, self.lookup);
        let fake = match self.lookup {
            CtLookup::Miss => 0,
            CtLookup::Failed => CT_FAKE_ERROR,
            CtLookup::Found { reply, status } => {
                CT_FAKE_FOUND
                    | if reply { CT_FAKE_REPLY } else { 0 }
                    | (status as u32) << CT_FAKE_STATUS_SHIFT
            }
        };
        (pkt, view, fake)
    }
}

/// Rules in INPUT of a large ruleset (before shrinking).
const LARGE: usize = 1_000;
const PACKETS: usize = 40;

/// What a run saw, for the checks that the cases said something.
#[derive(Default)]
struct Seen {
    packets: usize,
    /// Packets whose fast-table word is final (decided without the classifier), and
    /// whose word sends them to the per-conntrack-class outcomes.
    fast: usize,
    by_class: usize,
    deferred: usize,
    known: usize,
    rulesets: usize,
    largest: usize,
    last_failure: Option<Failure>,
}

/// A failing case, by what decides its outcome: shrinking tries many cases that differ only
/// where it does not matter (a rule past the ones kept, a packet after the failing one),
/// which fail the same way without installing anything again.
struct Failure {
    ruleset: String,
    /// The packets up to the failing one.
    probes: String,
    count: usize,
    why: String,
}

/// One case: a ruleset and packets, each judged by the program and by the reference.
fn check(
    h: &mut Harness,
    seen: &mut Seen,
    rules: &Rules,
    probes: &[Probe],
) -> Result<(), TestCaseError> {
    let family = rules.family;
    let u = universe(family);
    let ruleset = rules.ruleset();
    let text = fwctl::cli::list::save(&[(ruleset.family(family), None)], "(proptest)");
    if let Some(f) = &seen.last_failure {
        if f.ruleset == text
            && probes.len() >= f.count
            && format!("{:?}", &probes[..f.count]) == f.probes
        {
            return Err(TestCaseError::fail(f.why.clone()));
        }
    }
    if let Err(e) = h.install(ruleset.clone()) {
        return Err(TestCaseError::fail(format!("install: {e:#}")));
    }
    // Jumps inlined into many places can exceed the restarts XDP allows; the chain is then
    // netfilter's alone (XDP defers all of it), which is not what this test is about.
    if !h.image.netfilter_only.is_empty() {
        return Err(TestCaseError::reject("a chain beyond XDP's limits"));
    }
    let rules = ruleset.family(family);
    seen.rulesets += 1;
    seen.largest = seen.largest.max(rules.input.rules.len());
    let mut slots: Vec<u32> = rules.all_rules().map(|r| r.slot).collect();
    slots.push(policy_counter(family.index(), CHAIN_INPUT));
    for (i, p) in probes.iter().enumerate() {
        let (pkt, view, fake) = p.build(&u);
        seen.known += usize::from(view.ct_state.is_some());
        h.fake_ct(fake)
            .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
        let want = evaluate(rules, Chain::Input, &view);
        let word = h.fast_word(&view);
        seen.fast += usize::from(word & FAST_FINAL != 0);
        seen.by_class += usize::from(word != 0 && word & FAST_FINAL == 0);
        // The same packet through the fast table and, forced, through the classifier
        // alone: both must agree with the reference.
        for fast in [true, false] {
            h.set_fast(fast)
                .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
            judge_one(
                h,
                seen,
                &slots,
                &text,
                rules,
                p,
                &probes[..=i],
                &pkt,
                &view,
                &want,
                fast,
            )?;
        }
        seen.deferred += usize::from(want.verdict == Decision::Defer);
        seen.packets += 1;
    }
    h.set_fast(true)
        .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
    Ok(())
}

/// Judges one packet with the fast table on or off and compares the verdict and every
/// counter it moved with the reference's.
#[allow(clippy::too_many_arguments)]
fn judge_one(
    h: &mut Harness,
    seen: &mut Seen,
    slots: &[u32],
    text: &str,
    rules: &FamilyRules,
    p: &Probe,
    probes: &[Probe],
    pkt: &Packet,
    view: &PacketView,
    want: &Outcome,
    fast: bool,
) -> Result<(), TestCaseError> {
    let family = view.family;
    let policy_slot = policy_counter(family.index(), CHAIN_INPUT);
    let counters = |h: &Harness| -> Result<Vec<u64>, TestCaseError> {
        slots
            .iter()
            .map(|&s| h.maps.counter(s).map(|c| c.packets))
            .collect::<anyhow::Result<_>>()
            .map_err(|e| TestCaseError::fail(format!("{e:#}")))
    };
    {
        let before = counters(h)?;
        let got = h
            .judge(&pkt.bytes(), LO_IFINDEX)
            .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
        let after = counters(h)?;
        let moved: BTreeMap<u32, u64> = slots
            .iter()
            .zip(before.iter().zip(&after))
            .filter(|(_, (b, a))| a != b)
            .map(|(&s, (b, a))| (s, a.wrapping_sub(*b)))
            .collect();
        let mut expected = BTreeMap::new();
        for s in want
            .counted
            .iter()
            .copied()
            .chain(want.policy.then_some(policy_slot))
        {
            *expected.entry(s).or_insert(0u64) += 1;
        }
        let generation = h
            .generation()
            .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
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
        if got != verdict || moved != expected {
            let path = if fast {
                "fast table on"
            } else {
                "classifier only"
            };
            let why = format!(
                "packet {view:?} ({:?}), {path}\nXDP {got:x?} (want {verdict:x?}), counters {moved:?} (want {expected:?}) by slot\nruleset (slots: {:?}):\n{text}",
                p.lookup,
                rules.all_rules().map(|r| r.slot).collect::<Vec<_>>(),
            );
            seen.last_failure = Some(Failure {
                ruleset: text.to_string(),
                probes: format!("{probes:?}"),
                count: probes.len(),
                why: why.clone(),
            });
            return Err(TestCaseError::fail(why));
        }
    }
    Ok(())
}

/// Runs `cases` cases of rulesets from `rules` (both families) with [`PACKETS`] packets, on
/// one loaded program; a failure panics with the shrunk case.
fn run(cases: u32, large: bool) -> Seen {
    let config = Config {
        cases,
        // Reproducible unless PROPTEST_RNG_SEED asks for another seed.
        rng_seed: match Config::default().rng_seed {
            RngSeed::Random => RngSeed::Fixed(0x5eed_f00d),
            chosen => chosen,
        },
        failure_persistence: None,
        // Every shrink step may install a ruleset and run packets: bound the time it takes.
        max_shrink_iters: 4096,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    let case = prop_oneof![Just(Family::V4), Just(Family::V6)].prop_flat_map(move |family| {
        (rules(family, large), vec(probe(&universe(family)), PACKETS))
    });
    let harness = RefCell::new(Harness::load().expect("loading the XDP program (run as root)"));
    let seen = RefCell::new(Seen::default());
    let result = TestRunner::new(config).run(&case, |(rules, probes)| {
        check(
            &mut harness.borrow_mut(),
            &mut seen.borrow_mut(),
            &rules,
            &probes,
        )
    });
    match result {
        Ok(()) => seen.into_inner(),
        Err(TestError::Fail(why, _)) => panic!("shrunk to:\n{why}"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn xdp_agrees_with_the_reference_evaluator() {
    let seen = run(390, false);
    // Enough deferred packets that the property says something about them.
    assert!(
        seen.deferred > seen.packets / 50,
        "only {} of {} deferred",
        seen.deferred,
        seen.packets
    );
    // And enough packets whose state XDP knew.
    assert!(
        seen.known > seen.packets / 4,
        "only {} of {} known",
        seen.known,
        seen.packets
    );
    assert!(seen.rulesets >= 390, "{} rulesets", seen.rulesets);
    // The fast table decided a fair share on its own, and sent some to the per-class
    // outcomes: both paths were compared above, not one path twice.
    assert!(
        seen.fast > seen.packets / 10,
        "only {} of {} decided by the fast table",
        seen.fast,
        seen.packets
    );
    assert!(seen.by_class > 0, "no packet took the per-class outcomes");
    eprintln!(
        "{} packets: {} decided by the fast table, {} by class, {} deferred",
        seen.packets, seen.fast, seen.by_class, seen.deferred
    );
}

/// The search past many words and groups of entries.
#[test]
fn xdp_agrees_with_the_reference_evaluator_on_1000_rules() {
    let seen = run(10, true);
    assert!(seen.rulesets >= 10, "{} rulesets", seen.rulesets);
    assert!(seen.largest >= LARGE - 10, "{} rules at most", seen.largest);
}
