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
pub mod netfilter;
pub mod observe;
pub mod rules;
pub mod sets;
pub mod state;

/// The XDP program, built by build.rs from firewall-ebpf.
pub static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/firewall-ebpf"));

/// Reference programs for the benchmarks (a generator and a bare XDP_DROP); fwctl never
/// loads them.
pub static BENCH_PROGRAMS: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench-xdp"));

/// Test hook: `FWCTL_FAULT=staged` (or `flipped`, or `relinked` in a resize) kills fwctl at
/// that point of a commit, as a crash or `kill -9` would, so tests can show what stays in
/// force.
pub(crate) fn fault_point(name: &str) {
    if std::env::var("FWCTL_FAULT").is_ok_and(|v| v == name) {
        eprintln!("fwctl: FWCTL_FAULT={name}: aborting");
        std::process::abort();
    }
}
