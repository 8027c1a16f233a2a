//! fwctl's sets as nftables named sets in `ip fwctl` or `ip6 fwctl`, one per set storage (like the XDP
//! side's storage ids, so rules switch from one to another with the generation flip).
//!
//! `hash:ip` is a hash set of addresses; `hash:net` an interval set (its members as the
//! disjoint pieces of sets/layout.rs, each a start element and an end element one past its
//! last address); `hash:ip,port` a hash set of `address . protocol . port`
//! concatenations, each field in its own 32-bit register as nftables lays them out.
//! Members with a timeout carry it in milliseconds and the kernel expires them. rustables
//! 0.9 has no interval ends, timeouts or concatenations, so the messages are written here.

use anyhow::{Context, Result};

use super::{
    batch::{send_raw, RawBatch},
    netlink::nla,
    nfproto, TABLE,
};
use crate::{
    rules::Family,
    sets::{
        layout::Piece,
        model::{live_at, SetKind, StorageInfo},
    },
};

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
/// Deletes that do not fail on what is already gone (Linux 6.3): a member the kernel
/// expired by itself, a set a crashed run already removed.
const NFT_MSG_DESTROYSET: u16 = 29;
const NFT_MSG_DESTROYSETELEM: u16 = 30;

const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 1 << 15;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_DATA_VALUE: u16 = 1;

const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_TIMEOUT: u32 = 0x10;
const NFT_SET_ELEM_INTERVAL_END: u32 = 1;

/// nft's data type numbers, so that `nft list` shows the members as addresses and ports.
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
const TYPE_INET_PROTOCOL: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
/// Bits per field in a concatenation's type.
const TYPE_BITS: u32 = 6;

/// Elements per message: the element list is one attribute, whose length is 16 bits.
const ELEMENTS_PER_MESSAGE: usize = 1000;

/// One netfilter set: its name and what its members are.
#[derive(Clone, Copy, Debug)]
pub struct NftSet<'a> {
    pub name: &'a str,
    pub kind: SetKind,
    pub family: Family,
    pub timeouts: bool,
}

impl<'a> From<&'a StorageInfo> for NftSet<'a> {
    /// The netfilter set of a storage, as the storage was made.
    fn from(info: &'a StorageInfo) -> NftSet<'a> {
        NftSet {
            name: &info.nft_name,
            kind: info.kind,
            family: info.family,
            timeouts: info.timeouts,
        }
    }
}

fn string(text: &str) -> Vec<u8> {
    let mut v = text.as_bytes().to_vec();
    v.push(0);
    v
}

fn addr_bytes(family: Family, addr: u128) -> Vec<u8> {
    match family {
        Family::V4 => (addr as u32).to_be_bytes().to_vec(),
        Family::V6 => addr.to_be_bytes().to_vec(),
    }
}

fn addr_type(family: Family) -> u32 {
    match family {
        Family::V4 => TYPE_IPADDR,
        Family::V6 => TYPE_IP6ADDR,
    }
}

