//! iptables' semantics, evaluated directly on the rule model: the reference the compiled
//! classifier is tested against. Slow and obvious on purpose.
//!
//! Without a conntrack state it judges as XDP does when it does not know the state: the
//! first rule met that matches on conntrack state (or a jump that does) defers the packet
//! to netfilter, and nothing counts, since netfilter then judges and counts it from the
//! top. With a state, it judges as netfilter does, which is also what XDP does when its
//! conntrack lookup makes the state certain ([`xdp_ct_state`]).

use std::net::IpAddr;

use super::{
    iface_matches, Chain, Cidr, Family, FamilyRules, MultiportKind, Neg, Rule, RuleSpec, Target,
    Verdict,
};

/// What rules can see of a packet. `None` where the packet has no such header (a
/// non-first fragment has no ports, flags or ICMP type).
#[derive(Clone, Debug)]
pub struct PacketView {
    pub family: Family,
    pub iface: String,
    /// The interface a forwarded packet leaves by; None for a packet for this host.
    pub out_iface: Option<String>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub ports: Option<(u16, u16)>,
    pub tcp_flags: Option<u8>,
    pub icmp: Option<(u8, u8)>,
    /// The packet's conntrack state (one `CT_*` bit) as netfilter sees it, or as XDP knows
    /// it ([`xdp_ct_state`]); None where it is not known (XDP without a certain answer).
    pub ct_state: Option<u8>,
    /// A fragment, the first one included: XDP leaves it to netfilter, which judges the
    /// reassembled datagram.
    pub fragment: bool,
}

/// What XDP's conntrack lookup of a packet's tuple returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtLookup {
    Miss,
    /// An entry, found in the reply direction or not, with its `nf_conn.status` bits.
    Found {
        reply: bool,
        status: u64,
    },
    /// Any other error (the lookup refuses ICMP and other protocols).
    Failed,
}

/// The conntrack state XDP knows `p` to be in from `lookup`, as netfilter's
/// `resolve_normal_ct()` will decide it; None where netfilter could decide otherwise.
/// The reference for firewall-ebpf/src/ct.rs. `fragment`: any fragment, the first too.
pub fn xdp_ct_state(p: &PacketView, fragment: bool, lookup: CtLookup) -> Option<u8> {
    use firewall_common::{IPS_EXPECTED, IPS_SEEN_REPLY};
    const SYN: u8 = 0x02;
    // SYN, ACK, RST, FIN.
    const DECIDING: u8 = 0x17;
    if p.ports.is_none() || fragment || !matches!(p.proto, 6 | 17) {
        return None;
    }
    let syn_only = p.tcp_flags.is_some_and(|f| f & DECIDING == SYN);
    match lookup {
        CtLookup::Failed => None,
        // A TCP miss without a plain SYN may be picked up mid-stream or be INVALID.
        CtLookup::Miss => (p.proto == 17 || syn_only).then_some(super::CT_NEW),
        // A SYN on a known connection may reopen it as NEW.
        CtLookup::Found { reply, status } if reply || status & IPS_SEEN_REPLY != 0 => {
            (!syn_only).then_some(super::CT_ESTABLISHED)
        }
        CtLookup::Found { status, .. } if status & IPS_EXPECTED != 0 => Some(super::CT_RELATED),
        CtLookup::Found { .. } => Some(super::CT_NEW),
    }
}

/// What becomes of a packet: iptables' verdict, or (at XDP) netfilter's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Drop,
    Defer,
}

impl From<Verdict> for Decision {
    fn from(v: Verdict) -> Decision {
        match v {
            Verdict::Accept => Decision::Accept,
            Verdict::Drop => Decision::Drop,
        }
    }
}

/// The decision, and every counter slot the packet was counted in (rules in the order met,
/// jumps included; none for a deferred packet); `policy` when the chain's policy decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Decision,
    pub counted: Vec<u32>,
    pub policy: bool,
}

fn neg<T>(m: &Option<Neg<T>>, holds: impl Fn(&T) -> bool) -> bool {
    m.as_ref().is_none_or(|n| holds(&n.value) != n.negated)
}

