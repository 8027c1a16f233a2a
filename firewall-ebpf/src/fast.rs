//! The fast path: one array read that decides most packets before the classifier runs.
//!
//! fwctl compiles, with every generation, a verdict table indexed by what most packets
//! need: family, fast class (TCP SYN, other TCP, UDP, ICMP) and destination port (ICMP type
//! and code). An element is the final outcome when one rule decides every packet with
//! that key (or none can match and the policy does), so first match and counters stay
//! exact by construction; otherwise it says "ask conntrack, then maybe decide" or "take
//! the classifier". A flood to a closed port therefore costs a parse, two array reads and
//! a counter bump: no helper call, no hash or trie lookup.
//!
//! Only for families the namespace does not forward (`CONFIG_FAST_*`): there every packet
//! is INPUT's and no FIB lookup is needed.

use core::mem::MaybeUninit;

use aya_ebpf::{macros::map, maps::Array, programs::XdpContext};
use firewall_common::{
    config_fast, fast_index, FastCt, BPF_F_MMAPABLE, CONFIG_LOG_VERDICTS, CT_CLASS_UNKNOWN,
    CT_MODE_KERNEL, FAMILY_V4, FAST_BY_CLASS, FAST_CLASSES, FAST_CT_PER_GENERATION, FAST_ELEMENTS,
    FAST_FINAL, FAST_ICMP, FAST_TCP, FAST_TCP_SYN, FAST_UDP, GENERATIONS, REASON_MALFORMED,
    REASON_NOT_FOR_HOST,
};
use firewall_ebpf::{
    ct, delivered,
    parse::Packet,
    seen,
    wire::{be16_at, syn_only, word_at, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP},
};

#[map(name = "FW_FAST")]
static FAST: Array<u64> = Array::with_max_entries(FAST_ELEMENTS, BPF_F_MMAPABLE);
#[map(name = "FW_FASTCT")]
static FAST_CT: Array<FastCt> =
    Array::with_max_entries(GENERATIONS * FAST_CT_PER_GENERATION, BPF_F_MMAPABLE);

/// A TCP segment's fast class: SYN without ACK, RST or FIN, or any other.
#[inline(always)]
fn tcp_class(flags: u8) -> u32 {
    if syn_only(flags) {
        FAST_TCP_SYN
    } else {
        FAST_TCP
    }
}

/// The table's word for a key (two words per element: see firewall_common::FAST_ELEMENTS);
/// 0, "the classifier decides", if the element cannot be read.
#[inline(always)]
fn table_word(generation: u32, family: u32, class: u32, value: u32) -> u32 {
    const _: () = assert!(FAST_CLASSES == 4);
    let i = fast_index(generation, family, class, value);
    match FAST.get(i / 2) {
        Some(&pair) => (pair >> ((i & 1) * 32)) as u32,
        None => 0,
    }
}

/// What the table says of a packet.
pub enum Fast {
    /// A [`firewall_common::fast_final`] outcome.
    Final(u32),
    /// The conntrack class decides: `FW_FASTCT` element `index` has every class's outcome.
    ByClass(u32),
    /// The classifier decides.
    Classify,
}

/// The packet's fast class and key, or None for packets the table has no key for (other
/// protocols, truncated transport headers).
#[inline(always)]
fn key(pkt: &Packet) -> Option<(u32, u32)> {
    if pkt.proto == IPPROTO_TCP as u32 && pkt.has_tcp {
        return Some((tcp_class(pkt.tcp_flags), pkt.dport as u32));
    }
    if pkt.proto == IPPROTO_UDP as u32 && pkt.has_ports {
        return Some((FAST_UDP, pkt.dport as u32));
    }
    let icmp = if pkt.family == FAMILY_V4 {
        IPPROTO_ICMP
    } else {
        IPPROTO_ICMPV6
    };
    if pkt.proto == icmp as u32 && pkt.has_icmp {
        return Some((FAST_ICMP, pkt.icmp as u32));
    }
    None
}

/// The table's word on `pkt` under `generation`, given the configuration's flags.
#[inline(always)]
pub fn lookup(pkt: &Packet, generation: u32, flags: u32) -> Fast {
    if flags & (config_fast(pkt.family) | CONFIG_LOG_VERDICTS) != config_fast(pkt.family) {
        return Fast::Classify;
    }
    let Some((class, value)) = key(pkt) else {
        return Fast::Classify;
    };
    let word = table_word(generation, pkt.family, class, value);
    if word & FAST_FINAL != 0 {
        Fast::Final(word)
    } else if word & FAST_BY_CLASS != 0 {
        Fast::ByClass(word & !FAST_BY_CLASS)
    } else {
        Fast::Classify
    }
}

/// What the fast path made of an untagged IPv4 frame (see [`ipv4`]).
pub enum V4 {
    /// The table decides: the outcome and the IP length ([`source`] reads the source
    /// address, which only a sampled drop needs).
    Final(u32, u32),
    /// The conntrack class decides (`FW_FASTCT` index), for the packet now in `pkt`.
    ByClass(u32),
    /// Not judged, for this `REASON_*` (as the full parse answers it).
    Unjudged(u32),
}

