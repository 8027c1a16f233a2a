//! LOG events: packets that LOG rules send to netlink-log group [`LOG_GROUP`], received and
//! written as the kernel's LOG target writes them (`IN= OUT= SRC= DST= ... PROTO= SPT= DPT=`).
//! Netlink-log is bounded in the kernel (a full socket buffer drops events, never packets),
//! and [`RateLimit`] bounds what reaches the terminal or the disk.

use std::{
    collections::HashMap,
    ffi::CStr,
    io,
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

pub use super::exprs::LOG_GROUP;
use super::exprs::{log_flags, LOG_GROUPS};
use super::netlink::{
    attributes, error_code, exchange, message, messages, nla, text, NLA_TYPE_MASK,
};

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
const NFULA_UID: u16 = 11;
const NFULA_GID: u16 = 14;
const NFULA_HWHEADER: u16 = 16;
/// Enough of each packet for its IP and TCP headers with options (60 bytes each).
const COPY_RANGE: u32 = 128;
/// The kernel's `XT_LOG_*` bits, as the LOG rule's group carries them.
const LOG_TCPSEQ: u8 = 0x01;
const LOG_TCPOPT: u8 = 0x02;
const LOG_IPOPT: u8 = 0x04;
const LOG_UID: u8 = 0x08;
const LOG_MACDECODE: u8 = 0x20;

/// One logged packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub prefix: String,
    pub in_iface: String,
    pub out_iface: String,
    /// The fields after `IN= OUT=`, in the kernel's order, as (name, value); flags such as
    /// `DF` or `SYN` have an empty value.
    pub fields: Vec<(&'static str, String)>,
}

impl Event {
    /// The kernel's LOG line.
    pub fn line(&self) -> String {
        let mut out = format!("{}IN={} OUT={}", self.prefix, self.in_iface, self.out_iface);
        for (k, v) in &self.fields {
            out.push(' ');
            out.push_str(k);
            // The kernel writes options as `OPT (0204...)`, not as a `KEY=value`.
            if *k == "OPT" {
                out.push_str(&format!(" ({v})"));
            } else if !v.is_empty() {
                out.push('=');
                out.push_str(v);
            }
        }
        out
    }

    pub fn json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("prefix".into(), self.prefix.clone().into());
        map.insert("in".into(), self.in_iface.clone().into());
        map.insert("out".into(), self.out_iface.clone().into());
        for (k, v) in &self.fields {
            let value = if v.is_empty() {
                serde_json::Value::Bool(true)
            } else {
                v.clone().into()
            };
            // UDP's own LEN follows IP's, as in the kernel's line: keep both.
            let mut key = k.to_lowercase();
            if map.contains_key(&key) {
                key = format!("l4_{key}");
            }
            map.insert(key, value);
        }
        map.into()
    }
}

/// The netlink-log group LOG rules write to, bound in this network namespace.
pub struct Listener {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Listener {
    /// Binds every group LOG rules use ([`LOG_GROUP`] and the groups of its flags).
    pub fn bind_log() -> Result<Listener> {
        Self::bind(LOG_GROUP..LOG_GROUP + LOG_GROUPS)
    }

    pub fn bind(groups: std::ops::Range<u16>) -> Result<Listener> {
        // Room for bursts: events beyond it are dropped by the kernel, not queued forever;
        // a timeout, so the reader can report suppressed events while all is quiet.
        let fd = super::netlink::open(1 << 16, 4 << 20, Duration::from_secs(1))?;
        let config = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        let mut mode = COPY_RANGE.to_be_bytes().to_vec();
        mode.extend([NFULNL_COPY_PACKET, 0]);
        let listener = Listener {
            fd,
            buf: vec![0u8; 1 << 16],
        };
        for group in groups {
            // struct nfgenmsg's resource id is the group.
            let request =
                |attr: &[u8]| message(config, flags, 0, libc::AF_UNSPEC as u8, group, attr);
            listener.request(&request(&nla(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND])))?;
            listener.request(&request(&nla(NFULA_CFG_MODE, &mode)))?;
        }
        Ok(listener)
    }

