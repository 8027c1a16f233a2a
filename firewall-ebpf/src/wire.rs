//! Protocol numbers and TCP flag bits as they appear on the wire, for every reader of a
//! packet (the full parse, the fast path's own IPv4 reader, the conntrack class).

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_AH: u8 = 51;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// A SYN without ACK, RST or FIN: what `--syn` matches, and the only TCP segment a
/// conntrack miss makes NEW.
#[inline(always)]
pub fn syn_only(flags: u8) -> bool {
    flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN
}

/// The 4 bytes at `at` as a network-order word, from two 2-byte loads: frames start 2-byte
/// aligned, so an IPv4 address or a transport header's first word is too, while a 4-byte
/// load the compiler cannot prove aligned becomes four byte loads and their shifts.
///
/// # Safety
/// The 4 bytes at `at` must lie inside the frame; `at` must be 2-byte aligned.
#[inline(always)]
pub unsafe fn word_at(at: usize) -> u32 {
    let lo = *(at as *const u16) as u32;
    let hi = *((at + 2) as *const u16) as u32;
    lo | (hi << 16)
}

/// The 2 bytes at `at`, in host order.
///
/// # Safety
/// The 2 bytes at `at` must lie inside the frame; `at` must be 2-byte aligned.
#[inline(always)]
pub unsafe fn be16_at(at: usize) -> u16 {
    u16::from_be(*(at as *const u16))
}
