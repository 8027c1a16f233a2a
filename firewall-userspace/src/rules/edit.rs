//! Chain commands (-A, -I, -D, -P, -F) as pure edits of a ruleset, with iptables' errors.
//!
//! New rules get counter slots that neither the ruleset being edited nor the one in force
//! uses, so a slot is never shared by an old rule still counting and a new rule.

use std::collections::HashSet;

use firewall_common::{MAX_COUNTERS, POLICY_COUNTER_SLOTS};

use super::{Chain, Family, Rule, RuleSpec, Ruleset, Verdict};

/// A command that is well formed but cannot be done (iptables exits 1 for these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("Index of insertion too big")]
    InsertIndex,
    #[error("Index of deletion too big")]
    DeleteIndex,
    #[error("Bad rule (does a matching rule exist in that chain?)")]
    NoSuchRule,
    #[error("{0} is not enforced yet: only INPUT rules and policy can be set in this version")]
    ChainNotEnforced(Chain),
    #[error("no free counter slot: too many rules")]
    NoFreeSlot,
}

pub struct Editor {
    pub ruleset: Ruleset,
    /// Slots of the ruleset in force, which must not be handed out again in this change.
    in_force: HashSet<u32>,
    /// Slots handed out by this change: their counters start at zero.
    pub new_slots: Vec<u32>,
}

impl Editor {
    pub fn new(ruleset: Ruleset) -> Editor {
        Editor {
            in_force: ruleset.slots().collect(),
            ruleset,
            new_slots: Vec::new(),
        }
    }

    fn alloc_slot(&mut self) -> Result<u32, EditError> {
        let used: HashSet<u32> = self.ruleset.slots().collect();
        let slot = (POLICY_COUNTER_SLOTS..MAX_COUNTERS)
            .find(|s| {
                !used.contains(s) && !self.in_force.contains(s) && !self.new_slots.contains(s)
            })
            .ok_or(EditError::NoFreeSlot)?;
        self.new_slots.push(slot);
        Ok(slot)
    }

    fn enforced(chain: Chain) -> Result<(), EditError> {
        match chain {
            Chain::Input => Ok(()),
            other => Err(EditError::ChainNotEnforced(other)),
        }
    }

    pub fn append(
        &mut self,
        family: Family,
        chain: Chain,
        spec: RuleSpec,
    ) -> Result<(), EditError> {
        let len = self.ruleset.family(family).chain(chain).rules.len();
        self.insert(family, chain, len + 1, spec)
    }

    /// Inserts before rule `position` (1-based); `len + 1` appends.
    pub fn insert(
        &mut self,
        family: Family,
        chain: Chain,
        position: usize,
        spec: RuleSpec,
    ) -> Result<(), EditError> {
        Self::enforced(chain)?;
        let len = self.ruleset.family(family).chain(chain).rules.len();
        if position == 0 || position > len + 1 {
            return Err(EditError::InsertIndex);
        }
        let slot = self.alloc_slot()?;
        self.ruleset
            .family_mut(family)
            .chain_mut(chain)
            .rules
            .insert(position - 1, Rule { spec, slot });
        Ok(())
    }

    pub fn delete_number(
        &mut self,
        family: Family,
        chain: Chain,
        position: usize,
    ) -> Result<(), EditError> {
        let rules = &mut self.ruleset.family_mut(family).chain_mut(chain).rules;
        if position == 0 || position > rules.len() {
            return Err(EditError::DeleteIndex);
        }
        rules.remove(position - 1);
        Ok(())
    }

    /// Deletes the first rule equal to `spec`, as `iptables -D CHAIN rule-spec` does.
    pub fn delete_spec(
        &mut self,
        family: Family,
        chain: Chain,
        spec: &RuleSpec,
    ) -> Result<(), EditError> {
        let position = find(&self.ruleset, family, chain, spec).ok_or(EditError::NoSuchRule)?;
        self.delete_number(family, chain, position)
    }

    pub fn policy(
        &mut self,
        family: Family,
        chain: Chain,
        verdict: Verdict,
    ) -> Result<(), EditError> {
        Self::enforced(chain)?;
        self.ruleset.family_mut(family).chain_mut(chain).policy = verdict;
        Ok(())
    }

    pub fn flush(&mut self, family: Family, chain: Option<Chain>) {
        for c in Chain::ALL
            .into_iter()
            .filter(|c| chain.is_none_or(|o| o == *c))
        {
            self.ruleset.family_mut(family).chain_mut(c).rules.clear();
        }
    }
}

/// 1-based position of the first rule equal to `spec`.
pub fn find(ruleset: &Ruleset, family: Family, chain: Chain, spec: &RuleSpec) -> Option<usize> {
    ruleset
        .family(family)
        .chain(chain)
        .rules
        .iter()
        .position(|r| &r.spec == spec)
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(port: u16) -> RuleSpec {
        RuleSpec {
            in_iface: None,
            src: None,
            dst: None,
            proto: Some(6),
            sport: None,
            dport: Some(crate::rules::PortRange {
                min: port,
                max: port,
            }),
            target: Verdict::Accept,
        }
    }

    fn ports(r: &Ruleset) -> Vec<u16> {
        r.v4.input
            .rules
            .iter()
            .map(|r| r.spec.dport.unwrap().min)
            .collect()
    }

    #[test]
    fn insert_append_delete_keep_order_and_slots() {
        let mut e = Editor::new(Ruleset::default());
        e.append(Family::V4, Chain::Input, spec(22)).unwrap();
        e.append(Family::V4, Chain::Input, spec(80)).unwrap();
        e.insert(Family::V4, Chain::Input, 2, spec(587)).unwrap();
        e.insert(Family::V4, Chain::Input, 1, spec(1)).unwrap();
        assert_eq!(ports(&e.ruleset), [1, 22, 587, 80]);
        assert_eq!(
            e.insert(Family::V4, Chain::Input, 6, spec(9)),
            Err(EditError::InsertIndex)
        );
        e.delete_number(Family::V4, Chain::Input, 1).unwrap();
        e.delete_spec(Family::V4, Chain::Input, &spec(80)).unwrap();
        assert_eq!(ports(&e.ruleset), [22, 587]);
        assert_eq!(
            e.delete_number(Family::V4, Chain::Input, 3),
            Err(EditError::DeleteIndex)
        );
        assert_eq!(
            e.delete_spec(Family::V4, Chain::Input, &spec(80)),
            Err(EditError::NoSuchRule)
        );

        // A later change must not reuse slots of rules that are still in force.
        let in_force: Vec<u32> = e.ruleset.slots().collect();
        let mut next = Editor::new(e.ruleset.clone());
        next.flush(Family::V4, None);
        next.append(Family::V4, Chain::Input, spec(443)).unwrap();
        assert!(!in_force.contains(&next.new_slots[0]));
        assert!(next.new_slots[0] >= POLICY_COUNTER_SLOTS);
    }

    #[test]
    fn only_input_is_enforced() {
        let mut e = Editor::new(Ruleset::default());
        assert_eq!(
            e.policy(Family::V4, Chain::Forward, Verdict::Drop),
            Err(EditError::ChainNotEnforced(Chain::Forward))
        );
        assert_eq!(
            e.append(Family::V4, Chain::Output, spec(1)),
            Err(EditError::ChainNotEnforced(Chain::Output))
        );
    }
}
