//! Rules and rulesets as the operator wrote them, with no kernel detail: the parser builds
//! these, the state file stores them, the compiler and the listing read them.

use std::{fmt, net::IpAddr};

use serde::{Deserialize, Serialize};

use super::ratelimit::RateMatches;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The family's index in firewall-common's maps.
    pub fn index(self) -> u32 {
        match self {
            Family::V4 => firewall_common::FAMILY_V4,
            Family::V6 => firewall_common::FAMILY_V6,
        }
    }

    pub fn max_prefix(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// The command iptables users would have typed, for messages.
    pub fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    /// The family as JSON listings and metrics name it.
    pub fn label(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

/// Built-in chains. INPUT and FORWARD of the filter table are judged at XDP and by
/// netfilter; everything else (OUTPUT, the nat table) by netfilter alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Chain {
    Input,
    Forward,
    Output,
    PreRouting,
    PostRouting,
}

impl Chain {
    /// The filter table's built-in chains.
    pub const ALL: [Chain; 3] = [Chain::Input, Chain::Forward, Chain::Output];

    pub fn name(self) -> &'static str {
        match self {
            Chain::Input => "INPUT",
            Chain::Forward => "FORWARD",
            Chain::Output => "OUTPUT",
            Chain::PreRouting => "PREROUTING",
            Chain::PostRouting => "POSTROUTING",
        }
    }

    pub fn from_name(name: &str) -> Option<Chain> {
        Table::Nat
            .builtins()
            .iter()
            .chain(&[Chain::Forward])
            .copied()
            .find(|c| c.name() == name)
    }

    /// The chain's index in firewall-common's tables, for the chains XDP judges (INPUT and
    /// FORWARD of the filter table; netfilter alone judges the others).
    pub fn xdp_index(self) -> Option<u32> {
        match self {
            Chain::Input => Some(firewall_common::CHAIN_INPUT),
            Chain::Forward => Some(firewall_common::CHAIN_FORWARD),
            Chain::Output | Chain::PreRouting | Chain::PostRouting => None,
        }
    }
}

/// The iptables tables fwctl manages. The mangle, raw and security tables are judged by
/// netfilter alone, at iptables-nft's hook priorities (raw -300, mangle -150, security 150).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Table {
    #[default]
    Filter,
    Nat,
    Mangle,
    Raw,
    Security,
}

impl Table {
    pub const ALL: [Table; 5] = [
        Table::Filter,
        Table::Nat,
        Table::Mangle,
        Table::Raw,
        Table::Security,
    ];

    /// The order iptables-save (nf_tables) writes the tables in.
    pub const SAVE_ORDER: [Table; 5] = [
        Table::Mangle,
        Table::Security,
        Table::Raw,
        Table::Filter,
        Table::Nat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
            Table::Mangle => "mangle",
            Table::Raw => "raw",
            Table::Security => "security",
        }
    }

    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Built-in chains in iptables' listing order.
    pub fn builtins(self) -> &'static [Chain] {
        match self {
            Table::Filter => &Chain::ALL,
            Table::Nat => &[
                Chain::PreRouting,
                Chain::Input,
                Chain::Output,
                Chain::PostRouting,
            ],
            Table::Mangle => &[
                Chain::PreRouting,
                Chain::Input,
                Chain::Forward,
                Chain::Output,
                Chain::PostRouting,
            ],
            Table::Raw => &[Chain::PreRouting, Chain::Output],
            Table::Security => &Chain::ALL,
        }
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A chain policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Accept,
    Drop,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Accept => "ACCEPT",
            Verdict::Drop => "DROP",
        }
    }

    pub fn from_name(name: &str) -> Option<Verdict> {
        match name {
            "ACCEPT" => Some(Verdict::Accept),
            "DROP" => Some(Verdict::Drop),
            _ => None,
        }
    }
}

