//! The contract between the XDP program and fwctl: map names, sizes, and the `#[repr(C)]`
//! types stored in them. Both sides read these definitions and nothing else, so a layout
//! change shows up as a compile error on both sides. No logic lives here.
//!
//! ABI rules: every type has explicit padding, its size is asserted, and the pin directory
//! carries [`ABI_VERSION`], so an upgraded fwctl never reads maps laid out by an older one.
#![no_std]

use bytemuck::{Pod, Zeroable};

/// Bumped whenever a map's key or value layout changes; part of the pin path.
/// `FWCTL_ABI_BUMP=N` at build time adds N: the upgrade test's second build (tests/tests/
/// upgrade.rs) changes the ABI without changing the source.
pub const ABI_VERSION: u32 = 10 + abi_bump();

const fn abi_bump() -> u32 {
    let Some(text) = option_env!("FWCTL_ABI_BUMP") else {
        return 0;
    };
    let digits = text.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < digits.len() {
        assert!(
            digits[i].is_ascii_digit(),
            "FWCTL_ABI_BUMP must be a number"
        );
        n = n * 10 + (digits[i] - b'0') as u32;
        i += 1;
    }
    n
}

/// Address families, in the order their tables are stored.
pub const FAMILY_V4: u32 = 0;
pub const FAMILY_V6: u32 = 1;
pub const FAMILIES: u32 = 2;

/// The built-in chains XDP judges, in the order their tables are stored. OUTPUT has no
/// table: locally generated packets never pass XDP, netfilter alone judges them.
pub const CHAIN_INPUT: u32 = 0;
pub const CHAIN_FORWARD: u32 = 1;
pub const CHAINS: u32 = 2;

/// A table is one chain of one family with its user chains inlined.
pub const TABLES: u32 = FAMILIES * CHAINS;

/// Two copies of everything the classifier reads: userspace fills the inactive one, then
/// flips [`Config::active`], so a packet sees one whole ruleset or the other.
pub const GENERATIONS: u32 = 2;

/// Table slots of all generations; a table's tag in keys is `generation * TABLES + table`.
pub const TAGS: u32 = GENERATIONS * TABLES;

pub const fn table_index(family: u32, chain: u32) -> u32 {
    family * CHAINS + chain
}

pub const fn tag(generation: u32, table: u32) -> u32 {
    generation * TABLES + table
}

/// Classifier entries (rules after user chains are inlined) per table: one bit each, in
/// groups of 4096 (64 words); a bitmap's first word has one bit per group, so at most 64.
pub const MAX_ENTRIES: u32 = 131_072;
pub const GROUP_ENTRIES: u32 = 4096;
/// The most entry slots one generation may use, shared by its tables. `FW_ENTRIES`,
/// `FW_POOL` and `FW_COUNTERS` are created as large as the ruleset needs (fwctl sets their
/// sizes at load time and loads a bigger instance when a ruleset outgrows them); these
/// are the ceilings. The declared sizes in the program are placeholders.
pub const ENTRIES_PER_GENERATION: u32 = 262_144;
/// The most bitmap pool words one generation may use, shared by its tables.
pub const POOL_WORDS_PER_GENERATION: u32 = 1 << 21;
/// A packet restarts the search after a RETURN or the end of an inlined user chain at most
/// this many times; the compiler refuses tables that could need more.
pub const MAX_RESTARTS: u32 = 32;
/// User chains nest at most this deep below a built-in chain.
pub const MAX_JUMP_DEPTH: usize = 4;

/// Counter slots: one per chain policy of each family first, then one per rule. A rule
/// keeps its slot for as long as it exists, so its counters survive updates of the others.
pub const POLICY_COUNTER_SLOTS: u32 = 16;
/// The highest slot count: rules of two generations. `FW_COUNTERS` holds as many slots as
/// the slots in use need (see [`ENTRIES_PER_GENERATION`]).
pub const MAX_COUNTERS: u32 = POLICY_COUNTER_SLOTS + 2 * ENTRIES_PER_GENERATION;
/// `Entry::counter` of entries that count nothing of their own (end of an inlined chain).
pub const NO_COUNTER: u32 = u32::MAX;

/// Slot of a built-in chain's policy counter.
pub const fn policy_counter(family: u32, chain: u32) -> u32 {
    table_index(family, chain)
}

/// The chains of other tables iptables passes a packet through before the filter table's
/// INPUT or FORWARD: raw PREROUTING (priority -300), mangle PREROUTING (-150), mangle INPUT
/// or FORWARD (-150). XDP defers every packet one of their rules could match, so a packet
/// it decides meets only their policies; a packet it accepts goes on to meet them in
/// netfilter, one it drops never does, and for that one XDP counts them itself
/// ([`prehook_counter`]), where the ruleset has them ([`config_prehook`]).
pub const PREHOOK_RAW_PREROUTING: u32 = 0;
pub const PREHOOK_MANGLE_PREROUTING: u32 = 1;
/// Mangle INPUT; mangle FORWARD is the next one (`PREHOOK_MANGLE_INPUT + chain`).
pub const PREHOOK_MANGLE_INPUT: u32 = 2;
pub const PREHOOK_MANGLE_FORWARD: u32 = 3;
pub const PREHOOKS: u32 = 4;

