//! Turns the bytes of a frame into the fields rules match on.
//!
//! Every read is bounds-checked against `data_end`, as the verifier demands; a frame too short
//! for the header it announces is `Err`, and the caller decides what that means.

use core::mem::{self, MaybeUninit};

use aya_ebpf::programs::XdpContext;
use firewall_common::{
    FAMILY_V4, FAMILY_V6, REASON_IP_OPTIONS, REASON_MALFORMED, REASON_NOT_FOR_HOST, REASON_NOT_IP,
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

use crate::delivered;
use crate::wire::{
    IPPROTO_AH, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ICMP, IPPROTO_ICMPV6,
    IPPROTO_ROUTING, IPPROTO_TCP, IPPROTO_UDP,
};

/// IPv6 extension headers walked before giving up on finding the transport header.
const MAX_IPV6_EXT_HEADERS: usize = 6;

/// The fields of one packet that rules can match.
pub struct Packet {
    pub family: u32,
    /// Addresses in network byte order; IPv4 uses word 0.
    pub src: [u32; 4],
    pub dst: [u32; 4],
    /// Transport protocol (after IPv6 extension headers).
    pub proto: u32,
    /// Ports in host byte order, valid when `has_ports`.
    pub sport: u16,
    pub dport: u16,
    /// False for non-first fragments and for protocols without ports.
    pub has_ports: bool,
    /// TCP header flags byte, valid when `has_tcp` (a TCP packet with its header).
    pub tcp_flags: u8,
    pub has_tcp: bool,
    /// ICMP (ICMPv6 in IPv6) `type << 8 | code`, valid when `has_icmp`.
    pub icmp: u16,
    pub has_icmp: bool,
    /// Length of the IP packet, which is what iptables' byte counters count.
    pub ip_len: u32,
    /// Any fragment, the first included: netfilter judges the reassembled packet, so what
    /// conntrack will say of it is not XDP's to know.
    pub fragment: bool,
}

/// A frame too short for the header it announces, or with an impossible header length.
#[derive(Debug)]
pub struct Malformed;

impl Packet {
    /// A packet whose transport headers are not read yet.
    #[inline(always)]
    fn new(family: u32, src: [u32; 4], dst: [u32; 4], proto: u8, ip_len: u32) -> Packet {
        Packet {
            family,
            src,
            dst,
            proto: proto as u32,
            sport: 0,
            dport: 0,
            has_ports: false,
            tcp_flags: 0,
            has_tcp: false,
            icmp: 0,
            has_icmp: false,
            ip_len,
            fragment: false,
        }
    }
}

impl Packet {
    /// An IPv4 packet read by the fast path (no fragment): its ports for TCP and UDP, its
    /// flags for TCP, its type and code for ICMP, given in `l4` as the transport header's
    /// first word (ports, or type and code) in host order and `tcp_flags`.
    #[inline(always)]
    pub fn ipv4(src: u32, dst: u32, proto: u8, l4: u32, tcp_flags: u8, ip_len: u32) -> Packet {
        let mut pkt = Packet::new(FAMILY_V4, [src, 0, 0, 0], [dst, 0, 0, 0], proto, ip_len);
        if proto == IPPROTO_TCP || proto == IPPROTO_UDP {
            pkt.sport = (l4 >> 16) as u16;
            pkt.dport = l4 as u16;
            pkt.has_ports = true;
            pkt.tcp_flags = tcp_flags;
            pkt.has_tcp = proto == IPPROTO_TCP;
        } else if proto == IPPROTO_ICMP {
            pkt.icmp = (l4 >> 16) as u16;
            pkt.has_icmp = true;
        }
        pkt
    }
}

/// [`parse`]'s answer for an IPv4 or IPv6 packet it read, to be judged by the ruleset of
/// its family. Any other answer is a `REASON_*` the frame goes unjudged under:
/// `REASON_NOT_IP` (ARP, LLDP, ...: iptables never sees it, so neither do we),
/// `REASON_MALFORMED` (a header the kernel drops), or one netfilter judges if the kernel
/// delivers it: `REASON_NOT_FOR_HOST` (see crate::delivered), `REASON_IP_OPTIONS`.
pub const PARSED: u32 = u32::MAX;

#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, Malformed> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + mem::size_of::<T>() > end {
        return Err(Malformed);
    }
    Ok((start + offset) as *const T)
}