/// An address with a prefix length; the address has its host bits cleared, as iptables
/// stores it (`-s 10.1.2.3/24` lists as `10.1.2.0/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn family(&self) -> Family {
        match self.addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The address as 128 bits (IPv4 in the top 32), for prefix arithmetic.
    pub fn bits(&self) -> u128 {
        match self.addr {
            IpAddr::V4(a) => (u32::from(a) as u128) << 96,
            IpAddr::V6(a) => u128::from(a),
        }
    }

    /// Whether every address of `other` is in `self`.
    pub fn contains(&self, other: &Cidr) -> bool {
        if self.prefix > other.prefix || self.family() != other.family() {
            return false;
        }
        let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
        (self.bits() & mask) == (other.bits() & mask)
    }
}

/// An inclusive port range; a single port is `min == max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

/// The ports of `ranges` (their complement when `negated`) as sorted, disjoint ranges:
/// what the classifier and the netfilter rules both take a port condition to be.
pub fn port_set(ranges: &[PortRange], negated: bool) -> Vec<PortRange> {
    let mut sorted = ranges.to_vec();
    sorted.sort_by_key(|r| r.min);
    let mut merged: Vec<PortRange> = Vec::new();
    for r in sorted {
        match merged.last_mut() {
            Some(last) if r.min as u32 <= last.max as u32 + 1 => last.max = last.max.max(r.max),
            _ => merged.push(r),
        }
    }
    if !negated {
        return merged;
    }
    let mut out = Vec::new();
    let mut next: u32 = 0;
    for r in merged {
        if r.min as u32 > next {
            out.push(PortRange {
                min: next as u16,
                max: r.min - 1,
            });
        }
        next = r.max as u32 + 1;
    }
    if next <= u16::MAX as u32 {
        out.push(PortRange {
            min: next as u16,
            max: u16::MAX,
        });
    }
    out
}

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

/// Whether an interface name satisfies `-i PATTERN` (with `+` as a prefix wildcard).
pub fn iface_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// A match and whether it was negated with `!`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neg<T> {
    pub value: T,
    // Left out when false: the state file holds thousands of these (see RuleSpec).
    #[serde(default, skip_serializing_if = "is_false")]
    pub negated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl<T> Neg<T> {
    pub fn plain(value: T) -> Neg<T> {
        Neg {
            value,
            negated: false,
        }
    }
}

/// `-m multiport --sports/--dports/--ports`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MultiportKind {
    Sports,
    Dports,
    /// Source or destination port in the list.
    Ports,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Multiport {
    pub kind: MultiportKind,
    pub ports: Vec<PortRange>,
}

/// `--icmp-type TYPE[/CODE]` (or `--icmpv6-type`); `any` is type 255 with every code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcmpType {
    pub kind: u8,
    pub code_min: u8,
    pub code_max: u8,
}

/// `--tcp-flags MASK COMP`: the flags in `mask` must be exactly those of `comp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpFlags {
    pub mask: u8,
    pub comp: u8,
}

/// Conntrack states, as bits in iptables' order of listing.
pub const CT_INVALID: u8 = 1;
pub const CT_NEW: u8 = 2;
pub const CT_RELATED: u8 = 4;
pub const CT_ESTABLISHED: u8 = 8;
pub const CT_UNTRACKED: u8 = 16;
pub const CT_STATES: [(u8, &str); 5] = [
    (CT_INVALID, "INVALID"),
    (CT_NEW, "NEW"),
    (CT_RELATED, "RELATED"),
    (CT_ESTABLISHED, "ESTABLISHED"),
    (CT_UNTRACKED, "UNTRACKED"),
];

/// Conntrack states as iptables lists and saves them: `RELATED,ESTABLISHED`.
pub fn ct_states_text(states: u8) -> String {
    CT_STATES
        .iter()
        .filter(|(b, _)| states & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// `-m conntrack --ctstate` or `-m state --state` (kept apart: they list differently).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtState {
    pub states: u8,
    /// Written as `-m state --state`.
    pub legacy: bool,
}

/// Where SNAT/DNAT rewrite to: one address and optionally a port or port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatTo {
    pub addr: IpAddr,
    pub ports: Option<PortRange>,
}

