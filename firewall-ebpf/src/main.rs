//! The XDP entry point, the maps it reads, and the classifier; the TC ingress program that
//! carries XDP's verdict into skb->mark for netfilter. See lib.rs for the crate's role and
//! firewall-userspace/src/compile for how the maps are laid out.
#![no_std]
#![no_main]

use core::{ffi::c_void, mem::MaybeUninit};

use aya_ebpf::{
    bindings::{
        bpf_fib_lookup as bpf_fib_lookup_t,
        xdp_action::{XDP_ABORTED, XDP_DROP, XDP_PASS},
        BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS, TC_ACT_UNSPEC,
    },
    helpers::{bpf_fib_lookup, bpf_get_prandom_u32, bpf_loop, bpf_xdp_adjust_meta},
    macros::{classifier, map, xdp},
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, HashMap, PerCpuArray,
    },
    programs::{TcContext, XdpContext},
};
use aya_log_ebpf::info;
use firewall_common::{
    field_slot, mark_mask, prehook_counter, table_index, tag, xdp_meta, Config, Counter, Entry,
    IfaceKey, Lpm4, Lpm6, SetKey4, SetKey6, TableHeader, Talker, ACTION_CONTINUE, BPF_F_MMAPABLE,
    CHAIN_FORWARD, CHAIN_INPUT, CONFIG_IDLE, CONFIG_LOG_VERDICTS, CONFIG_PREHOOKS_SHIFT, FAMILY_V4,
    FAST_SLOT_MASK, FAST_VERDICT_SHIFT, FIELD_COUNT, FIELD_DPORT, FIELD_DST, FIELD_ICMP,
    FIELD_IFACE, FIELD_PROTO, FIELD_SPORT, FIELD_SRC, FIELD_TCP_FLAGS, GENERATIONS, GROUP_ENTRIES,
    ICMP_KEYS, LPM_TAG_BITS, MARK_BITS, MARK_FORWARD, MAX_INTERFACES, MAX_JUMP_DEPTH, MAX_PREFIXES,
    MAX_RESTARTS, MAX_SET_MEMBERS, NO_COUNTER, NO_GUARD, POLICY_COUNTER_SLOTS, PORT_KEYS, PREHOOKS,
    PREHOOK_MANGLE_INPUT, PREHOOK_MANGLE_PREROUTING, PREHOOK_RAW_PREROUTING, PROTO_KEYS,
    REASON_BROKEN_INSTALL, REASON_FRAGMENT, REASON_HASHLIMIT_FULL, REASON_MALFORMED, REASON_NOT_IP,
    REASON_SLOTS, TABLE_USES_CT, TABLE_USES_GUARDS, TAGS, TALKER_SAMPLE, TALKER_SLOTS,
    TCP_FLAG_KEYS, VERDICT_ACCEPT, VERDICT_DEFER, VERDICT_DROP, VERDICT_DROP_RAW, XDP_META_LEN,
    XDP_META_MAGIC, XDP_META_MAGIC_MASK,
};
use firewall_ebpf::{
    ct,
    parse::{parse, Packet, PARSED},
};

mod fast;
mod guard;

use fast::Fast;

// Read-only globals the loader sets (EbpfLoader::override_global) before the verifier runs,
// which then takes them for constants: the code of other conntrack modes is never walked,
// and `nf_conn.status` is read at a constant offset, as it must be.
/// `CT_MODE_*`: how conntrack state is learnt.
#[no_mangle]
static CT_MODE: u32 = 0;
/// Byte offset of `status` in this kernel's `struct nf_conn` (from its BTF).
#[no_mangle]
static NF_CONN_STATUS: u32 = 0;

