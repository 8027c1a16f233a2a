//! The packet's conntrack class (firewall-common `CT_CLASS_*`), from the kernel's own
//! conntrack table through the `bpf_xdp_ct_lookup` / `bpf_ct_release` kfuncs.
//!
//! XDP runs before conntrack has seen the packet, so it can only name the state netfilter
//! will give it when the table entry alone decides it, as `resolve_normal_ct()` does: an
//! entry seen in the reply direction or with `IPS_SEEN_REPLY` is ESTABLISHED, one with
//! `IPS_EXPECTED` RELATED, another one NEW. A miss is NEW only where conntrack cannot call
//! the packet anything else: UDP, and a TCP SYN (without ACK, RST or FIN, which
//! `nf_conntrack_tcp` would reject or, with `nf_conntrack_tcp_loose`, pick up mid-stream),
//! and only where no conntrack helper can have set up an expectation (`CONFIG_CT_HELPERS`).
//! Everything else is class 0, left to netfilter: ICMP (the lookup refuses it, and RELATED
//! ICMP errors must reach netfilter), other protocols, fragments, lookup errors.
//!
//! A SYN or a datagram whose destination no conntrack entry has ever had skips the lookup
//! (a miss for sure: see `seen`), which is what a flood from spoofed sources is made of.
//!
//! The kfunc calls are plain `extern "C"` calls here; fwctl's loader turns them into kfunc
//! calls (firewall-userspace/src/dataplane/kfunc.rs), or into `r0 = 0` where the kernel has
//! no such kfuncs, and then sets `CT_MODE` so that code is never reached.

use aya_ebpf::{bindings::xdp_md, programs::XdpContext};
use firewall_common::{
    Config, CONFIG_CT_HELPERS, CT_CLASS_ESTABLISHED, CT_CLASS_NEW, CT_CLASS_RELATED,
    CT_CLASS_UNKNOWN, CT_FAKE_ERROR, CT_FAKE_FOUND, CT_FAKE_REPLY, CT_FAKE_STATUS_SHIFT,
    CT_MODE_FAKE, CT_MODE_KERNEL, FAMILY_V4, IPS_EXPECTED, IPS_SEEN_REPLY,
};

use crate::{
    parse::Packet,
    seen,
    wire::{syn_only, IPPROTO_TCP},
};

/// Opaque `struct nf_conn`: fields are read at offsets taken from the kernel's BTF.
#[repr(C)]
pub struct NfConn {
    _opaque: [u8; 0],
}

extern "C" {
    /// KF_ACQUIRE | KF_RET_NULL: NULL on a miss (opts.error -ENOENT) or a bad argument;
    /// otherwise a reference the program must give back with `bpf_ct_release`.
    fn bpf_xdp_ct_lookup(
        xdp_ctx: *mut xdp_md,
        tuple: *mut u32,
        tuple__sz: u32,
        opts: *mut u64,
        opts__sz: u32,
    ) -> *mut NfConn;
    /// KF_RELEASE.
    fn bpf_ct_release(ct: *mut NfConn);
}

const ENOENT: i32 = 2;
/// `struct bpf_sock_tuple`: IPv4 12 bytes, IPv6 36; `struct bpf_ct_opts` 16 (Linux 6.10+).
const TUPLE_V4_SZ: u32 = 12;
const TUPLE_V6_SZ: u32 = 36;
const OPTS_SZ: u32 = 16;
/// `bpf_ct_opts.netns_id`: the namespace of the receiving device.
const BPF_F_CURRENT_NETNS: u32 = u32::MAX;

/// What a lookup found: nothing, an entry (its direction and status), or an error.
struct Found {
    hit: bool,
    reply: bool,
    status: u64,
}