impl fmt::Display for PortRange {
    /// `80` or `1024-2000`, as the NAT targets write ports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

impl fmt::Display for NatTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.addr, self.ports) {
            (IpAddr::V6(a), Some(p)) => write!(f, "[{a}]:{p}"),
            (a, Some(p)) => write!(f, "{a}:{p}"),
            (a, None) => write!(f, "{a}"),
        }
    }
}

pub use super::reject::RejectWith;

/// `-j LOG --log-prefix P --log-level L --log-uid ...`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOpts {
    pub prefix: Option<String>,
    /// syslog level, 0 (emerg) to 7 (debug); iptables' default is 4 (warning).
    pub level: u8,
    /// `--log-tcp-sequence`... as the kernel's `XT_LOG_*` bits (`LOG_FLAGS`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flags: u8,
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

/// LOG's flag options: the kernel's bit, the option, its word in `-L`, in the order
/// iptables 1.8.9 lists and saves them.
pub const LOG_FLAGS: [(u8, &str, &str); 5] = [
    (0x01, "--log-tcp-sequence", "tcp-sequence"),
    (0x02, "--log-tcp-options", "tcp-options"),
    (0x04, "--log-ip-options", "ip-options"),
    (0x08, "--log-uid", "uid"),
    (0x20, "--log-macdecode", "macdecode"),
];

/// syslog level names as iptables lists them, by level.
pub const LOG_LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
];
pub const DEFAULT_LOG_LEVEL: u8 = 4;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Accept,
    Drop,
    Return,
    Jump(String),
    /// nat table: the source becomes the address of the interface the packet leaves by
    /// (`--to-ports`: and the source port one of these).
    Masquerade(Option<PortRange>),
    Snat(NatTo),
    Dnat(NatTo),
    /// nat table: to this host, the address of the interface the packet came in by.
    Redirect(Option<PortRange>),
    /// Drops and answers: judged by netfilter, which sends what iptables sends. The family
    /// names the answer (`icmp-port-unreachable` or `icmp6-port-unreachable`).
    Reject(RejectWith, Family),
    /// Logs the packet and goes on with the next rule; the events reach `fwctl log`.
    Log(LogOpts),
    /// No `-j`: the rule counts what it matches and the next rule goes on, as iptables'
    /// rules without a target do.
    Count,
    /// `-j NFLOG`: hands the packet to netlink-log group `group` (ulogd and the like) and
    /// goes on.
    Nflog {
        group: u16,
        prefix: Option<String>,
    },
    /// `-j MARK`: sets the packet's mark and goes on.
    Mark(super::mark::Mark),
    /// `-j CONNMARK`: moves marks between packet and connection, and goes on.
    Connmark(super::mark::Connmark),
    /// `-j TCPMSS`: lowers a TCP SYN's MSS option, and goes on.
    Tcpmss(super::mark::Tcpmss),
    /// `-j CHECKSUM --checksum-fill` (mangle): nftables has no statement that fills a
    /// checksum left to the device, so netfilter counts the packet and it goes on as it is;
    /// adding the rule warns (see `edit::CHECKSUM_WARNING`).
    Checksum,
    /// `-j SET`: adds the packet to sets or deletes it, and goes on.
    Set(super::set_target::SetTarget),
    /// `-j NFQUEUE`: a userspace program on the queue decides.
    Nfqueue(super::nfqueue::Nfqueue),
    /// `-j SYNPROXY`.
    Synproxy(super::synproxy::Synproxy),
    /// `-j CT --notrack` (`legacy`: written `-j NOTRACK`): conntrack leaves the packet
    /// alone (UNTRACKED); the raw table's, and goes on.
    Notrack {
        legacy: bool,
    },
    /// `-j CT --zone N` (`--zone-orig`, `--zone-reply`: one direction's): conntrack keys
    /// the packet's connection in zone N; the raw table's, and goes on.
    CtZone(CtZone),
}