/// Slot of XDP's share of a prehook chain's policy counter (`PREHOOK_*`).
pub const fn prehook_counter(family: u32, hook: u32) -> u32 {
    TABLES + family * PREHOOKS + hook
}
const _: () = assert!(TABLES + FAMILIES * PREHOOKS <= POLICY_COUNTER_SLOTS);

/// Classifier fields, as bits of [`TableHeader::fields`]: only fields some entry constrains
/// are looked up.
pub const FIELD_IFACE: u32 = 1 << 0;
pub const FIELD_SRC: u32 = 1 << 1;
pub const FIELD_DST: u32 = 1 << 2;
pub const FIELD_PROTO: u32 = 1 << 3;
pub const FIELD_SPORT: u32 = 1 << 4;
pub const FIELD_DPORT: u32 = 1 << 5;
pub const FIELD_ICMP: u32 = 1 << 6;
pub const FIELD_TCP_FLAGS: u32 = 1 << 7;
pub const FIELD_COUNT: usize = 8;

/// What XDP knows of a packet's conntrack state, from the kernel's own table
/// (`bpf_xdp_ct_lookup`). Not a field of its own (each field is another round of every
/// per-field loop of the walk): the class is folded into the protocol's key,
/// `class * 256 + protocol`, so a protocol bitmap also says for which classes an entry can
/// match. Class 0 is "nothing known", which is also every packet of a table that uses no
/// conntrack state: such tables look up exactly what they did before classes existed.
pub const CT_CLASS_UNKNOWN: u32 = 0;
/// Certainly NEW, ESTABLISHED or RELATED, as netfilter will see the packet.
pub const CT_CLASS_NEW: u32 = 1;
pub const CT_CLASS_ESTABLISHED: u32 = 2;
pub const CT_CLASS_RELATED: u32 = 3;
pub const CT_CLASSES: u32 = 4;

/// Keys per table in the value-indexed field arrays (`FW_PROTO`, `FW_SPORT`, `FW_DPORT`,
/// `FW_ICMP`, `FW_TCPFLAGS`), whose values are bitmap offsets. An array value takes 8 bytes
/// of kernel memory whatever its size, so these hold two u32 offsets per u64 element: see
/// [`field_slot`].
pub const PROTO_KEYS: u32 = CT_CLASSES * 256;
pub const PORT_KEYS: u32 = 65_536;
/// ICMP type << 8 | code.
pub const ICMP_KEYS: u32 = 65_536;
pub const TCP_FLAG_KEYS: u32 = 256;

/// The element of a value-indexed field array holding `key` of table tag `tag`, and the
/// shift of its u32 in that u64 (the low half for even keys: every table's key count is
/// even, so a table starts on an element).
pub const fn field_slot(tag: u32, keys: u32, key: u32) -> (u32, u32) {
    let i = tag * keys + key;
    (i / 2, (i & 1) * 32)
}

/// Map names, shared so userspace opens exactly what the program declares.
/// Writer: fwctl. Readers: the XDP program and the TC program (mark_shift). One entry.
pub const MAP_CONFIG: &str = "FW_CONFIG";
/// Writer: fwctl. Reader: the XDP program. [`TableHeader`] per tag.
pub const MAP_TABLES: &str = "FW_TABLES";
/// Writer: fwctl (mmap). Reader: the XDP program. [`Entry`] per classifier bit.
pub const MAP_ENTRIES: &str = "FW_ENTRIES";
/// Writer: fwctl (mmap). Reader: the XDP program. Bitmap words (layout: see compile/).
pub const MAP_POOL: &str = "FW_POOL";
/// Writer: fwctl (mmap). Reader: the XDP program. Value -> bitmap offset, per tag.
pub const MAP_PROTO: &str = "FW_PROTO";
pub const MAP_SPORT: &str = "FW_SPORT";
pub const MAP_DPORT: &str = "FW_DPORT";
pub const MAP_ICMP: &str = "FW_ICMP";
pub const MAP_TCP_FLAGS: &str = "FW_TCPFLAGS";
/// Writer: fwctl. Reader: the XDP program. [`IfaceKey`] -> bitmap offset.
pub const MAP_IFACE: &str = "FW_IFACE";
/// Writer: fwctl. Reader: the XDP program. LPM tries of [`Lpm4`] / [`Lpm6`] -> offset.
pub const MAP_SRC4: &str = "FW_SRC4";
pub const MAP_DST4: &str = "FW_DST4";
pub const MAP_SRC6: &str = "FW_SRC6";
pub const MAP_DST6: &str = "FW_DST6";
/// Writer: the XDP program (per CPU). Reader: fwctl, which sums the CPUs.
pub const MAP_COUNTERS: &str = "FW_COUNTERS";
/// Writer: the XDP program (per CPU). Reader: fwctl. Packets decided without a rule, by
/// reason (`REASON_*`).
pub const MAP_REASONS: &str = "FW_REASONS";

