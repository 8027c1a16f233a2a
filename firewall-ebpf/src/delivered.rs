//! Which frames the kernel would hand to this host's IP layer as they came, so that XDP
//! judges, and counts, only packets iptables would see. Anything else is passed on unjudged:
//! the kernel then drops it before netfilter (another host's MAC, a martian address, a group
//! the host has not joined) or netfilter judges it where it does arrive (a VLAN device, a
//! broadcast, a joined group). A header the kernel would drop (`ip_rcv`'s checks) is the
//! parser's `Malformed`: dropped here under that reason, counted by no rule.

use aya_ebpf::{macros::map, maps::Array, programs::XdpContext};
use firewall_common::{ifmac_slot, IfMac, IFMAC_SLOTS};

#[map(name = "FW_IFMAC")]
static IFMAC: Array<IfMac> = Array::with_max_entries(IFMAC_SLOTS, 0);

/// Whether the frame at `data` (at least 14 bytes, checked by the caller) is addressed to
/// the receiving interface's own unicast MAC, as the kernel's `eth_type_trans` would find
/// (`PACKET_HOST`). A group MAC never equals it; an interface fwctl has no entry for
/// (another's in its slot) gets false, which is exact, only slower.
#[inline(always)]
pub fn to_our_mac(ctx: &XdpContext, data: usize) -> bool {
    let ifindex = ctx.ingress_ifindex() as u32;
    let Some(mac) = IFMAC.get(ifmac_slot(ifindex)) else {
        return false;
    };
    // SAFETY: the caller checked 14 bytes at `data`; frames start 2-byte aligned.
    let (a, b, c) = unsafe {
        (
            *(data as *const u16),
            *((data + 2) as *const u16),
            *((data + 4) as *const u16),
        )
    };
    mac.ifindex == ifindex && (a ^ mac.words[0]) | (b ^ mac.words[1]) | (c ^ mac.words[2]) == 0
}

/// The one's-complement sum of an IPv4 header's first 20 bytes at `ip`, not yet folded.
///
/// # Safety
/// 20 bytes at `ip` must lie inside the frame; `ip` must be 2-byte aligned.
#[inline(always)]
pub unsafe fn ipv4_base_sum(ip: usize) -> u32 {
    let mut sum = 0u32;
    for i in 0..10 {
        sum += *((ip + 2 * i) as *const u16) as u32;
    }
    sum
}

/// Whether the one's-complement sum of a whole IPv4 header's 16-bit words (at most 30 of
/// them: the sum stays below 2^21) says it is intact, i.e. folds to 0xffff. One fold is
/// enough: it leaves at most 0xffff + 0x1f, and a value above 0xffff would fold again to
/// at most 0x20.
#[inline(always)]
pub fn checksum_ok(sum: u32) -> bool {
    (sum & 0xffff) + (sum >> 16) == 0xffff
}

/// Whether an IPv4 header's total length is one `ip_rcv` takes: no shorter than the header,
/// no longer than what the frame holds from the header on (`avail` bytes).
#[inline(always)]
pub fn ipv4_length_ok(total: usize, header_len: usize, avail: usize) -> bool {
    total >= header_len && total <= avail
}

/// Whether IPv4 routing could deliver a packet between these addresses (their first bytes) to
/// INPUT or FORWARD: a source in 0/8, 127/8, multicast, class E or broadcast is a martian
/// and never reaches either; a destination in 0/8 or 127/8 neither; a multicast or broadcast
/// destination only reaches INPUT for a group the host joined, which XDP cannot know.
#[inline(always)]
pub fn ipv4_routable(s: u8, d: u8) -> bool {
    s != 0 && s != 127 && s < 224 && d != 0 && d != 127 && d < 224
}

/// The same for IPv6 (addresses as network-order words): `ipv6_rcv` drops a multicast or
/// v4-mapped source and a loopback address on any interface but lo; a multicast
/// destination reaches INPUT only for a joined group; the unspecified destination nowhere.
#[inline(always)]
pub fn ipv6_routable(src: &[u32; 4], dst: &[u32; 4]) -> bool {
    let first = |a: &[u32; 4]| a[0].to_ne_bytes()[0];
    let loopback = |a: &[u32; 4]| a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 1u32.to_be();
    let unspecified = |a: &[u32; 4]| a[0] | a[1] | a[2] | a[3] == 0;
    let v4_mapped = |a: &[u32; 4]| a[0] == 0 && a[1] == 0 && a[2] == 0xffffu32.to_be();
    first(src) != 0xff
        && first(dst) != 0xff
        && !v4_mapped(src)
        && !loopback(src)
        && !loopback(dst)
        && !unspecified(dst)
}
