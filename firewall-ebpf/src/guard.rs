//! Guards: the matches a field bitmap cannot express, checked only for the entry the
//! classifier found first (firewall-common `Guard`). Rate limits are token buckets kept as
//! GCRA times (`Bucket`): one u64 per bucket, updated without a lock. Two CPUs racing on
//! one bucket may both pass where one should have; the error is at most one token per
//! concurrent CPU per race, which is within what a token bucket promises anyway.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::map,
    maps::{lpm_trie::Key, Array, HashMap, LruHashMap, PerCpuArray},
};
use firewall_common::{
    Bucket, Guard, HashLimitKey, Meter, SetKey4, SetKey6, BPF_F_NO_PREALLOC, FAMILY_V4,
    GENERATIONS, GUARDS_PER_GENERATION, GUARD_HASHLIMIT, GUARD_HL_ABOVE, GUARD_HL_DSTIP,
    GUARD_HL_DSTPORT, GUARD_HL_SRCIP, GUARD_HL_SRCPORT, GUARD_LIMIT, GUARD_NEGATE, GUARD_SET,
    GUARD_SET_DIM0_DST, GUARD_SET_DIM1_DST, GUARD_SET_PORTS, MAX_BUCKETS, MAX_GUARD_CHAIN,
    MAX_HASHLIMIT_ENTRIES, NO_GUARD, SET_KEY_FIXED_BITS, SET_NO_EXPIRY,
};
use firewall_ebpf::parse::Packet;

// Names, sizes and writers/readers are documented in firewall-common. The meters are
// allocated as rules need them (fwctl creates them), so an idle table costs nothing.
#[map(name = "FW_GUARDS")]
static GUARDS: Array<Guard> = Array::with_max_entries(GENERATIONS * GUARDS_PER_GENERATION, 0);
#[map(name = "FW_BUCKETS")]
static BUCKETS: HashMap<u32, Meter> = HashMap::with_max_entries(MAX_BUCKETS, BPF_F_NO_PREALLOC);
#[map(name = "FW_HASHLIMIT")]
static HASHLIMIT: LruHashMap<HashLimitKey, Bucket> =
    LruHashMap::with_max_entries(MAX_HASHLIMIT_ENTRIES, 0);

/// What the guards see of the packet being judged, and room for the keys they build, per
/// CPU: the stack has no room left for either (the walk and its caller take most of it).
#[map(name = "FW_SUBJECT")]
static SUBJECT: PerCpuArray<Subject> = PerCpuArray::with_max_entries(1, 0);

pub struct Subject {
    /// The generation whose guards apply.
    generation: u32,
    /// Network-order addresses.
    pub src: [u32; 4],
    pub dst: [u32; 4],
    /// Source port << 16 | destination port (host order); 0 without ports.
    pub ports: u32,
    pub proto: u32,
    pub family: u32,
    key: HashLimitKey,
    fresh: Bucket,
    set4: Key<SetKey4>,
    set6: Key<SetKey6>,
}

/// Records the packet for the guards of its walk; only tables with guards pay for it.
/// Not inlined, and the test inside: a branch around the call would give the verifier two
/// states to carry into the walk.
#[inline(never)]
pub fn set_subject(pkt: &Packet, generation: u32, wanted: bool) {
    if !wanted {
        return;
    }
    if let Some(s) = SUBJECT.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot of our own map; field by field, nothing built on the stack.
        unsafe {
            (*s).generation = generation;
            for i in 0..4 {
                (*s).src[i] = pkt.src[i];
                (*s).dst[i] = pkt.dst[i];
            }
            (*s).ports = if pkt.has_ports {
                (pkt.sport as u32) << 16 | pkt.dport as u32
            } else {
                0
            };
            (*s).proto = pkt.proto as u32;
            (*s).family = pkt.family;
        }
    }
}

/// The guards passed: the entry matches.
pub const PASS: u32 = 0;
/// A guard failed: the entry does not match, the search goes on.
pub const FAIL: u32 = 1;
/// A hashlimit table is full and may not take the packet's key yet: iptables drops such a
/// packet on the spot, counted by no rule (`hotdrop`), and so does XDP.
pub const HOTDROP: u32 = 2;