/// The zone `-j CT --zone*` puts a connection in, and for which direction (None: both).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtZone {
    pub zone: u16,
    pub dir: Option<ZoneDir>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZoneDir {
    Original,
    Reply,
}

impl CtZone {
    /// Its option as iptables writes it (`--zone-orig`), without the value.
    pub fn option(&self) -> &'static str {
        match self.dir {
            None => "--zone",
            Some(ZoneDir::Original) => "--zone-orig",
            Some(ZoneDir::Reply) => "--zone-reply",
        }
    }
}

impl Target {
    pub fn name(&self) -> &str {
        match self {
            Target::Accept => "ACCEPT",
            Target::Drop => "DROP",
            Target::Return => "RETURN",
            Target::Jump(c) => c,
            Target::Masquerade(_) => "MASQUERADE",
            Target::Redirect(_) => "REDIRECT",
            Target::Snat(_) => "SNAT",
            Target::Dnat(_) => "DNAT",
            Target::Reject(..) => "REJECT",
            Target::Log(_) => "LOG",
            Target::Count => "",
            Target::Mark(_) => "MARK",
            Target::Nflog { .. } => "NFLOG",
            Target::Connmark(_) => "CONNMARK",
            Target::Tcpmss(_) => "TCPMSS",
            Target::Checksum => "CHECKSUM",
            Target::Set(_) => "SET",
            Target::Nfqueue(_) => "NFQUEUE",
            Target::Synproxy(_) => "SYNPROXY",
            Target::Notrack { .. } | Target::CtZone(_) => "CT",
        }
    }

    /// The nat table's own targets.
    pub fn is_nat(&self) -> bool {
        matches!(
            self,
            Target::Masquerade(_) | Target::Snat(_) | Target::Dnat(_) | Target::Redirect(_)
        )
    }
}

/// `-m set --match-set NAME src|dst[,src|dst]`: membership in a set (`fwctl set`), each of
/// the set's dimensions taken from the packet's source or destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SetMatch {
    pub name: String,
    /// Per dimension, in order: taken from the destination (else the source).
    pub dst: Vec<bool>,
}

impl SetMatch {
    /// `src`, `dst`, `src,dst`... as iptables writes the flags.
    pub fn flags(&self) -> String {
        self.dst
            .iter()
            .map(|d| if *d { "dst" } else { "src" })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// How [`RuleSpec::order`] names a protocol match (`tcp`, `udp`) given without options.
pub const BARE: &str = "bare:";

/// One rule's matches and target. Absent fields match everything (and are left out of the
/// state file: a 10,000-rule state is read and written at every change).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// `-i`: an interface name, or a prefix when it ends in `+` (`tun+`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_iface: Option<Neg<String>>,
    /// `-o`: the interface a forwarded packet leaves by (FORWARD), same patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_iface: Option<Neg<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Neg<Cidr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<Neg<Cidr>>,
    /// `-p`: protocol number; `None` is `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<Neg<u8>>,
    /// `--sport`/`--dport` of the tcp or udp match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<Neg<PortRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<Neg<PortRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiport: Option<Neg<Multiport>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<Neg<IcmpType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_flags: Option<Neg<TcpFlags>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctstate: Option<Neg<CtState>>,
    /// `-m set` matches, in the order given; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<Neg<SetMatch>>,
    /// `-m limit`, `-m hashlimit`, `-m connlimit`.
    #[serde(default, skip_serializing_if = "RateMatches::is_empty")]
    pub rate: RateMatches,
    /// Matches netfilter judges alone (`-m mark`...), in the order given; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nf: Vec<Neg<super::matches::NfMatch>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The order the rule's match modules were given in (`state`, `tcp`...), where it is
    /// not fwctl's own: iptables lists and saves matches in that order. It also holds the
    /// protocol matches given without options (`-p tcp -m tcp`), as [`BARE`]`tcp`, each
    /// where it was given: they match nothing more than `-p` does, but iptables lists
    /// them. Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<String>,
    pub target: Target,
    /// A NAT target's `--random`, `--random-fully` and `--persistent` ([`NatFlags`]).
    #[serde(default, skip_serializing_if = "NatFlags::is_empty")]
    pub nat_flags: NatFlags,
}

/// The options a NAT target takes besides its addresses and ports, as the kernel's
/// NF_NAT_RANGE_* bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NatFlags(pub u32);

impl NatFlags {
    pub const RANDOM: u32 = 0x04;
    pub const PERSISTENT: u32 = 0x08;
    pub const RANDOM_FULLY: u32 = 0x10;
    /// In the order iptables lists and saves them: (bit, option, `-L` word).
    pub const ALL: [(u32, &'static str, &'static str); 3] = [
        (Self::RANDOM, "--random", "random"),
        (Self::RANDOM_FULLY, "--random-fully", "random-fully"),
        (Self::PERSISTENT, "--persistent", "persistent"),
    ];

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// ` random random-fully`, as `-L` writes them after the target's own text.
    pub fn list_text(&self) -> String {
        Self::ALL
            .iter()
            .filter(|(bit, _, _)| self.0 & bit != 0)
            .map(|(_, _, word)| format!(" {word}"))
            .collect()
    }

