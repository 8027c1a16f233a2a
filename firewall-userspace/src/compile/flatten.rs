//! A built-in chain with its user chains inlined into one ordered list of classifier
//! entries, each a conjunction of per-field conditions. A jump's conditions are added to
//! every entry of the chain it jumps to; RETURN and the end of an inlined chain become
//! entries that count and resume the search after the jump.
//!
//! A rule on conntrack state is judged at XDP for the packets whose state XDP knows (its
//! class, firewall-common `CT_CLASS_*`): the rule's entries carry the classes that satisfy
//! its state match, and one DEFER entry on its other matches takes class 0 (nothing known):
//! such a packet is handed to netfilter, which judges it again from the top of the chain.
//! A jump on conntrack state is inlined the same way, its chain's entries limited to the
//! classes that satisfy it.

use firewall_common::{
    Entry, ACTION_CONTINUE, CT_CLASSES, CT_CLASS_ESTABLISHED, CT_CLASS_NEW, CT_CLASS_RELATED,
    CT_CLASS_UNKNOWN, MAX_JUMP_DEPTH, MAX_RESTARTS, NO_COUNTER, VERDICT_ACCEPT, VERDICT_DEFER,
    VERDICT_DROP, VERDICT_DROP_RAW,
};

use crate::sets::model::Registry;

use super::{
    guards::{self, fits, GuardSpec, RuleGuards},
    verdict, CompileError,
};
use crate::rules::{
    port_set, Cidr, CtState, Family, FamilyRules, IcmpType, MultiportKind, Neg, PortRange, Rule,
    RuleSpec, Target, TcpFlags, Verdict, CT_ESTABLISHED, CT_NEW, CT_RELATED,
};

/// Bit `c` for conntrack class `c`.
pub type Classes = u8;
pub const ALL_CLASSES: Classes = (1 << CT_CLASSES) - 1;

/// The classes whose packets certainly satisfy a state match: class 0 never does, since
/// XDP knows nothing of its packets' state.
pub fn satisfying(ct: &Neg<CtState>) -> Classes {
    [
        (CT_CLASS_NEW, CT_NEW),
        (CT_CLASS_ESTABLISHED, CT_ESTABLISHED),
        (CT_CLASS_RELATED, CT_RELATED),
    ]
    .iter()
    .filter(|(_, state)| (ct.value.states & state != 0) != ct.negated)
    .fold(0, |acc, (class, _)| acc | 1 << class)
}

/// A port condition: the port is in one of `ranges` (after negation is applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortCond {
    pub ranges: Vec<PortRange>,
}

impl PortCond {
    fn new(ranges: &[PortRange], negated: bool) -> PortCond {
        PortCond {
            ranges: port_set(ranges, negated),
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.ranges.iter().any(|r| r.min <= port && port <= r.max)
    }
}

/// Everything a packet must satisfy to reach an entry: every listed condition holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conds {
    pub iface: Vec<Neg<String>>,
    pub oiface: Vec<Neg<String>>,
    pub src: Vec<Neg<Cidr>>,
    pub dst: Vec<Neg<Cidr>>,
    pub proto: Vec<Neg<u8>>,
    pub sport: Vec<PortCond>,
    pub dport: Vec<PortCond>,
    pub icmp: Vec<Neg<IcmpType>>,
    pub tcp_flags: Vec<Neg<TcpFlags>>,
    /// Conntrack classes the entry is for; None for all of them.
    pub classes: Option<Classes>,
    /// Checked at XDP once the fields match, in order (the jumps' first).
    pub guards: Vec<GuardSpec>,
}

impl Conds {
    /// Whether a packet of conntrack class `class` can match.
    pub fn for_class(&self, class: u32) -> bool {
        self.classes.is_none_or(|c| c & (1 << class) != 0)
    }

    fn limited_to(&self, classes: Classes) -> Conds {
        Conds {
            classes: Some(self.classes.unwrap_or(ALL_CLASSES) & classes),
            ..self.clone()
        }
    }

    fn and(&self, other: &Conds) -> Conds {
        fn cat<T: Clone>(a: &[T], b: &[T]) -> Vec<T> {
            a.iter().chain(b).cloned().collect()
        }
        Conds {
            iface: cat(&self.iface, &other.iface),
            oiface: cat(&self.oiface, &other.oiface),
            src: cat(&self.src, &other.src),
            dst: cat(&self.dst, &other.dst),
            proto: cat(&self.proto, &other.proto),
            sport: cat(&self.sport, &other.sport),
            dport: cat(&self.dport, &other.dport),
            icmp: cat(&self.icmp, &other.icmp),
            tcp_flags: cat(&self.tcp_flags, &other.tcp_flags),
            guards: cat(&self.guards, &other.guards),
            classes: match (self.classes, other.classes) {
                (Some(a), Some(b)) => Some(a & b),
                (a, b) => a.or(b),
            },
        }
    }
}