/// Why a packet was decided without a rule. Append-only: a code keeps its meaning for as
/// long as maps built with it may exist; a retired one is renamed `_RESERVED`, never reused.
pub const REASON_NOT_IP: u32 = 0;
pub const REASON_MALFORMED: u32 = 1;
pub const REASON_BROKEN_INSTALL: u32 = 2;
/// A fragment, first or not, passed to netfilter: the kernel reassembles before INPUT (and
/// conntrack before everything), so iptables judges the datagram, never a fragment alone.
pub const REASON_FRAGMENT: u32 = 3;
/// Dropped because a hashlimit table could not take the packet's key yet (`hotdrop`, as
/// iptables does when a table is full): see `GUARD_HASHLIMIT`.
pub const REASON_HASHLIMIT_FULL: u32 = 4;
/// Passed on unjudged: a frame the kernel would not hand to this host's IP layer as it came
/// on this interface (another host's MAC, a multicast or broadcast MAC, an 802.1Q tag, a
/// martian address). The kernel drops it before iptables sees it, or hands it to netfilter
/// on another device (a VLAN) or for a group the host joined: netfilter judges it then.
pub const REASON_NOT_FOR_HOST: u32 = 5;
/// Passed to netfilter unjudged: an IPv4 header with options, which XDP does not sum (see
/// firewall-ebpf's parse); ip_rcv checks it, then netfilter judges it.
pub const REASON_IP_OPTIONS: u32 = 6;
pub const REASON_SLOTS: u32 = 16;

/// `FW_TALKERS`, per CPU: the sources of a sample of the packets XDP drops, one in
/// [`TALKER_SAMPLE`], written round the ring; `fwctl top` shows the busiest prefixes.
pub const MAP_TALKERS: &str = "FW_TALKERS";
pub const TALKER_SLOTS: u32 = 256;
/// One drop in this many is sampled (a power of two).
pub const TALKER_SAMPLE: u32 = 16;

/// A sampled dropped packet's source. `family` is FAMILY_V4 + 1 or FAMILY_V6 + 1, so a
/// zeroed (never written) slot reads as empty.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Talker {
    pub src: [u32; 4],
    pub family: u32,
}
const _: () = assert!(core::mem::size_of::<Talker>() == 20);
/// Names of the reasons, by code, for listings and metrics.
pub const REASON_NAMES: [&str; 7] = [
    "not_ip",
    "malformed",
    "broken_install",
    "fragment",
    "hashlimit_full",
    "not_for_host",
    "ip_options",
];
/// FW_IFACE entries: (in, out) interface pairs of both generations, so one generation may
/// use half ([`IFACE_PAIRS_PER_GENERATION`]).
pub const MAX_INTERFACES: u32 = 4096;
pub const IFACE_PAIRS_PER_GENERATION: u32 = MAX_INTERFACES / 2;
pub const MAX_PREFIXES: u32 = 262_144;

/// Array maps fwctl writes through mmap (BPF_F_MMAPABLE): a whole generation is a few
/// memory writes instead of a syscall per value.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// LPM tries must be created with BPF_F_NO_PREALLOC.
pub const BPF_F_NO_PREALLOC: u32 = 1;

/// `CT_MODE`, a read-only global the loader sets: how the program learns conntrack state.
/// The verifier sees it as a constant and skips the code of the other modes.
/// No conntrack kfuncs in this kernel's vmlinux BTF: every packet is class 0.
pub const CT_MODE_OFF: u32 = 0;
/// `bpf_xdp_ct_lookup` in the kernel's table.
pub const CT_MODE_KERNEL: u32 = 1;
/// Test fixtures only: the lookup's result comes from [`Config::fake_ct_lookup`].
pub const CT_MODE_FAKE: u32 = 2;
/// [`Config::fake_ct_lookup`]: an entry was found (else a miss), in the reply direction;
/// the lookup failed otherwise than by a miss; `nf_conn.status` bits (IPS_*) from bit 8.
pub const CT_FAKE_FOUND: u32 = 1;
pub const CT_FAKE_REPLY: u32 = 2;
pub const CT_FAKE_ERROR: u32 = 4;
pub const CT_FAKE_STATUS_SHIFT: u32 = 8;
/// `enum ip_conntrack_status` (uapi, stable): the bits the classes are made of.
pub const IPS_EXPECTED: u64 = 1 << 0;
pub const IPS_SEEN_REPLY: u64 = 1 << 1;

/// Verdicts of policies and entries.
pub const VERDICT_DROP: u32 = 0;
pub const VERDICT_ACCEPT: u32 = 1;
/// An entry that counts and then resumes the search at [`Entry::next`] (a RETURN, or the
/// end of an inlined user chain).
pub const ACTION_CONTINUE: u32 = 2;
/// An entry XDP cannot decide (its rule needs conntrack state): the packet passes unjudged
/// and counts nothing at XDP, not even what the search charged before reaching it, since
/// netfilter judges it again from the top of the chain with the same ruleset and counts it.
pub const VERDICT_DEFER: u32 = 3;
/// The action of the entries of raw PREROUTING's DROP rules, which XDP judges ahead of
/// INPUT and FORWARD: a drop whose packet met no policy of the raw and mangle tables, so
/// it charges none (see PREHOOKS). A bit of its own (the program tests it without a
/// branch).
pub const VERDICT_DROP_RAW: u32 = 4;
/// [`VERDICT_DROP_RAW`] as a fast table outcome's two-bit verdict: ACTION_CONTINUE's
/// number, which no outcome has.
pub const FAST_VERDICT_DROP_RAW: u32 = 2;

