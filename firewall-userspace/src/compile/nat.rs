//! What the nat table means for XDP. NAT happens in netfilter, after XDP has judged a
//! packet by its addresses as they arrived, and iptables counts the nat table's PREROUTING
//! rules and policy for the first packet of every new connection, before its filter table
//! judges it: the packets its filter then drops included. Which packets conntrack calls
//! new only netfilter knows (a packet of a connection it already tracks, or one it finds
//! invalid, is not counted there), and NAT can also change the chain iptables judges a
//! packet in (a DNAT'd packet for this host is forwarded; a reply to a source-NATed
//! connection arrives for this host's address and is forwarded after de-NAT). So once a
//! family has a nat table, XDP leaves that family's INPUT and FORWARD packets to netfilter,
//! which judges and counts them as iptables does: slower, never wrong. (Before, XDP kept
//! judging what no DNAT rule could touch, and the nat table's counters missed every packet
//! it dropped.)

use crate::rules::{FamilyRules, RuleSpec, Target};

/// Matches of the packets XDP must defer in INPUT and FORWARD because of the family's nat
/// table `nat`: every packet once the table exists.
pub fn deferred(nat: &FamilyRules) -> Vec<RuleSpec> {
    if nat.exists() {
        vec![RuleSpec::any(Target::Accept)]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{edit::ruleset_of, Family, Table};

    fn nat(lines: &[&str]) -> FamilyRules {
        ruleset_of(lines).table(Table::Nat, Family::V4).clone()
    }

    #[test]
    fn a_nat_table_defers_everything() {
        assert!(deferred(&nat(&[])).is_empty());
        for rules in [
            &["-t nat -A PREROUTING -i eth0 -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80"][..],
            &["-t nat -A POSTROUTING -o eth0 -j MASQUERADE"][..],
            &["-t nat -N EMPTY"][..],
        ] {
            assert_eq!(
                deferred(&nat(rules)),
                vec![RuleSpec::any(Target::Accept)],
                "{rules:?}"
            );
        }
    }
}
