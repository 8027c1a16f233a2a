//! Netfilter's counts, kept in named counter objects of each family's table (`c17` for the
//! rule with counter slot 17, `pv4-INPUT` for a built-in chain's policy) that the rules of
//! both generations refer to. A change then never reads counts to carry them over, and a
//! rule the change leaves alone stays in its generation as it is (see `incremental`). The
//! `inet fwctl` of earlier versions has its counts moved over by the first change.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};

use super::batch::RawBatch;
use super::netlink::{attributes, nla, nla_text, NLA_TYPE_MASK};
use super::NftCounters;
use crate::rules::Family;

/// `NFT_OBJECT_COUNTER`.
pub const NFT_OBJECT_COUNTER: u32 = 1;

const NFT_MSG_NEWOBJ: u16 = 18;
const NFT_MSG_DELOBJ: u16 = 20;
const NFTA_OBJ_TABLE: u16 = 1;
const NFTA_OBJ_NAME: u16 = 2;
const NFTA_OBJ_TYPE: u16 = 3;
const NFTA_OBJ_DATA: u16 = 4;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;
const NLA_F_NESTED: u16 = 1 << 15;
const NLM_F_CREATE: u16 = 0x400;

const RULE_PREFIX: &str = "c";
const POLICY_PREFIX: &str = "p";

/// The counter of the rule with counter slot `slot`.
pub fn rule(slot: u32) -> String {
    format!("{RULE_PREFIX}{slot}")
}

/// The counter of a built-in chain's policy, by its key (`super::policy_key`).
pub fn policy(key: &str) -> String {
    format!("{POLICY_PREFIX}{key}")
}

/// Makes counter `name` of `family`'s table holding `(packets, bytes)`, in `batch`; a no-op
/// if it exists (no `NLM_F_EXCL`: nftables leaves an existing counter as it is).
pub fn create(batch: &mut RawBatch, family: Family, name: &str, (packets, bytes): (u64, u64)) {
    let mut attrs = nla_text(NFTA_OBJ_TABLE, super::TABLE);
    attrs.extend(nla_text(NFTA_OBJ_NAME, name));
    attrs.extend(nla(NFTA_OBJ_TYPE, &NFT_OBJECT_COUNTER.to_be_bytes()));
    let mut data = nla(NFTA_COUNTER_BYTES, &bytes.to_be_bytes());
    data.extend(nla(NFTA_COUNTER_PACKETS, &packets.to_be_bytes()));
    attrs.extend(nla(NFTA_OBJ_DATA | NLA_F_NESTED, &data));
    batch.add(NFT_MSG_NEWOBJ, NLM_F_CREATE, super::nfproto(family), &attrs);
}

/// Removes counter `name` of `family`'s table, in `batch` (no rule may refer to it by
/// then).
pub fn delete(batch: &mut RawBatch, family: Family, name: &str) {
    let mut attrs = nla_text(NFTA_OBJ_TABLE, super::TABLE);
    attrs.extend(nla_text(NFTA_OBJ_NAME, name));
    attrs.extend(nla(NFTA_OBJ_TYPE, &NFT_OBJECT_COUNTER.to_be_bytes()));
    batch.add(NFT_MSG_DELOBJ, 0, super::nfproto(family), &attrs);
}