    /// Sends a request and waits for its acknowledgement.
    fn request(&self, msg: &[u8]) -> Result<()> {
        exchange(&self.fd, msg, 1 << 12, |h, buf| match error_code(buf, h)? {
            0 => Some(Ok(())),
            code => Some(Err(io::Error::from_raw_os_error(-code)).context(
                "binding the LOG group (is another `fwctl log` running in this namespace?)",
            )),
        })
        .context("netlink-log request")
    }

    /// Blocks for the next batch of events.
    pub fn next_events(&mut self) -> Result<Vec<Event>> {
        // SAFETY: recv into our own buffer.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            // The kernel dropped events because we were slow: say so, go on.
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                eprintln!("fwctl: LOG events were lost: the kernel's queue overflowed");
                return Ok(Vec::new());
            }
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                return Ok(Vec::new());
            }
            return Err(e).context("receiving LOG events");
        }
        Ok(parse_messages(&self.buf[..n as usize]))
    }
}

fn attrs(data: &[u8]) -> HashMap<u16, &[u8]> {
    attributes(data)
        .into_iter()
        .map(|(k, v)| (k & NLA_TYPE_MASK, v))
        .collect()
}

fn parse_messages(data: &[u8]) -> Vec<Event> {
    messages(data)
        .into_iter()
        .filter(|h| h.kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET && h.len >= 20)
        .filter_map(|h| {
            // struct nfgenmsg: family, version, the group (big-endian).
            let group = u16::from_be_bytes([data[h.at + 18], data[h.at + 19]]);
            let flags = log_flags(group).unwrap_or(0);
            event(
                data[h.at + 16],
                flags,
                &attrs(&data[h.at + 20..h.at + h.len]),
            )
        })
        .collect()
}

