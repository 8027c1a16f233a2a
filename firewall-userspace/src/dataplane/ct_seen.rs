//! The conntrack destination filter (firewall-common `MAP_CT_SEEN`): lets the XDP program
//! skip `bpf_xdp_ct_lookup` for packets no conntrack entry can match, such as a flood of
//! SYNs or datagrams from spoofed sources to a closed port, whose random tuples make every
//! lookup a cache miss in the kernel's table.
//!
//! A lookup can only find an entry one of whose two tuples is the packet's own, so it can
//! only hit if some entry has a tuple towards the packet's destination. The filter keeps,
//! per bucket of destinations, whether an entry ever had one:
//! - entries made from now on are marked by `fw_ct_seen` (firewall-ebpf/src/ct_seen.rs), a
//!   netfilter program at LOCAL_IN and POST_ROUTING just before conntrack's confirm hook,
//!   where every entry a packet creates passes before it enters the table;
//! - entries older than the program come from a ctnetlink dump made once the program is
//!   attached and every hook traversal that began before is over (an RCU grace period);
//! - only then is the map marked ready, and the XDP program trusts an empty bucket.
//!
//! Buckets are never cleared while the map lives (an entry's end is not visible to a
//! netfilter program); a resize or an upgrade starts a fresh map, rebuilt the same way.
//! Entries that enter the table without passing the IPv4/IPv6 hooks are not seen: those
//! made through ctnetlink (`conntrack -I`, conntrackd's failover), by tc's ct action, Open
//! vSwitch or bridge-family conntrack. README says so; `FWCTL_CT_FILTER=off` keeps the
//! filter unused.

use std::{
    collections::HashSet,
    ffi::CString,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

use anyhow::{bail, Context, Result};
use aya::maps::MapData;
use firewall_common::{
    ct_seen_index, CT_SEEN_BUCKETS, CT_SEEN_CTL_READY, CT_SEEN_CTL_SKB, CT_SEEN_CTL_TUPLES,
    CT_SEEN_READY, CT_SEEN_WORDS, MAP_CT_SEEN,
};

use super::{
    attach::{bpf, pin_link},
    kfunc::{ct_seen_offsets, CtSeenOffsets},
    mmap::MmapArray,
};
use crate::netfilter::netlink::{attributes, exchange, message, with_socket, NLA_TYPE_MASK};

const PROGRAM_NAME: &str = "fw_ct_seen";
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TYPE_NETFILTER: u32 = 32;
const BPF_NETFILTER: u32 = 45;
const BPF_LINK_CREATE: libc::c_long = 28;
const NFPROTO_IPV4: u32 = 2;
const NFPROTO_IPV6: u32 = 10;
const NF_INET_LOCAL_IN: u32 = 1;
const NF_INET_POST_ROUTING: u32 = 4;
/// Just before conntrack's confirm hooks (INT_MAX, and INT_MAX - 1 at IPv6's LOCAL_IN),
/// after every NAT hook: the entry's tuples are final. A BPF hook may not share its
/// priority with another hook (EBUSY): the next lower one is tried then.
const PRIORITY: i32 = i32::MAX - 2;
const PRIORITIES_TRIED: i32 = 16;

/// The program's links, pinned in the instance's directory by these names.
const LINKS: [(&str, u32, u32); 4] = [
    ("ctseen_ipv4_in", NFPROTO_IPV4, NF_INET_LOCAL_IN),
    ("ctseen_ipv4_out", NFPROTO_IPV4, NF_INET_POST_ROUTING),
    ("ctseen_ipv6_in", NFPROTO_IPV6, NF_INET_LOCAL_IN),
    ("ctseen_ipv6_out", NFPROTO_IPV6, NF_INET_POST_ROUTING),
];

/// Makes the filter of the instance pinned in `pin_dir` complete (program attached at every
/// hook, older entries marked, map ready), or, unless `wanted`, unused and detached.
/// Cheap once complete.
pub fn ensure(pin_dir: &Path, wanted: bool) -> Result<()> {
    let map = MapData::from_pin(pin_dir.join(MAP_CT_SEEN))
        .with_context(|| format!("opening the pinned {MAP_CT_SEEN}"))?;
    let mut filter = MmapArray::new(map, MAP_CT_SEEN)?;
    let linked = LINKS.iter().all(|(name, ..)| pin_dir.join(name).exists());
    let ready = filter.read_u64(CT_SEEN_CTL_READY as usize)? == CT_SEEN_READY;
    if !wanted {
        // Unready first: XDP looks every packet up again before the links go.
        filter.write(CT_SEEN_CTL_READY as usize, &0u64)?;
        for (name, ..) in LINKS {
            remove_link(&pin_dir.join(name))?;
        }
        return Ok(());
    }
    if linked && ready {
        return Ok(());
    }
    // A link gone (removed by hand) leaves entries unmarked: rebuild from the dump.
    let missing: Vec<&str> = LINKS
        .iter()
        .map(|(name, ..)| *name)
        .filter(|name| !pin_dir.join(name).exists())
        .collect();
    drop(filter);
    let map = MapData::from_pin(pin_dir.join(MAP_CT_SEEN))?;
    build(map, &missing, |name, link| {
        pin_link(&link, &pin_dir.join(name))
    })?;
    Ok(())
}

/// Makes the filter in `map` complete: unready while it works, the program attached at the
/// hooks named `missing` (each link handed to `keep`, which must keep it alive), every
/// entry in the table marked, then ready. Returns the map, mapped.
pub fn build(
    map: MapData,
    missing: &[&str],
    mut keep: impl FnMut(&str, OwnedFd) -> Result<()>,
) -> Result<MmapArray> {
    let prog = (!missing.is_empty())
        .then(|| load_program(&map))
        .transpose()?;
    let mut filter = MmapArray::new(map, MAP_CT_SEEN)?;
    filter.write(CT_SEEN_CTL_READY as usize, &0u64)?;
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").context("reading vmlinux BTF")?;
    write_offsets(&mut filter, &ct_seen_offsets(&btf)?)?;
    if let Some(prog) = &prog {
        for &(name, pf, hook) in LINKS.iter().filter(|l| missing.contains(&l.0)) {
            let link = link_create(prog, pf, hook)
                .with_context(|| format!("attaching {PROGRAM_NAME} ({name})"))?;
            keep(name, link)?;
        }
    }
    wait_for_hook_traversals()?;
    let marked = mark_existing(&mut filter)?;
    std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
    filter.write(CT_SEEN_CTL_READY as usize, &CT_SEEN_READY)?;
    log::debug!("conntrack destination filter ready ({marked} entries were in the table)");
    Ok(filter)
}

/// The names of the program's links, for [`build`] when every one is missing.
pub fn link_names() -> Vec<&'static str> {
    LINKS.iter().map(|(name, ..)| *name).collect()
}

