//! `fw_ct_seen`, a BPF_PROG_TYPE_NETFILTER program fwctl attaches at LOCAL_IN and
//! POST_ROUTING (IPv4 and IPv6) just before conntrack's confirm hook: it marks, in
//! `FW_CTSEEN`, the destinations of every entry about to enter the conntrack table, so
//! that the XDP program may skip lookups that cannot hit. It never changes a verdict.
//!
//! aya 0.14 has no netfilter program type: the section is "socket" so that aya-obj can
//! read the object, and fwctl loads it with BPF_PROG_LOAD itself
//! (firewall-userspace/src/dataplane/ct_seen.rs).
#![no_std]
#![no_main]

use firewall_ebpf::seen;

/// `struct bpf_nf_ctx`: the hook state and the packet.
#[repr(C)]
pub struct NfCtx {
    state: *const u8,
    skb: *const u8,
}

const NF_ACCEPT: i32 = 1;

#[no_mangle]
#[link_section = "socket"]
pub fn fw_ct_seen(ctx: *const NfCtx) -> i32 {
    // SAFETY: the kernel hands every netfilter program a bpf_nf_ctx.
    let skb = unsafe { (*ctx).skb };
    seen::mark_unconfirmed(skb);
    NF_ACCEPT
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
