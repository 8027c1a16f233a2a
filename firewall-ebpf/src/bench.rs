//! Reference programs for the benchmarks, not part of the firewall: `bench_tx` sends every
//! frame back out (a generator when run with BPF_PROG_TEST_RUN live frames on a veth),
//! `bench_tx_spoof` does the same with a random source address and port in each IPv4 TCP or
//! UDP frame (a flood from spoofed sources), and `bench_drop` is the bare XDP_DROP that
//! fwctl's drop rate is measured against; `bench_pass` the bare XDP_PASS its established
//! flow is.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_TX},
    helpers::bpf_get_prandom_u32,
    macros::xdp,
    programs::XdpContext,
};

#[xdp]
pub fn bench_tx(_ctx: XdpContext) -> u32 {
    XDP_TX
}

/// Ethernet, IPv4 without options, then TCP or UDP: the generator's template.
const ETH_LEN: usize = 14;
const IP_SRC: usize = ETH_LEN + 12;
const IP_CSUM: usize = ETH_LEN + 10;
const L4: usize = ETH_LEN + 20;
const TCP_CSUM: usize = L4 + 16;
const UDP_CSUM: usize = L4 + 6;
const FRAME_MIN: usize = ETH_LEN + 20 + 20;

/// Folds the one's-complement sum of a checksum updated from `old` to `new` words
/// (RFC 1624), for whatever the frame carries now: live frames keep what the previous run
/// wrote.
#[inline(always)]
fn updated(csum: u16, old: [u16; 3], new: [u16; 3]) -> u16 {
    let mut sum = u32::from(!csum);
    for i in 0..3 {
        sum += u32::from(!old[i]) + u32::from(new[i]);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// A flood from spoofed sources: a random source address and port in each IPv4 TCP or UDP
/// frame, checksums kept valid.
#[xdp]
pub fn bench_tx_spoof(ctx: XdpContext) -> u32 {
    let data = ctx.data();
    if data + FRAME_MIN > ctx.data_end() {
        return XDP_TX;
    }
    let p = data as *mut u8;
    // SAFETY: every offset read or written is below FRAME_MIN, checked against data_end.
    unsafe {
        let word = |off: usize| u16::from_be_bytes([*p.add(off), *p.add(off + 1)]);
        let put = |off: usize, w: u16| {
            let b = w.to_be_bytes();
            *p.add(off) = b[0];
            *p.add(off + 1) = b[1];
        };
        let proto = *p.add(ETH_LEN + 9);
        if word(12) != 0x0800 || *p.add(ETH_LEN) != 0x45 || (proto != 6 && proto != 17) {
            return XDP_TX;
        }
        // 32.0.0.0/3 holds only ordinary unicast addresses: no martian source for the
        // receiver's stack to discard before its firewall sees the frame.
        let addr = (bpf_get_prandom_u32() & 0x1fff_ffff) | 0x2000_0000;
        let port = (bpf_get_prandom_u32() as u16) | 1024;
        let old = [word(IP_SRC), word(IP_SRC + 2), word(L4)];
        let new = [(addr >> 16) as u16, addr as u16, port];
        // The IP header covers the address; the transport checksum covers both, the
        // address through the pseudo-header (a UDP checksum of 0 means none: keep it).
        put(
            IP_CSUM,
            updated(word(IP_CSUM), [old[0], old[1], 0], [new[0], new[1], 0]),
        );
        let l4 = if proto == 6 { TCP_CSUM } else { UDP_CSUM };
        if proto == 6 || word(l4) != 0 {
            put(l4, updated(word(l4), old, new));
        }
        put(IP_SRC, new[0]);
        put(IP_SRC + 2, new[1]);
        put(L4, new[2]);
    }
    XDP_TX
}

#[xdp]
pub fn bench_drop(_ctx: XdpContext) -> u32 {
    XDP_DROP
}

/// What any XDP program on the receiving veth costs a packet the stack then takes (the
/// established-flow rows' floor for an XDP firewall).
#[xdp]
pub fn bench_pass(_ctx: XdpContext) -> u32 {
    XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
