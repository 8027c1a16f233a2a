//! What the nat table means for XDP. NAT happens in netfilter, after XDP has judged a
//! packet by its addresses as they arrived, and it can change which chain iptables judges
//! the packet in: a DNAT'd packet for this host is forwarded (FORWARD, not INPUT), and a
//! reply to a source-NATed connection arrives for this host's address but is de-NATed and
//! forwarded. XDP must leave such packets to netfilter, which sees them after NAT.

use crate::rules::{Chain, FamilyRules, RuleSpec, Target};

/// Matches of the packets XDP must defer in built-in `chain` (INPUT or FORWARD) because of
/// the nat table `nat`. Conservative: deferring too much is slower, never wrong.
pub fn deferred(nat: &FamilyRules, chain: Chain) -> Vec<RuleSpec> {
    let mut out = Vec::new();
    // A DNAT in PREROUTING (or in a chain it jumps to) can send a packet XDP sees as for
    // this host to FORWARD, or the other way round: defer what those rules could match.
    for rule in &nat.prerouting.rules {
        let dnat = match &rule.spec.target {
            // REDIRECT is a DNAT to this host.
            Target::Dnat(_) | Target::Redirect(_) => true,
            Target::Jump(to) => reaches(
                nat,
                to,
                &|t| matches!(t, Target::Dnat(_) | Target::Redirect(_)),
                0,
            ),
            _ => false,
        };
        if dnat {
            // Without its state and set matches the rule matches more packets: XDP then
            // defers more, never fewer, than the DNAT could take.
            out.push(RuleSpec {
                ctstate: None,
                sets: Vec::new(),
                comment: None,
                ..rule.spec.clone()
            });
        }
    }
    // Replies to source-NATed connections arrive for this host's own address: XDP would
    // judge them in INPUT, iptables in FORWARD after de-NAT. Which ones, only conntrack
    // knows, so with any source NAT every packet XDP would judge in INPUT is deferred.
    let snat = |t: &Target| matches!(t, Target::Masquerade(_) | Target::Snat(_));
    if chain == Chain::Input && nat.all_rules().any(|r| snat(&r.spec.target)) {
        out.push(RuleSpec::any(Target::Accept));
    }
    out
}

/// Whether user chain `name`, or a chain it jumps to, has a rule whose target satisfies
/// `pred`. The editor refuses loops; `depth` bounds the walk all the same.
fn reaches(nat: &FamilyRules, name: &str, pred: &dyn Fn(&Target) -> bool, depth: usize) -> bool {
    let Some(chain) = nat.user_chain(name).filter(|_| depth < 32) else {
        return false;
    };
    chain.rules.iter().any(|r| match &r.spec.target {
        Target::Jump(to) => reaches(nat, to, pred, depth + 1),
        t => pred(t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{edit::Editor, parse::parse_args, Family, Ruleset, Table};

    fn nat(lines: &[&str]) -> FamilyRules {
        let mut e = Editor::new(Ruleset::default());
        for line in lines {
            let args: Vec<String> = line.split_whitespace().map(String::from).collect();
            let inv = parse_args(&args).unwrap();
            e.apply(inv.table, inv.family, inv.command).unwrap();
        }
        e.ruleset.table(Table::Nat, Family::V4).clone()
    }

    #[test]
    fn dnat_and_snat_defer_what_they_touch() {
        assert!(deferred(&nat(&[]), Chain::Input).is_empty());
        let n = nat(&[
            "-t nat -A PREROUTING -i eth0 -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80",
            "-t nat -A PREROUTING -p udp -j ACCEPT",
        ]);
        for chain in [Chain::Input, Chain::Forward] {
            let d = deferred(&n, chain);
            assert_eq!(d.len(), 1, "{chain}");
            assert_eq!(
                d[0].in_iface.as_ref().map(|i| i.value.as_str()),
                Some("eth0")
            );
        }
        let n = nat(&[
            "-t nat -N FWD",
            "-t nat -N INNER",
            "-t nat -A FWD -j INNER",
            "-t nat -A INNER -p tcp -j DNAT --to-destination 10.0.0.3",
            "-t nat -A PREROUTING -d 192.0.2.1 -j FWD",
        ]);
        let d = deferred(&n, Chain::Forward);
        assert_eq!(d.len(), 1);
        assert!(d[0].dst.is_some(), "the jump's own matches: {:?}", d[0]);
        let n = nat(&["-t nat -A POSTROUTING -o eth0 -j MASQUERADE"]);
        assert_eq!(n.postrouting.rules.len(), 1);
        assert_eq!(
            deferred(&n, Chain::Input),
            vec![RuleSpec::any(Target::Accept)]
        );
        assert!(deferred(&n, Chain::Forward).is_empty());
    }
}