/// Checks the guards of one entry, from `first` on, in the generation `set_subject` named.
///
/// A global function (exported, C ABI, scalar arguments): the verifier checks it once on its
/// own, instead of once for every state of the walk's callback that reaches the call, which
/// for this body would be past its limit.
#[no_mangle]
#[inline(never)]
pub extern "C" fn fw_guard_check(first: u32) -> u32 {
    if first == NO_GUARD {
        return PASS;
    }
    let Some(subject) = SUBJECT.get_ptr_mut(0) else {
        return FAIL;
    };
    // SAFETY: this CPU's slot, used by this program run alone.
    let subject = unsafe { &mut *subject };
    let base = (subject.generation % GENERATIONS) * GUARDS_PER_GENERATION;
    let mut at = first;
    // Read at the first guard that needs it: a set without timeouts does not.
    let mut now = 0;
    for _ in 0..MAX_GUARD_CHAIN {
        if at == NO_GUARD {
            return PASS;
        }
        let Some(g) = GUARDS.get(base + (at % GUARDS_PER_GENERATION)) else {
            return FAIL;
        };
        let held = if g.kind == GUARD_SET {
            in_set(g, subject, &mut now)
        } else if g.kind == GUARD_LIMIT {
            limit(g, clock(&mut now))
        } else if g.kind == GUARD_HASHLIMIT {
            match hashlimit(g, subject, clock(&mut now)) {
                Some(held) => held,
                None => return HOTDROP,
            }
        } else {
            // A kind this program does not know: the compiler never emits one, and an entry
            // that cannot match is the safe reading.
            return FAIL;
        };
        if held == (g.flags & GUARD_NEGATE != 0) {
            return FAIL;
        }
        at = g.next;
    }
    PASS
}

/// The time, read once per check (0: not read yet).
#[inline(always)]
fn clock(now: &mut u64) -> u64 {
    if *now == 0 {
        // SAFETY: the helper has no preconditions.
        *now = unsafe { bpf_ktime_get_ns() };
    }
    *now
}

/// `-m set`: whether the packet is a live member of set storage `id`: its address (and for
/// sets with ports its protocol and port), from the source or the destination as the flags
/// say, looked up under the storage's id (layout in firewall-common `SetKey4`). A member
/// whose expiry has passed is not one: fwctl removes it later, at its own pace.
#[inline(always)]
fn in_set(g: &Guard, s: &mut Subject, now: &mut u64) -> bool {
    let f = g.flags;
    let dst = f & GUARD_SET_DIM0_DST != 0;
    let port_word = if f & GUARD_SET_PORTS != 0 {
        let port = if f & GUARD_SET_DIM1_DST != 0 {
            s.ports & 0xffff
        } else {
            s.ports >> 16
        };
        (s.proto & 0xff) << 16 | port
    } else {
        0
    };
    // The key is written word by word into the per-CPU subject: arrays built on the stack
    // would take the program past its stack limit.
    let expiry = if s.family == FAMILY_V4 {
        s.set4.prefix_len = SET_KEY_FIXED_BITS + 32;
        let words = s.set4.data.bytes.as_mut_ptr() as *mut u32;
        let addr = if dst { s.dst[0] } else { s.src[0] };
        // SAFETY: three u32 writes within the key's 12 bytes.
        unsafe {
            core::ptr::write_unaligned(words, g.id.to_be());
            core::ptr::write_unaligned(words.add(1), port_word.to_be());
            core::ptr::write_unaligned(words.add(2), addr);
        }
        crate::SET4.get(&s.set4).copied()
    } else {
        s.set6.prefix_len = SET_KEY_FIXED_BITS + 128;
        let words = s.set6.data.bytes.as_mut_ptr() as *mut u32;
        // SAFETY: six u32 writes within the key's 24 bytes.
        unsafe {
            core::ptr::write_unaligned(words, g.id.to_be());
            core::ptr::write_unaligned(words.add(1), port_word.to_be());
            let mut w = 0;
            while w < 4 {
                let addr = if dst { s.dst[w] } else { s.src[w] };
                core::ptr::write_unaligned(words.add(2 + w), addr);
                w += 1;
            }
        }
        crate::SET6.get(&s.set6).copied()
    };
    match expiry {
        Some(e) => e == SET_NO_EXPIRY || e > clock(now),
        None => false,
    }
}

