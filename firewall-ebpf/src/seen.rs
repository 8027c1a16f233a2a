//! The conntrack destination filter (firewall-common `MAP_CT_SEEN`), shared by the XDP
//! program, which reads it to skip lookups that must miss, and the netfilter program
//! `fw_ct_seen`, which marks the destinations of every entry conntrack is about to confirm.

use aya_ebpf::{helpers::bpf_probe_read_kernel, macros::map, maps::Array};
use firewall_common::{
    ct_seen_index, BPF_F_MMAPABLE, CT_SEEN_CTL_READY, CT_SEEN_CTL_SKB, CT_SEEN_CTL_TUPLES,
    CT_SEEN_ENTRIES, CT_SEEN_READY,
};

use crate::parse::Packet;

#[map(name = "FW_CTSEEN")]
static CT_SEEN: Array<u64> = Array::with_max_entries(CT_SEEN_ENTRIES, BPF_F_MMAPABLE);

/// `IPS_CONFIRMED`: the entry is in the table already (and was marked, or dumped, then).
const IPS_CONFIRMED: u64 = 1 << 3;

/// The byte of a bucket, if the map has it.
#[inline(always)]
fn bucket(index: u32) -> Option<*mut u8> {
    let word = CT_SEEN.get_ptr_mut(index / 8)?;
    // SAFETY: index % 8 is inside the 8-byte element.
    Some(unsafe { (word as *mut u8).add((index % 8) as usize) })
}

/// Whether a conntrack entry may have `pkt`'s tuple: false only when the filter is complete
/// and no entry was ever confirmed with a tuple towards the packet's destination bucket.
/// A lookup can only find an entry one of whose two tuples is the packet's own.
#[inline(always)]
pub fn may_have_entry(pkt: &Packet) -> bool {
    // An IPv4 packet's address words past the first are 0, as in conntrack's tuples.
    !no_entry_towards(&pkt.dst, pkt.dport, pkt.proto as u8)
}

/// Whether the filter is complete and no conntrack entry ever had a tuple towards this
/// destination (see [`may_have_entry`]).
#[inline(always)]
pub fn no_entry_towards(addr: &[u32; 4], port: u16, proto: u8) -> bool {
    match CT_SEEN.get(CT_SEEN_CTL_READY) {
        Some(&ready) if ready == CT_SEEN_READY => {}
        _ => return false,
    }
    match bucket(ct_seen_index(addr, port, proto)) {
        // SAFETY: a byte of the map's value.
        Some(byte) => unsafe { core::ptr::read_volatile(byte) == 0 },
        None => false,
    }
}

/// Marks both tuples' destinations of the conntrack entry `skb` carries, if that entry is
/// not confirmed yet. `skb` is the kernel's `struct sk_buff`; the offsets come from the
/// map's control words, which fwctl reads from the kernel's BTF.
#[inline(always)]
pub fn mark_unconfirmed(skb: *const u8) {
    let (Some(&skb_ctl), Some(&tuples)) = (
        CT_SEEN.get(CT_SEEN_CTL_SKB),
        CT_SEEN.get(CT_SEEN_CTL_TUPLES),
    ) else {
        return;
    };
    if skb_ctl == 0 || tuples == 0 {
        return;
    }
    let nfct_at = (skb_ctl & 0xffff_ffff) as usize;
    let status_at = (skb_ctl >> 32) as usize;
    // SAFETY: probe reads: a bad address yields an error, never a fault.
    let Ok(nfct) = (unsafe { bpf_probe_read_kernel(skb.wrapping_add(nfct_at) as *const u64) })
    else {
        return;
    };
    // The low bits are the packet's ctinfo; none of the pointer (untracked packets).
    let ct = (nfct & !7) as *const u8;
    if ct.is_null() {
        return;
    }
    // SAFETY: as above.
    let status = unsafe { bpf_probe_read_kernel(ct.wrapping_add(status_at) as *const u64) };
    if status.map_or(true, |s| s & IPS_CONFIRMED != 0) {
        return;
    }
    for dir in 0..2 {
        let at = ((tuples >> (32 * dir)) & 0xffff_ffff) as usize;
        // `struct nf_conntrack_man_proto`-like dst: address (16 bytes), port or ICMP
        // type/code (2), protocol number (1), direction (1).
        // SAFETY: as above.
        let Ok(dst) = (unsafe { bpf_probe_read_kernel(ct.wrapping_add(at) as *const [u32; 5]) })
        else {
            continue;
        };
        let port = u16::from_be((dst[4] & 0xffff) as u16);
        let proto = ((dst[4] >> 16) & 0xff) as u8;
        let index = ct_seen_index(&[dst[0], dst[1], dst[2], dst[3]], port, proto);
        if let Some(byte) = bucket(index) {
            // SAFETY: a byte of the map's value; a plain store, no other writer can undo it.
            unsafe { core::ptr::write_volatile(byte, 1) };
        }
    }
}
