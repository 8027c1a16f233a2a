//! The contract between the XDP program and fwctl: map names, sizes, and the `#[repr(C)]`
//! types stored in them. Both sides read these definitions and nothing else, so a layout
//! change shows up as a compile error on both sides. No logic lives here.
//!
//! ABI rules: every type has explicit padding, its size is asserted, and the pin directory
//! carries [`ABI_VERSION`], so an upgraded fwctl never reads maps laid out by an older one.
#![no_std]

use bytemuck::{Pod, Zeroable};

/// Bumped whenever a map's key or value layout changes; part of the pin path.
pub const ABI_VERSION: u32 = 1;

/// Address families, in the order their rulesets are stored.
pub const FAMILY_V4: u32 = 0;
pub const FAMILY_V6: u32 = 1;
pub const FAMILIES: u32 = 2;

/// Two copies of the ruleset: userspace fills the inactive one, then flips
/// [`Config::active`], so a packet sees one whole ruleset or the other.
pub const GENERATIONS: u32 = 2;

/// Rules per chain, per family, per generation. The program scans them in order.
pub const MAX_RULES: u32 = 1024;

/// Counter slots: one per chain policy and family first, then one per rule. A rule keeps
/// its slot for as long as it exists, so its counters survive updates of the others.
pub const POLICY_COUNTER_SLOTS: u32 = 16;
pub const MAX_COUNTERS: u32 = POLICY_COUNTER_SLOTS + FAMILIES * MAX_RULES * GENERATIONS;

/// Slot of the INPUT policy counter of a family.
pub const fn policy_counter(family: u32) -> u32 {
    family
}

/// Index of a generation's ruleset header in `FW_HEADERS`.
pub const fn header_index(generation: u32, family: u32) -> u32 {
    generation * FAMILIES + family
}

/// Index of a rule in `FW_RULES`.
pub const fn rule_index(generation: u32, family: u32, position: u32) -> u32 {
    header_index(generation, family) * MAX_RULES + position
}

/// Map names, shared so userspace opens exactly what the program declares.
/// Writer: fwctl. Reader: the XDP program. One entry.
pub const MAP_CONFIG: &str = "FW_CONFIG";
/// Writer: fwctl. Reader: the XDP program. [`GENERATIONS`] x [`FAMILIES`] entries.
pub const MAP_HEADERS: &str = "FW_HEADERS";
/// Writer: fwctl. Reader: the XDP program. Indexed by [`rule_index`].
pub const MAP_RULES: &str = "FW_RULES";
/// Writer: the XDP program (per CPU). Reader: fwctl, which sums the CPUs.
pub const MAP_COUNTERS: &str = "FW_COUNTERS";
/// Writer: fwctl at attach time. Reader: the XDP program, for `-i` matches by name.
pub const MAP_IFNAMES: &str = "FW_IFNAMES";
pub const MAX_INTERFACES: u32 = 1024;

/// Verdicts as stored in rules and policies.
pub const VERDICT_DROP: u32 = 0;
pub const VERDICT_ACCEPT: u32 = 1;

/// [`Config::flags`]: emit an aya-log line per decided packet (the lab turns it on; it
/// costs a ring-buffer write per packet, so it is off in production).
pub const CONFIG_LOG_VERDICTS: u32 = 1;

/// Global switches. Key 0 of `FW_CONFIG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Config {
    /// The generation packets are judged by.
    pub active: u32,
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<Config>() == 8);

/// What a chain of one family does in one generation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct RulesetHeader {
    /// Verdict when no rule matches.
    pub policy: u32,
    /// Rules stored at positions `0..rule_count`.
    pub rule_count: u32,
}
const _: () = assert!(core::mem::size_of::<RulesetHeader>() == 8);

/// [`Rule::flags`]: the rule has `--sport`/`--dport`, so it cannot match a packet whose
/// transport header is absent (a non-first fragment), as in iptables.
pub const RULE_NEEDS_PORTS: u32 = 1;

/// One compiled rule. Every match is "field & mask == value", so an absent match is a
/// zero mask and the program has no branch per optional match.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Rule {
    /// Source and destination address, network byte order; IPv4 uses word 0 only.
    pub src: [u32; 4],
    pub src_mask: [u32; 4],
    pub dst: [u32; 4],
    pub dst_mask: [u32; 4],
    /// Input interface name, NUL padded; the mask covers the whole name and its NUL for an
    /// exact name, only the prefix for `tun+`, nothing for "any".
    pub iface: [u64; 2],
    pub iface_mask: [u64; 2],
    /// Inclusive port ranges, host byte order; `[0, 65535]` when absent.
    pub sport_min: u16,
    pub sport_max: u16,
    pub dport_min: u16,
    pub dport_max: u16,
    /// IP protocol number; 0 means any.
    pub proto: u32,
    pub flags: u32,
    pub verdict: u32,
    /// Slot in `FW_COUNTERS`.
    pub counter: u32,
}
const _: () = assert!(core::mem::size_of::<Rule>() == 120);

/// Packets and bytes (IP length, as iptables counts) of a rule or a policy, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}
const _: () = assert!(core::mem::size_of::<Counter>() == 16);

/// Value of `FW_IFNAMES`: an interface name, NUL padded, as two words for masked compares.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct IfName {
    pub name: [u64; 2],
}
const _: () = assert!(core::mem::size_of::<IfName>() == 16);

#[cfg(feature = "user")]
mod user {
    // SAFETY: all of these are #[repr(C)], Copy, without padding (sizes asserted above).
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::RulesetHeader {}
    unsafe impl aya::Pod for super::Rule {}
    unsafe impl aya::Pod for super::Counter {}
    unsafe impl aya::Pod for super::IfName {}
}
