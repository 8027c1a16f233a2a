//! Chain commands (-A, -I, -D, -P, -F, -N, -X, -E) as pure edits of a ruleset, with
//! iptables' errors.
//!
//! New rules get counter slots that neither the ruleset being edited nor the one in force
//! uses, so a slot is never shared by an old rule still counting and a new rule.

use std::collections::HashSet;

use firewall_common::{MAX_COUNTERS, POLICY_COUNTER_SLOTS};

use super::{
    parse::Command, Chain, Family, FamilyRules, Rule, RuleSpec, Ruleset, Table, Target, UserChain,
    Verdict,
};

/// A command that cannot be done; `status()` is iptables' exit status for it.
/// What `-j CHECKSUM --checksum-fill` does in fwctl, said each time such a rule is added.
/// xt_CHECKSUM fills in only checksums left to the device (CHECKSUM_PARTIAL: a local
/// packet on virtio, veth or a tap), for guests' old DHCP clients that read them raw.
pub const CHECKSUM_WARNING: &str = "CHECKSUM --checksum-fill: nftables cannot fill a checksum, so this rule only counts; packets keep a checksum left to the device unfilled (the kernel's xt_CHECKSUM itself advises against the target)";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("Index of insertion too big")]
    InsertIndex,
    #[error("Index of deletion too big")]
    DeleteIndex,
    #[error("Index of replacement too big")]
    ReplaceIndex,
    #[error("Bad rule (does a matching rule exist in that chain?)")]
    NoSuchRule,
    #[error("the nat table is not intended for filtering: {0} is not allowed there")]
    FilteringInNat(&'static str),
    #[error("{0} belongs to the nat table: use -t nat")]
    NatTargetInFilter(&'static str),
    #[error("CT belongs to the raw table: use -t raw")]
    CtOutsideRaw,
    #[error("CHECKSUM belongs to the mangle table (xt_CHECKSUM's, as iptables refuses it elsewhere): use -t mangle")]
    ChecksumOutsideMangle,
    #[error("-m mac works in PREROUTING, INPUT and FORWARD only, not in {0}")]
    MacHook(String),
    #[error("-m owner works in OUTPUT and POSTROUTING only, not in {0}")]
    OwnerHook(String),
    #[error("policy match: --dir {0} is not valid in {1} (input policies: PREROUTING, INPUT, FORWARD; output: FORWARD, OUTPUT, POSTROUTING)")]
    PolicyHook(&'static str, String),
    #[error(
        "TCPMSS --clamp-mss-to-pmtu works in FORWARD, OUTPUT and POSTROUTING only, not in {0}"
    )]
    ClampHook(String),
    #[error("{0} can only be used in {1} (or a user chain), not in {2}")]
    WrongChainForTarget(&'static str, &'static str, String),
    #[error("SYNPROXY needs -p tcp: it proxies TCP handshakes only")]
    SynproxyTcp,
    #[error("Chain `{0}' does not exist")]
    NoSuchChain(String),
    #[error("Chain `{0}' already exists")]
    ChainExists(String),
    #[error("Couldn't load target `{0}': no chain by that name")]
    NoSuchTarget(String),
    #[error("Chain `{0}' is still referenced by {1} rule(s)")]
    ChainReferenced(String, usize),
    #[error("Chain `{0}' is not empty")]
    ChainNotEmpty(String),
    #[error("cannot {0} the built-in chain `{1}'")]
    BuiltinChain(&'static str, String),
    #[error("jumping to `{0}' would make a loop: {1}")]
    Loop(String, String),
    #[error("Can't use -o with INPUT")]
    OutInInput,
    #[error("no free counter slot: too many rules")]
    NoFreeSlot,
}

impl EditError {
    pub fn status(&self) -> u8 {
        match self {
            EditError::NoSuchTarget(_) => 2,
            _ => 1,
        }
    }
}

/// The ruleset iptables commands (one per line, no quoting) make, for tests.
#[cfg(test)]
pub fn ruleset_of(lines: &[&str]) -> Ruleset {
    let mut e = Editor::new(Ruleset::default());
    for line in lines {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        let inv = super::parse::parse_args(&args).expect("a valid command");
        e.apply(inv.table, inv.family, inv.command)
            .expect("a command the ruleset takes");
    }
    e.ruleset
}

pub struct Editor {
    pub ruleset: Ruleset,
    /// The table commands apply to (iptables' `-t`).
    pub table: Table,
    /// Slots of the ruleset in force and those handed out since: none is handed out again
    /// in this change, so a slot never serves an old rule still counting and a new one.
    taken: HashSet<u32>,
    /// Where the search for a free slot resumes.
    cursor: u32,
    /// Slots handed out by this change: their counters start at zero.
    pub new_slots: Vec<u32>,
}

impl Editor {
    pub fn new(ruleset: Ruleset) -> Editor {
        Editor {
            taken: ruleset.slots().collect(),
            ruleset,
            table: Table::Filter,
            cursor: POLICY_COUNTER_SLOTS,
            new_slots: Vec::new(),
        }
    }

    fn alloc_slot(&mut self) -> Result<u32, EditError> {
        let slot = (self.cursor..MAX_COUNTERS)
            .find(|s| !self.taken.contains(s))
            .ok_or(EditError::NoFreeSlot)?;
        self.taken.insert(slot);
        self.cursor = slot + 1;
        self.new_slots.push(slot);
        Ok(slot)
    }

    /// The table being edited, in `family`.
    fn rules(&self, family: Family) -> &FamilyRules {
        self.ruleset.table(self.table, family)
    }

    fn family_mut(&mut self, family: Family) -> &mut FamilyRules {
        self.ruleset.table_mut(self.table, family)
    }

    fn rules_mut(&mut self, family: Family, chain: &str) -> Result<&mut Vec<Rule>, EditError> {
        self.family_mut(family)
            .rules_mut(chain)
            .ok_or_else(|| EditError::NoSuchChain(chain.to_string()))
    }

    /// Rules go into the table's built-in chains and its user chains.
    fn writable(&self, family: Family, chain: &str) -> Result<(), EditError> {
        let rules = self.rules(family);
        if rules.builtin(chain).is_some() || rules.user_chain(chain).is_some() {
            Ok(())
        } else {
            Err(EditError::NoSuchChain(chain.to_string()))
        }
    }

    /// The nat table's targets in the chains netfilter allows them in, and no DROP there.
    fn check_nat(&self, chain: &str, target: &Target) -> Result<(), EditError> {
        let name = match target {
            Target::Masquerade(_) => "MASQUERADE",
            Target::Snat(_) => "SNAT",
            Target::Dnat(_) => "DNAT",
            Target::Redirect(_) => "REDIRECT",
            Target::Drop if self.table == Table::Nat => {
                return Err(EditError::FilteringInNat("DROP"))
            }
            Target::Reject(..) if self.table == Table::Nat => {
                return Err(EditError::FilteringInNat("REJECT"))
            }
            _ => return Ok(()),
        };
        if self.table != Table::Nat {
            return Err(EditError::NatTargetInFilter(name));
        }
        let (allowed, text): (&[Chain], _) = match target {
            Target::Masquerade(_) => (&[Chain::PostRouting], "POSTROUTING"),
            Target::Snat(_) => (&[Chain::PostRouting, Chain::Input], "POSTROUTING and INPUT"),
            _ => (&[Chain::PreRouting, Chain::Output], "PREROUTING and OUTPUT"),
        };
        match Chain::from_name(chain) {
            Some(c) if !allowed.contains(&c) => Err(EditError::WrongChainForTarget(
                name,
                text,
                chain.to_string(),
            )),
            _ => Ok(()),
        }
    }

    fn check_target(&self, family: Family, chain: &str, spec: &RuleSpec) -> Result<(), EditError> {
        if spec.out_iface.is_some() && chain == Chain::Input.name() {
            return Err(EditError::OutInInput);
        }
        // Path-MTU clamping needs the route out: FORWARD, OUTPUT and POSTROUTING only, as
        // xt_TCPMSS and nftables' `rt mtu` both require.
        if spec.target == Target::Tcpmss(crate::rules::mark::Tcpmss { mss: None })
            && matches!(
                Chain::from_name(chain),
                Some(Chain::PreRouting | Chain::Input)
            )
        {
            return Err(EditError::ClampHook(chain.to_string()));
        }
        // xt_SYNPROXY's tables and hooks, and its TCP-only check.
        if let Target::Synproxy(_) = spec.target {
            let builtin = Chain::from_name(chain);
            if self.table != Table::Filter
                || builtin.is_some_and(|c| !matches!(c, Chain::Input | Chain::Forward))
            {
                return Err(EditError::WrongChainForTarget(
                    "SYNPROXY",
                    "the filter table's INPUT and FORWARD",
                    chain.to_string(),
                ));
            }
            if spec.proto.as_ref().map(|p| (p.value, p.negated)) != Some((6, false)) {
                return Err(EditError::SynproxyTcp);
            }
        }
        // A frame's source address is there only where the frame arrived.
        let mac = spec
            .nf
            .iter()
            .any(|m| matches!(m.value, crate::rules::matches::NfMatch::Mac(_)));
        if mac
            && matches!(
                Chain::from_name(chain),
                Some(Chain::Output | Chain::PostRouting)
            )
        {
            return Err(EditError::MacHook(chain.to_string()));
        }
        // A local socket only on the way out.
        let owner = spec
            .nf
            .iter()
            .any(|m| matches!(m.value, crate::rules::matches::NfMatch::Owner(_)));
        let inbound = matches!(
            Chain::from_name(chain),
            Some(Chain::PreRouting | Chain::Input | Chain::Forward)
        );
        if owner && inbound {
            return Err(EditError::OwnerHook(chain.to_string()));
        }
        // xt_policy's checkentry: a packet has no input policy yet on the way out, and
        // no output policy on the way in.
        for m in &spec.nf {
            if let crate::rules::matches::NfMatch::Policy(p) = &m.value {
                let wrong: &[Chain] = if p.out == Some(true) {
                    &[Chain::PreRouting, Chain::Input]
                } else {
                    &[Chain::PostRouting, Chain::Output]
                };
                if Chain::from_name(chain).is_some_and(|c| wrong.contains(&c)) {
                    return Err(EditError::PolicyHook(p.dir(), chain.to_string()));
                }
            }
        }
        // The kernel's CT target is the raw table's alone (xt_CT's `.table`).
        if matches!(spec.target, Target::Notrack { .. } | Target::CtZone(_))
            && self.table != Table::Raw
        {
            return Err(EditError::CtOutsideRaw);
        }
        if spec.target == Target::Checksum {
            if self.table != Table::Mangle {
                return Err(EditError::ChecksumOutsideMangle);
            }
            log::warn!("{CHECKSUM_WARNING}");
        }
        self.check_nat(chain, &spec.target)?;
        let Target::Jump(to) = &spec.target else {
            return Ok(());
        };
        let rules = self.rules(family);
        if rules.user_chain(to).is_none() {
            return Err(EditError::NoSuchTarget(to.clone()));
        }
        if let Some(path) = reaches(rules, to, chain) {
            return Err(EditError::Loop(to.clone(), path));
        }
        Ok(())
    }

    pub fn append(
        &mut self,
        family: Family,
        chain: &str,
        specs: Vec<RuleSpec>,
    ) -> Result<(), EditError> {
        self.writable(family, chain)?;
        let len = self.rules_mut(family, chain)?.len();
        self.insert(family, chain, len + 1, specs)
    }

    /// Inserts before rule `position` (1-based); `len + 1` appends. Several specs (from
    /// comma lists) go in one after the other.
    pub fn insert(
        &mut self,
        family: Family,
        chain: &str,
        position: usize,
        specs: Vec<RuleSpec>,
    ) -> Result<(), EditError> {
        self.writable(family, chain)?;
        let len = self.rules_mut(family, chain)?.len();
        if position == 0 || position > len + 1 {
            return Err(EditError::InsertIndex);
        }
        for (i, spec) in specs.into_iter().enumerate() {
            self.check_target(family, chain, &spec)?;
            let slot = self.alloc_slot()?;
            self.rules_mut(family, chain)?
                .insert(position - 1 + i, Rule { spec, slot });
        }
        Ok(())
    }

    /// Carries out a command that edits the ruleset; hands back the ones that do not
    /// (`-C`, `-Z`, `-L`, `-S`), for the caller to answer.
    pub fn apply(
        &mut self,
        table: Table,
        family: Family,
        command: Command,
    ) -> Result<Option<Command>, EditError> {
        self.table = table;
        match command {
            Command::Append(chain, specs) => self.append(family, &chain, specs)?,
            Command::Insert(chain, n, specs) => self.insert(family, &chain, n, specs)?,
            Command::Replace(chain, n, spec) => self.replace(family, &chain, n, *spec)?,
            Command::DeleteNum(chain, n) => self.delete_number(family, &chain, n)?,
            Command::DeleteSpec(chain, specs) => self.delete_specs(family, &chain, &specs)?,
            Command::Policy(chain, verdict) => self.policy(family, chain, verdict)?,
            Command::Flush(chain) => self.flush(family, chain.as_deref())?,
            Command::NewChain(name) => self.new_chain(family, &name)?,
            Command::DeleteChain(name) => self.delete_chain(family, name.as_deref())?,
            Command::RenameChain(old, new) => self.rename_chain(family, &old, &new)?,
            other @ (Command::Check(..)
            | Command::Zero(..)
            | Command::List(..)
            | Command::ListRules(..)) => return Ok(Some(other)),
        }
        // A command that changed the table made it, as iptables-nft makes it: it is saved
        // from now on even when empty again.
        self.family_mut(family).declared = true;
        Ok(None)
    }

    /// `-R`: the rule at `position` becomes `spec`, with fresh counters.
    pub fn replace(
        &mut self,
        family: Family,
        chain: &str,
        position: usize,
        spec: RuleSpec,
    ) -> Result<(), EditError> {
        self.writable(family, chain)?;
        let len = self.rules_mut(family, chain)?.len();
        if position == 0 || position > len {
            return Err(EditError::ReplaceIndex);
        }
        self.check_target(family, chain, &spec)?;
        let slot = self.alloc_slot()?;
        self.rules_mut(family, chain)?[position - 1] = Rule { spec, slot };
        Ok(())
    }

    pub fn delete_number(
        &mut self,
        family: Family,
        chain: &str,
        position: usize,
    ) -> Result<(), EditError> {
        let rules = self.rules_mut(family, chain)?;
        if position == 0 || position > rules.len() {
            return Err(EditError::DeleteIndex);
        }
        rules.remove(position - 1);
        Ok(())
    }

    /// Deletes the first rule equal to each spec, as `iptables -D CHAIN rule-spec` does.
    pub fn delete_specs(
        &mut self,
        family: Family,
        chain: &str,
        specs: &[RuleSpec],
    ) -> Result<(), EditError> {
        for spec in specs {
            let position = find(&self.ruleset, self.table, family, chain, spec)?
                .ok_or(EditError::NoSuchRule)?;
            self.delete_number(family, chain, position)?;
        }
        Ok(())
    }

    pub fn policy(
        &mut self,
        family: Family,
        chain: Chain,
        verdict: Verdict,
    ) -> Result<(), EditError> {
        self.writable(family, chain.name())?;
        if self.table == Table::Nat && verdict == Verdict::Drop {
            return Err(EditError::FilteringInNat("DROP"));
        }
        self.family_mut(family).chain_mut(chain).policy = verdict;
        Ok(())
    }

    /// `-F [CHAIN]`: empties one chain, or all of them (user chains included).
    pub fn flush(&mut self, family: Family, chain: Option<&str>) -> Result<(), EditError> {
        match chain {
            Some(c) => self.rules_mut(family, c)?.clear(),
            None => {
                let rules = self.family_mut(family);
                for &c in rules.builtins() {
                    rules.chain_mut(c).rules.clear();
                }
                for u in &mut rules.user {
                    u.rules.clear();
                }
            }
        }
        Ok(())
    }

    pub fn new_chain(&mut self, family: Family, name: &str) -> Result<(), EditError> {
        let rules = self.family_mut(family);
        if rules.builtin(name).is_some() || rules.user_chain(name).is_some() {
            return Err(EditError::ChainExists(name.to_string()));
        }
        let at = rules.user.partition_point(|c| c.name.as_str() < name);
        rules.user.insert(
            at,
            UserChain {
                name: name.to_string(),
                rules: Vec::new(),
            },
        );
        Ok(())
    }

    /// `-X [CHAIN]`: deletes an empty, unreferenced user chain, or every user chain.
    pub fn delete_chain(&mut self, family: Family, name: Option<&str>) -> Result<(), EditError> {
        let rules = self.family_mut(family);
        let Some(name) = name else {
            let builtin_refs: usize = rules
                .builtins()
                .iter()
                .flat_map(|c| rules.chain(*c).rules.iter())
                .filter(|r| matches!(r.spec.target, Target::Jump(_)))
                .count();
            if let Some(u) = rules.user.iter().find(|u| !u.rules.is_empty()) {
                return Err(EditError::ChainNotEmpty(u.name.clone()));
            }
            if builtin_refs > 0 {
                let first = rules
                    .user
                    .first()
                    .map(|u| u.name.clone())
                    .unwrap_or_default();
                return Err(EditError::ChainReferenced(first, builtin_refs));
            }
            rules.user.clear();
            return Ok(());
        };
        if rules.builtin(name).is_some() {
            return Err(EditError::BuiltinChain("delete", name.to_string()));
        }
        let chain = rules
            .user_chain(name)
            .ok_or_else(|| EditError::NoSuchChain(name.to_string()))?;
        if !chain.rules.is_empty() {
            return Err(EditError::ChainNotEmpty(name.to_string()));
        }
        let refs = rules.references(name);
        if refs > 0 {
            return Err(EditError::ChainReferenced(name.to_string(), refs));
        }
        rules.user.retain(|c| c.name != name);
        Ok(())
    }

    /// `-E OLD NEW`: renames a user chain and every jump to it.
    pub fn rename_chain(&mut self, family: Family, old: &str, new: &str) -> Result<(), EditError> {
        let rules = self.family_mut(family);
        if rules.builtin(old).is_some() {
            return Err(EditError::BuiltinChain("rename", old.to_string()));
        }
        if rules.builtin(new).is_some() || rules.user_chain(new).is_some() {
            return Err(EditError::ChainExists(new.to_string()));
        }
        let pos = rules
            .user
            .iter()
            .position(|c| c.name == old)
            .ok_or_else(|| EditError::NoSuchChain(old.to_string()))?;
        let mut chain = rules.user.remove(pos);
        chain.name = new.to_string();
        let at = rules.user.partition_point(|c| c.name.as_str() < new);
        rules.user.insert(at, chain);
        for &c in rules.builtins() {
            retarget(&mut rules.chain_mut(c).rules, old, new);
        }
        for u in &mut rules.user {
            retarget(&mut u.rules, old, new);
        }
        Ok(())
    }
}

fn retarget(rules: &mut [Rule], old: &str, new: &str) {
    for r in rules {
        if matches!(&r.spec.target, Target::Jump(t) if t == old) {
            r.spec.target = Target::Jump(new.to_string());
        }
    }
}

/// The jump path from `from` to `to`, if `from` reaches `to` (so a jump `to -> from` would
/// close a loop).
fn reaches(rules: &FamilyRules, from: &str, to: &str) -> Option<String> {
    if from == to {
        return Some(format!("{from} -> {to}"));
    }
    let mut stack = vec![(from.to_string(), from.to_string())];
    let mut seen = HashSet::new();
    while let Some((chain, path)) = stack.pop() {
        if !seen.insert(chain.clone()) {
            continue;
        }
        for r in rules.rules(&chain).into_iter().flatten() {
            if let Target::Jump(next) = &r.spec.target {
                let path = format!("{path} -> {next}");
                if next == to {
                    return Some(format!("{to} -> {path}"));
                }
                stack.push((next.clone(), path));
            }
        }
    }
    None
}

/// 1-based position of the first rule equal to `spec`.
pub fn find(
    ruleset: &Ruleset,
    table: Table,
    family: Family,
    chain: &str,
    spec: &RuleSpec,
) -> Result<Option<usize>, EditError> {
    let rules = ruleset
        .table(table, family)
        .rules(chain)
        .ok_or_else(|| EditError::NoSuchChain(chain.to_string()))?;
    Ok(rules.iter().position(|r| &r.spec == spec).map(|i| i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Neg, PortRange};

    fn spec(port: u16) -> RuleSpec {
        RuleSpec {
            proto: Some(Neg::plain(6)),
            dport: Some(Neg::plain(PortRange {
                min: port,
                max: port,
            })),
            ..RuleSpec::any(Target::Accept)
        }
    }

    fn ports(r: &Ruleset) -> Vec<u16> {
        r.v4.input
            .rules
            .iter()
            .map(|r| r.spec.dport.as_ref().unwrap().value.min)
            .collect()
    }

    const IN: &str = "INPUT";
    const V4: Family = Family::V4;

    #[test]
    fn insert_append_delete_keep_order_and_slots() {
        let mut e = Editor::new(Ruleset::default());
        e.append(V4, IN, vec![spec(22)]).unwrap();
        e.append(V4, IN, vec![spec(80)]).unwrap();
        e.insert(V4, IN, 2, vec![spec(587)]).unwrap();
        e.insert(V4, IN, 1, vec![spec(1), spec(2)]).unwrap();
        assert_eq!(ports(&e.ruleset), [1, 2, 22, 587, 80]);
        assert_eq!(
            e.insert(V4, IN, 7, vec![spec(9)]),
            Err(EditError::InsertIndex)
        );
        e.delete_number(V4, IN, 1).unwrap();
        e.delete_specs(V4, IN, &[spec(80), spec(2)]).unwrap();
        assert_eq!(ports(&e.ruleset), [22, 587]);
        assert_eq!(e.delete_number(V4, IN, 3), Err(EditError::DeleteIndex));
        assert_eq!(
            e.delete_specs(V4, IN, &[spec(80)]),
            Err(EditError::NoSuchRule)
        );

        // A later change must not reuse slots of rules that are still in force.
        let in_force: Vec<u32> = e.ruleset.slots().collect();
        let mut next = Editor::new(e.ruleset.clone());
        next.flush(V4, None).unwrap();
        next.append(V4, IN, vec![spec(443)]).unwrap();
        assert!(!in_force.contains(&next.new_slots[0]));
        assert!(next.new_slots[0] >= POLICY_COUNTER_SLOTS);
    }

    #[test]
    fn output_takes_rules_and_nat_targets_stay_in_their_chains() {
        let mut e = Editor::new(Ruleset::default());
        e.policy(V4, Chain::Output, Verdict::Drop).unwrap();
        e.append(V4, "OUTPUT", vec![spec(1)]).unwrap();
        assert_eq!(
            e.append(V4, "MAIL", vec![spec(1)]),
            Err(EditError::NoSuchChain("MAIL".into()))
        );
        let nat = |target| RuleSpec { target, ..spec(80) };
        let to = crate::rules::NatTo {
            addr: "10.0.0.2".parse().unwrap(),
            ports: None,
        };
        // Nat targets need the nat table, and their own hooks there.
        assert_eq!(
            e.append(V4, "INPUT", vec![nat(Target::Masquerade(None))]),
            Err(EditError::NatTargetInFilter("MASQUERADE"))
        );
        e.table = Table::Nat;
        assert_eq!(
            e.append(V4, "FORWARD", vec![nat(Target::Accept)]),
            Err(EditError::NoSuchChain("FORWARD".into()))
        );
        e.append(V4, "POSTROUTING", vec![nat(Target::Masquerade(None))])
            .unwrap();
        e.append(V4, "PREROUTING", vec![nat(Target::Dnat(to))])
            .unwrap();
        e.append(V4, "INPUT", vec![nat(Target::Snat(to))]).unwrap();
        assert_eq!(
            e.append(V4, "PREROUTING", vec![nat(Target::Snat(to))]),
            Err(EditError::WrongChainForTarget(
                "SNAT",
                "POSTROUTING and INPUT",
                "PREROUTING".into()
            ))
        );
        assert_eq!(
            e.append(V4, "POSTROUTING", vec![nat(Target::Drop)]),
            Err(EditError::FilteringInNat("DROP"))
        );
        assert_eq!(
            e.policy(V4, Chain::PreRouting, Verdict::Drop),
            Err(EditError::FilteringInNat("DROP"))
        );
        assert_eq!(e.ruleset.nat4.postrouting.rules.len(), 1);
        assert!(e.ruleset.v4.postrouting.rules.is_empty());
    }

    #[test]
    fn user_chains_jumps_references_and_loops() {
        let mut e = Editor::new(Ruleset::default());
        let jump = |to: &str| RuleSpec::any(Target::Jump(to.into()));
        assert_eq!(
            e.append(V4, IN, vec![jump("MAIL")]),
            Err(EditError::NoSuchTarget("MAIL".into()))
        );
        e.new_chain(V4, "MAIL").unwrap();
        e.new_chain(V4, "A").unwrap();
        assert_eq!(
            e.new_chain(V4, "MAIL"),
            Err(EditError::ChainExists("MAIL".into()))
        );
        assert_eq!(
            e.new_chain(V4, "INPUT"),
            Err(EditError::ChainExists("INPUT".into()))
        );
        assert_eq!(
            e.ruleset
                .v4
                .user
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["A", "MAIL"]
        );
        e.append(V4, IN, vec![jump("MAIL")]).unwrap();
        e.append(V4, "MAIL", vec![spec(25), jump("A")]).unwrap();
        assert!(matches!(
            e.append(V4, "A", vec![jump("MAIL")]),
            Err(EditError::Loop(..))
        ));
        assert!(matches!(
            e.append(V4, "A", vec![jump("A")]),
            Err(EditError::Loop(..))
        ));
        assert_eq!(e.ruleset.v4.references("MAIL"), 1);
        assert_eq!(
            e.delete_chain(V4, Some("A")),
            Err(EditError::ChainReferenced("A".into(), 1))
        );
        assert_eq!(
            e.delete_chain(V4, Some("MAIL")),
            Err(EditError::ChainNotEmpty("MAIL".into()))
        );
        e.rename_chain(V4, "MAIL", "POST").unwrap();
        assert_eq!(
            e.ruleset.v4.input.rules[0].spec.target,
            Target::Jump("POST".into())
        );
        e.flush(V4, Some("POST")).unwrap();
        e.delete_chain(V4, Some("A")).unwrap();
        assert_eq!(
            e.delete_chain(V4, Some("POST")),
            Err(EditError::ChainReferenced("POST".into(), 1))
        );
        e.delete_number(V4, IN, 1).unwrap();
        e.delete_chain(V4, None).unwrap();
        assert!(e.ruleset.v4.user.is_empty());
    }
}