/// The class of `pkt`. `mode` and `status_offset` are the loader's read-only globals, so
/// the verifier only walks the mode in force; `config` is FW_CONFIG's (its fake lookup
/// result, its helpers flag).
///
/// Not inlined: the tuple and options live in a frame of their own that is gone before the
/// classifier runs, instead of riding along in every verifier state.
#[inline(never)]
pub fn class(
    ctx: &XdpContext,
    pkt: &Packet,
    mode: u32,
    status_offset: u32,
    config: &Config,
) -> u32 {
    let fake = config.fake_ct_lookup;
    if !pkt.has_ports || pkt.fragment {
        return CT_CLASS_UNKNOWN;
    }
    let tcp = pkt.proto == IPPROTO_TCP as u32;
    let syn_only = tcp && syn_only(pkt.tcp_flags);
    let found = if mode == CT_MODE_KERNEL {
        // Only where a miss decides (a SYN, UDP): another TCP segment without an entry goes
        // to netfilter anyway, and an established flow's segments then pay nothing extra.
        if (!tcp || syn_only) && !seen::may_have_entry(pkt) {
            Found {
                hit: false,
                reply: false,
                status: 0,
            }
        } else {
            match lookup(ctx, pkt, status_offset) {
                Some(found) => found,
                None => return CT_CLASS_UNKNOWN,
            }
        }
    } else if mode == CT_MODE_FAKE {
        if fake & CT_FAKE_ERROR != 0 {
            return CT_CLASS_UNKNOWN;
        }
        Found {
            hit: fake & CT_FAKE_FOUND != 0,
            reply: fake & CT_FAKE_REPLY != 0,
            status: (fake >> CT_FAKE_STATUS_SHIFT) as u64,
        }
    } else {
        return CT_CLASS_UNKNOWN;
    };
    if !found.hit {
        return miss_class(tcp, syn_only, config.flags);
    }
    if found.reply || found.status & IPS_SEEN_REPLY != 0 {
        // A SYN on a connection conntrack knows may reopen it (TIME_WAIT, CLOSE): then
        // netfilter calls it NEW.
        return if syn_only {
            CT_CLASS_UNKNOWN
        } else {
            CT_CLASS_ESTABLISHED
        };
    }
    if found.status & IPS_EXPECTED != 0 {
        return CT_CLASS_RELATED;
    }
    CT_CLASS_NEW
}

/// The class of a TCP (`tcp`, `syn_only`) or UDP packet (never another protocol: ICMP has
/// no miss class) no conntrack entry matches, under
/// FW_CONFIG's `flags`: NEW for a SYN or a datagram, unless a conntrack helper may have set
/// up an expectation (which the lookup does not see) that makes it RELATED; otherwise
/// netfilter's. The fast read (main's `fast::ipv4`) decides by this too.
#[inline(always)]
pub fn miss_class(tcp: bool, syn_only: bool, flags: u32) -> u32 {
    if (!tcp || syn_only) && flags & CONFIG_CT_HELPERS == 0 {
        CT_CLASS_NEW
    } else {
        CT_CLASS_UNKNOWN
    }
}

/// The kernel's conntrack entry for the packet's tuple, read and released at once; None
/// when the lookup failed otherwise than by a miss.
#[inline(always)]
fn lookup(ctx: &XdpContext, pkt: &Packet, status_offset: u32) -> Option<Found> {
    // bpf_sock_tuple, network byte order: source, destination, then the two ports. Words,
    // not a struct literal: that could become a memset call.
    let ports = pkt.sport.to_be() as u32 | ((pkt.dport.to_be() as u32) << 16);
    let mut tuple = [0u32; 9];
    let size = if pkt.family == FAMILY_V4 {
        tuple[0] = pkt.src[0];
        tuple[1] = pkt.dst[0];
        tuple[2] = ports;
        TUPLE_V4_SZ
    } else {
        tuple[0] = pkt.src[0];
        tuple[1] = pkt.src[1];
        tuple[2] = pkt.src[2];
        tuple[3] = pkt.src[3];
        tuple[4] = pkt.dst[0];
        tuple[5] = pkt.dst[1];
        tuple[6] = pkt.dst[2];
        tuple[7] = pkt.dst[3];
        tuple[8] = ports;
        TUPLE_V6_SZ
    };
    // bpf_ct_opts: netns_id, error (out); l4proto, dir (out), zone 0, reserved 0.
    let mut opts: [u64; 2] = [BPF_F_CURRENT_NETNS as u64, (pkt.proto & 0xff) as u64];
    // SAFETY: tuple and opts are live stack buffers of the sizes passed.
    let ct = unsafe {
        bpf_xdp_ct_lookup(
            ctx.ctx,
            tuple.as_mut_ptr(),
            size,
            opts.as_mut_ptr(),
            OPTS_SZ,
        )
    };
    if ct.is_null() {
        let error = (opts[0] >> 32) as u32 as i32;
        return if error == -ENOENT {
            Some(Found {
                hit: false,
                reply: false,
                status: 0,
            })
        } else {
            None
        };
    }
    // SAFETY: `ct` is a referenced nf_conn; the offset is that of its `status` member in
    // this kernel's BTF, which the verifier checks the load against.
    let status = unsafe {
        core::ptr::read_volatile((ct as *const u8).add(status_offset as usize) as *const u64)
    };
    let reply = (opts[1] >> 8) & 0xff == 1;
    // SAFETY: released exactly once, on the only path that holds it.
    unsafe { bpf_ct_release(ct) };
    Some(Found {
        hit: true,
        reply,
        status,
    })
}