/// [`Config::flags`]: emit an aya-log line per decided packet (the lab turns it on; it
/// costs a ring-buffer write per packet, so it is off in production). The fast path is
/// off while it is on, so that every packet is logged.
pub const CONFIG_LOG_VERDICTS: u32 = 1;
/// [`Config::flags`], one bit per family ([`config_fast`]): the namespace does not forward
/// that family on any attached interface, so every packet XDP sees is INPUT's (or for no
/// chain at all) and the fast table ([`MAP_FAST`]) may decide it without a FIB lookup.
/// fwctl sets it from the forwarding sysctls at every change; if forwarding is turned on
/// in between, what XDP accepted as INPUT carries no [`MARK_FORWARD`], so netfilter's
/// forward hook judges such a packet in full instead of trusting the mark.
pub const CONFIG_FAST_V4: u32 = 2;
pub const CONFIG_FAST_V6: u32 = 4;

/// [`Config::flags`]: conntrack helpers may be attached to connections in this namespace
/// (an nftables ct helper or ct expectation object, iptables' CT target): a new connection
/// may then be RELATED through an expectation, which XDP's lookup cannot see, so a miss is
/// not certainly NEW and the packet goes to netfilter. fwctl checks at every change.
pub const CONFIG_CT_HELPERS: u32 = 8;

/// [`Config::flags`]: the ruleset in force leaves XDP nothing to judge (INPUT and FORWARD
/// of both families hold no rule and accept by policy), so every packet passes at once,
/// unmarked, and netfilter counts the policies as it does for any unmarked packet. Part of
/// [`CONFIG_RULESET_MASK`]: written with [`Config::active`].
pub const CONFIG_IDLE: u32 = 16;

/// [`Config::flags`]: the ruleset in force has prehook chain `hook` (`PREHOOK_*`) for
/// `family`, whose policy XDP counts for every packet it drops. Written with
/// [`Config::active`], in the same update, as it belongs to the ruleset.
pub const fn config_prehook(family: u32, hook: u32) -> u32 {
    1 << (CONFIG_PREHOOKS_SHIFT + family * PREHOOKS + hook)
}
pub const CONFIG_PREHOOKS_SHIFT: u32 = 8;
pub const CONFIG_PREHOOKS_MASK: u32 = ((1 << (FAMILIES * PREHOOKS)) - 1) << CONFIG_PREHOOKS_SHIFT;
/// The [`Config::flags`] a ruleset decides, written in the same update as the flip.
pub const CONFIG_RULESET_MASK: u32 = CONFIG_PREHOOKS_MASK | CONFIG_IDLE;

pub const fn config_fast(family: u32) -> u32 {
    CONFIG_FAST_V4 << (family & 1)
}

/// `FW_FAST`: the verdict table in front of the classifier. Writer: fwctl (mmap), per
/// generation, computed with the classifier from the same ruleset; reader: the XDP
/// program. For each family and each (fast class, value) of INPUT, the outcome every
/// packet with that key gets, when one rule (or the policy) decides them all:
/// [`fast_final`]; or [`FAST_BY_CLASS`] and the index of a [`MAP_FAST_CT`] element, when
/// the outcome depends on the conntrack class only; or 0: the full classifier decides. Keys:
/// [`FAST_TCP_SYN`] and [`FAST_TCP`] by destination port, [`FAST_UDP`] by destination
/// port, [`FAST_ICMP`] by `type << 8 | code`.
pub const MAP_FAST: &str = "FW_FAST";
/// A TCP segment with SYN and none of ACK, RST, FIN (what `--syn` matches, and the only
/// TCP segment a conntrack miss makes NEW).
pub const FAST_TCP_SYN: u32 = 0;
pub const FAST_TCP: u32 = 1;
pub const FAST_UDP: u32 = 2;
/// ICMP in IPv4 tables, ICMPv6 in IPv6 ones.
pub const FAST_ICMP: u32 = 3;
pub const FAST_CLASSES: u32 = 4;
pub const FAST_KEYS: u32 = 65_536;
/// Words of `FW_FAST`: both generations and families. The kernel lays array values out
/// 8 bytes apart whatever their size, so the map holds two words per u64 element, the even
/// word in the low half: word `i` is element `i / 2`, shifted by `(i & 1) * 32`.
pub const FAST_ENTRIES: u32 = GENERATIONS * FAMILIES * FAST_CLASSES * FAST_KEYS;
pub const FAST_ELEMENTS: u32 = FAST_ENTRIES / 2;

pub const fn fast_index(generation: u32, family: u32, class: u32, value: u32) -> u32 {
    (((generation & 1) * FAMILIES + (family & 1)) * FAST_CLASSES + (class & 3)) * FAST_KEYS
        + (value & 0xffff)
}

/// An outcome that is final: the verdict (`VERDICT_*`) and the counter slot it charges
/// ([`FAST_NO_SLOT`] for a DEFER, which counts nothing at XDP).
pub const FAST_FINAL: u32 = 1 << 31;
pub const FAST_VERDICT_SHIFT: u32 = 24;
pub const FAST_SLOT_MASK: u32 = (1 << FAST_VERDICT_SHIFT) - 1;
pub const FAST_NO_SLOT: u32 = FAST_SLOT_MASK;
const _: () = assert!(MAX_COUNTERS < FAST_NO_SLOT);