/// Sets counters `names` back to zero (those missing are left missing): a counter made
/// for a new rule may be one left from an earlier rule of that slot number.
pub fn reset(names: &[(Family, String)]) -> Result<()> {
    const NFT_MSG_GETOBJ_RESET: u16 = 21;
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    if names.is_empty() {
        return Ok(());
    }
    let mut buf = Vec::new();
    for (seq, (family, name)) in names.iter().enumerate() {
        let mut attrs = nla_text(NFTA_OBJ_TABLE, super::TABLE);
        attrs.extend(nla_text(NFTA_OBJ_NAME, name));
        attrs.extend(nla(NFTA_OBJ_TYPE, &NFT_OBJECT_COUNTER.to_be_bytes()));
        buf.extend(super::netlink::message(
            NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETOBJ_RESET,
            (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
            seq as u32,
            super::nfproto(*family),
            0,
            &attrs,
        ));
    }
    let mut answered = 0;
    super::netlink::with_socket(buf.len() + (1 << 16), |fd| {
        super::netlink::receive_room(fd, names.len() * 512);
        super::netlink::exchange(
            fd,
            &buf,
            1 << 20,
            |h, reply| match super::netlink::error_code(reply, h) {
                Some(code) if code == 0 || code == -libc::ENOENT => {
                    answered += 1;
                    (answered == names.len()).then_some(Ok(()))
                }
                Some(code) => Some(
                    Err(std::io::Error::from_raw_os_error(-code)).context("resetting a counter"),
                ),
                None => None,
            },
        )
    })
    .context("netlink: resetting the counters of new rules")
}

/// Every counter object of fwctl's two tables: (family, name) -> (packets, bytes).
pub fn dump() -> Result<BTreeMap<(Family, String), (u64, u64)>> {
    let mut out = BTreeMap::new();
    for family in Family::ALL {
        out.extend(
            dump_in(super::nfproto(family))?
                .into_iter()
                .map(|(name, counts)| ((family, name), counts)),
        );
    }
    Ok(out)
}

/// Every counter object of the `inet fwctl` of earlier versions, by name.
pub fn dump_legacy() -> Result<BTreeMap<String, (u64, u64)>> {
    dump_in(super::LEGACY_FAMILY)
}

/// Every counter object of fwctl's table of nftables family `nfproto`: name -> (packets,
/// bytes).
fn dump_in(nfproto: u8) -> Result<BTreeMap<String, (u64, u64)>> {
    const NFT_MSG_GETOBJ: u16 = 19;
    let be64 = |v: &[u8]| v.try_into().map(u64::from_be_bytes).unwrap_or(0);
    let be32 = |v: &[u8]| v.try_into().map(u32::from_be_bytes).unwrap_or(0);
    let mut out = BTreeMap::new();
    super::netlink::dump_objects(NFT_MSG_GETOBJ, nfproto, super::TABLE, |attrs| {
        let mut name = None;
        let mut kind = 0;
        let mut counts = (0, 0);
        for (k, v) in attrs {
            match k & NLA_TYPE_MASK {
                NFTA_OBJ_NAME => name = Some(super::netlink::text(v)),
                NFTA_OBJ_TYPE => kind = be32(v),
                NFTA_OBJ_DATA => {
                    for (k, v) in attributes(v) {
                        match k & NLA_TYPE_MASK {
                            NFTA_COUNTER_PACKETS => counts.0 = be64(v),
                            NFTA_COUNTER_BYTES => counts.1 = be64(v),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if let (Some(name), NFT_OBJECT_COUNTER) = (name, kind) {
            out.insert(name, counts);
        }
    })
    .context("reading fwctl's nftables counters")?;
    Ok(out)
}

/// The counts of the objects, per rule slot and per policy; a slot's from the table of
/// `family(slot)`, the family of the rule that has it.
pub fn counters(
    objects: &BTreeMap<(Family, String), (u64, u64)>,
    family: impl Fn(u32) -> Option<Family>,
) -> NftCounters {
    let mut out = NftCounters::default();
    for ((f, name), counts) in objects {
        if let Some(key) = name.strip_prefix(POLICY_PREFIX) {
            out.policies.insert(key.to_string(), *counts);
        } else if let Some(slot) = name
            .strip_prefix(RULE_PREFIX)
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|slot| family(*slot) == Some(*f))
        {
            out.rules.insert(slot, *counts);
        }
    }
    out
}

/// The counters the rules in force count in: their slots, and their policies' keys.
#[derive(Debug, Default)]
pub struct InForce {
    pub slots: rustc_hash::FxHashSet<u32>,
    pub policies: BTreeSet<String>,
}

impl InForce {
    /// Whether the counter a rule of chain `chain` (named with its generation `prefix`)
    /// with slot `slot` counts in is new to the ruleset: made, or reset, at zero.
    pub fn fresh(&self, prefix: &str, chain: &str, slot: u32) -> bool {
        if slot == super::POLICY_RULE {
            !self
                .policies
                .contains(chain.get(prefix.len()..).unwrap_or(chain))
        } else {
            !self.slots.contains(&slot)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_read_back_as_the_slots_and_policies_they_count() {
        let objects: BTreeMap<(Family, String), (u64, u64)> = [
            ((Family::V4, rule(17)), (3, 180)),
            // Left from an earlier IPv6 rule of slot 17.
            ((Family::V6, rule(17)), (8, 800)),
            ((Family::V6, rule(18)), (2, 160)),
            ((Family::V4, policy("v4-INPUT")), (5, 300)),
            ((Family::V6, policy("v6-nat-PREROUTING")), (1, 60)),
            ((Family::V4, "stranger".to_string()), (9, 9)),
        ]
        .into_iter()
        .collect();
        let c = counters(&objects, |slot| match slot {
            17 => Some(Family::V4),
            18 => Some(Family::V6),
            _ => None,
        });
        assert_eq!(c.rule(17), (3, 180));
        assert_eq!(c.rule(18), (2, 160));
        assert_eq!(c.policies["v4-INPUT"], (5, 300));
        assert_eq!(c.policies["v6-nat-PREROUTING"], (1, 60));
        assert_eq!(c.rules.len(), 2);
    }
}