// Names, sizes and writers/readers of every map are documented in firewall-common.
#[map(name = "FW_CONFIG")]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);
#[map(name = "FW_TABLES")]
static TABLES: Array<TableHeader> = Array::with_max_entries(TAGS, 0);
// FW_ENTRIES, FW_POOL and FW_COUNTERS: fwctl sets their sizes at load time, to what the
// ruleset needs; the sizes declared here are placeholders.
#[map(name = "FW_ENTRIES")]
static ENTRIES: Array<Entry> = Array::with_max_entries(GENERATIONS, BPF_F_MMAPABLE);
#[map(name = "FW_POOL")]
static POOL: Array<u64> = Array::with_max_entries(GENERATIONS, BPF_F_MMAPABLE);
// Two offsets per element: see firewall_common::field_slot.
#[map(name = "FW_PROTO")]
static PROTO: Array<u64> = Array::with_max_entries(TAGS * PROTO_KEYS / 2, BPF_F_MMAPABLE);
#[map(name = "FW_SPORT")]
static SPORT: Array<u64> = Array::with_max_entries(TAGS * PORT_KEYS / 2, BPF_F_MMAPABLE);
#[map(name = "FW_DPORT")]
static DPORT: Array<u64> = Array::with_max_entries(TAGS * PORT_KEYS / 2, BPF_F_MMAPABLE);
#[map(name = "FW_ICMP")]
static ICMP: Array<u64> = Array::with_max_entries(TAGS * ICMP_KEYS / 2, BPF_F_MMAPABLE);
#[map(name = "FW_TCPFLAGS")]
static TCP_FLAGS: Array<u64> = Array::with_max_entries(TAGS * TCP_FLAG_KEYS / 2, BPF_F_MMAPABLE);
#[map(name = "FW_IFACE")]
static IFACE: HashMap<IfaceKey, u32> = HashMap::with_max_entries(MAX_INTERFACES, 0);
#[map(name = "FW_SRC4")]
static SRC4: LpmTrie<Lpm4, u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);
#[map(name = "FW_DST4")]
static DST4: LpmTrie<Lpm4, u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);
#[map(name = "FW_SRC6")]
static SRC6: LpmTrie<Lpm6, u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);
#[map(name = "FW_DST6")]
static DST6: LpmTrie<Lpm6, u32> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);
#[map(name = "FW_COUNTERS")]
static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(POLICY_COUNTER_SLOTS, 0);
#[map(name = "FW_TALKERS")]
static TALKERS: PerCpuArray<Talker> = PerCpuArray::with_max_entries(TALKER_SLOTS, 0);
#[map(name = "FW_REASONS")]
static REASONS: PerCpuArray<u64> = PerCpuArray::with_max_entries(REASON_SLOTS, 0);
#[map(name = "FW_SET4")]
pub static SET4: LpmTrie<SetKey4, u64> = LpmTrie::with_max_entries(MAX_SET_MEMBERS, 0);
#[map(name = "FW_SET6")]
pub static SET6: LpmTrie<SetKey6, u64> = LpmTrie::with_max_entries(MAX_SET_MEMBERS, 0);

/// Counts a packet decided without a rule.
#[inline(always)]
fn reason(code: u32) {
    if let Some(n) = REASONS.get_ptr_mut(code) {
        // Per-CPU slot: plain add.
        unsafe { *n += 1 };
    }
}

/// A missing map entry: only a broken install gets here.
struct Broken;

#[xdp]
pub fn fw_ingress(ctx: XdpContext) -> u32 {
    match try_fw_ingress(&ctx) {
        Ok(action) => action,
        // Abort (the packet is dropped and xdp:xdp_exception fires) rather than pass it.
        Err(Broken) => {
            reason(REASON_BROKEN_INSTALL);
            XDP_ABORTED
        }
    }
}

fn try_fw_ingress(ctx: &XdpContext) -> Result<u32, Broken> {
    let config = CONFIG.get(0).ok_or(Broken)?;
    // Nothing to judge: netfilter counts the policies of unmarked packets. Not while the
    // lab logs every verdict.
    if config.flags & (CONFIG_IDLE | CONFIG_LOG_VERDICTS) == CONFIG_IDLE {
        return Ok(XDP_PASS);
    }
    let generation = config.active % GENERATIONS;
    // Written in full by the reader (the fast path's or the full parse) that reports a
    // packet, before anything reads it; never zeroed first, which every packet would pay.
    let mut slot = MaybeUninit::<Packet>::uninit();
    let decided = |outcome: u32, pkt: &Packet| {
        finish(
            ctx,
            config.flags,
            generation,
            outcome,
            pkt.ip_len,
            pkt.family,
            || pkt.src,
        )
    };
    match fast::ipv4(ctx, generation, config.flags, &mut slot) {
        Some(fast::V4::Final(outcome, ip_len)) => {
            return Ok(finish(
                ctx,
                config.flags,
                generation,
                outcome,
                ip_len,
                FAMILY_V4,
                || fast::source(ctx),
            ));
        }
        Some(fast::V4::ByClass(index)) => {
            // SAFETY: the fast path wrote the packet before saying ByClass.
            let pkt = unsafe { slot.assume_init_ref() };
            let outcome =
                fast::by_class(generation, index, ct_class(ctx, pkt, config)).ok_or(Broken)?;
            return Ok(decided(outcome, pkt));
        }
        Some(fast::V4::Unjudged(code)) => return Ok(unjudged(ctx, generation, code)),
        None => {}
    }
    let parsed = parse(ctx, &mut slot);
    if parsed != PARSED {
        return Ok(unjudged(ctx, generation, parsed));
    }
    // SAFETY: the parse wrote the packet before saying PARSED.
    let pkt = unsafe { slot.assume_init_ref() };
    if pkt.fragment {
        // Netfilter sees the reassembled datagram (see REASON_FRAGMENT): judging a
        // fragment here would drop the datagram whose first fragment a port rule accepts.
        return Ok(unjudged(ctx, generation, REASON_FRAGMENT));
    }
    match fast::lookup(&pkt, generation, config.flags) {
        Fast::Final(outcome) => return Ok(decided(outcome, pkt)),
        Fast::ByClass(index) => {
            let outcome =
                fast::by_class(generation, index, ct_class(ctx, pkt, config)).ok_or(Broken)?;
            return Ok(decided(outcome, pkt));
        }
        Fast::Classify => {}
    }
    let routed = route(ctx, &pkt);
    let chain = (routed & 0xffff_ffff) as u32;
    let oif = (routed >> 32) as u32;
    let table = table_index(pkt.family, chain);
    let header = TABLES.get(tag(generation, table)).ok_or(Broken)?;
    let class = if header.flags & TABLE_USES_CT != 0 {
        ct_class(ctx, &pkt, config)
    } else {
        0
    };
    let (mut verdict, position) = decide(ctx, &pkt, generation, table, oif, class, header)?;
    if verdict == ACTION_HOTDROP {
        reason(REASON_HASHLIMIT_FULL);
        verdict = VERDICT_DROP;
    }
    if config.flags & CONFIG_LOG_VERDICTS != 0 {
        log_verdict(ctx, &pkt, verdict, position);
    }
    if verdict == VERDICT_ACCEPT {
        // Arithmetic, not a branch (see `route`): FORWARD's acceptance is marked as such.
        tell_netfilter(ctx, xdp_meta(generation, true) | (chain & 1) * MARK_FORWARD);
        Ok(XDP_PASS)
    } else if verdict == VERDICT_DEFER {
        tell_netfilter(ctx, xdp_meta(generation, false));
        Ok(XDP_PASS)
    } else {
        // VERDICT_DROP_RAW met no policy of raw or mangle: no flags, nothing charged.
        // Arithmetic, not a branch, which would split the verifier's states.
        let raw = (verdict & VERDICT_DROP_RAW) >> 2;
        charge_prehooks(
            config.flags & raw.wrapping_sub(1),
            pkt.family,
            chain,
            pkt.ip_len,
        );
        // SAFETY: the helper has no preconditions.
        let r = unsafe { bpf_get_prandom_u32() };
        if r & (TALKER_SAMPLE - 1) == 0 {
            record_talker(pkt.family, &pkt.src, r >> 16);
        }
        Ok(XDP_DROP)
    }
}

