//! What the raw and mangle tables mean for XDP. They run before the filter table (raw
//! PREROUTING at -300, mangle PREROUTING and INPUT/FORWARD at -150), and their rules can
//! change what the filter table sees: `-j CT --notrack` makes a packet UNTRACKED where
//! XDP's conntrack lookup would call it NEW, a MARK feeds `-m mark`, a DROP there means the
//! filter table never counts the packet. Raw PREROUTING is stateless and comes before
//! conntrack: its DROP rules are judged at XDP, ahead of INPUT and FORWARD, where their
//! matches allow (what people write to drop a flood cheaply). XDP leaves to netfilter every
//! other packet a rule of those chains could match, and everything when one of them drops
//! by policy.

use crate::rules::{Chain, Family, Rule, RuleSpec, Ruleset, Table, Target, Verdict};

/// What XDP puts ahead of a built-in chain's own rules, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Ahead {
    /// Packets matching this (its target aside) go to netfilter.
    Defer(RuleSpec),
    /// Raw PREROUTING's DROP rule, judged at XDP with its own counter.
    RawDrop(Rule),
}

/// What XDP must put ahead of built-in `chain` (INPUT or FORWARD) of `family` because of
/// the raw table: its PREROUTING rules in order, a DROP without a conntrack match as
/// itself, every other rule as a deferral of what it could match (a jump's own matches
/// cover every rule of the chain it jumps to). Everything deferred when raw drops by
/// policy.
pub fn raw(ruleset: &Ruleset, family: Family) -> Vec<Ahead> {
    let raw = ruleset.table(Table::Raw, family);
    if !raw.builtins().contains(&Chain::PreRouting) {
        return Vec::new();
    }
    let rules = raw.chain(Chain::PreRouting);
    if rules.policy == Verdict::Drop {
        return vec![Ahead::Defer(RuleSpec::any(Target::Accept))];
    }
    rules
        .rules
        .iter()
        .map(|r| match r.spec.target {
            // Before conntrack, a packet has no state: XDP's lookup would give it one.
            Target::Drop if r.spec.ctstate.is_none() => Ahead::RawDrop(r.clone()),
            _ => Ahead::Defer(r.spec.clone()),
        })
        .collect()
}

/// Whether raw PREROUTING of some family has a rule XDP judges ([`raw`]'s RawDrop).
pub fn raw_drops(ruleset: &Ruleset) -> bool {
    Family::ALL.iter().any(|&f| {
        raw(ruleset, f)
            .iter()
            .any(|a| matches!(a, Ahead::RawDrop(_)))
    })
}

/// Matches of the packets XDP must defer in built-in `chain` (INPUT or FORWARD) of
/// `family` because of the mangle table. Conservative: the matches XDP cannot check
/// (conntrack state, sets, marks...) are left out by the flattener, which then defers more
/// packets, never fewer.
pub fn mangle(ruleset: &Ruleset, family: Family, chain: Chain) -> Vec<RuleSpec> {
    let mangle = ruleset.table(Table::Mangle, family);
    let mut out = Vec::new();
    for c in [Chain::PreRouting, chain] {
        if !mangle.builtins().contains(&c) {
            continue;
        }
        let rules = mangle.chain(c);
        if rules.policy == Verdict::Drop {
            return vec![RuleSpec::any(Target::Accept)];
        }
        out.extend(rules.rules.iter().map(|r| r.spec.clone()));
    }
    out
}

/// The `FW_CONFIG` flags ([`firewall_common::config_prehook`]) of the raw and mangle chains
/// `ruleset` has: iptables counts their policies for every packet that reaches them, so XDP
/// counts them for the packets it drops (the others meet them in netfilter).
pub fn config_flags(ruleset: &Ruleset) -> u32 {
    use firewall_common::{
        config_prehook, PREHOOK_MANGLE_FORWARD, PREHOOK_MANGLE_INPUT, PREHOOK_MANGLE_PREROUTING,
        PREHOOK_RAW_PREROUTING,
    };
    let mut flags = 0;
    for family in Family::ALL {
        let f = family.index();
        if ruleset.table(Table::Raw, family).exists() {
            flags |= config_prehook(f, PREHOOK_RAW_PREROUTING);
        }
        if ruleset.table(Table::Mangle, family).exists() {
            flags |= config_prehook(f, PREHOOK_MANGLE_PREROUTING)
                | config_prehook(f, PREHOOK_MANGLE_INPUT)
                | config_prehook(f, PREHOOK_MANGLE_FORWARD);
        }
    }
    flags
}