/// The fast path's own reading of an untagged IPv4 frame, before (and instead of) the full
/// parse: just the fields the table is keyed by, with one load each. None for everything
/// the table cannot decide (other frames, fragments, IP options the full parse must see,
/// keys the classifier decides), which then takes the full path. `pkt` is the caller's,
/// shared with the full parse: one packet record in the entry point's frame, which the
/// classifier's walk already brings close to the stack limit.
#[inline(always)]
pub fn ipv4(
    ctx: &XdpContext,
    generation: u32,
    flags: u32,
    pkt: &mut MaybeUninit<Packet>,
) -> Option<V4> {
    if flags & (config_fast(FAMILY_V4) | CONFIG_LOG_VERDICTS) != config_fast(FAMILY_V4) {
        return None;
    }
    let data = ctx.data();
    let end = ctx.data_end();
    // Ethernet (14) and an IPv4 header without options (20).
    if data + 34 > end {
        return None;
    }
    // SAFETY: every read below is inside [data, end), checked first. Frames start 2-byte
    // aligned (the driver's headroom is even), so the u16 loads at even offsets are aligned.
    unsafe {
        if *((data + 12) as *const u16) != ETH_P_IPV4_BE {
            return None;
        }
        // Answered here rather than left to the full parse, which would find the same: a
        // path into the classifier is one more the verifier walks.
        if !delivered::to_our_mac(ctx, data) {
            return Some(V4::Unjudged(REASON_NOT_FOR_HOST));
        }
        let ip = data + 14;
        let vihl = *(ip as *const u8);
        // Options, a bad header length or another version: the full parse decides.
        if vihl != 0x45 {
            return None;
        }
        // What ip_rcv drops, and what routing refuses or sends elsewhere.
        let total = be16_at(ip + 2) as usize;
        if !delivered::checksum_ok(delivered::ipv4_base_sum(ip))
            || !delivered::ipv4_length_ok(total, 20, end - ip)
        {
            return Some(V4::Unjudged(REASON_MALFORMED));
        }
        if !delivered::ipv4_routable(*((ip + 12) as *const u8), *((ip + 16) as *const u8)) {
            return Some(V4::Unjudged(REASON_NOT_FOR_HOST));
        }
        // Any fragment (MF or an offset) is netfilter's, after reassembly.
        if *((ip + 6) as *const u16) & FRAG_MASK_BE != 0 {
            return None;
        }
        let proto = *((ip + 9) as *const u8);
        let l4 = ip + 20;
        let (class, need) = match proto {
            IPPROTO_TCP => (FAST_TCP, 14),
            IPPROTO_UDP => (FAST_UDP, 4),
            IPPROTO_ICMP => (FAST_ICMP, 4),
            _ => return None,
        };
        if l4 + need > end {
            return None;
        }
        // The key: the destination port (TCP, UDP), or type and code (ICMP).
        let mut tcp_flags = 0;
        let (class, value) = if class == FAST_TCP {
            tcp_flags = *((l4 + 13) as *const u8);
            (tcp_class(tcp_flags), be16_at(l4 + 2) as u32)
        } else if class == FAST_UDP {
            (FAST_UDP, be16_at(l4 + 2) as u32)
        } else {
            (FAST_ICMP, be16_at(l4) as u32)
        };
        let word = table_word(generation, FAMILY_V4, class, value);
        if word == 0 {
            return None;
        }
        let ip_len = total as u32;
        if word & FAST_FINAL != 0 {
            return Some(V4::Final(word, ip_len));
        }
        if word & FAST_BY_CLASS == 0 {
            return None;
        }
        let src = word_at(ip + 12);
        let dst = word_at(ip + 16);
        let index = word & !FAST_BY_CLASS;
        // A SYN or a datagram towards a destination no conntrack entry has: the lookup
        // would miss, so its class is a miss's (as firewall_ebpf::ct::class would find),
        // with no packet record and no call.
        // Real lookups only: the fake mode of the test fixtures decides in firewall_ebpf::ct.
        let ct_kernel = crate::ct_mode() == CT_MODE_KERNEL;
        // Only TCP and UDP have a miss class (ICMP goes to netfilter), and only a SYN's
        // or a datagram's is final.
        if ct_kernel
            && (class == FAST_TCP_SYN || class == FAST_UDP)
            && seen::no_entry_towards(&[dst, 0, 0, 0], value as u16, proto)
        {
            let miss = ct::miss_class(proto == IPPROTO_TCP, class == FAST_TCP_SYN, flags);
            if miss != CT_CLASS_UNKNOWN {
                if let Some(outcome) = by_class(generation, index, miss) {
                    return Some(V4::Final(outcome, ip_len));
                }
            }
        }
        // Ports (TCP, UDP) or type, code and checksum (ICMP): the first word, host order.
        let first = (be16_at(l4) as u32) << 16 | be16_at(l4 + 2) as u32;
        pkt.write(Packet::ipv4(src, dst, proto, first, tcp_flags, ip_len));
        Some(V4::ByClass(index))
    }
}

/// The source address of the untagged IPv4 frame the fast path decided, for the top
/// talkers' sample: read again rather than carried, as one drop in many needs it.
#[inline(always)]
pub fn source(ctx: &XdpContext) -> [u32; 4] {
    let data = ctx.data();
    if data + 34 > ctx.data_end() {
        return [0; 4];
    }
    // SAFETY: the 4 bytes at 26 lie inside the frame, checked above; 2-byte aligned.
    [unsafe { word_at(data + 26) }, 0, 0, 0]
}

/// EtherType IPv4 and the IPv4 fragment bits (MF and the offset) as loaded from the wire
/// on a little-endian machine.
const ETH_P_IPV4_BE: u16 = 0x0800u16.to_be();
const FRAG_MASK_BE: u16 = 0x3fffu16.to_be();

/// The outcome for conntrack class `class` in `FW_FASTCT` element `index` of `generation`:
/// final, since only complete elements are referred to; None only with a broken install.
#[inline(always)]
pub fn by_class(generation: u32, index: u32, class: u32) -> Option<u32> {
    let at = (generation & 1) * FAST_CT_PER_GENERATION + (index % FAST_CT_PER_GENERATION);
    let outcome = FAST_CT.get(at)?.by_class[(class & 3) as usize];
    (outcome & FAST_FINAL != 0).then_some(outcome)
}