/// What becomes of a frame no rule judges, by its `REASON_*` (see firewall_ebpf::parse).
#[inline(always)]
fn unjudged(ctx: &XdpContext, generation: u32, code: u32) -> u32 {
    reason(code);
    match code {
        // Not IP: nothing iptables sees, and no verdict for netfilter either.
        REASON_NOT_IP => XDP_PASS,
        // A truncated or malformed IP header: the kernel's own IP stack drops these too,
        // and letting them past a DROP policy would be failing open.
        REASON_MALFORMED => XDP_DROP,
        // Judged by netfilter if the kernel delivers it at all, with the generation XDP
        // would have used, as a deferred packet is.
        _ => {
            tell_netfilter(ctx, xdp_meta(generation, false));
            XDP_PASS
        }
    }
}

/// The packet's conntrack class, as the loader's mode says to learn it.
#[inline(always)]
fn ct_class(ctx: &XdpContext, pkt: &Packet, config: &Config) -> u32 {
    // SAFETY: a plain read of the program's own read-only global.
    let status = unsafe { core::ptr::read_volatile(&NF_CONN_STATUS) };
    ct::class(ctx, pkt, ct_mode(), status, config)
}

/// The loader's `CT_MODE_*`: a constant to the verifier, which prunes the other modes.
#[inline(always)]
pub(crate) fn ct_mode() -> u32 {
    // SAFETY: a plain read of the program's own read-only global.
    unsafe { core::ptr::read_volatile(&CT_MODE) }
}

/// Applies a fast-path outcome (`firewall_common::fast_final`). No helper call on a drop:
/// the rule's own per-CPU packet count picks which drops are sampled for the top talkers.
#[inline(always)]
fn finish(
    ctx: &XdpContext,
    flags: u32,
    generation: u32,
    outcome: u32,
    ip_len: u32,
    family: u32,
    src: impl FnOnce() -> [u32; 4],
) -> u32 {
    let verdict = (outcome >> FAST_VERDICT_SHIFT) & 3;
    if verdict == VERDICT_DEFER {
        tell_netfilter(ctx, xdp_meta(generation, false));
        return XDP_PASS;
    }
    let packets = count(outcome & FAST_SLOT_MASK, ip_len as u64);
    if verdict == VERDICT_ACCEPT {
        tell_netfilter(ctx, xdp_meta(generation, true));
        return XDP_PASS;
    }
    // The fast table decides INPUT's packets only. Left: VERDICT_DROP (0) and
    // FAST_VERDICT_DROP_RAW (2), which charges no policy (a mask, as in try_fw_ingress).
    let raw = verdict >> 1;
    charge_prehooks(flags & raw.wrapping_sub(1), family, CHAIN_INPUT, ip_len);
    if packets & (TALKER_SAMPLE as u64 - 1) == 0 {
        record_talker(family, &src(), (packets / TALKER_SAMPLE as u64) as u32);
    }
    XDP_DROP
}