/// A `FW_FASTCT` reference whose four outcomes are all final: the conntrack lookup then
/// decides the packet for sure, so the program makes it on the fast path. Without this
/// bit the classifier decides (and makes the lookup itself): never two lookups.
pub const FAST_BY_CLASS: u32 = 1 << 30;

pub const fn fast_final(verdict: u32, slot: u32) -> u32 {
    FAST_FINAL | (verdict & 3) << FAST_VERDICT_SHIFT | (slot & FAST_SLOT_MASK)
}

/// `FW_CTSEEN`: which destinations some conntrack entry may have a tuple towards, so that
/// XDP can skip `bpf_xdp_ct_lookup` (the dearest step of a flood from spoofed sources)
/// where it would miss for sure. One byte per bucket of (destination address, destination
/// port, protocol) ([`ct_seen_index`]), never cleared while the map lives: a byte set to 1
/// means "look it up", a byte of 0 "no entry can match". Writers: the netfilter program
/// `fw_ct_seen` (firewall-ebpf/src/ct_seen.rs), which marks both tuples of every entry just
/// before conntrack confirms it, and fwctl, which marks every entry present when the
/// program was attached (a ctnetlink dump), then sets [`CT_SEEN_READY`]. Reader: the XDP
/// program, which trusts a 0 only once the map is ready. Bytes, not bits: a byte store
/// needs no atomic read-modify-write across CPUs.
pub const MAP_CT_SEEN: &str = "FW_CTSEEN";

/// Writer: fwctl, at every change (the attached interfaces' MACs). Reader: the XDP
/// program, which judges only frames sent to the interface's own unicast MAC: the kernel
/// hands no other frame to IP as this host's (`PACKET_OTHERHOST`), and multicast or
/// broadcast ones may belong to groups the host has not joined. Direct-mapped by
/// [`ifmac_slot`]: an interface whose slot holds another's entry (or none) has every frame
/// passed to netfilter, which is exact, only slower.
pub const MAP_IFMAC: &str = "FW_IFMAC";
pub const IFMAC_SLOTS: u32 = 256;

/// The `FW_IFMAC` slot of an interface.
pub const fn ifmac_slot(ifindex: u32) -> u32 {
    ifindex % IFMAC_SLOTS
}

/// An interface's MAC as the XDP program compares it: the frame's first three 16-bit words
/// as loaded from the wire (native order; frames start 2-byte aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct IfMac {
    pub ifindex: u32,
    pub words: [u16; 3],
    pub _pad: u16,
}
const _: () = assert!(core::mem::size_of::<IfMac>() == 12);

impl IfMac {
    pub fn new(ifindex: u32, mac: [u8; 6]) -> IfMac {
        IfMac {
            ifindex,
            words: [
                u16::from_ne_bytes([mac[0], mac[1]]),
                u16::from_ne_bytes([mac[2], mac[3]]),
                u16::from_ne_bytes([mac[4], mac[5]]),
            ],
            _pad: 0,
        }
    }
}
/// Buckets: 16 address buckets of 65,536 ports.
pub const CT_SEEN_BUCKETS: u32 = 1 << 20;
/// u64 elements holding the buckets, then the control words.
pub const CT_SEEN_WORDS: u32 = CT_SEEN_BUCKETS / 8;
/// Control element: `sk_buff._nfct`'s byte offset (low half), `nf_conn.status`'s (high).
pub const CT_SEEN_CTL_SKB: u32 = CT_SEEN_WORDS;
/// Control element: the byte offsets in `nf_conn` of the original (low half) and reply
/// (high half) tuple's `dst` (`struct nf_conntrack_man_proto`: address, port, protocol).
pub const CT_SEEN_CTL_TUPLES: u32 = CT_SEEN_WORDS + 1;
/// Control element: [`CT_SEEN_READY`] once every entry older than the program is marked.
pub const CT_SEEN_CTL_READY: u32 = CT_SEEN_WORDS + 2;
pub const CT_SEEN_ENTRIES: u32 = CT_SEEN_WORDS + 3;
pub const CT_SEEN_READY: u64 = 0x5eed_5eed;

/// The bucket of a destination: `addr` is the address's four words as loaded from the wire
/// (an IPv4 address in word 0, the others 0, as conntrack's tuples hold it), `port` in host
/// order (0 for protocols without ports).
#[inline(always)]
pub const fn ct_seen_index(addr: &[u32; 4], port: u16, proto: u8) -> u32 {
    let fold = addr[0] ^ addr[1] ^ addr[2] ^ addr[3] ^ proto as u32;
    (fold.wrapping_mul(0x9e37_79b1) >> 28) << 16 | port as u32
}

/// `FW_FASTCT`: per generation, outcomes by conntrack class (`CT_CLASS_*`), each 0 (the
/// classifier decides) or [`fast_final`]. Index 0 of a generation is unused. Writer:
/// fwctl (mmap); reader: the XDP program, after its conntrack lookup.
pub const MAP_FAST_CT: &str = "FW_FASTCT";
pub const FAST_CT_PER_GENERATION: u32 = 16_384;