    /// `--random --persistent`, as save writes them.
    pub fn save_words(&self) -> impl Iterator<Item = &'static str> + '_ {
        Self::ALL
            .iter()
            .filter(|(bit, _, _)| self.0 & bit != 0)
            .map(|(_, option, _)| *option)
    }
}

impl RuleSpec {
    /// A rule that matches everything and jumps to `target`.
    pub fn any(target: Target) -> RuleSpec {
        RuleSpec {
            in_iface: None,
            out_iface: None,
            src: None,
            dst: None,
            proto: None,
            sport: None,
            dport: None,
            multiport: None,
            icmp: None,
            tcp_flags: None,
            ctstate: None,
            sets: Vec::new(),
            rate: RateMatches::default(),
            nf: Vec::new(),
            comment: None,
            order: Vec::new(),
            target,
            nat_flags: NatFlags::default(),
        }
    }
}

/// A rule in the ruleset: the operator's spec and the counter slot it owns for as long as
/// it exists, so that its counters survive changes to other rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub spec: RuleSpec,
    pub slot: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRules {
    pub policy: Verdict,
    pub rules: Vec<Rule>,
}

impl Default for ChainRules {
    fn default() -> Self {
        ChainRules {
            policy: Verdict::Accept,
            rules: Vec::new(),
        }
    }
}

/// A chain created with `-N`: rules, no policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChain {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// One table (filter, nat, mangle or raw) of one family.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyRules {
    #[serde(default)]
    pub table: Table,
    /// The table exists even if empty, as iptables-nft keeps a table a restore file or a
    /// command made (iptables-save then writes it): an empty `*mangle` section is saved
    /// back, and a table nothing made is not saved, the filter table included.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub declared: bool,
    pub input: ChainRules,
    pub forward: ChainRules,
    pub output: ChainRules,
    /// The nat table's own chains.
    #[serde(default)]
    pub prerouting: ChainRules,
    #[serde(default)]
    pub postrouting: ChainRules,
    /// Sorted by name, as iptables lists them.
    pub user: Vec<UserChain>,
}

impl FamilyRules {
    pub fn nat() -> FamilyRules {
        FamilyRules::of(Table::Nat)
    }

    pub fn mangle() -> FamilyRules {
        FamilyRules::of(Table::Mangle)
    }

    pub fn raw() -> FamilyRules {
        FamilyRules::of(Table::Raw)
    }

    pub fn security() -> FamilyRules {
        FamilyRules::of(Table::Security)
    }

    pub fn of(table: Table) -> FamilyRules {
        FamilyRules {
            table,
            ..FamilyRules::default()
        }
    }

    /// Whether iptables-save would write this table: once a restore or a command made it.
    pub fn exists(&self) -> bool {
        self.declared || !self.is_empty()
    }