impl NftSet<'_> {
    fn key_len(&self) -> u32 {
        let addr = match self.family {
            Family::V4 => 4,
            Family::V6 => 16,
        };
        match self.kind {
            SetKind::HashIpPort => addr + 8,
            _ => addr,
        }
    }

    fn key_type(&self) -> u32 {
        match self.kind {
            SetKind::HashIpPort => {
                ((addr_type(self.family) << TYPE_BITS | TYPE_INET_PROTOCOL) << TYPE_BITS)
                    | TYPE_INET_SERVICE
            }
            _ => addr_type(self.family),
        }
    }

    fn flags(&self) -> u32 {
        let interval = if self.kind == SetKind::HashNet {
            NFT_SET_INTERVAL
        } else {
            0
        };
        let timeout = if self.timeouts { NFT_SET_TIMEOUT } else { 0 };
        interval | timeout
    }

    fn key(&self, addr: u128, proto: u8, port: u16) -> Vec<u8> {
        let mut k = addr_bytes(self.family, addr);
        if self.kind == SetKind::HashIpPort {
            // Each field of a concatenation fills whole 32-bit registers.
            k.extend([proto, 0, 0, 0]);
            k.extend(port.to_be_bytes());
            k.extend([0, 0]);
        }
        k
    }

    /// The elements of a piece: one, or for an interval its start and end (none past the
    /// last address: an open interval runs to the end). None for an expired piece.
    fn elements(&self, p: &Piece, now: u64, with_timeout: bool) -> Vec<Vec<u8>> {
        let mut start = nla(
            NFTA_SET_ELEM_KEY | NLA_F_NESTED,
            &nla(NFTA_DATA_VALUE, &self.key(p.start, p.proto, p.port)),
        );
        if with_timeout && p.expiry != 0 {
            let ms = (p.expiry.saturating_sub(now) / 1_000_000).max(1);
            start.extend(nla(NFTA_SET_ELEM_TIMEOUT, &ms.to_be_bytes()));
        }
        let mut out = vec![start];
        if self.kind == SetKind::HashNet {
            let max = match self.family {
                Family::V4 => u32::MAX as u128,
                Family::V6 => u128::MAX,
            };
            if p.end < max {
                let mut end = nla(
                    NFTA_SET_ELEM_KEY | NLA_F_NESTED,
                    &nla(NFTA_DATA_VALUE, &self.key(p.end + 1, 0, 0)),
                );
                end.extend(nla(
                    NFTA_SET_ELEM_FLAGS,
                    &NFT_SET_ELEM_INTERVAL_END.to_be_bytes(),
                ));
                out.push(end);
            }
        }
        out
    }

    fn header(&self) -> Vec<u8> {
        let mut a = nla(NFTA_SET_ELEM_LIST_TABLE, &string(TABLE));
        a.extend(nla(NFTA_SET_ELEM_LIST_SET, &string(self.name)));
        a
    }

    /// Element messages for `pieces` (`msg`: add or destroy); expired pieces are left out,
    /// since the kernel has removed them or will.
    fn element_messages(&self, batch: &mut RawBatch, msg: u16, pieces: &[Piece], now: u64) {
        let add = msg == NFT_MSG_NEWSETELEM;
        let live = pieces.iter().filter(|p| live_at(p.expiry, now));
        let elements: Vec<Vec<u8>> = live
            .flat_map(|p| self.elements(p, now, add && self.timeouts))
            .collect();
        for chunk in elements.chunks(ELEMENTS_PER_MESSAGE) {
            let list: Vec<u8> = chunk
                .iter()
                .flat_map(|e| nla(NFTA_LIST_ELEM | NLA_F_NESTED, e))
                .collect();
            let mut attrs = self.header();
            attrs.extend(nla(NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, &list));
            batch.add(
                msg,
                if add { NLM_F_CREATE } else { 0 },
                nfproto(self.family),
                &attrs,
            );
        }
    }
}

fn send(batch: RawBatch, what: &str) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    send_raw(batch.finish()).with_context(|| format!("netlink: {what} (tables ip and ip6 {TABLE})"))
}

