//! Reference programs for the benchmarks, not part of the firewall: `bench_tx` sends every
//! frame back out (a generator when run with BPF_PROG_TEST_RUN live frames on a veth),
//! `bench_tx_spoof` does the same with a random source address in each IPv4 TCP frame (a
//! spoofed SYN flood), and `bench_drop` is the bare XDP_DROP that fwctl's drop rate is
//! measured against.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_TX},
    helpers::bpf_get_prandom_u32,
    macros::xdp,
    programs::XdpContext,
};

#[xdp]
pub fn bench_tx(_ctx: XdpContext) -> u32 {
    XDP_TX
}

/// Ethernet, IPv4 without options, TCP without options: the generator's template.
const ETH_LEN: usize = 14;
const IP_SRC: usize = ETH_LEN + 12;
const IP_CSUM: usize = ETH_LEN + 10;
const TCP_CSUM: usize = ETH_LEN + 20 + 16;
const FRAME_MIN: usize = ETH_LEN + 20 + 20;

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
        if word(12) != 0x0800 || *p.add(ETH_LEN) != 0x45 || *p.add(ETH_LEN + 9) != 6 {
            return XDP_TX;
        }
        // 32.0.0.0/3 holds only ordinary unicast addresses: no martian source for the
        // receiver's stack to discard before its firewall sees the frame.
        let new = (bpf_get_prandom_u32() & 0x1fff_ffff) | 0x2000_0000;
        let (old_hi, old_lo) = (word(IP_SRC), word(IP_SRC + 2));
        let (new_hi, new_lo) = ((new >> 16) as u16, new as u16);
        // Incremental update (RFC 1624): live frames keep what the previous run wrote, so
        // the checksums are adjusted from whatever source the frame carries now. The TCP
        // checksum covers the source through the pseudo-header.
        for off in [IP_CSUM, TCP_CSUM] {
            let mut sum = u32::from(!word(off))
                + u32::from(!old_hi)
                + u32::from(!old_lo)
                + u32::from(new_hi)
                + u32::from(new_lo);
            sum = (sum & 0xffff) + (sum >> 16);
            sum = (sum & 0xffff) + (sum >> 16);
            let csum = (!(sum as u16)).to_be_bytes();
            *p.add(off) = csum[0];
            *p.add(off + 1) = csum[1];
        }
        let bytes = new.to_be_bytes();
        for (i, b) in bytes.iter().enumerate() {
            *p.add(IP_SRC + i) = *b;
        }
    }
    XDP_TX
}

#[xdp]
pub fn bench_drop(_ctx: XdpContext) -> u32 {
    XDP_DROP
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
