//! fwctl: an XDP firewall that speaks iptables. The data flows one way:
//! `rules` (parse, model, edit) -> `compile` (map images) -> `dataplane` (pins, maps,
//! attach), with `state` as the canonical record and `cli` as the thin front.

pub mod apply;
pub mod boot;
pub mod cli;
pub mod compile;
pub mod dataplane;
pub mod firewall;
pub mod guard;
pub mod last_good;
pub mod netfilter;
pub mod observe;
pub mod rules;
pub mod sets;
pub mod state;
pub mod timings;
pub mod watch;

/// The XDP program, built by build.rs from firewall-ebpf.
pub static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/firewall-ebpf"));

/// The netfilter program that feeds the conntrack destination filter (dataplane/ct_seen.rs).
pub static CT_SEEN_PROGRAM: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ct-seen"));

/// Reference programs for the benchmarks (a generator and a bare XDP_DROP); fwctl never
/// loads them.
pub static BENCH_PROGRAMS: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench-xdp"));

/// Test hook: `FWCTL_FAULT=staged` (or `flipped`, or `relinked` in a resize, or one of
/// boot's and attach's steps) kills fwctl at that point, as a crash or `kill -9` would, so
/// tests can show what stays in force. `NAME@N` kills at the Nth time the point is reached
/// (boot commits more than once).
pub(crate) fn fault_point(name: &str) {
    static HITS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let Ok(fault) = std::env::var("FWCTL_FAULT") else {
        return;
    };
    let (point, nth) = match fault.split_once('@') {
        Some((point, n)) => (point, n.parse().unwrap_or(1)),
        None => (fault.as_str(), 1),
    };
    if point == name && HITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == nth {
        eprintln!("fwctl: FWCTL_FAULT={fault}: aborting");
        std::process::abort();
    }
}