/// Value of `FW_FASTCT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq, Hash)]
pub struct FastCt {
    pub by_class: [u32; CT_CLASSES as usize],
}
const _: () = assert!(core::mem::size_of::<FastCt>() == 16);

/// Global switches. Key 0 of `FW_CONFIG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Config {
    /// The generation packets are judged by.
    pub active: u32,
    pub flags: u32,
    /// Where the verdict bits sit in skb->mark ([`mark_mask`]); the TC program reads it.
    pub mark_shift: u32,
    /// Only read by a program loaded with [`CT_MODE_FAKE`] (test fixtures, which cannot
    /// create conntrack entries): the result its lookups pretend to get (`CT_FAKE_*`).
    pub fake_ct_lookup: u32,
}
const _: () = assert!(core::mem::size_of::<Config>() == 16);

/// How XDP tells netfilter what it did, through skb->mark: [`MARK_BITS`] bits starting at
/// `mark_shift`. The XDP program cannot set the mark (there is no skb yet), so it leaves the
/// bits unshifted in the packet's metadata area and the TC ingress program moves them into
/// skb->mark. The nftables side matches on the same functions.
///
/// Accepted by XDP: netfilter accepts at once.
pub const MARK_ACCEPTED: u32 = 1;
/// Judged by XDP with generation 0 or 1 ([`MARK_GEN0`] << generation). A packet with a
/// generation bit but not [`MARK_ACCEPTED`] was deferred: netfilter judges it fully.
pub const MARK_GEN0: u32 = 2;
/// With [`MARK_ACCEPTED`]: XDP accepted the packet as FORWARD's, not INPUT's. Netfilter's
/// input hook trusts only an INPUT acceptance and its forward hook only a FORWARD one, so
/// a routing decision that differs from XDP's (an address or sysctl changed since) is
/// judged in full, never let through by the other chain's verdict.
pub const MARK_FORWARD: u32 = 8;
pub const MARK_BITS: u32 = 15;
/// Where the verdict bits go unless configured otherwise: clear of the low bits that
/// routing policies and other tools commonly use.
pub const DEFAULT_MARK_SHIFT: u32 = 24;

pub const fn mark_accepted(shift: u32) -> u32 {
    MARK_ACCEPTED << shift
}

pub const fn mark_generation(shift: u32, generation: u32) -> u32 {
    (MARK_GEN0 << generation) << shift
}

pub const fn mark_forward(shift: u32) -> u32 {
    MARK_FORWARD << shift
}

pub const fn mark_mask(shift: u32) -> u32 {
    MARK_BITS << shift
}

/// The u32 the XDP program puts in front of the packet (bpf_xdp_adjust_meta): this magic in
/// the high 16 bits, the unshifted mark bits in the low ones. The magic keeps the TC program
/// from reading metadata some other XDP program left there as a verdict.
pub const XDP_META_MAGIC: u32 = 0xf3c7_0000;
pub const XDP_META_MAGIC_MASK: u32 = 0xffff_0000;
/// Bytes of metadata the XDP program reserves.
pub const XDP_META_LEN: i32 = 4;

/// The metadata word of a packet judged by INPUT of `generation`, accepted or deferred.
pub const fn xdp_meta(generation: u32, accepted: bool) -> u32 {
    xdp_meta_chain(generation, accepted, false)
}

/// The metadata word of a packet judged by INPUT or FORWARD (`forward`) of `generation`.
pub const fn xdp_meta_chain(generation: u32, accepted: bool, forward: bool) -> u32 {
    let gen = MARK_GEN0 << (generation & 1);
    if accepted {
        XDP_META_MAGIC | MARK_ACCEPTED | gen | if forward { MARK_FORWARD } else { 0 }
    } else {
        XDP_META_MAGIC | gen
    }
}

/// One table of one generation: where its entries and bitmaps are, and the bitmaps of
/// packets a field does not apply to. Bitmap offsets are relative to the generation's pool.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct TableHeader {
    /// Verdict when no entry matches.
    pub policy: u32,
    pub entry_count: u32,
    /// Index in `FW_ENTRIES` of entry 0 (the generation's part of the map included).
    pub entry_base: u32,
    /// Counter slot of the chain's policy.
    pub policy_slot: u32,
    /// `FIELD_*` bits of the fields some entry constrains.
    pub fields: u32,
    /// Bitmap of every entry, for a table that constrains no field.
    pub all: u32,
    /// Bitmaps for packets without source / destination port (not TCP/UDP, or a fragment).
    pub no_sport: u32,
    pub no_dport: u32,
    /// Bitmap for packets that are not ICMP (ICMPv6 in IPv6 tables).
    pub no_icmp: u32,
    /// Bitmap for packets that are not TCP with a header.
    pub no_tcp: u32,
    /// Bitmap for an input interface the table has no entry for, with no output one.
    pub unknown_iface: u32,
    /// `TABLE_*` bits.
    pub flags: u32,
    /// Index in `FW_POOL` of the generation's pool, which the bitmap offsets are relative
    /// to: the map is sized to the ruleset, so the program cannot know where a generation
    /// starts.
    pub pool_base: u32,
    pub _reserved: u32,
}