/// Counts a packet XDP drops in `chain` against the policies of the raw and mangle chains
/// iptables would have passed it through first (see firewall_common::PREHOOKS): XDP
/// deferred every packet their rules could match, so this one met their policies.
#[inline(always)]
fn charge_prehooks(flags: u32, family: u32, chain: u32, ip_len: u32) {
    let hooks = (flags >> (CONFIG_PREHOOKS_SHIFT + (family & 1) * PREHOOKS)) & 0xf;
    if hooks == 0 {
        return;
    }
    for hook in [
        PREHOOK_RAW_PREROUTING,
        PREHOOK_MANGLE_PREROUTING,
        PREHOOK_MANGLE_INPUT + (chain & 1),
    ] {
        if hooks & (1 << hook) != 0 {
            count(prehook_counter(family & 1, hook), ip_len as u64);
        }
    }
}

/// The source of a sampled dropped packet, for `fwctl top`'s top talkers, into ring slot
/// `n` (modulo the ring). Not inlined: its frame must not add to the entry point's, which
/// the walk's already brings close to the stack limit.
#[inline(never)]
fn record_talker(family: u32, src: &[u32; 4], n: u32) {
    if let Some(slot) = TALKERS.get_ptr_mut(n % TALKER_SLOTS) {
        // SAFETY: a per-CPU slot of our own map; nothing else writes it on this CPU now.
        // Field by field: no Talker built on the stack.
        unsafe {
            for i in 0..4 {
                (*slot).src[i] = src[i];
            }
            (*slot).family = family + 1;
        }
    }
}

/// Leaves the verdict in front of the packet for `fw_mark`, which turns it into skb->mark.
/// A driver without metadata support refuses the room: the packet then reaches netfilter
/// unmarked and is judged there in full, which is correct, only slower.
#[inline(always)]
fn tell_netfilter(ctx: &XdpContext, word: u32) {
    // SAFETY: the helper only moves data_meta within the headroom, or fails.
    if unsafe { bpf_xdp_adjust_meta(ctx.ctx, -XDP_META_LEN) } != 0 {
        return;
    }
    // The helper invalidated every packet pointer: read them again, and bound-check for the
    // verifier.
    let meta = ctx.metadata();
    if meta + XDP_META_LEN as usize > ctx.metadata_end() {
        return;
    }
    // SAFETY: the 4 bytes were just checked to lie inside the metadata area.
    unsafe { core::ptr::write_unaligned(meta as *mut u32, word) };
}

/// TC ingress (tcx), after XDP passed the packet and the kernel built its skb: moves the
/// verdict `fw_ingress` left in the metadata into skb->mark, where nftables reads it. It
/// never judges: TC_ACT_UNSPEC (TCX_NEXT) lets any other tcx or tc program run as if this
/// one were not there.
#[classifier]
pub fn fw_mark(ctx: TcContext) -> i32 {
    let skb = ctx.skb.skb;
    // SAFETY: reading fields of the program's own context.
    let (meta, data, mark) =
        unsafe { ((*skb).data_meta as usize, (*skb).data as usize, (*skb).mark) };
    if meta + XDP_META_LEN as usize > data {
        return TC_ACT_UNSPEC;
    }
    // SAFETY: the 4 bytes were just checked to lie inside the metadata area.
    let word = unsafe { core::ptr::read_unaligned(meta as *const u32) };
    if word & XDP_META_MAGIC_MASK != XDP_META_MAGIC {
        return TC_ACT_UNSPEC;
    }
    let Some(config) = CONFIG.get(0) else {
        return TC_ACT_UNSPEC;
    };
    let shift = config.mark_shift;
    let bits = (word & MARK_BITS).wrapping_shl(shift);
    ctx.set_mark((mark & !mark_mask(shift)) | bits);
    TC_ACT_UNSPEC
}