/// Creates the set (and its family's table, if this is the first thing in it) with its
/// members, in one batch. A set that is there already keeps what it has and gains the
/// members it lacks (no `NLM_F_EXCL`).
pub fn create(set: &NftSet, pieces: &[Piece], now: u64) -> Result<()> {
    let mut batch = RawBatch::new();
    batch.add(
        NFT_MSG_NEWTABLE,
        NLM_F_CREATE,
        nfproto(set.family),
        &nla(NFTA_TABLE_NAME, &string(TABLE)),
    );
    let mut attrs = nla(NFTA_SET_TABLE, &string(TABLE));
    attrs.extend(nla(NFTA_SET_NAME, &string(set.name)));
    attrs.extend(nla(NFTA_SET_FLAGS, &set.flags().to_be_bytes()));
    attrs.extend(nla(NFTA_SET_KEY_TYPE, &set.key_type().to_be_bytes()));
    attrs.extend(nla(NFTA_SET_KEY_LEN, &set.key_len().to_be_bytes()));
    // The kernel requires an id for the set within the batch, though nothing here uses it.
    attrs.extend(nla(NFTA_SET_ID, &1u32.to_be_bytes()));
    batch.add(NFT_MSG_NEWSET, NLM_F_CREATE, nfproto(set.family), &attrs);
    set.element_messages(&mut batch, NFT_MSG_NEWSETELEM, pieces, now);
    send(batch, &format!("creating set {}", set.name))
}

/// Replaces some pieces by others, in one batch.
pub fn change(set: &NftSet, remove: &[Piece], add: &[Piece], now: u64) -> Result<()> {
    let mut batch = RawBatch::new();
    set.element_messages(&mut batch, NFT_MSG_DESTROYSETELEM, remove, now);
    set.element_messages(&mut batch, NFT_MSG_NEWSETELEM, add, now);
    send(batch, &format!("changing set {}", set.name))
}

/// Empties a set of `family`'s table; a set that is not there is no error.
pub fn flush(family: Family, name: &str) -> Result<()> {
    if !super::table_exists()? {
        return Ok(());
    }
    let mut batch = RawBatch::new();
    let mut attrs = nla(NFTA_SET_ELEM_LIST_TABLE, &string(TABLE));
    attrs.extend(nla(NFTA_SET_ELEM_LIST_SET, &string(name)));
    // A delete without an element list empties the set.
    batch.add(NFT_MSG_DELSETELEM, 0, nfproto(family), &attrs);
    match send(batch, &format!("emptying set {name}")) {
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.raw_os_error() == Some(libc::ENOENT))
            }) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Deletes sets no rule refers to any more; those already gone are no error.
pub fn destroy(sets: &[(Family, &str)]) -> Result<()> {
    if sets.is_empty() || !super::table_exists()? {
        return Ok(());
    }
    let mut batch = RawBatch::new();
    for &(family, name) in sets {
        let mut attrs = nla(NFTA_SET_TABLE, &string(TABLE));
        attrs.extend(nla(NFTA_SET_NAME, &string(name)));
        batch.add(NFT_MSG_DESTROYSET, 0, nfproto(family), &attrs);
    }
    send(batch, "removing replaced sets")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fill_whole_registers() {
        let s = NftSet {
            name: "s",
            kind: SetKind::HashIpPort,
            family: Family::V4,
            timeouts: false,
        };
        assert_eq!(
            s.key(0x0102_0304, 6, 80),
            [1, 2, 3, 4, 6, 0, 0, 0, 0, 80, 0, 0]
        );
        assert_eq!(s.key_len(), 12);
        assert_eq!(s.key_type(), 7 << 12 | 12 << 6 | 13);
    }

    #[test]
    fn intervals_end_one_past_their_last_address() {
        let s = NftSet {
            name: "s",
            kind: SetKind::HashNet,
            family: Family::V4,
            timeouts: true,
        };
        let p = Piece {
            start: 0x0a00_0000,
            end: 0x0aff_ffff,
            proto: 0,
            port: 0,
            expiry: 5_000_000_000,
        };
        let e = s.elements(&p, 1_000_000_000, true);
        assert_eq!(e.len(), 2);
        // Start: key, then a timeout of 4000 ms.
        assert!(e[0].windows(8).any(|w| w == 4000u64.to_be_bytes()));
        assert!(e[1].windows(4).any(|w| w == [11, 0, 0, 0]));
        let last = Piece {
            start: 0xffff_ff00,
            end: 0xffff_ffff,
            ..p
        };
        assert_eq!(s.elements(&last, 0, false).len(), 1);
    }
}