    pub fn chain(&self, chain: Chain) -> &ChainRules {
        match chain {
            Chain::Input => &self.input,
            Chain::Forward => &self.forward,
            Chain::Output => &self.output,
            Chain::PreRouting => &self.prerouting,
            Chain::PostRouting => &self.postrouting,
        }
    }

    pub fn chain_mut(&mut self, chain: Chain) -> &mut ChainRules {
        match chain {
            Chain::Input => &mut self.input,
            Chain::Forward => &mut self.forward,
            Chain::Output => &mut self.output,
            Chain::PreRouting => &mut self.prerouting,
            Chain::PostRouting => &mut self.postrouting,
        }
    }

    /// This table's built-in chains.
    pub fn builtins(&self) -> &'static [Chain] {
        self.table.builtins()
    }

    /// The built-in chain of this table called `name`.
    pub fn builtin(&self, name: &str) -> Option<Chain> {
        self.builtins().iter().copied().find(|c| c.name() == name)
    }

    /// Whether the table is as a fresh one is: no rule, no user chain, ACCEPT policies.
    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
            && self.builtins().iter().all(|c| {
                let c = self.chain(*c);
                c.rules.is_empty() && c.policy == Verdict::Accept
            })
    }

    pub fn user_chain(&self, name: &str) -> Option<&UserChain> {
        self.user.iter().find(|c| c.name == name)
    }

    /// The rules of a chain given by name, built-in or user-defined.
    pub fn rules(&self, name: &str) -> Option<&Vec<Rule>> {
        match self.builtin(name) {
            Some(c) => Some(&self.chain(c).rules),
            None => self.user_chain(name).map(|c| &c.rules),
        }
    }

    pub fn rules_mut(&mut self, name: &str) -> Option<&mut Vec<Rule>> {
        match self.builtin(name) {
            Some(c) => Some(&mut self.chain_mut(c).rules),
            None => self
                .user
                .iter_mut()
                .find(|c| c.name == name)
                .map(|c| &mut c.rules),
        }
    }

    /// Every rule of every chain.
    pub fn all_rules(&self) -> impl Iterator<Item = &Rule> {
        self.builtins()
            .iter()
            .copied()
            .flat_map(move |c| self.chain(c).rules.iter())
            .chain(self.user.iter().flat_map(|u| u.rules.iter()))
    }

    /// How many rules name set `name`: match on it or write it (`-j SET`).
    pub fn set_references(&self, name: &str) -> usize {
        self.all_rules()
            .filter(|r| {
                let written = match &r.spec.target {
                    Target::Set(st) => st.sets().any(|m| m.name == name),
                    _ => false,
                };
                written || r.spec.sets.iter().any(|m| m.value.name == name)
            })
            .count()
    }

    /// How many rules jump to `name` (iptables' "references").
    pub fn references(&self, name: &str) -> usize {
        self.all_rules()
            .filter(|r| matches!(&r.spec.target, Target::Jump(t) if t == name))
            .count()
    }
}

/// Everything fwctl enforces in one network namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ruleset {
    pub v4: FamilyRules,
    pub v6: FamilyRules,
    #[serde(default = "FamilyRules::nat")]
    pub nat4: FamilyRules,
    #[serde(default = "FamilyRules::nat")]
    pub nat6: FamilyRules,
    #[serde(default = "FamilyRules::mangle")]
    pub mangle4: FamilyRules,
    #[serde(default = "FamilyRules::mangle")]
    pub mangle6: FamilyRules,
    #[serde(default = "FamilyRules::raw")]
    pub raw4: FamilyRules,
    #[serde(default = "FamilyRules::raw")]
    pub raw6: FamilyRules,
    #[serde(default = "FamilyRules::security")]
    pub security4: FamilyRules,
    #[serde(default = "FamilyRules::security")]
    pub security6: FamilyRules,
}