fn ifname(index: Option<&&[u8]>) -> String {
    let Some(b) = index.filter(|b| b.len() == 4) else {
        return String::new();
    };
    let index = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: if_indextoname writes at most IF_NAMESIZE bytes into name.
    let p = unsafe { libc::if_indextoname(index, name.as_mut_ptr()) };
    if p.is_null() {
        return index.to_string();
    }
    // SAFETY: on success name holds a NUL-terminated string.
    unsafe { CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn event(family: u8, flags: u8, a: &HashMap<u16, &[u8]>) -> Option<Event> {
    let prefix = a.get(&NFULA_PREFIX).map(|p| text(p)).unwrap_or_default();
    let payload = a.get(&NFULA_PAYLOAD)?;
    let mut fields = Fields::new();
    // An Ethernet header, as the kernel's LOG decodes it before the IP fields.
    if let Some(h) = a.get(&NFULA_HWHEADER).filter(|h| h.len() == 14) {
        if flags & LOG_MACDECODE != 0 {
            let mac = |m: &[u8]| {
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            };
            fields.push(("MACSRC", mac(&h[6..12])));
            fields.push(("MACDST", mac(&h[0..6])));
            fields.push(("MACPROTO", format!("{:02x}{:02x}", h[12], h[13])));
        }
    }
    fields.extend(match family as i32 {
        libc::AF_INET => ipv4(payload, flags)?,
        libc::AF_INET6 => ipv6(payload, flags)?,
        _ => return None,
    });
    // The socket's owner: the kernel sends it for packets of a local socket only.
    let id = |k: u16| {
        a.get(&k)
            .filter(|b| b.len() == 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    if flags & LOG_UID != 0 {
        if let (Some(uid), Some(gid)) = (id(NFULA_UID), id(NFULA_GID)) {
            fields.push(("UID", uid.to_string()));
            fields.push(("GID", gid.to_string()));
        }
    }
    Some(Event {
        prefix,
        in_iface: ifname(a.get(&NFULA_IFINDEX_INDEV)),
        out_iface: ifname(a.get(&NFULA_IFINDEX_OUTDEV)),
        fields,
    })
}

type Fields = Vec<(&'static str, String)>;

/// `OPT (...)`'s bytes, in the kernel's upper-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn ipv4(p: &[u8], flags: u8) -> Option<Fields> {
    let ihl = ((p.first()? & 0x0f) as usize) * 4;
    if p.len() < 20 || ihl < 20 {
        return None;
    }
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let frag = u16::from_be_bytes([p[6], p[7]]);
    let mut f: Fields = vec![
        ("SRC", src.to_string()),
        ("DST", dst.to_string()),
        ("LEN", u16::from_be_bytes([p[2], p[3]]).to_string()),
        ("TOS", format!("0x{:02X}", p[1] & 0x1e)),
        ("PREC", format!("0x{:02X}", p[1] & 0xe0)),
        ("TTL", p[8].to_string()),
        ("ID", u16::from_be_bytes([p[4], p[5]]).to_string()),
    ];
    if frag & 0x4000 != 0 {
        f.push(("DF", String::new()));
    }
    if frag & 0x1fff != 0 {
        f.push(("FRAG", (frag & 0x1fff).to_string()));
        return Some(f);
    }
    if flags & LOG_IPOPT != 0 && ihl > 20 {
        f.push(("OPT", hex(p.get(20..ihl)?)));
    }
    transport(p[9], p.get(ihl..)?, false, flags, &mut f);
    Some(f)
}

fn ipv6(p: &[u8], flags: u8) -> Option<Fields> {
    if p.len() < 40 {
        return None;
    }
    let addr = |at: usize| {
        let mut b = [0u8; 16];
        b.copy_from_slice(&p[at..at + 16]);
        Ipv6Addr::from(b).to_string()
    };
    let mut f: Fields = vec![
        ("SRC", addr(8)),
        ("DST", addr(24)),
        (
            "LEN",
            (u16::from_be_bytes([p[4], p[5]]) as usize + 40).to_string(),
        ),
        ("HOPLIMIT", p[7].to_string()),
    ];
    // Extension headers are not walked: their transport shows as PROTO=<number>.
    transport(p[6], &p[40..], true, flags, &mut f);
    Some(f)
}

fn transport(proto: u8, t: &[u8], v6: bool, flags: u8, f: &mut Fields) {
    let port = |at: usize| t.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    match proto {
        6 | 17 => {
            f.push(("PROTO", if proto == 6 { "TCP" } else { "UDP" }.into()));
            if let (Some(s), Some(d)) = (port(0), port(2)) {
                f.push(("SPT", s.to_string()));
                f.push(("DPT", d.to_string()));
            }
            if proto == 17 {
                if let Some(len) = port(4) {
                    f.push(("LEN", len.to_string()));
                }
            } else if let (Some(win), Some(&tcp_flags)) = (port(14), t.get(13)) {
                if flags & LOG_TCPSEQ != 0 {
                    let word =
                        |at: usize| u32::from_be_bytes([t[at], t[at + 1], t[at + 2], t[at + 3]]);
                    f.push(("SEQ", word(4).to_string()));
                    f.push(("ACK", word(8).to_string()));
                }
                f.push(("WINDOW", win.to_string()));
                for (bit, name) in [
                    (0x20, "URG"),
                    (0x10, "ACK"),
                    (0x08, "PSH"),
                    (0x04, "RST"),
                    (0x02, "SYN"),
                    (0x01, "FIN"),
                ] {
                    if tcp_flags & bit != 0 {
                        f.push((name, String::new()));
                    }
                }
                let doff = usize::from(t[12] >> 4) * 4;
                if flags & LOG_TCPOPT != 0 && doff > 20 {
                    if let Some(opts) = t.get(20..doff) {
                        f.push(("OPT", hex(opts)));
                    }
                }
            }
        }
        1 if !v6 => icmp("ICMP", t, f),
        58 if v6 => icmp("ICMPv6", t, f),
        other => f.push(("PROTO", other.to_string())),
    }
}

fn icmp(name: &str, t: &[u8], f: &mut Fields) {
    f.push(("PROTO", name.to_string()));
    if let (Some(kind), Some(code)) = (t.first(), t.get(1)) {
        f.push(("TYPE", kind.to_string()));
        f.push(("CODE", code.to_string()));
    }
}

/// Token buckets per LOG prefix: at most `burst` lines at once and `per_second` after, so
/// a flood cannot fill the disk; what it held back is counted.
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    buckets: HashMap<String, (f64, Instant)>,
    pub suppressed: HashMap<String, u64>,
}

impl RateLimit {
    pub fn new(per_second: f64, burst: u32) -> RateLimit {
        RateLimit {
            per_second,
            burst: burst as f64,
            buckets: HashMap::new(),
            suppressed: HashMap::new(),
        }
    }

    /// Whether an event of `prefix` may be written now.
    pub fn allow(&mut self, prefix: &str, now: Instant) -> bool {
        let (tokens, last) = self
            .buckets
            .entry(prefix.to_string())
            .or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            *self.suppressed.entry(prefix.to_string()).or_default() += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ipv4_tcp_syn_reads_as_the_kernel_writes_it() {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&60u16.to_be_bytes());
        p[4..6].copy_from_slice(&7u16.to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&22u16.to_be_bytes());
        p[33] = 0x02;
        p[34..36].copy_from_slice(&64240u16.to_be_bytes());
        let e = Event {
            prefix: "ssh: ".into(),
            in_iface: "eth0".into(),
            out_iface: String::new(),
            fields: ipv4(&p, 0).unwrap(),
        };
        assert_eq!(
            e.line(),
            "ssh: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=7 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 SYN"
        );
        assert_eq!(e.json()["dpt"], "22");
        assert_eq!(e.json()["syn"], true);
    }

    /// LOG's flags come back from the rule's group; each adds what the kernel's LOG adds
    /// (nf_log_syslog.c): MACSRC/MACDST/MACPROTO first, OPT (...) after the IP fields,
    /// SEQ/ACK before WINDOW, the TCP OPT after the flags, UID/GID last.
    #[test]
    fn log_flags_add_the_kernels_fields() {
        for flags in [0, 0x01, 0x02, 0x04, 0x08, 0x20, 0x2f] {
            assert_eq!(
                log_flags(super::super::exprs::log_group(flags)),
                Some(flags)
            );
        }
        assert_eq!(log_flags(LOG_GROUP - 1), None);
        let mut p = [0u8; 24 + 24];
        p[0] = 0x46;
        p[2..4].copy_from_slice(&48u16.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[20..24].copy_from_slice(&[0x94, 0x04, 0, 0]);
        let t = &mut p[24..];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&22u16.to_be_bytes());
        t[4..8].copy_from_slice(&1000u32.to_be_bytes());
        t[12] = 6 << 4;
        t[13] = 0x02;
        t[14..16].copy_from_slice(&512u16.to_be_bytes());
        t[20..24].copy_from_slice(&[2, 4, 5, 0xb4]);
        let hw = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
        let uid = 33u32.to_be_bytes();
        let a: HashMap<u16, &[u8]> = [
            (NFULA_PAYLOAD, &p[..]),
            (NFULA_HWHEADER, &hw[..]),
            (NFULA_UID, &uid[..]),
            (NFULA_GID, &uid[..]),
        ]
        .into_iter()
        .collect();
        let line = |flags| event(libc::AF_INET as u8, flags, &a).unwrap().line();
        assert_eq!(
            line(0x2f),
            "IN= OUT= MACSRC=02:00:00:00:00:01 MACDST=02:00:00:00:00:02 MACPROTO=0800 SRC=10.0.0.1 DST=10.0.0.2 LEN=48 TOS=0x00 PREC=0x00 TTL=64 ID=0 OPT (94040000) PROTO=TCP SPT=40000 DPT=22 SEQ=1000 ACK=0 WINDOW=512 SYN OPT (020405B4) UID=33 GID=33"
        );
        assert_eq!(
            line(0),
            "IN= OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=48 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=TCP SPT=40000 DPT=22 WINDOW=512 SYN"
        );
    }

    #[test]
    fn rate_limit_allows_the_burst_then_the_rate() {
        let mut r = RateLimit::new(2.0, 3);
        let t0 = Instant::now();
        let allowed = (0..10).filter(|_| r.allow("x", t0)).count();
        assert_eq!(allowed, 3);
        assert_eq!(r.suppressed["x"], 7);
        assert!(r.allow("x", t0 + Duration::from_millis(600)));
        assert!(!r.allow("x", t0 + Duration::from_millis(600)));
        assert!(r.allow("other", t0), "buckets are per prefix");
    }
}
