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

use aya_ebpf::{macros::map, maps::Array};
use firewall_common::{
    config_fast, fast_index, FastCt, BPF_F_MMAPABLE, CONFIG_LOG_VERDICTS, FAMILY_V4, FAST_CLASSES,
    FAST_CT_PER_GENERATION, FAST_ELEMENTS, FAST_FINAL, FAST_ICMP, FAST_TCP, FAST_TCP_SYN, FAST_UDP,
    GENERATIONS,
};
use firewall_ebpf::parse::Packet;

#[map(name = "FW_FAST")]
static FAST: Array<u64> = Array::with_max_entries(FAST_ELEMENTS, BPF_F_MMAPABLE);
#[map(name = "FW_FASTCT")]
static FAST_CT: Array<FastCt> =
    Array::with_max_entries(GENERATIONS * FAST_CT_PER_GENERATION, BPF_F_MMAPABLE);

const IPPROTO_ICMP: u32 = 1;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const IPPROTO_ICMPV6: u32 = 58;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// What the table says of a packet.
pub enum Fast {
    /// A [`firewall_common::fast_final`] outcome.
    Final(u32),
    /// The outcome depends on the conntrack class: `FW_FASTCT` element `index` has it.
    ByClass(u32),
    /// The classifier decides.
    Classify,
}

/// The packet's fast class and key, or None for packets the table has no key for (other
/// protocols, truncated transport headers).
#[inline(always)]
fn key(pkt: &Packet) -> Option<(u32, u32)> {
    if pkt.proto == IPPROTO_TCP && pkt.has_tcp {
        let syn = pkt.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN;
        let class = if syn { FAST_TCP_SYN } else { FAST_TCP };
        return Some((class, pkt.dport as u32));
    }
    if pkt.proto == IPPROTO_UDP && pkt.has_ports {
        return Some((FAST_UDP, pkt.dport as u32));
    }
    let icmp = if pkt.family == FAMILY_V4 {
        IPPROTO_ICMP
    } else {
        IPPROTO_ICMPV6
    };
    if pkt.proto == icmp && pkt.has_icmp {
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
    const _: () = assert!(FAST_CLASSES == 4);
    let i = fast_index(generation, pkt.family, class, value);
    let Some(&pair) = FAST.get(i / 2) else {
        return Fast::Classify;
    };
    let word = (pair >> ((i & 1) * 32)) as u32;
    if word & FAST_FINAL != 0 {
        Fast::Final(word)
    } else if word != 0 {
        Fast::ByClass(word)
    } else {
        Fast::Classify
    }
}

/// The outcome for conntrack class `class` in `FW_FASTCT` element `index` of `generation`,
/// or 0 when the classifier must decide.
#[inline(always)]
pub fn by_class(generation: u32, index: u32, class: u32) -> u32 {
    let at = (generation & 1) * FAST_CT_PER_GENERATION + (index % FAST_CT_PER_GENERATION);
    match FAST_CT.get(at) {
        Some(outcomes) => outcomes.by_class[(class & 3) as usize],
        None => 0,
    }
}