impl Default for Ruleset {
    fn default() -> Self {
        Ruleset {
            v4: FamilyRules::default(),
            v6: FamilyRules::default(),
            nat4: FamilyRules::nat(),
            nat6: FamilyRules::nat(),
            mangle4: FamilyRules::mangle(),
            mangle6: FamilyRules::mangle(),
            raw4: FamilyRules::raw(),
            raw6: FamilyRules::raw(),
            security4: FamilyRules::security(),
            security6: FamilyRules::security(),
        }
    }
}

impl Ruleset {
    pub fn table(&self, table: Table, family: Family) -> &FamilyRules {
        match (table, family) {
            (Table::Filter, f) => self.family(f),
            (Table::Nat, Family::V4) => &self.nat4,
            (Table::Nat, Family::V6) => &self.nat6,
            (Table::Mangle, Family::V4) => &self.mangle4,
            (Table::Mangle, Family::V6) => &self.mangle6,
            (Table::Raw, Family::V4) => &self.raw4,
            (Table::Raw, Family::V6) => &self.raw6,
            (Table::Security, Family::V4) => &self.security4,
            (Table::Security, Family::V6) => &self.security6,
        }
    }

    /// Every table of both families, with its family.
    pub fn all_tables(&self) -> impl Iterator<Item = (Family, &FamilyRules)> + '_ {
        Table::ALL
            .into_iter()
            .flat_map(move |t| Family::ALL.map(|f| (f, self.table(t, f))))
    }

    pub fn table_mut(&mut self, table: Table, family: Family) -> &mut FamilyRules {
        match (table, family) {
            (Table::Filter, f) => self.family_mut(f),
            (Table::Nat, Family::V4) => &mut self.nat4,
            (Table::Nat, Family::V6) => &mut self.nat6,
            (Table::Mangle, Family::V4) => &mut self.mangle4,
            (Table::Mangle, Family::V6) => &mut self.mangle6,
            (Table::Raw, Family::V4) => &mut self.raw4,
            (Table::Raw, Family::V6) => &mut self.raw6,
            (Table::Security, Family::V4) => &mut self.security4,
            (Table::Security, Family::V6) => &mut self.security6,
        }
    }

    pub fn family(&self, family: Family) -> &FamilyRules {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    pub fn family_mut(&mut self, family: Family) -> &mut FamilyRules {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    /// Rules of every table and family that match on set `name`.
    pub fn set_references(&self, name: &str) -> usize {
        self.all_tables().map(|(_, f)| f.set_references(name)).sum()
    }

    /// Every set a rule names, in a match or as `-j SET`'s, with the family of its table.
    pub fn set_matches(&self) -> impl Iterator<Item = (Family, &SetMatch)> + '_ {
        self.all_tables().flat_map(|(family, f)| {
            f.all_rules().flat_map(move |r| {
                let written = match &r.spec.target {
                    Target::Set(st) => Some(st.sets()),
                    _ => None,
                };
                r.spec
                    .sets
                    .iter()
                    .map(|m| &m.value)
                    .chain(written.into_iter().flatten())
                    .map(move |m| (family, m))
            })
        })
    }

    /// The `-j SET` targets, with the family of their table.
    pub fn set_targets(
        &self,
    ) -> impl Iterator<Item = (Family, &super::set_target::SetTarget)> + '_ {
        self.all_tables().flat_map(|(family, f)| {
            f.all_rules().filter_map(move |r| match &r.spec.target {
                Target::Set(st) => Some((family, st)),
                _ => None,
            })
        })
    }

    /// The sets `-j SET` rules write, with the family of their table.
    pub fn written_sets(&self) -> impl Iterator<Item = (Family, &SetMatch)> + '_ {
        self.all_tables().flat_map(|(family, f)| {
            f.all_rules().flat_map(move |r| {
                let written = match &r.spec.target {
                    Target::Set(st) => Some(st.sets().map(move |m| (family, m))),
                    _ => None,
                };
                written.into_iter().flatten()
            })
        })
    }

    /// Every counter slot in use, across families and chains.
    pub fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.all_tables()
            .flat_map(|(_, f)| f.all_rules().map(|r| r.slot))
    }
}