/// [`TableHeader::flags`]: some entry depends on conntrack state, so the program looks the
/// packet up in conntrack and uses its class in the protocol key (which the table then
/// always uses).
pub const TABLE_USES_CT: u32 = 1;
/// Some entry has guards: the program records the packet for them before the walk.
pub const TABLE_USES_GUARDS: u32 = 2;
const _: () = assert!(core::mem::size_of::<TableHeader>() == 56);

/// What a classifier bit does when it is the first match.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Entry {
    /// VERDICT_ACCEPT, VERDICT_DROP, VERDICT_DEFER or ACTION_CONTINUE.
    pub action: u32,
    /// Counter slot of the rule, or NO_COUNTER.
    pub counter: u32,
    /// ACTION_CONTINUE: the entry index to resume from.
    pub next: u32,
    /// Enclosing jump rules, outermost first: their counters count the packet once when it
    /// first reaches an entry inside them. A RETURN in a built-in chain carries the policy's
    /// counter here, since the policy then decides and counts.
    pub depth: u32,
    pub jumps: [u32; MAX_JUMP_DEPTH],
    /// 1-based number of the built-in chain's rule this entry comes from (for logs).
    pub position: u32,
    /// First of the entry's guards in `FW_GUARDS` (within the generation), or [`NO_GUARD`]:
    /// conditions a field bitmap cannot express, checked when the entry is the first match.
    pub guard: u32,
}
const _: () = assert!(core::mem::size_of::<Entry>() == 40);

/// Key of `FW_IFACE`: `-i` and `-o` are one field, looked up by the pair (input interface,
/// output interface); 0 stands for "none or not known to the compiled ruleset" (a packet
/// for this host has no output interface). One field, not two, keeps the classifier's
/// verifier budget: each field is another round of every per-field loop.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq, Hash)]
pub struct IfaceKey {
    pub in_ifindex: u32,
    pub out_ifindex: u32,
    pub tag: u32,
}
const _: () = assert!(core::mem::size_of::<IfaceKey>() == 12);

/// Data of an IPv4 LPM key: the tag byte, always matched in full, then the address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Lpm4 {
    pub bytes: [u8; 8],
}

/// Data of an IPv6 LPM key: the tag byte, then the address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Lpm6 {
    pub bytes: [u8; 20],
}

/// Bits of the LPM prefix taken by the tag byte.
pub const LPM_TAG_BITS: u32 = 8;

/// Packets and bytes (IP length, as iptables counts) of a rule or a policy, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}
const _: () = assert!(core::mem::size_of::<Counter>() == 16);

/// `FW_GUARDS`, per generation: matches that are not a function of one packet field's value
/// (set membership, rate limits). The classifier finds the first entry its fields allow;
/// if that entry has guards, they are checked in order, and if one fails the search goes on
/// after the entry, as if its fields had not matched. Index 0 of a generation is unused, so
/// `Entry::guard == 0` means none.
pub const MAP_GUARDS: &str = "FW_GUARDS";
pub const GUARDS_PER_GENERATION: u32 = 8192;
pub const NO_GUARD: u32 = 0;
/// Guards of one entry (its own and those of the jumps around it), at most.
pub const MAX_GUARD_CHAIN: u32 = 4;

/// [`Guard::kind`].
/// `-m set --match-set`: the packet's address (and port) is in set storage `id`.
pub const GUARD_SET: u32 = 1;
/// `-m limit`: token bucket `FW_BUCKETS[id]`, one for the rule, shared by all CPUs.
pub const GUARD_LIMIT: u32 = 2;
/// `-m hashlimit`: token buckets in `FW_HASHLIMIT` keyed by table `id` and the packet's
/// fields chosen by the mode; newcomers to the table draw from `FW_BUCKETS[id]` first.
pub const GUARD_HASHLIMIT: u32 = 3;

/// [`Guard::flags`]: the guard passes when its condition does not hold (`!`).
pub const GUARD_NEGATE: u32 = 1 << 0;
/// Sets: dimension 0 / 1 of the set's key is taken from the destination (else the source).
pub const GUARD_SET_DIM0_DST: u32 = 1 << 1;
pub const GUARD_SET_DIM1_DST: u32 = 1 << 2;
/// Sets: the set's members have a protocol and port (`hash:ip,port`); the key's
/// protocol/port word is the packet's (0 for a packet without ports), else 0.
pub const GUARD_SET_PORTS: u32 = 1 << 3;
/// Hashlimit modes: the fields a bucket's key is made of.
pub const GUARD_HL_SRCIP: u32 = 1 << 4;
pub const GUARD_HL_DSTIP: u32 = 1 << 5;
pub const GUARD_HL_SRCPORT: u32 = 1 << 6;
pub const GUARD_HL_DSTPORT: u32 = 1 << 7;
/// Hashlimit `--hashlimit-above`: the guard passes when the packet is over the rate.
pub const GUARD_HL_ABOVE: u32 = 1 << 8;