/// First match wins, through RETURNs and inlined user chains; no match means the policy.
/// Returns the verdict and the built-in chain's rule number (0 for the policy).
#[inline(always)]
fn decide(
    ctx: &XdpContext,
    pkt: &Packet,
    generation: u32,
    table: u32,
    oif: u32,
    class: u32,
    header: &TableHeader,
) -> Result<(u32, u32), Broken> {
    let mut walk = Walk {
        offs: [0; FIELD_COUNT],
        fields: 0,
        pool_base: header.pool_base,
        entry_base: header.entry_base,
        entry_count: header.entry_count,
        start: 0,
        phase: PHASE_GROUP,
        all_groups: 0,
        groups: 0,
        group: 0,
        words: 0,
        stops: 0,
        action: NOT_FOUND,
        position: 0,
    };
    guard::set_subject(pkt, generation, header.flags & TABLE_USES_GUARDS != 0);
    if header.entry_count > 0 {
        // Packed: a BPF call takes five arguments at most.
        let keys = (oif as u64) << 32 | ((class & 3) as u64) << 16 | tag(generation, table) as u64;
        bitmaps(ctx, pkt, keys, header, &mut walk)?;
        let mut groups = u64::MAX;
        for f in 0..FIELD_COUNT {
            if f as u32 >= walk.fields {
                break;
            }
            groups &= *POOL.get(walk.pool_base + walk.offs[f]).ok_or(Broken)?;
        }
        walk.all_groups = groups;
        walk.groups = groups;
        // SAFETY: the callback only uses the walk through the pointer, for this call.
        unsafe {
            bpf_loop(
                WALK_STEPS,
                walk_step as *mut c_void,
                &mut walk as *mut Walk as *mut c_void,
                0,
            );
        }
    }
    // Netfilter judges a deferred packet again from the top and counts every rule it meets,
    // so XDP counts nothing for it: the walk only recorded where it stopped, and the charges
    // are made now, once the verdict is known.
    if walk.action != VERDICT_DEFER && walk.stops > 0 {
        charge_stops(walk.entry_base, walk.stops, pkt.ip_len);
    }
    if walk.action != NOT_FOUND {
        return Ok((walk.action, walk.position));
    }
    count(header.policy_slot, pkt.ip_len as u64);
    Ok((header.policy, 0))
}

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// INPUT or FORWARD, as the kernel's routing decision will say: a FIB lookup that the
/// kernel would forward (a route out, with or without a neighbour yet) is FORWARD;
/// anything for this host, or that will not be forwarded (forwarding off, no route), is
/// judged by INPUT, where iptables would see it if anywhere.
///
/// Not inlined: the lookup's 64-byte parameter block then lives in a frame of its own that
/// is gone before the classifier runs, instead of riding along in every verifier state.
#[inline(never)]
fn route(ctx: &XdpContext, pkt: &Packet) -> u64 {
    // struct bpf_fib_lookup, 64 bytes, built as words: a struct literal can become a
    // memset call the verifier rejects.
    let mut p = [0u64; 8];
    let family = if pkt.family == FAMILY_V4 {
        AF_INET
    } else {
        AF_INET6
    };
    let (sport, dport) = if pkt.has_ports {
        (pkt.sport.to_be(), pkt.dport.to_be())
    } else {
        (0, 0)
    };
    p[0] = family as u64
        | ((pkt.proto as u64 & 0xff) << 8)
        | ((sport as u64) << 16)
        | ((dport as u64) << 32)
        | ((pkt.ip_len as u64 & 0xffff) << 48);
    p[1] = ctx.ingress_ifindex() as u64 & 0xffff_ffff;
    // Source at byte 16, destination at byte 32, as network-order words.
    p[2] = pkt.src[0] as u64 | ((pkt.src[1] as u64) << 32);
    p[3] = pkt.src[2] as u64 | ((pkt.src[3] as u64) << 32);
    p[4] = pkt.dst[0] as u64 | ((pkt.dst[1] as u64) << 32);
    p[5] = pkt.dst[2] as u64 | ((pkt.dst[3] as u64) << 32);
    // SAFETY: `p` is a live 64-byte struct bpf_fib_lookup for the call.
    let ret = unsafe {
        bpf_fib_lookup(
            ctx.ctx as *mut c_void,
            p.as_mut_ptr() as *mut bpf_fib_lookup_t,
            64,
            0,
        )
    };
    // Arithmetic, not a branch: with two code paths out of here the verifier would check
    // the whole classifier twice over, past its limit.
    let is = |want: u32| {
        let d = (ret as u64) ^ want as u64;
        (((d | d.wrapping_neg()) >> 63) ^ 1) as u32
    };
    let forward = is(BPF_FIB_LKUP_RET_SUCCESS) | is(BPF_FIB_LKUP_RET_NO_NEIGH);
    // The lookup wrote the output interface where the input one was.
    let oif = (p[1] & 0xffff_ffff) * forward as u64;
    (CHAIN_INPUT + forward * (CHAIN_FORWARD - CHAIN_INPUT)) as u64 | (oif << 32)
}

/// Steps of one packet's walk: one group or one candidate word per step.
const WALK_STEPS: u32 = 1 << 18;

const PHASE_GROUP: u32 = 1;
const PHASE_WORD: u32 = 2;

/// A packet's way through a table, one step per bpf_loop iteration (a flat state machine:
/// nested loops would make the verifier check every combination of their states).
///
/// It looks for the first entry at or after `start` that every field's bitmap contains
/// (layout in firewall-userspace/src/compile/pool.rs): the AND of the fields' group words
/// gives the candidate groups (once, before the walk); for the lowest, AND their word
/// summaries into candidate words (PHASE_GROUP); for each, AND the fields' words
/// (PHASE_WORD): the first set bit is the match. An entry with guards that fail does not
/// match after all. The entry found is recorded as a stop (charged once the verdict is
/// known); a RETURN or the end of an inlined chain resumes the search further on, anything
/// else decides.
struct Walk {
    offs: [u32; FIELD_COUNT],
    fields: u32,
    pool_base: u32,
    entry_base: u32,
    entry_count: u32,
    /// First entry the current search may return.
    start: u32,
    phase: u32,
    /// Groups every field has bits in (the AND of their group words), computed once.
    all_groups: u64,
    /// Candidate groups not tried yet; the group being tried and its candidate words.
    /// Only scalars: per-field arrays kept here would give the verifier a state per
    /// combination of their contents, so each step re-reads what it needs from the pool.
    groups: u64,
    group: u32,
    words: u64,
    /// Entries the walk stopped at so far, recorded in `FW_STOPS`.
    stops: u32,
    action: u32,
    position: u32,
}

