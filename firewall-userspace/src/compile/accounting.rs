//! What conntrack's per-connection counters mean for XDP. `-m connbytes` reads how many
//! packets and bytes a connection has carried, which conntrack counts for every packet it
//! sees, the ones iptables' filter table then drops included. A packet XDP drops never
//! reaches conntrack, so a later packet of its connection would find other counts than
//! under iptables. So once any table of a family reads them, XDP leaves that family's INPUT
//! and FORWARD packets to netfilter, as it does for a nat table (compile/nat.rs).

use crate::rules::{matches::NfMatch, Family, RuleSpec, Ruleset, Table, Target};

/// Matches of the packets XDP must defer in INPUT and FORWARD because a rule of `family`
/// reads conntrack's counters: every packet then.
pub fn deferred(ruleset: &Ruleset, family: Family) -> Vec<RuleSpec> {
    let reads = Table::ALL.iter().any(|&t| {
        ruleset.table(t, family).all_rules().any(|r| {
            r.spec
                .nf
                .iter()
                .any(|m| matches!(m.value, NfMatch::Connbytes(_)))
        })
    });
    if reads {
        vec![RuleSpec::any(Target::Accept)]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rules::edit::ruleset_of as ruleset;

    #[test]
    fn a_connbytes_rule_anywhere_in_the_family_defers_everything() {
        let plain = ruleset(&["-A INPUT -p tcp --dport 22 -j ACCEPT"]);
        assert!(deferred(&plain, Family::V4).is_empty());
        let qos = ruleset(&[
            "-t mangle -N BULK",
            "-t mangle -A BULK -m connbytes --connbytes 500000: --connbytes-dir both --connbytes-mode bytes -j MARK --set-mark 2",
        ]);
        assert_eq!(
            deferred(&qos, Family::V4),
            vec![RuleSpec::any(Target::Accept)]
        );
        assert!(deferred(&qos, Family::V6).is_empty());
    }
}