/// A rule's matches as conditions: one set, or two for `-m multiport --ports` (source port
/// or destination port), tried in that order. Conntrack state is not among them: the caller
/// splits the rule by class.
fn alternatives(spec: &RuleSpec) -> Vec<Conds> {
    fn opt<T: Clone>(o: &Option<T>) -> Vec<T> {
        o.iter().cloned().collect()
    }
    let range = |o: &Option<Neg<PortRange>>| {
        o.iter()
            .map(|n| PortCond::new(&[n.value], n.negated))
            .collect::<Vec<_>>()
    };
    let base = Conds {
        iface: opt(&spec.in_iface),
        oiface: opt(&spec.out_iface),
        src: opt(&spec.src),
        dst: opt(&spec.dst),
        proto: opt(&spec.proto),
        sport: range(&spec.sport),
        dport: range(&spec.dport),
        icmp: opt(&spec.icmp),
        tcp_flags: opt(&spec.tcp_flags),
        classes: None,
        guards: Vec::new(),
    };
    let Some(m) = &spec.multiport else {
        return vec![base];
    };
    let cond = PortCond::new(&m.value.ports, m.negated);
    let with = |sport: bool| {
        let mut c = base.clone();
        if sport {
            c.sport.push(cond.clone());
        } else {
            c.dport.push(cond.clone());
        }
        c
    };
    match (m.value.kind, m.negated) {
        (MultiportKind::Sports, _) => vec![with(true)],
        (MultiportKind::Dports, _) => vec![with(false)],
        // Source or destination in the list.
        (MultiportKind::Ports, false) => vec![with(true), with(false)],
        // Neither source nor destination in the list: both conditions at once.
        (MultiportKind::Ports, true) => {
            let mut c = with(true);
            c.dport.push(cond.clone());
            vec![c]
        }
    }
}

/// One classifier entry before it is laid out: its conditions and what it does.
#[derive(Clone, Debug)]
pub struct Flat {
    pub conds: Conds,
    pub entry: Entry,
}

pub struct Flattener<'a> {
    rules: &'a FamilyRules,
    family: Family,
    sets: &'a Registry,
    policy: Verdict,
    /// Counter slot of the built-in chain's policy.
    policy_slot: u32,
    pub out: Vec<Flat>,
}