fn host(addr: IpAddr) -> Cidr {
    Cidr {
        addr,
        prefix: if addr.is_ipv4() { 32 } else { 128 },
    }
}

pub fn matches(spec: &RuleSpec, p: &PacketView) -> bool {
    let in_ranges = |port: u16, ranges: &[crate::rules::PortRange]| {
        ranges.iter().any(|r| r.min <= port && port <= r.max)
    };
    let ports_ok = |m: &Option<Neg<crate::rules::PortRange>>, pick: fn((u16, u16)) -> u16| {
        m.as_ref().is_none_or(|n| {
            p.ports
                .is_some_and(|ports| in_ranges(pick(ports), &[n.value]) != n.negated)
        })
    };
    neg(&spec.in_iface, |pat| iface_matches(pat, &p.iface))
        && neg(&spec.out_iface, |pat| {
            iface_matches(pat, p.out_iface.as_deref().unwrap_or(""))
        })
        && neg(&spec.src, |c| c.contains(&host(p.src)))
        && neg(&spec.dst, |c| c.contains(&host(p.dst)))
        && neg(&spec.proto, |proto| *proto == p.proto)
        && ports_ok(&spec.sport, |(s, _)| s)
        && ports_ok(&spec.dport, |(_, d)| d)
        && spec.multiport.as_ref().is_none_or(|m| {
            p.ports.is_some_and(|(s, d)| {
                let hit = match m.value.kind {
                    MultiportKind::Sports => in_ranges(s, &m.value.ports),
                    MultiportKind::Dports => in_ranges(d, &m.value.ports),
                    MultiportKind::Ports => {
                        in_ranges(s, &m.value.ports) || in_ranges(d, &m.value.ports)
                    }
                };
                hit != m.negated
            })
        })
        && spec.icmp.as_ref().is_none_or(|i| {
            p.icmp.is_some_and(|(t, c)| {
                let t0 = i.value;
                let any = p.family == Family::V4 && t0.kind == 255;
                let hit = any || (t == t0.kind && t0.code_min <= c && c <= t0.code_max);
                hit != i.negated
            })
        })
        && spec.tcp_flags.as_ref().is_none_or(|f| {
            p.tcp_flags
                .is_some_and(|flags| ((flags & f.value.mask) == f.value.comp) != f.negated)
        })
        && spec.ctstate.as_ref().is_none_or(|c| {
            // Unknown state: a caller that has none handles the rule before matching.
            p.ct_state
                .is_some_and(|state| (state & c.value.states != 0) != c.negated)
        })
        // The model has no set contents: here a packet is in no set, unless the rules were
        // first given the packet's answers (`with_set_answers`).
        && spec.sets.iter().all(|m| m.negated)
        // Nor packet marks or sockets: a packet as it arrives (XDP defers these rules).
        && spec.nf.iter().all(|m| {
            m.value
                .holds_on_arrival()
                .is_some_and(|holds| holds != m.negated)
        })
}

/// `rules` as they are for one packet, given whether each of its set matches holds for it
/// (negation included): a rule whose set matches all hold loses them, one with a failing
/// match goes, since it cannot match the packet. Counter slots stay with their rules.
pub fn with_set_answers(
    rules: &FamilyRules,
    holds: impl Fn(&super::Neg<super::SetMatch>) -> bool,
) -> FamilyRules {
    let answer = |list: &[Rule]| -> Vec<Rule> {
        list.iter()
            .filter(|r| r.spec.sets.iter().all(&holds))
            .map(|r| Rule {
                spec: RuleSpec {
                    sets: Vec::new(),
                    ..r.spec.clone()
                },
                slot: r.slot,
            })
            .collect()
    };
    let mut out = rules.clone();
    for &c in rules.builtins() {
        out.chain_mut(c).rules = answer(&rules.chain(c).rules);
    }
    for u in out.user.iter_mut() {
        u.rules = answer(&u.rules);
    }
    out
}

/// Runs a chain; `None` when the packet falls off its end or hits RETURN.
/// Who judges: XDP leaves REJECT and LOG to netfilter (the answer and the event are
/// netfilter's to send); netfilter carries them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judge {
    Xdp,
    Netfilter,
}

