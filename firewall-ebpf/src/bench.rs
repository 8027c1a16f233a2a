//! Reference programs for the benchmarks, not part of the firewall: `bench_tx` sends every
//! frame back out (a generator when run with BPF_PROG_TEST_RUN live frames on a veth), and
//! `bench_drop` is the bare XDP_DROP that fwctl's drop rate is measured against.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_TX},
    macros::xdp,
    programs::XdpContext,
};

#[xdp]
pub fn bench_tx(_ctx: XdpContext) -> u32 {
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