impl Walk {
    #[inline(always)]
    fn push(&mut self, at: u32) {
        let n = self.fields as usize;
        if n < FIELD_COUNT {
            self.offs[n] = at;
            self.fields += 1;
        }
    }
}

/// A pool word, or stop the walk: the null path must end at once, or the verifier walks
/// every combination of found and missing words. Offsets come from the compiler, so a
/// miss only happens with a broken install.
macro_rules! pool {
    ($i:expr) => {
        match POOL.get($i) {
            Some(word) => *word,
            None => return 1,
        }
    };
}

#[inline(always)]
fn popcount(mut x: u64) -> u32 {
    x -= (x >> 1) & 0x5555_5555_5555_5555;
    x = (x & 0x3333_3333_3333_3333) + ((x >> 2) & 0x3333_3333_3333_3333);
    x = (x + (x >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    (x.wrapping_mul(0x0101_0101_0101_0101) >> 56) as u32
}

#[inline(always)]
fn trailing_zeros(x: u64) -> u32 {
    popcount((x & x.wrapping_neg()).wrapping_sub(1))
}

#[inline(always)]
fn below(bit: u32) -> u64 {
    (1u64 << (bit & 63)) - 1
}

/// One step. 0 goes on, 1 stops (decided, or nothing left: the policy decides).
extern "C" fn walk_step(_index: u64, ctx: *mut c_void) -> i64 {
    let walk = unsafe { &mut *(ctx as *mut Walk) };
    let start_word = walk.start / 64;
    let start_group = start_word / 64;
    if walk.phase == PHASE_GROUP {
        let groups = walk.groups;
        if groups == 0 || walk.start >= walk.entry_count {
            return 1;
        }
        let g = trailing_zeros(groups);
        walk.groups = groups & (groups - 1);
        let mut words = u64::MAX;
        for f in 0..FIELD_COUNT {
            if f as u32 >= walk.fields {
                break;
            }
            let b = walk.pool_base + walk.offs[f];
            let gi = popcount(pool!(b) & below(g));
            words &= pool!(b + 1 + 2 * gi);
        }
        if g == start_group {
            words &= !below(start_word % 64);
        }
        walk.group = g;
        walk.words = words;
        walk.phase = PHASE_WORD;
        return 0;
    }
    let words = walk.words;
    if words == 0 {
        walk.phase = PHASE_GROUP;
        return 0;
    }
    // Try the lowest candidate word.
    let k = trailing_zeros(words);
    walk.words = words & (words - 1);
    let w = walk.group * 64 + k;
    let mut word = u64::MAX;
    for f in 0..FIELD_COUNT {
        if f as u32 >= walk.fields {
            break;
        }
        let b = walk.pool_base + walk.offs[f];
        let top = pool!(b);
        let gi = popcount(top & below(walk.group));
        let summary = pool!(b + 1 + 2 * gi);
        let before = pool!(b + 2 + 2 * gi) as u32;
        word &= pool!(b + 1 + 2 * popcount(top) + before + popcount(summary & below(k)));
    }
    if w == start_word {
        word &= !below(walk.start % 64);
    }
    if word == 0 {
        return 0;
    }
    let found = w * 64 + trailing_zeros(word);
    if found >= walk.entry_count {
        return 1;
    }
    let Some(entry) = ENTRIES.get(walk.entry_base + found) else {
        return 1;
    };
    if entry.action == VERDICT_DEFER {
        // Counts nothing, not even the stops before it: see `decide`.
        walk.action = VERDICT_DEFER;
        walk.position = entry.position;
        return 1;
    }
    if entry.guard != NO_GUARD {
        let outcome = guard::fw_guard_check(entry.guard);
        if outcome == guard::HOTDROP {
            walk.action = ACTION_HOTDROP;
            walk.position = entry.position;
            return 1;
        }
        if outcome != guard::PASS {
            // The entry does not match after all: search on after it.
            walk.start = found + 1;
            walk.groups = walk.all_groups & !below(walk.start / GROUP_ENTRIES);
            walk.phase = PHASE_GROUP;
            return 0;
        }
    }
    // Recorded, not charged: the charges wait for the verdict (see `decide`).
    let n = walk.stops;
    match STOPS.get_ptr_mut(0) {
        // SAFETY: this CPU's slot, used by this program run alone.
        Some(stops) => unsafe { (*stops)[(n % MAX_STOPS) as usize] = found },
        None => return 1,
    }
    walk.stops = n + 1;
    if entry.action != ACTION_CONTINUE {
        walk.action = entry.action;
        walk.position = entry.position;
        return 1;
    }
    // Resume after the RETURN or the inlined chain.
    walk.start = entry.next;
    walk.groups = walk.all_groups & !below(entry.next / GROUP_ENTRIES);
    walk.phase = PHASE_GROUP;
    0
}

/// Entries a walk may stop at: every restart, and the entry that decides.
const MAX_STOPS: u32 = 64;
const _: () = assert!(MAX_RESTARTS < MAX_STOPS);

/// Where the walk stopped (entry indexes, in order), per CPU: too big for the stack.
#[map(name = "FW_STOPS")]
static STOPS: PerCpuArray<[u32; MAX_STOPS as usize]> = PerCpuArray::with_max_entries(1, 0);

/// The charging pass over the walk's stops, as iptables counts: each entry's rule, and each
/// enclosing jump rule once per packet (a restart inside the same jump does not count it
/// again).
struct Charges {
    entry_base: u32,
    bytes: u64,
    /// Jump rules already counted, and how many of them still enclose the search.
    counted: [u32; MAX_JUMP_DEPTH],
    counted_depth: u32,
}

/// Not inlined, and its loop a bpf_loop: verified once, apart from the walk.
#[inline(never)]
fn charge_stops(entry_base: u32, stops: u32, ip_len: u32) {
    let mut charges = Charges {
        entry_base,
        bytes: ip_len as u64,
        counted: [0; MAX_JUMP_DEPTH],
        counted_depth: 0,
    };
    // SAFETY: the callback only uses `charges` through the pointer, for this call.
    unsafe {
        bpf_loop(
            stops.min(MAX_STOPS),
            charge_step as *mut c_void,
            &mut charges as *mut Charges as *mut c_void,
            0,
        );
    }
}

extern "C" fn charge_step(index: u64, ctx: *mut c_void) -> i64 {
    let charges = unsafe { &mut *(ctx as *mut Charges) };
    let Some(stops) = STOPS.get(0) else {
        return 1;
    };
    let found = stops[(index as u32 % MAX_STOPS) as usize];
    let Some(entry) = ENTRIES.get(charges.entry_base + found) else {
        return 1;
    };
    if entry.counter != NO_COUNTER {
        count(entry.counter, charges.bytes);
    }
    let depth = entry.depth;
    let counted_depth = charges.counted_depth;
    for i in 0..MAX_JUMP_DEPTH {
        if i as u32 >= depth {
            break;
        }
        let seen = (i as u32) < counted_depth && charges.counted[i] == entry.jumps[i];
        if !seen {
            count(entry.jumps[i], charges.bytes);
        }
    }
    // A restart goes on in the context of the jump around the RETURN or inlined chain.
    // Element by element: a whole-array copy becomes a byte-wise memcpy call.
    charges.counted[0] = entry.jumps[0];
    charges.counted[1] = entry.jumps[1];
    charges.counted[2] = entry.jumps[2];
    charges.counted[3] = entry.jumps[3];
    charges.counted_depth = depth.saturating_sub(1);
    0
}

/// One bitmap offset per field the table uses, from the packet's values.
/// Not inlined: its keys then live in a frame that is gone before the walk, whose own frame
/// and the guards' must fit under the stack limit with the entry point's.
#[inline(never)]
fn bitmaps(
    ctx: &XdpContext,
    pkt: &Packet,
    keys: u64,
    header: &TableHeader,
    search: &mut Walk,
) -> Result<(), Broken> {
    // Unpacked from `keys`: the tag, the conntrack class, the output interface.
    let tg = (keys & 0xffff) as u32;
    let class = ((keys >> 16) & 3) as u32;
    let oif = (keys >> 32) as u32;
    let fields = header.fields;
    search.fields = 0;
    if fields & FIELD_IFACE != 0 {
        let in_ifindex = ctx.ingress_ifindex() as u32;
        let pair = IfaceKey {
            in_ifindex,
            out_ifindex: oif,
            tag: tg,
        };
        let no_out = IfaceKey {
            in_ifindex,
            out_ifindex: 0,
            tag: tg,
        };
        // SAFETY: values are copied out at once. An output interface the compiled ruleset
        // does not know (created since) counts as none, as does a missing input one.
        let at = unsafe { IFACE.get(&pair).or_else(|| IFACE.get(&no_out)) }
            .copied()
            .unwrap_or(header.unknown_iface);
        search.push(at);
    }
    if fields & FIELD_SRC != 0 {
        search.push(prefix(pkt, &pkt.src, tg, true)?);
    }
    if fields & FIELD_DST != 0 {
        search.push(prefix(pkt, &pkt.dst, tg, false)?);
    }
    if fields & FIELD_PROTO != 0 {
        // The conntrack class rides in the protocol's key (see firewall-common).
        let key = (class & 3) * 256 + (pkt.proto & 0xff);
        search.push(offset(&PROTO, tg, PROTO_KEYS, key)?);
    }
    if fields & FIELD_SPORT != 0 {
        let at = if pkt.has_ports {
            offset(&SPORT, tg, PORT_KEYS, pkt.sport as u32)?
        } else {
            header.no_sport
        };
        search.push(at);
    }
    if fields & FIELD_DPORT != 0 {
        let at = if pkt.has_ports {
            offset(&DPORT, tg, PORT_KEYS, pkt.dport as u32)?
        } else {
            header.no_dport
        };
        search.push(at);
    }
    if fields & FIELD_ICMP != 0 {
        let at = if pkt.has_icmp {
            offset(&ICMP, tg, ICMP_KEYS, pkt.icmp as u32)?
        } else {
            header.no_icmp
        };
        search.push(at);
    }
    if fields & FIELD_TCP_FLAGS != 0 {
        let at = if pkt.has_tcp {
            offset(&TCP_FLAGS, tg, TCP_FLAG_KEYS, pkt.tcp_flags as u32)?
        } else {
            header.no_tcp
        };
        search.push(at);
    }
    // Pad to 4 or 8 fields with the bitmap of every entry, which changes no AND: the
    // verifier then checks the walk for two field counts instead of eight, which keeps it
    // far from its instruction limit, for one extra lookup at most on small rulesets.
    let padded = if search.fields <= 4 {
        4
    } else {
        FIELD_COUNT as u32
    };
    let mut i = 0;
    while i < FIELD_COUNT {
        if i as u32 >= search.fields {
            search.offs[i] = header.all;
        }
        i += 1;
    }
    search.fields = padded;
    Ok(())
}

/// The bitmap offset of `key` in a value-indexed field array.
#[inline(always)]
fn offset(map: &Array<u64>, tg: u32, keys: u32, key: u32) -> Result<u32, Broken> {
    let (i, shift) = field_slot(tg, keys, key);
    Ok((*map.get(i).ok_or(Broken)? >> shift) as u32)
}

/// The bitmap of the longest prefix containing `addr`; the trie always holds /0.
#[inline(always)]
fn prefix(pkt: &Packet, addr: &[u32; 4], tg: u32, src: bool) -> Result<u32, Broken> {
    if pkt.family == FAMILY_V4 {
        let a = addr[0].to_ne_bytes();
        let key = Key::new(
            LPM_TAG_BITS + 32,
            Lpm4 {
                bytes: [tg as u8, a[0], a[1], a[2], a[3], 0, 0, 0],
            },
        );
        let trie = if src { &SRC4 } else { &DST4 };
        trie.get(&key).copied().ok_or(Broken)
    } else {
        let mut bytes = [0u8; 20];
        bytes[0] = tg as u8;
        let mut i = 0;
        while i < 4 {
            let w = addr[i].to_ne_bytes();
            bytes[1 + 4 * i] = w[0];
            bytes[2 + 4 * i] = w[1];
            bytes[3 + 4 * i] = w[2];
            bytes[4 + 4 * i] = w[3];
            i += 1;
        }
        let key = Key::new(LPM_TAG_BITS + 128, Lpm6 { bytes });
        let trie = if src { &SRC6 } else { &DST6 };
        trie.get(&key).copied().ok_or(Broken)
    }
}

const NOT_FOUND: u32 = u32::MAX;
/// The walk's result when a hashlimit table turned the packet away (`guard::HOTDROP`).
const ACTION_HOTDROP: u32 = u32::MAX - 1;
/// Charges a packet to a counter slot; returns the slot's packet count on this CPU.
#[inline(always)]
fn count(slot: u32, bytes: u64) -> u64 {
    match COUNTERS.get_ptr_mut(slot) {
        // Per-CPU slot: no other CPU writes it, so plain adds are exact.
        Some(counter) => unsafe {
            let packets = (*counter).packets + 1;
            (*counter).packets = packets;
            (*counter).bytes += bytes;
            packets
        },
        None => 0,
    }
}

fn log_verdict(ctx: &XdpContext, pkt: &Packet, verdict: u32, position: u32) {
    let what = if verdict == VERDICT_ACCEPT {
        "ACCEPT"
    } else if verdict == VERDICT_DEFER {
        "DEFER"
    } else {
        "DROP"
    };
    let family = if pkt.family == FAMILY_V4 {
        "IPv4"
    } else {
        "IPv6"
    };
    let (proto, dport) = (pkt.proto, pkt.dport);
    if position == 0 {
        info!(
            ctx,
            "{} by policy: {} proto {} dport {}", what, family, proto, dport
        );
    } else {
        info!(
            ctx,
            "{} by rule {}: {} proto {} dport {}", what, position, family, proto, dport
        );
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// GPL: the conntrack kfuncs are GPL-only.
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