impl<'a> Flattener<'a> {
    pub fn new(
        rules: &'a FamilyRules,
        family: Family,
        sets: &'a Registry,
        policy: Verdict,
        policy_slot: u32,
    ) -> Flattener<'a> {
        Flattener {
            rules,
            family,
            sets,
            policy,
            policy_slot,
            out: Vec::new(),
        }
    }

    fn push(
        &mut self,
        conds: Conds,
        action: u32,
        counter: u32,
        jumps: &[u32],
        position: u32,
    ) -> usize {
        let mut entry = Entry {
            action,
            counter,
            depth: jumps.len() as u32,
            position,
            ..Entry::default()
        };
        entry.jumps[..jumps.len()].copy_from_slice(jumps);
        self.out.push(Flat { conds, entry });
        self.out.len() - 1
    }

    /// Emits DEFER entries for packets matching `spec` (its target aside): ones whose fate
    /// depends on something XDP does not see, such as a DNAT that changes their route.
    pub fn defer(&mut self, spec: &RuleSpec) {
        for conds in alternatives(spec) {
            self.push(conds, VERDICT_DEFER, NO_COUNTER, &[], 0);
        }
    }

    /// Emits the entries of raw PREROUTING's DROP rule `rule`, judged ahead of the chain
    /// (see firewall_common::VERDICT_DROP_RAW); what XDP cannot check of it becomes DEFER.
    /// Position 0: not a rule of the chain the verdict log names.
    pub fn raw_drop(&mut self, rule: &Rule) -> Result<(), CompileError> {
        let first = self.out.len();
        self.chain(std::slice::from_ref(rule), &Conds::default(), &[], Some(0))?;
        for flat in &mut self.out[first..] {
            if flat.entry.action == VERDICT_DROP {
                flat.entry.action = VERDICT_DROP_RAW;
            }
        }
        Ok(())
    }

    /// Emits the entries of a chain's rules under `ctx` (the conditions of the jumps that
    /// led here). Returns the RETURN entries, whose resume point is the caller's business.
    pub fn chain(
        &mut self,
        rules: &[Rule],
        ctx: &Conds,
        jumps: &[u32],
        position: Option<u32>,
    ) -> Result<Vec<usize>, CompileError> {
        let mut returns = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let position = position.unwrap_or(i as u32 + 1);
            let mut resume_after = Vec::new();
            let own = guards::of_rule(rule, self.family, self.sets);
            for alt in alternatives(&rule.spec) {
                let mut conds = ctx.and(&alt);
                // Matches only netfilter can judge (rules::matches): it judges the packet.
                if !rule.spec.nf.is_empty() {
                    self.push(conds, VERDICT_DEFER, NO_COUNTER, jumps, position);
                    continue;
                }
                match &own {
                    RuleGuards::Check(g) if fits(conds.guards.len() + g.len()) => {
                        conds.guards.extend(g.iter().copied());
                    }
                    // Netfilter judges what XDP cannot check exactly once per packet, and
                    // entries with more guards than the program follows.
                    _ => {
                        self.push(conds, VERDICT_DEFER, NO_COUNTER, jumps, position);
                        continue;
                    }
                }
                let Some(ct) = &rule.spec.ctstate else {
                    self.rule(
                        rule,
                        conds,
                        jumps,
                        position,
                        &mut returns,
                        &mut resume_after,
                    )?;
                    continue;
                };
                // Where XDP knows the state, the rule is judged as iptables would; where it
                // does not (class 0), a packet matching the rest of the rule may or may not
                // match the state, so only netfilter can go on from there.
                let known = conds.limited_to(satisfying(ct));
                if known.classes != Some(0) {
                    self.rule(
                        rule,
                        known,
                        jumps,
                        position,
                        &mut returns,
                        &mut resume_after,
                    )?;
                }
                let unknown = conds.limited_to(1 << CT_CLASS_UNKNOWN);
                if unknown.classes != Some(0) {
                    self.push(unknown, VERDICT_DEFER, NO_COUNTER, jumps, position);
                }
            }
            // Every way out of the jump's chain resumes after all of this rule's entries.
            let after = self.out.len() as u32;
            for at in resume_after {
                self.out[at].entry.next = after;
            }
        }
        Ok(returns)
    }

    /// The entries of one rule (one alternative of it) under `conds`.
    fn rule(
        &mut self,
        rule: &Rule,
        conds: Conds,
        jumps: &[u32],
        position: u32,
        returns: &mut Vec<usize>,
        resume_after: &mut Vec<usize>,
    ) -> Result<(), CompileError> {
        match &rule.spec.target {
            // The editor keeps nat targets in the nat table, which XDP never sees.
            Target::Accept
            | Target::Masquerade(_)
            | Target::Snat(_)
            | Target::Dnat(_)
            | Target::Redirect(_) => {
                self.push(conds, VERDICT_ACCEPT, rule.slot, jumps, position);
            }
            // XDP could drop, but the answer (ICMP error, TCP reset) or the log event is
            // netfilter's to send, exactly as iptables sends it. A rule with no target
            // would need an entry that counts and goes on; netfilter does that already, and
            // changes the packet's mark or conntrack (MARK, CT) as iptables does.
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
            | Target::Synproxy(_) => {
                self.push(conds, VERDICT_DEFER, NO_COUNTER, jumps, position);
            }
            Target::Drop => {
                self.push(conds, VERDICT_DROP, rule.slot, jumps, position);
            }
            // RETURN in a built-in chain ends it: the policy decides, and counts the
            // packet as iptables does (the extra counter rides in `jumps`).
            Target::Return if jumps.is_empty() => {
                let policy = [self.policy_slot];
                self.push(conds, verdict(self.policy), rule.slot, &policy, position);
            }
            Target::Return => {
                let at = self.push(conds, ACTION_CONTINUE, rule.slot, jumps, position);
                returns.push(at);
            }
            Target::Jump(name) => {
                if jumps.len() == MAX_JUMP_DEPTH {
                    return Err(CompileError::TooDeep(name.clone()));
                }
                let inner = self
                    .rules
                    .user_chain(name)
                    .ok_or_else(|| CompileError::NoChain(name.clone()))?;
                let mut inner_jumps = jumps.to_vec();
                inner_jumps.push(rule.slot);
                let ret = self.chain(&inner.rules, &conds, &inner_jumps, Some(position))?;
                resume_after.extend(ret);
                // Falling off the end of the chain: count the jump, go on after it.
                let end = self.push(conds, ACTION_CONTINUE, NO_COUNTER, &inner_jumps, position);
                resume_after.push(end);
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Result<Vec<Flat>, CompileError> {
        let restarts = self
            .out
            .iter()
            .filter(|f| f.entry.action == ACTION_CONTINUE)
            .count();
        if restarts >= MAX_RESTARTS as usize {
            return Err(CompileError::TooManyReturns(restarts));
        }
        Ok(self.out)
    }
}