/// One condition of an entry beyond its fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Guard {
    /// `GUARD_SET`, `GUARD_LIMIT` or `GUARD_HASHLIMIT`.
    pub kind: u32,
    /// `GUARD_*` flag bits.
    pub flags: u32,
    /// The next guard of the same entry (all must pass), or [`NO_GUARD`].
    pub next: u32,
    /// Set storage id; `FW_BUCKETS` key of the limit or of the hashlimit's newcomer meter,
    /// which is also the hashlimit table's id.
    pub id: u32,
    /// Hashlimit: nanoseconds per token of a key's bucket (the rate's inverse).
    pub interval_ns: u64,
    /// Hashlimit: tokens a key's bucket holds when full.
    pub burst: u32,
    /// Hashlimit: prefix lengths kept of source (low byte) and destination (next byte).
    pub masks: u32,
}
const _: () = assert!(core::mem::size_of::<Guard>() == 32);

/// `FW_BUCKETS`: writer both (fwctl creates and removes [`Meter`]s, XDP takes tokens), key
/// [`limit_bucket`] or [`newcomer_bucket`] of a rule's counter slot, so a rule keeps its
/// bucket across updates as it keeps its counters.
pub const MAP_BUCKETS: &str = "FW_BUCKETS";
pub const MAX_BUCKETS: u32 = 16_384;

pub const fn limit_bucket(slot: u32) -> u32 {
    slot << 1
}

pub const fn newcomer_bucket(slot: u32) -> u32 {
    (slot << 1) | 1
}
/// `FW_HASHLIMIT`: writer XDP (LRU), reader fwctl (listing only).
pub const MAP_HASHLIMIT: &str = "FW_HASHLIMIT";
pub const MAX_HASHLIMIT_ENTRIES: u32 = 65_536;

/// A token bucket as GCRA keeps it: the time at which the bucket would be full again. A
/// packet conforms when that time is at most `(burst - 1) * interval` ahead of now, and
/// then pushes it one interval further; an idle bucket's time lies in the past.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Bucket {
    pub tat_ns: u64,
}
const _: () = assert!(core::mem::size_of::<Bucket>() == 8);

/// Value of `FW_BUCKETS`: a bucket with its own rate (`-m limit`, or a hashlimit table's
/// newcomer meter), so the rate lives where the bucket does.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Meter {
    pub tat_ns: u64,
    pub interval_ns: u64,
    pub burst: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<Meter>() == 24);

/// Key of `FW_HASHLIMIT`: the table and the packet's fields its mode selects (masked; the
/// others zero).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct HashLimitKey {
    pub id: u32,
    /// Source port << 16 | destination port.
    pub ports: u32,
    pub src: [u32; 4],
    pub dst: [u32; 4],
}
const _: () = assert!(core::mem::size_of::<HashLimitKey>() == 40);

/// `FW_SET4` / `FW_SET6`: the members of every set (`fwctl set`), one LPM trie per address
/// family shared by all sets. Writer: fwctl (a whole set is loaded under a new storage id,
/// then rules are switched to it through the generation flip, then the old id's members go).
/// Reader: the XDP program, for `GUARD_SET` guards. Key: [`SetKey4`] / [`SetKey6`], matched
/// in full up to the address, whose prefix is the member's; value: the member's expiry in
/// `bpf_ktime_get_ns` time (CLOCK_MONOTONIC), or [`SET_NO_EXPIRY`].
pub const MAP_SET4: &str = "FW_SET4";
pub const MAP_SET6: &str = "FW_SET6";
/// Members per family across all sets, with room for a set being replaced beside the one it
/// replaces. LPM tries allocate per member (BPF_F_NO_PREALLOC), so this is only a ceiling.
pub const MAX_SET_MEMBERS: u32 = 1 << 24;
pub const SET_NO_EXPIRY: u64 = 0;
/// Bits of a set key before the address: the storage id and the protocol/port word.
pub const SET_KEY_FIXED_BITS: u32 = 64;

/// Data of an IPv4 set key: storage id (big-endian), `proto << 16 | port` (big-endian; 0 for
/// sets without ports), address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct SetKey4 {
    pub bytes: [u8; 12],
}
const _: () = assert!(core::mem::size_of::<SetKey4>() == 12);

/// Data of an IPv6 set key: as [`SetKey4`] with a 16-byte address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct SetKey6 {
    pub bytes: [u8; 24],
}
const _: () = assert!(core::mem::size_of::<SetKey6>() == 24);

#[cfg(feature = "user")]
mod user {
    // SAFETY: all of these are #[repr(C)], Copy, without padding (sizes asserted above).
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::TableHeader {}
    unsafe impl aya::Pod for super::Entry {}
    unsafe impl aya::Pod for super::Counter {}
    unsafe impl aya::Pod for super::Talker {}
    unsafe impl aya::Pod for super::IfaceKey {}
    unsafe impl aya::Pod for super::IfMac {}
    unsafe impl aya::Pod for super::Lpm4 {}
    unsafe impl aya::Pod for super::Lpm6 {}
    unsafe impl aya::Pod for super::Guard {}
    unsafe impl aya::Pod for super::Bucket {}
    unsafe impl aya::Pod for super::Meter {}
    unsafe impl aya::Pod for super::HashLimitKey {}
    unsafe impl aya::Pod for super::SetKey4 {}
    unsafe impl aya::Pod for super::SetKey6 {}
    unsafe impl aya::Pod for super::FastCt {}
}
