//! Sets, what ipset is to iptables: named collections of addresses, networks or
//! address/port pairs that `-m set --match-set` rules test packets against.
//!
//! A set's members live in a *storage*, identified by a number never reused: in the XDP
//! tries under that number (xdp.rs), in a netfilter set named after it
//! (netfilter/sets.rs), and in a file beside the state (store.rs). Replacing a set's
//! members as a whole (restore, flush, swap) loads a new storage beside the old one, then
//! switches the rules over with the generation flip, then removes the old storage: a packet
//! sees the old members or the new ones, never a mix. Adding or deleting single members
//! changes the storage in place.

pub mod ipset_format;
pub mod layout;
pub mod model;
pub mod ops;
pub mod store;
pub mod xdp;

use crate::rules::{Family, Ruleset, SetMatch};
use model::{family_name, Registry, SetDef, StorageInfo};

/// Why a rule's set match cannot go in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetRefError {
    #[error("Set {0} doesn't exist.")]
    Missing(String),
    #[error("-j SET cannot write set {0} ({1}): fwctl keeps it as an nftables interval set, which the packet path cannot add to")]
    Written(String, &'static str),
    #[error("-j SET --timeout: set {0} was created without timeout support")]
    NoTimeout(String),
    #[error("The protocol family of set {0} is {1}, which is not applicable.")]
    Family(String, &'static str),
    #[error("set {name} ({kind}) has {needs} dimension(s): --match-set {name} needs {needs} src/dst flag(s)")]
    Dimensions {
        name: String,
        kind: &'static str,
        needs: usize,
    },
}

impl Registry {
    /// The set a rule of `family` names, and its current storage.
    pub fn resolve(
        &self,
        m: &SetMatch,
        family: Family,
    ) -> Result<(&SetDef, &StorageInfo), SetRefError> {
        let def = self
            .get(&m.name)
            .ok_or_else(|| SetRefError::Missing(m.name.clone()))?;
        if def.family != family {
            return Err(SetRefError::Family(
                def.name.clone(),
                family_name(def.family),
            ));
        }
        if m.dst.len() < def.kind.dimensions() {
            return Err(SetRefError::Dimensions {
                name: def.name.clone(),
                kind: def.kind.name(),
                needs: def.kind.dimensions(),
            });
        }
        let info = self
            .storages
            .get(&def.storage)
            .ok_or_else(|| SetRefError::Missing(m.name.clone()))?;
        Ok((def, info))
    }
}

/// Every set match of `ruleset` names a set of its family that takes its flags.
pub fn check(ruleset: &Ruleset, sets: &Registry) -> Result<(), SetRefError> {
    for (family, m) in ruleset.set_matches() {
        sets.resolve(m, family)?;
    }
    for (family, m) in ruleset.written_sets() {
        let (def, _) = sets.resolve(m, family)?;
        // nftables adds to hash sets from the packet path, not to interval sets.
        if def.kind == model::SetKind::HashNet {
            return Err(SetRefError::Written(def.name.clone(), def.kind.name()));
        }
    }
    for (family, st) in ruleset.set_targets() {
        if let (Some(add), Some(_)) = (&st.add, st.timeout) {
            let (def, _) = sets.resolve(add, family)?;
            if def.timeout.is_none() {
                return Err(SetRefError::NoTimeout(def.name.clone()));
            }
        }
    }
    Ok(())
}