#[inline(always)]
fn be16(bytes: [u8; 2]) -> u16 {
    u16::from_be_bytes(bytes)
}

/// Reads the frame; for [`PARSED`], into `pkt`, written in full. Filled through a
/// reference and answered with a code rather than returned in an enum: LLVM merges an
/// enum's unset payload as undefined registers, which the verifier refuses to read. Not
/// inlined: its locals live in a frame of its own, gone before the classifier's walk.
#[inline(never)]
pub fn parse(ctx: &XdpContext, pkt: &mut MaybeUninit<Packet>) -> u32 {
    read_frame(ctx, pkt).unwrap_or(REASON_MALFORMED)
}

#[inline(always)]
fn read_frame(ctx: &XdpContext, pkt: &mut MaybeUninit<Packet>) -> Result<u32, Malformed> {
    let eth: *const EthHdr = ptr_at(ctx, 0)?;
    let ether_type = u16::from_be(unsafe { (*eth).ether_type });
    let ip = ether_type == ETH_P_IPV4 || ether_type == ETH_P_IPV6;
    if !ip && ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
        return Ok(REASON_NOT_IP);
    }
    // A tagged frame belongs to its VLAN device, where netfilter sees it (or, without one,
    // the kernel drops it): never judged as this interface's.
    if !ip || !delivered::to_our_mac(ctx, eth as usize) {
        return Ok(REASON_NOT_FOR_HOST);
    }
    if ether_type == ETH_P_IPV4 {
        parse_ipv4(ctx, EthHdr::LEN, pkt)
    } else {
        parse_ipv6(ctx, EthHdr::LEN, pkt)
    }
}

#[inline(always)]
fn parse_ipv4(
    ctx: &XdpContext,
    offset: usize,
    pkt: &mut MaybeUninit<Packet>,
) -> Result<u32, Malformed> {
    let ip: *const Ipv4Hdr = ptr_at(ctx, offset)?;
    let base = ip as usize;
    let ip = unsafe { &*ip };
    let header_len = ((ip.vihl & 0x0f) as usize) * 4;
    if ip.vihl >> 4 != 4 || header_len < Ipv4Hdr::LEN {
        return Err(Malformed);
    }
    // Options: ip_rcv sums them with the header, which takes a loop XDP's verifier would
    // walk into every later state; netfilter judges such a packet once ip_rcv checked it.
    if header_len != Ipv4Hdr::LEN {
        return Ok(REASON_IP_OPTIONS);
    }
    // ip_rcv's checks, which drop the packet before any netfilter hook.
    // SAFETY: ptr_at checked the header's 20 bytes; the frame starts 2-byte aligned.
    let sum = unsafe { delivered::ipv4_base_sum(base) };
    let total = be16(ip.tot_len) as usize;
    if !delivered::checksum_ok(sum)
        || !delivered::ipv4_length_ok(total, header_len, ctx.data_end() - base)
    {
        return Err(Malformed);
    }
    if !delivered::ipv4_routable(ip.src_addr[0], ip.dst_addr[0]) {
        return Ok(REASON_NOT_FOR_HOST);
    }
    let (src, dst) = (
        u32::from_ne_bytes(ip.src_addr),
        u32::from_ne_bytes(ip.dst_addr),
    );
    let proto = ip.proto;
    let frags = be16(ip.frags);
    let first_fragment = frags & 0x1fff == 0;
    let pkt = pkt.write(Packet::new(
        FAMILY_V4,
        [src, 0, 0, 0],
        [dst, 0, 0, 0],
        proto,
        total as u32,
    ));
    // More fragments (0x2000) or an offset.
    pkt.fragment = frags & 0x3fff != 0;
    if first_fragment {
        read_l4(ctx, offset + header_len, proto, IPPROTO_ICMP, pkt)?;
    }
    Ok(PARSED)
}

