//! The XDP entry point and the maps it reads; see lib.rs for the crate's role.
#![no_std]
#![no_main]

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_action::{XDP_ABORTED, XDP_DROP, XDP_PASS},
    helpers::bpf_loop,
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray},
    programs::XdpContext,
};
use aya_log_ebpf::info;
use firewall_common::{
    header_index, policy_counter, rule_index, Config, Counter, IfName, Rule, RulesetHeader,
    CONFIG_LOG_VERDICTS, FAMILIES, FAMILY_V4, GENERATIONS, MAX_COUNTERS, MAX_INTERFACES, MAX_RULES,
    RULE_NEEDS_PORTS, VERDICT_ACCEPT,
};
use firewall_ebpf::parse::{parse, Packet, Parsed};

// Names and sizes are fixed by firewall-common; who writes and who reads each map is
// documented there.
#[map(name = "FW_CONFIG")]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);
#[map(name = "FW_HEADERS")]
static HEADERS: Array<RulesetHeader> = Array::with_max_entries(GENERATIONS * FAMILIES, 0);
#[map(name = "FW_RULES")]
static RULES: Array<Rule> = Array::with_max_entries(GENERATIONS * FAMILIES * MAX_RULES, 0);
#[map(name = "FW_COUNTERS")]
static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(MAX_COUNTERS, 0);
#[map(name = "FW_IFNAMES")]
static IFNAMES: HashMap<u32, IfName> = HashMap::with_max_entries(MAX_INTERFACES, 0);

#[xdp]
pub fn fw_ingress(ctx: XdpContext) -> u32 {
    match try_fw_ingress(&ctx) {
        Ok(action) => action,
        // Only a missing map entry gets here, which would mean a broken install: abort (the
        // packet is dropped and the xdp:xdp_exception tracepoint fires) rather than pass it.
        Err(()) => XDP_ABORTED,
    }
}

fn try_fw_ingress(ctx: &XdpContext) -> Result<u32, ()> {
    let pkt = match parse(ctx) {
        Ok(Parsed::Ip(pkt)) => pkt,
        Ok(Parsed::NotIp) => return Ok(XDP_PASS),
        // A truncated or malformed IP header: the kernel's own IP stack drops these too, and
        // letting them past a DROP policy would be failing open.
        Err(_) => return Ok(XDP_DROP),
    };
    let config = CONFIG.get(0).ok_or(())?;
    let generation = config.active % GENERATIONS;
    let header = HEADERS
        .get(header_index(generation, pkt.family))
        .ok_or(())?;
    // SAFETY: the value is copied out at once; fwctl only replaces whole entries.
    let ifname = unsafe { IFNAMES.get(&(ctx.ingress_ifindex() as u32)) }
        .copied()
        .unwrap_or(IfName { name: [0; 2] });

    let (family, proto, dport, ip_len) = (pkt.family, pkt.proto, pkt.dport, pkt.ip_len);
    let (verdict, counter, position) = classify(pkt, ifname, generation, header);
    count(counter, ip_len);
    if config.flags & CONFIG_LOG_VERDICTS != 0 {
        log_verdict(ctx, family, proto, dport, verdict, position);
    }
    Ok(if verdict == VERDICT_ACCEPT {
        XDP_PASS
    } else {
        XDP_DROP
    })
}

/// State of one scan through the rules, shared with the bpf_loop callback.
struct Scan {
    pkt: Packet,
    ifname: IfName,
    /// Index in FW_RULES of the generation's first rule of this family.
    base: u32,
    /// 1-based position of the matching rule, 0 while none matched.
    position: u32,
    verdict: u32,
    counter: u32,
}

/// First match wins; no match means the chain policy. Returns the verdict, the counter slot
/// to charge, and the 1-based rule number (0 for the policy).
///
/// The scan runs under bpf_loop so the verifier checks one iteration, not MAX_RULES of
/// them (a plain loop of that length exceeds its jump-history limit).
#[inline(always)]
fn classify(
    pkt: Packet,
    ifname: IfName,
    generation: u32,
    header: &RulesetHeader,
) -> (u32, u32, u32) {
    let family = pkt.family;
    let mut scan = Scan {
        pkt,
        ifname,
        base: rule_index(generation, family, 0),
        position: 0,
        verdict: header.policy,
        counter: policy_counter(family),
    };
    let count = if header.rule_count < MAX_RULES {
        header.rule_count
    } else {
        MAX_RULES
    };
    // SAFETY: the callback only reads the scan through the pointer given, for this call.
    unsafe {
        bpf_loop(
            count,
            scan_one as *mut c_void,
            &mut scan as *mut Scan as *mut c_void,
            0,
        );
    }
    (scan.verdict, scan.counter, scan.position)
}

/// One iteration: 0 goes on, 1 stops (a match, or a missing rule: the policy then stands).
extern "C" fn scan_one(index: u64, ctx: *mut c_void) -> i64 {
    let scan = unsafe { &mut *(ctx as *mut Scan) };
    let Some(rule) = RULES.get(scan.base + index as u32) else {
        return 1;
    };
    if matches(rule, &scan.pkt, &scan.ifname) {
        scan.position = index as u32 + 1;
        scan.verdict = rule.verdict;
        scan.counter = rule.counter;
        return 1;
    }
    0
}

#[inline(always)]
fn matches(rule: &Rule, pkt: &Packet, ifname: &IfName) -> bool {
    masked_eq(&ifname.name, &rule.iface_mask, &rule.iface)
        && (rule.proto == 0 || rule.proto == pkt.proto)
        && masked_eq(&pkt.src, &rule.src_mask, &rule.src)
        && masked_eq(&pkt.dst, &rule.dst_mask, &rule.dst)
        && (rule.flags & RULE_NEEDS_PORTS == 0
            || (pkt.has_ports
                && rule.sport_min <= pkt.sport
                && pkt.sport <= rule.sport_max
                && rule.dport_min <= pkt.dport
                && pkt.dport <= rule.dport_max))
}

#[inline(always)]
fn masked_eq<T, const N: usize>(value: &[T; N], mask: &[T; N], want: &[T; N]) -> bool
where
    T: Copy + core::ops::BitAnd<Output = T> + PartialEq,
{
    let mut i = 0;
    while i < N {
        if value[i] & mask[i] != want[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[inline(always)]
fn count(slot: u32, bytes: u32) {
    if let Some(counter) = COUNTERS.get_ptr_mut(slot) {
        // Per-CPU slot: no other CPU writes it, so plain adds are exact.
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += bytes as u64;
        }
    }
}

fn log_verdict(ctx: &XdpContext, family: u32, proto: u32, dport: u16, verdict: u32, position: u32) {
    let what = if verdict == VERDICT_ACCEPT {
        "ACCEPT"
    } else {
        "DROP"
    };
    let family = if family == FAMILY_V4 { "IPv4" } else { "IPv6" };
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

// GPL: the conntrack kfuncs the rule engine will call are GPL-only.
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