/// XDP's counter slot for the policy of built-in `chain` of `table`: INPUT and FORWARD of
/// the filter table, which it judges, and the raw and mangle chains before them, which it
/// counts for the packets it drops. None for every other chain.
pub fn xdp_policy_slot(table: Table, family: Family, chain: Chain) -> Option<u32> {
    use firewall_common::{
        policy_counter, prehook_counter, PREHOOK_MANGLE_FORWARD, PREHOOK_MANGLE_INPUT,
        PREHOOK_MANGLE_PREROUTING, PREHOOK_RAW_PREROUTING,
    };
    let f = family.index();
    let hook = match (table, chain) {
        (Table::Filter, _) => return chain.xdp_index().map(|i| policy_counter(f, i)),
        (Table::Raw, Chain::PreRouting) => PREHOOK_RAW_PREROUTING,
        (Table::Mangle, Chain::PreRouting) => PREHOOK_MANGLE_PREROUTING,
        (Table::Mangle, Chain::Input) => PREHOOK_MANGLE_INPUT,
        (Table::Mangle, Chain::Forward) => PREHOOK_MANGLE_FORWARD,
        _ => return None,
    };
    Some(prehook_counter(f, hook))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rules::edit::ruleset_of as ruleset;

    #[test]
    fn raw_and_mangle_rules_defer_what_they_match() {
        let r = ruleset(&[
            "-t raw -A PREROUTING -p udp --dport 53 -j ACCEPT",
            "-t mangle -A PREROUTING -s 10.0.0.0/8 -j ACCEPT",
            "-t mangle -A FORWARD -p tcp -j ACCEPT",
            "-t mangle -A OUTPUT -p tcp -j ACCEPT",
        ]);
        assert_eq!(raw(&r, Family::V4).len(), 1);
        assert_eq!(mangle(&r, Family::V4, Chain::Input).len(), 1);
        assert_eq!(mangle(&r, Family::V4, Chain::Forward).len(), 2);
        assert!(raw(&r, Family::V6).is_empty());
        assert!(mangle(&r, Family::V6, Chain::Input).is_empty());
        assert!(!raw_drops(&r));
        let dropping = ruleset(&["-t mangle -P INPUT DROP"]);
        assert_eq!(
            mangle(&dropping, Family::V4, Chain::Input),
            [RuleSpec::any(Target::Accept)]
        );
        assert!(mangle(&dropping, Family::V4, Chain::Forward).is_empty());
    }

    #[test]
    fn raw_drops_are_judged_in_order_and_stateful_ones_deferred() {
        let r = ruleset(&[
            "-t raw -A PREROUTING -p udp --dport 53 -j ACCEPT",
            "-t raw -A PREROUTING -s 192.0.2.0/24 -j DROP",
            "-t raw -A PREROUTING -m conntrack --ctstate INVALID -j DROP",
        ]);
        let ahead = raw(&r, Family::V4);
        assert!(matches!(
            ahead.as_slice(),
            [Ahead::Defer(_), Ahead::RawDrop(d), Ahead::Defer(_)] if d.spec.src.is_some()
        ));
        assert!(raw_drops(&r));
        assert_eq!(
            raw(&ruleset(&["-t raw -P PREROUTING DROP"]), Family::V4),
            [Ahead::Defer(RuleSpec::any(Target::Accept))]
        );
    }

    #[test]
    fn xdp_counts_the_policies_of_the_tables_that_exist() {
        use firewall_common::{config_prehook, PREHOOK_MANGLE_INPUT, PREHOOK_RAW_PREROUTING};
        assert_eq!(config_flags(&ruleset(&["-A INPUT -j ACCEPT"])), 0);
        let r = ruleset(&[
            "-t raw -A PREROUTING -j ACCEPT",
            "-6 -t mangle -P INPUT ACCEPT",
        ]);
        let flags = config_flags(&r);
        assert_eq!(flags.count_ones(), 4);
        assert_ne!(flags & config_prehook(0, PREHOOK_RAW_PREROUTING), 0);
        assert_ne!(flags & config_prehook(1, PREHOOK_MANGLE_INPUT), 0);
        assert_eq!(flags & config_prehook(0, PREHOOK_MANGLE_INPUT), 0);
        // Each chain its own slot, none shared with the filter table's policies.
        let mut slots: Vec<u32> = [Table::Filter, Table::Raw, Table::Mangle]
            .into_iter()
            .flat_map(|t| {
                Family::ALL.into_iter().flat_map(move |f| {
                    [
                        Chain::PreRouting,
                        Chain::Input,
                        Chain::Forward,
                        Chain::Output,
                    ]
                    .into_iter()
                    .filter_map(move |c| xdp_policy_slot(t, f, c))
                })
            })
            .collect();
        let n = slots.len();
        slots.sort();
        slots.dedup();
        assert_eq!((n, slots.len()), (12, 12));
        assert!(slots
            .iter()
            .all(|&s| s < firewall_common::POLICY_COUNTER_SLOTS));
        assert_eq!(
            xdp_policy_slot(Table::Nat, Family::V4, Chain::PreRouting),
            None
        );
    }
}