/// One line on the filter of the instance in `pin_dir`, for `fwctl status`.
pub fn describe(pin_dir: &Path) -> Result<String> {
    let map = MapData::from_pin(pin_dir.join(MAP_CT_SEEN))
        .with_context(|| format!("opening the pinned {MAP_CT_SEEN}"))?;
    let filter = MmapArray::new(map, MAP_CT_SEEN)?;
    let linked = LINKS
        .iter()
        .filter(|(name, ..)| pin_dir.join(name).exists())
        .count();
    if filter.read_u64(CT_SEEN_CTL_READY as usize)? != CT_SEEN_READY {
        return Ok(format!(
            "not in use (XDP looks up every packet a state rule needs; {linked} of {} hooks)",
            LINKS.len()
        ));
    }
    let mut marked = 0u64;
    for word in 0..CT_SEEN_WORDS as usize {
        let w = filter.read_u64(word)?;
        marked += u64::from((0..8).filter(|b| (w >> (8 * b)) & 0xff != 0).count() as u32);
    }
    Ok(format!(
        "in use, {marked} of {CT_SEEN_BUCKETS} destination buckets hold connections (fw_ct_seen at {linked} of {} hooks)",
        LINKS.len()
    ))
}

fn remove_link(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn write_offsets(filter: &mut MmapArray, o: &CtSeenOffsets) -> Result<()> {
    let skb = u64::from(o.skb_nfct) | u64::from(o.status) << 32;
    let tuples = u64::from(o.tuple_dst[0]) | u64::from(o.tuple_dst[1]) << 32;
    filter.write(CT_SEEN_CTL_SKB as usize, &skb)?;
    filter.write(CT_SEEN_CTL_TUPLES as usize, &tuples)
}

/// Loads `fw_ct_seen` from the embedded object with its map relocated to `map`. By hand:
/// aya 0.14 has no netfilter program type, so aya-obj relocates and BPF_PROG_LOAD loads.
fn load_program(map: &MapData) -> Result<OwnedFd> {
    let mut obj = aya_obj::Object::parse(crate::CT_SEEN_PROGRAM)
        .context("reading the embedded ct-seen object")?;
    let def = obj
        .maps
        .get(MAP_CT_SEEN)
        .with_context(|| format!("the ct-seen object has no {MAP_CT_SEEN}"))?
        .clone();
    let text: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    let fd = map.fd().as_fd().as_raw_fd();
    obj.relocate_maps(std::iter::once((MAP_CT_SEEN, fd, &def)), &text)
        .context("relocating the ct-seen program's map")?;
    obj.relocate_calls(&text)
        .context("linking the ct-seen program's calls")?;
    let program = obj
        .programs
        .get(PROGRAM_NAME)
        .with_context(|| format!("the ct-seen object has no {PROGRAM_NAME}"))?;
    let insns = &obj
        .functions
        .get(&program.function_key())
        .with_context(|| format!("{PROGRAM_NAME} has no code"))?
        .instructions;
    let license = CString::new("GPL")?;
    let load = |log: &mut [u8]| {
        let mut attr = [0u64; 16];
        attr[0] = u64::from(BPF_PROG_TYPE_NETFILTER) | (insns.len() as u64) << 32;
        attr[1] = insns.as_ptr() as u64;
        attr[2] = license.as_ptr() as u64;
        if !log.is_empty() {
            attr[3] = 1 | (log.len() as u64) << 32;
            attr[4] = log.as_mut_ptr() as u64;
        }
        let mut name = [0u8; 16];
        name[..PROGRAM_NAME.len()].copy_from_slice(PROGRAM_NAME.as_bytes());
        attr[6] = u64::from_le_bytes(name[..8].try_into().unwrap_or_default());
        attr[7] = u64::from_le_bytes(name[8..].try_into().unwrap_or_default());
        attr[8] = u64::from(BPF_NETFILTER) << 32;
        bpf(BPF_PROG_LOAD, &mut attr)
    };
    let fd = match load(&mut []) {
        Ok(fd) => fd,
        Err(first) => {
            // Again with the verifier's log, to say why.
            let mut log = vec![0u8; 1 << 16];
            let again = load(&mut log);
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0').trim();
            match again {
                Ok(fd) => fd,
                Err(_) => bail!(
                    "the kernel refused the netfilter program {PROGRAM_NAME} ({first}): {}",
                    text.lines().rev().take(5).collect::<Vec<_>>().join(" / ")
                ),
            }
        }
    };
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A netfilter link of `prog` at hook `hook` of family `pf` in this network namespace.
fn link_create(prog: &OwnedFd, pf: u32, hook: u32) -> Result<OwnedFd> {
    // bpf_attr.link_create: prog_fd, target_fd (unused), attach_type, flags, then the
    // netfilter part: pf, hooknum, priority, flags (no defragmentation asked).
    let mut attr = [0u64; 16];
    attr[0] = prog.as_raw_fd() as u32 as u64;
    attr[1] = u64::from(BPF_NETFILTER);
    attr[2] = u64::from(pf) | u64::from(hook) << 32;
    let mut priority = PRIORITY;
    let fd = loop {
        attr[3] = u64::from(priority as u32);
        match bpf(BPF_LINK_CREATE, &mut attr) {
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && priority > PRIORITY - PRIORITIES_TRIED =>
            {
                priority -= 1
            }
            done => break done.context("BPF_LINK_CREATE (netfilter)")?,
        }
    };
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits until every netfilter hook traversal that began before the links were made is
/// over: such a packet may confirm an entry the program never saw, after the dump passed
/// its place in the table. Hook traversals run under RCU, and `MEMBARRIER_CMD_GLOBAL`
/// waits for an RCU grace period.
fn wait_for_hook_traversals() -> Result<()> {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier(2) takes no pointers.
    let rc = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error())
            .context("membarrier (waiting for an RCU grace period)");
    }
    Ok(())
}

/// Marks the destinations of both tuples of every entry in the conntrack table (a
/// ctnetlink dump of every family); returns how many entries it read.
fn mark_existing(filter: &mut MmapArray) -> Result<usize> {
    const NFNL_SUBSYS_CTNETLINK: u16 = 1;
    const IPCTNL_MSG_CT_GET: u16 = 1;
    let req = message(
        NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET,
        (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
        1,
        libc::AF_UNSPEC as u8,
        0,
        &[],
    );
    let mut entries = 0;
    let mut buckets = Vec::new();
    with_socket(1 << 16, |fd| {
        exchange(fd, &req, 1 << 20, |h, buf| {
            use crate::netfilter::netlink::{error_code, NLMSG_DONE};
            match error_code(buf, h) {
                _ if h.kind == NLMSG_DONE => Some(Ok(())),
                Some(0) => None,
                Some(code) => {
                    Some(Err(std::io::Error::from_raw_os_error(-code)).context("a conntrack dump"))
                }
                None if h.len >= 20 => {
                    entries += 1;
                    buckets.extend(entry_buckets(&buf[h.at + 20..h.at + h.len]));
                    None
                }
                None => None,
            }
        })
    })
    .context("dumping the conntrack table")?;
    for index in buckets {
        filter.set_byte(index as usize, 1)?;
    }
    Ok(entries)
}

/// The buckets of both tuples' destinations of one ctnetlink entry (its attributes).
fn entry_buckets(attrs: &[u8]) -> Vec<u32> {
    const CTA_TUPLE_ORIG: u16 = 1;
    const CTA_TUPLE_REPLY: u16 = 2;
    attributes(attrs)
        .into_iter()
        .filter(|(kind, _)| matches!(kind & NLA_TYPE_MASK, CTA_TUPLE_ORIG | CTA_TUPLE_REPLY))
        .filter_map(|(_, tuple)| tuple_bucket(tuple))
        .collect()
}

/// The bucket of a ctnetlink tuple's destination: address, port (ICMP: type and code, as
/// the kernel's tuple holds them), protocol. None if it has no destination address.
fn tuple_bucket(tuple: &[u8]) -> Option<u32> {
    const CTA_TUPLE_IP: u16 = 1;
    const CTA_TUPLE_PROTO: u16 = 2;
    const CTA_IP_V4_DST: u16 = 2;
    const CTA_IP_V6_DST: u16 = 4;
    const CTA_PROTO_NUM: u16 = 1;
    const CTA_PROTO_DST_PORT: u16 = 3;
    const CTA_PROTO_ICMP_TYPE: u16 = 5;
    const CTA_PROTO_ICMP_CODE: u16 = 6;
    const CTA_PROTO_ICMPV6_TYPE: u16 = 8;
    const CTA_PROTO_ICMPV6_CODE: u16 = 9;
    let mut addr = None;
    let (mut proto, mut port, mut kind, mut code) = (0u8, None, None, None);
    for (t, payload) in attributes(tuple) {
        match t & NLA_TYPE_MASK {
            CTA_TUPLE_IP => {
                for (t, a) in attributes(payload) {
                    let words = |n: usize| {
                        let mut w = [0u32; 4];
                        for (i, chunk) in a.chunks_exact(4).take(n).enumerate() {
                            w[i] = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                        }
                        w
                    };
                    match t & NLA_TYPE_MASK {
                        CTA_IP_V4_DST if a.len() == 4 => addr = Some(words(1)),
                        CTA_IP_V6_DST if a.len() == 16 => addr = Some(words(4)),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (t, a) in attributes(payload) {
                    match (t & NLA_TYPE_MASK, a) {
                        (CTA_PROTO_NUM, [p, ..]) => proto = *p,
                        (CTA_PROTO_DST_PORT, [hi, lo, ..]) => {
                            port = Some(u16::from_be_bytes([*hi, *lo]))
                        }
                        (CTA_PROTO_ICMP_TYPE | CTA_PROTO_ICMPV6_TYPE, [v, ..]) => kind = Some(*v),
                        (CTA_PROTO_ICMP_CODE | CTA_PROTO_ICMPV6_CODE, [v, ..]) => code = Some(*v),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let port = port.unwrap_or(u16::from_be_bytes([kind.unwrap_or(0), code.unwrap_or(0)]));
    Some(ct_seen_index(&addr?, port, proto))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfilter::netlink::nla;

    fn nested(kind: u16, parts: &[Vec<u8>]) -> Vec<u8> {
        nla(kind | 0x8000, &parts.concat())
    }

    #[test]
    fn a_tuple_falls_in_the_bucket_of_its_destination() {
        let tuple = nested(
            2,
            &[
                nested(1, &[nla(1, &[10, 0, 0, 1]), nla(2, &[192, 0, 2, 7])]),
                nested(2, &[nla(1, &[6]), nla(2, &[0x30, 0x39]), nla(3, &[0, 22])]),
            ],
        );
        let want = ct_seen_index(&[u32::from_ne_bytes([192, 0, 2, 7]), 0, 0, 0], 22, 6);
        assert_eq!(entry_buckets(&tuple), vec![want]);
        // The XDP side folds an IPv4 address the same way, whatever port the source has.
        assert_ne!(
            want,
            ct_seen_index(&[u32::from_ne_bytes([192, 0, 2, 7]), 0, 0, 0], 23, 6)
        );
    }

    #[test]
    fn a_tuple_without_a_destination_address_has_no_bucket() {
        let tuple = nested(1, &[nested(2, &[nla(1, &[17]), nla(3, &[0, 53])])]);
        assert!(entry_buckets(&tuple).is_empty());
    }
}