fn run(
    rules: &FamilyRules,
    chain: &[Rule],
    p: &PacketView,
    judge: Judge,
    counted: &mut Vec<u32>,
) -> Option<Decision> {
    for rule in chain {
        // What only netfilter knows: XDP hands the packet over if the rest matches.
        if judge == Judge::Xdp && !rule.spec.nf.is_empty() {
            let others = RuleSpec {
                nf: Vec::new(),
                ctstate: None,
                ..rule.spec.clone()
            };
            if matches(&others, p) {
                return Some(Decision::Defer);
            }
            continue;
        }
        if p.ct_state.is_none() && rule.spec.ctstate.is_some() {
            let others = RuleSpec {
                ctstate: None,
                ..rule.spec.clone()
            };
            if matches(&others, p) {
                return Some(Decision::Defer);
            }
            continue;
        }
        if !matches(&rule.spec, p) {
            continue;
        }
        counted.push(rule.slot);
        match &rule.spec.target {
            // A nat target ends the nat table's traversal as ACCEPT would.
            Target::Accept
            | Target::Masquerade(_)
            | Target::Snat(_)
            | Target::Dnat(_)
            | Target::Redirect(_) => return Some(Decision::Accept),
            Target::Drop => return Some(Decision::Drop),
            // Netfilter sends the answer: XDP leaves the packet to it.
            Target::Reject(..)
            | Target::Log(_)
            | Target::Count
            | Target::Mark(_)
            | Target::Nflog { .. }
            | Target::Connmark(_)
            | Target::Tcpmss(_)
            | Target::Checksum
            | Target::Set(_)
            | Target::Notrack { .. }
            | Target::CtZone(_)
            | Target::Nfqueue(_)
            | Target::Synproxy(_)
                if judge == Judge::Xdp =>
            {
                return Some(Decision::Defer)
            }
            // Logged (or only counted, or marked), and on to the next rule.
            Target::Log(_)
            | Target::Count
            | Target::Mark(_)
            | Target::Nflog { .. }
            | Target::Connmark(_)
            | Target::Tcpmss(_)
            | Target::Checksum
            | Target::Set(_)
            | Target::Notrack { .. }
            | Target::CtZone(_) => {}
            Target::Reject(..) => return Some(Decision::Drop),
            // As with no program on the queue, the only case the evaluator can know.
            Target::Nfqueue(q) if q.bypass => return Some(Decision::Accept),
            Target::Nfqueue(_) => return Some(Decision::Drop),
            // The proxy takes a lone SYN (answering it) and a lone ACK (checking its cookie);
            // anything else goes on to the next rule.
            Target::Synproxy(_) => {
                const SYN: u8 = 0x02;
                const ACK: u8 = 0x10;
                const FIN_SYN_RST_ACK: u8 = 0x17;
                let f = p.tcp_flags.unwrap_or(0) & FIN_SYN_RST_ACK;
                if p.tcp_flags.is_some() && (f == SYN || f == ACK) {
                    return Some(Decision::Drop);
                }
            }
            Target::Return => return None,
            Target::Jump(name) => {
                let inner = rules
                    .user_chain(name)
                    .map(|c| c.rules.as_slice())
                    .unwrap_or_default();
                if let Some(v) = run(rules, inner, p, judge, counted) {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// The outcome at XDP.
pub fn evaluate(rules: &FamilyRules, chain: Chain, p: &PacketView) -> Outcome {
    evaluate_by(rules, chain, p, Judge::Xdp)
}

pub fn evaluate_by(rules: &FamilyRules, chain: Chain, p: &PacketView, judge: Judge) -> Outcome {
    if p.fragment && judge == Judge::Xdp {
        return Outcome {
            verdict: Decision::Defer,
            counted: Vec::new(),
            policy: false,
        };
    }
    let mut counted = Vec::new();
    match run(rules, &rules.chain(chain).rules, p, judge, &mut counted) {
        Some(Decision::Defer) => Outcome {
            verdict: Decision::Defer,
            counted: Vec::new(),
            policy: false,
        },
        Some(verdict) => Outcome {
            verdict,
            counted,
            policy: false,
        },
        None => Outcome {
            verdict: rules.chain(chain).policy.into(),
            counted,
            policy: true,
        },
    }
}