#[inline(always)]
fn parse_ipv6(
    ctx: &XdpContext,
    offset: usize,
    pkt: &mut MaybeUninit<Packet>,
) -> Result<u32, Malformed> {
    let ip: *const Ipv6Hdr = ptr_at(ctx, offset)?;
    let base = ip as usize;
    let ip = unsafe { &*ip };
    // ipv6_rcv's checks: the version, a payload inside the frame.
    let payload = be16(ip.payload_len) as usize;
    if ip.vcf[0] >> 4 != 6 || payload + Ipv6Hdr::LEN > ctx.data_end() - base {
        return Err(Malformed);
    }
    let (src, dst) = (words(ip.src_addr), words(ip.dst_addr));
    // A zero payload length announces a jumbogram (or a bare header): the kernel's to sort.
    if payload == 0 || !delivered::ipv6_routable(&src, &dst) {
        return Ok(REASON_NOT_FOR_HOST);
    }
    let pkt = pkt.write(Packet::new(
        FAMILY_V6,
        src,
        dst,
        0,
        (payload + Ipv6Hdr::LEN) as u32,
    ));
    let mut next = ip.next_hdr;
    let mut offset = offset + Ipv6Hdr::LEN;
    let mut first_fragment = true;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let ext: *const [u8; 2] = ptr_at(ctx, offset)?;
                let ext = unsafe { *ext };
                next = ext[0];
                offset += (ext[1] as usize + 1) * 8;
            }
            IPPROTO_FRAGMENT => {
                let frag: *const [u8; 4] = ptr_at(ctx, offset)?;
                let frag = unsafe { *frag };
                next = frag[0];
                first_fragment = be16([frag[2], frag[3]]) & 0xfff8 == 0;
                pkt.fragment = true;
                offset += 8;
            }
            IPPROTO_AH => {
                let ext: *const [u8; 2] = ptr_at(ctx, offset)?;
                let ext = unsafe { *ext };
                next = ext[0];
                offset += (ext[1] as usize + 2) * 4;
            }
            _ => break,
        }
    }
    pkt.proto = next as u32;
    if first_fragment {
        read_l4(ctx, offset, next, IPPROTO_ICMPV6, pkt)?;
    }
    Ok(PARSED)
}

/// Reads what the matches of the transport protocol look at: ports, TCP flags, ICMP type
/// and code. `icmp` is the ICMP protocol number of the packet's family.
#[inline(always)]
fn read_l4(
    ctx: &XdpContext,
    offset: usize,
    proto: u8,
    icmp: u8,
    pkt: &mut Packet,
) -> Result<(), Malformed> {
    if proto == IPPROTO_TCP {
        // Ports, then the flags byte at offset 13.
        let tcp: *const [u8; 14] = ptr_at(ctx, offset)?;
        let tcp = unsafe { *tcp };
        pkt.sport = be16([tcp[0], tcp[1]]);
        pkt.dport = be16([tcp[2], tcp[3]]);
        pkt.has_ports = true;
        pkt.tcp_flags = tcp[13];
        pkt.has_tcp = true;
    } else if proto == IPPROTO_UDP {
        let udp: *const [u8; 4] = ptr_at(ctx, offset)?;
        let udp = unsafe { *udp };
        pkt.sport = be16([udp[0], udp[1]]);
        pkt.dport = be16([udp[2], udp[3]]);
        pkt.has_ports = true;
    } else if proto == icmp {
        let head: *const [u8; 2] = ptr_at(ctx, offset)?;
        let head = unsafe { *head };
        pkt.icmp = be16(head);
        pkt.has_icmp = true;
    }
    Ok(())
}

#[inline(always)]
fn words(addr: [u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([addr[0], addr[1], addr[2], addr[3]]),
        u32::from_ne_bytes([addr[4], addr[5], addr[6], addr[7]]),
        u32::from_ne_bytes([addr[8], addr[9], addr[10], addr[11]]),
        u32::from_ne_bytes([addr[12], addr[13], addr[14], addr[15]]),
    ]
}
