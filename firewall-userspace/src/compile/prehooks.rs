//! What the raw and mangle tables mean for XDP. Netfilter judges them (they run before the
//! filter table: raw PREROUTING at -300, mangle PREROUTING and INPUT/FORWARD at -150), and
//! their rules can change what the filter table sees: `-j CT --notrack` makes a packet
//! UNTRACKED where XDP's conntrack lookup would call it NEW, a MARK feeds `-m mark`, a DROP
//! there means the filter table never counts the packet. So XDP leaves to netfilter every
//! packet a rule of those chains could match, and everything when one of them drops by
//! policy.

use crate::rules::{Chain, Family, RuleSpec, Ruleset, Table, Target, Verdict};

/// Matches of the packets XDP must defer in built-in `chain` (INPUT or FORWARD) of
/// `family` because of the raw and mangle tables. Conservative: the matches XDP cannot
/// check (conntrack state, sets, marks...) are left out by the flattener, which then
/// defers more packets, never fewer.
pub fn deferred(ruleset: &Ruleset, family: Family, chain: Chain) -> Vec<RuleSpec> {
    let raw = ruleset.table(Table::Raw, family);
    let mangle = ruleset.table(Table::Mangle, family);
    let chains = [
        (raw, Chain::PreRouting),
        (mangle, Chain::PreRouting),
        (mangle, chain),
    ];
    let mut out = Vec::new();
    for (table, c) in chains {
        if !table.builtins().contains(&c) {
            continue;
        }
        let rules = table.chain(c);
        if rules.policy == Verdict::Drop {
            return vec![RuleSpec::any(Target::Accept)];
        }
        // A jump's own matches cover every rule of the chain it jumps to.
        out.extend(rules.rules.iter().map(|r| r.spec.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{edit::Editor, parse::parse_args};

    fn ruleset(lines: &[&str]) -> Ruleset {
        let mut e = Editor::new(Ruleset::default());
        for line in lines {
            let args: Vec<String> = line.split_whitespace().map(String::from).collect();
            let inv = parse_args(&args).unwrap();
            e.apply(inv.table, inv.family, inv.command).unwrap();
        }
        e.ruleset
    }

    #[test]
    fn raw_and_mangle_rules_defer_what_they_match() {
        let r = ruleset(&[
            "-t raw -A PREROUTING -p udp --dport 53 -j ACCEPT",
            "-t mangle -A PREROUTING -s 10.0.0.0/8 -j ACCEPT",
            "-t mangle -A FORWARD -p tcp -j ACCEPT",
            "-t mangle -A OUTPUT -p tcp -j ACCEPT",
        ]);
        let input = deferred(&r, Family::V4, Chain::Input);
        assert_eq!(input.len(), 2);
        assert_eq!(deferred(&r, Family::V4, Chain::Forward).len(), 3);
        assert!(deferred(&r, Family::V6, Chain::Input).is_empty());
        let dropping = ruleset(&["-t mangle -P INPUT DROP"]);
        assert_eq!(
            deferred(&dropping, Family::V4, Chain::Input),
            [RuleSpec::any(Target::Accept)]
        );
        assert!(deferred(&dropping, Family::V4, Chain::Forward).is_empty());
    }
}