/// GCRA: whether a packet at `now` conforms, and if so, takes its token.
#[inline(always)]
fn conform(tat: *mut u64, now: u64, interval: u64, burst: u32) -> bool {
    // SAFETY: `tat` points into a map value that stays valid for this program run.
    let t = unsafe { core::ptr::read_volatile(tat) };
    let t = if t > now { t } else { now };
    if t - now > interval * (burst.saturating_sub(1) as u64) {
        return false;
    }
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(tat, t + interval) };
    true
}

/// `-m limit`: one bucket for the rule (fwctl creates it with the rule).
#[inline(always)]
fn limit(g: &Guard, now: u64) -> bool {
    match BUCKETS.get_ptr_mut(&g.id) {
        // SAFETY: a value of our own map.
        Some(m) => unsafe { conform(&raw mut (*m).tat_ns, now, (*m).interval_ns, (*m).burst) },
        None => false,
    }
}

/// `-m hashlimit`: whether the packet's key is within its rate (`--hashlimit-upto`) or over
/// it (`--hashlimit-above`); None when the table cannot take a new key.
///
/// A key not in the table gets a full bucket only if the table's newcomer meter (`id` in
/// FW_BUCKETS: `--hashlimit-htable-max` keys per `--hashlimit-htable-expire`) has a token.
/// That is what bounds a spoofed flood: random sources are all newcomers, so they get at
/// most the meter's rate of fresh buckets, and they cannot push the keys of real sources
/// out of the LRU faster than that.
#[inline(always)]
fn hashlimit(g: &Guard, s: &mut Subject, now: u64) -> Option<bool> {
    let f = g.flags;
    let src_bits = if f & GUARD_HL_SRCIP != 0 {
        g.masks & 0xff
    } else {
        0
    };
    let dst_bits = if f & GUARD_HL_DSTIP != 0 {
        (g.masks >> 8) & 0xff
    } else {
        0
    };
    let mut ports = 0;
    if f & GUARD_HL_SRCPORT != 0 {
        ports |= s.ports & 0xffff_0000;
    }
    if f & GUARD_HL_DSTPORT != 0 {
        ports |= s.ports & 0xffff;
    }
    s.key.id = g.id;
    s.key.ports = ports;
    let mut i = 0;
    while i < 4 {
        s.key.src[i] = s.src[i] & mask_word(src_bits, i as u32);
        s.key.dst[i] = s.dst[i] & mask_word(dst_bits, i as u32);
        i += 1;
    }
    let under = match HASHLIMIT.get_ptr_mut(&s.key) {
        // SAFETY: a value of our own map.
        Some(b) => conform(unsafe { &raw mut (*b).tat_ns }, now, g.interval_ns, g.burst),
        None => {
            let m = BUCKETS.get_ptr_mut(&g.id)?;
            // SAFETY: a value of our own map.
            let admitted =
                unsafe { conform(&raw mut (*m).tat_ns, now, (*m).interval_ns, (*m).burst) };
            if !admitted {
                return None;
            }
            // A full bucket, less this packet's token.
            s.fresh.tat_ns = now + g.interval_ns;
            HASHLIMIT.insert(&s.key, &s.fresh, 0).ok()?;
            true
        }
    };
    Some(under != (f & GUARD_HL_ABOVE != 0))
}

/// The mask of word `i` of an address (IPv4 in word 0) that keeps its first `bits` bits.
#[inline(always)]
fn mask_word(bits: u32, i: u32) -> u32 {
    let lo = i * 32;
    // Addresses are in network order: the mask is built big-endian, then swapped alike.
    if bits >= lo + 32 {
        u32::MAX
    } else if bits <= lo {
        0
    } else {
        (u32::MAX << (32 - (bits - lo))).to_be()
    }
}
