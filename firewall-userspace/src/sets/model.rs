//! Sets as the operator sees them (ipset's types, members and options), with no kernel
//! detail: parsing and writing members in ipset's syntax, and the registry the state file
//! keeps.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use serde::{Deserialize, Serialize};

use crate::rules::{services, Family, IPPROTO_TCP, IPPROTO_UDP};

/// ipset's set types fwctl implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SetKind {
    /// `hash:ip`: single addresses.
    HashIp,
    /// `hash:net`: prefixes of any length but 0.
    HashNet,
    /// `hash:ip,port`: an address, a protocol and a port.
    HashIpPort,
}

impl SetKind {
    pub const ALL: [SetKind; 3] = [SetKind::HashIp, SetKind::HashNet, SetKind::HashIpPort];

    pub fn name(self) -> &'static str {
        match self {
            SetKind::HashIp => "hash:ip",
            SetKind::HashNet => "hash:net",
            SetKind::HashIpPort => "hash:ip,port",
        }
    }

    pub fn from_name(name: &str) -> Option<SetKind> {
        SetKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The revision ipset 7.17 lists for the type.
    pub fn revision(self) -> u8 {
        match self {
            SetKind::HashIp => 6,
            SetKind::HashNet | SetKind::HashIpPort => 7,
        }
    }

    /// How many `src`/`dst` flags `--match-set` takes for it.
    pub fn dimensions(self) -> usize {
        match self {
            SetKind::HashIpPort => 2,
            _ => 1,
        }
    }
}

/// ipset's names of the families.
pub fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "inet",
        Family::V6 => "inet6",
    }
}

pub fn family_from_name(name: &str) -> Option<Family> {
    match name {
        "inet" | "ipv4" => Some(Family::V4),
        "inet6" | "ipv6" => Some(Family::V6),
        _ => None,
    }
}

/// ipset's defaults and limits.
pub const DEFAULT_HASHSIZE: u32 = 1024;
pub const DEFAULT_MAXELEM: u32 = 65536;
/// Timeouts in seconds, as ipset bounds them.
pub const MAX_TIMEOUT: u32 = 2_147_483;
/// ipset's IPSET_MAXNAMELEN less the NUL.
pub const MAX_NAME_LEN: usize = 31;
/// A member written as a range (`10.0.0.0/16` in a hash:ip, `80-90` as ports) becomes at
/// most this many members.
pub const MAX_EXPANSION: u128 = 65_536;

/// One member: the address (an IPv4 address in the low 32 bits), its prefix length, and
/// for `hash:ip,port` the protocol and port (0 otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    pub addr: u128,
    pub prefix: u8,
    pub proto: u8,
    pub port: u16,
}

impl Member {
    /// First and last address the member covers.
    pub fn range(&self, family: Family) -> (u128, u128) {
        let host_bits = (family.max_prefix() - self.prefix) as u32;
        let span = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        (self.addr, self.addr | span)
    }

    pub fn ip(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(self.addr as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(self.addr)),
        }
    }
}

/// Members of one set and when each expires (`bpf_ktime_get_ns` time), 0 for never.
pub type Members = BTreeMap<Member, u64>;

/// Whether a member (or piece) with this expiry is still in its set at `now`: 0 never
/// expires (firewall-common `SET_NO_EXPIRY`, as XDP reads it).
pub fn live_at(expiry: u64, now: u64) -> bool {
    expiry == firewall_common::SET_NO_EXPIRY || expiry > now
}

/// Protocols a `hash:ip,port` member may name, as ipset spells them.
const PORT_PROTOS: [(&str, u8); 4] = [
    ("tcp", IPPROTO_TCP),
    ("udp", IPPROTO_UDP),
    ("sctp", 132),
    ("udplite", 136),
];

fn proto_name(proto: u8) -> &'static str {
    PORT_PROTOS
        .iter()
        .find(|(_, p)| *p == proto)
        .map_or("tcp", |(n, _)| n)
}

/// `addr` with the bits past `prefix` cleared.
pub fn network(addr: u128, prefix: u8, family: Family) -> u128 {
    let host_bits = (family.max_prefix() - prefix) as u32;
    if host_bits >= 128 {
        0
    } else {
        addr & !((1u128 << host_bits) - 1)
    }
}

/// The members of `members` that strictly contain `member` (same protocol and port), the
/// outermost first.
pub fn containing<'a>(
    members: &'a Members,
    member: &Member,
    family: Family,
) -> impl Iterator<Item = Member> + 'a {
    let m = *member;
    (1..m.prefix)
        .map(move |len| Member {
            addr: network(m.addr, len, family),
            prefix: len,
            ..m
        })
        .filter(|outer| members.contains_key(outer))
}

fn parse_addr(text: &str, family: Family) -> Result<u128, String> {
    let wrong = || {
        format!(
            "cannot parse {text}: resolving to {} address failed",
            match family {
                Family::V4 => "IPv4",
                Family::V6 => "IPv6",
            }
        )
    };
    match (family, text.parse::<IpAddr>().map_err(|_| wrong())?) {
        (Family::V4, IpAddr::V4(a)) => Ok(u32::from(a) as u128),
        (Family::V6, IpAddr::V6(a)) => Ok(u128::from(a)),
        _ => Err(wrong()),
    }
}

/// `ADDR[/LEN]`: the address with its host bits cleared, and the length.
fn parse_cidr(text: &str, family: Family) -> Result<(u128, u8), String> {
    let (addr, prefix) = match text.split_once('/') {
        None => (text, family.max_prefix()),
        Some((a, p)) => {
            let len = p
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= family.max_prefix())
                .ok_or_else(|| {
                    format!("the value of the CIDR parameter of the IP address is invalid: {p}")
                })?;
            (a, len)
        }
    };
    Ok((network(parse_addr(addr, family)?, prefix, family), prefix))
}

/// `[PROTO:]PORT[-PORT]`: the protocol and the ports (TCP when none is named, as ipset).
fn parse_ports(text: &str) -> Result<(u8, u16, u16), String> {
    let (proto_text, ports) = match text.split_once(':') {
        Some((p, ports)) => (p, ports),
        None => ("tcp", text),
    };
    let proto = PORT_PROTOS
        .iter()
        .find(|(n, _)| *n == proto_text)
        .map(|(_, p)| *p)
        .ok_or_else(|| {
            format!(
                "protocol `{proto_text}' is not supported by fwctl: use tcp, udp, sctp or udplite"
            )
        })?;
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .or_else(|| services::port_by_name(p, proto_text))
            .ok_or_else(|| format!("cannot parse `{p}' as a {proto_text} port"))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(ports)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(format!(
            "invalid port range {ports}: the first port is above the second"
        ));
    }
    Ok((proto, lo, hi))
}

/// A member as `ipset add` takes it; ranges (a prefix in a `hash:ip`, a port range) give
/// several members, as in ipset.
pub fn parse_member(text: &str, kind: SetKind, family: Family) -> Result<Vec<Member>, String> {
    let max = family.max_prefix();
    match kind {
        SetKind::HashNet => {
            let (addr, prefix) = parse_cidr(text, family)?;
            if prefix == 0 {
                return Err(format!(
                    "{text}: a hash:net member needs a prefix length of 1 to {max}"
                ));
            }
            Ok(vec![Member {
                addr,
                prefix,
                proto: 0,
                port: 0,
            }])
        }
        SetKind::HashIp => {
            if text.contains(',') {
                return Err(format!("{text}: a hash:ip member is one address"));
            }
            let (addr, prefix) = parse_cidr(text, family)?;
            expand(addr, prefix, family, |a| Member {
                addr: a,
                prefix: max,
                proto: 0,
                port: 0,
            })
        }
        SetKind::HashIpPort => {
            let (ip, ports) = text
                .split_once(',')
                .ok_or_else(|| format!("Second element is missing from {text}."))?;
            let (addr, prefix) = parse_cidr(ip, family)?;
            let (proto, lo, hi) = parse_ports(ports)?;
            let mut out = Vec::new();
            for port in lo..=hi {
                out.extend(expand(addr, prefix, family, |a| Member {
                    addr: a,
                    prefix: max,
                    proto,
                    port,
                })?);
                if out.len() as u128 > MAX_EXPANSION {
                    break;
                }
            }
            if out.len() as u128 > MAX_EXPANSION {
                return Err(format!(
                    "{text} is more than {MAX_EXPANSION} members: add them in parts"
                ));
            }
            Ok(out)
        }
    }
}

/// Every address of a prefix, as members.
fn expand(
    addr: u128,
    prefix: u8,
    family: Family,
    member: impl Fn(u128) -> Member,
) -> Result<Vec<Member>, String> {
    let host_bits = (family.max_prefix() - prefix) as u32;
    if host_bits > 16 {
        return Err(format!(
            "/{prefix} is more than {MAX_EXPANSION} addresses: use a hash:net set for networks"
        ));
    }
    Ok((0..1u128 << host_bits).map(|i| member(addr + i)).collect())
}

/// A member as ipset lists and saves it.
pub fn format_member(m: &Member, kind: SetKind, family: Family) -> String {
    let ip = m.ip(family);
    match kind {
        SetKind::HashIp => ip.to_string(),
        SetKind::HashNet if m.prefix == family.max_prefix() => ip.to_string(),
        SetKind::HashNet => format!("{ip}/{}", m.prefix),
        SetKind::HashIpPort => format!("{ip},{}:{}", proto_name(m.proto), m.port),
    }
}

/// A set as created: its type and options, and the storage its members are in now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetDef {
    pub name: String,
    pub kind: SetKind,
    pub family: Family,
    /// Default timeout of members in seconds; None: the set has no timeouts (ipset's
    /// `timeout` option absent), and members cannot have one.
    pub timeout: Option<u32>,
    pub maxelem: u32,
    /// Kept only to be listed and saved as given: the kernel sizes its structures itself.
    pub hashsize: u32,
    pub storage: u32,
}

impl SetDef {
    /// ipset's `Header:` and the options of a `create` line, after the type.
    pub fn header(&self) -> String {
        let mut out = format!(
            "family {} hashsize {} maxelem {}",
            family_name(self.family),
            self.hashsize,
            self.maxelem
        );
        if let Some(t) = self.timeout {
            out.push_str(&format!(" timeout {t}"));
        }
        out
    }

    /// Whether `other` was created with the same type and options (ipset's test for `create`
    /// with -exist, and what `swap` needs of type and family).
    pub fn same_options(&self, other: &SetDef) -> bool {
        (
            self.kind,
            self.family,
            self.timeout,
            self.maxelem,
            self.hashsize,
        ) == (
            other.kind,
            other.family,
            other.timeout,
            other.maxelem,
            other.hashsize,
        )
    }
}

/// What a storage holds, so that its members can be found and removed after the set it
/// belonged to has moved to another storage or gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageInfo {
    pub kind: SetKind,
    pub family: Family,
    pub timeouts: bool,
    /// The netfilter set that holds its members.
    pub nft_name: String,
}

/// Every set of the namespace, in order of creation (ipset lists them so).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub sets: Vec<SetDef>,
    /// Storages that exist in the kernel or on disk, live or waiting to be removed.
    pub storages: BTreeMap<u32, StorageInfo>,
    /// Storage ids are never reused: an id names one set's members at one time.
    pub next_storage: u32,
    /// Storages no set uses (replaced, destroyed) or not yet used (being loaded): their
    /// members are removed at the start of the next set command, after the kernel's rules
    /// are made to agree with the state.
    pub scrap: Vec<u32>,
    /// Storages whose members are gone but whose netfilter set may still be referred to by
    /// the idle generation's rules; deleted when that generation is next rewritten.
    pub nft_retired: Vec<u32>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<&SetDef> {
        self.sets.iter().find(|s| s.name == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut SetDef> {
        self.sets.iter_mut().find(|s| s.name == name)
    }

    /// A new storage for a set of `def`'s type, recorded as scrap until a set takes it.
    pub fn new_storage(&mut self, def: &SetDef) -> u32 {
        let id = self.next_storage.max(1);
        self.next_storage = id + 1;
        self.storages.insert(
            id,
            StorageInfo {
                kind: def.kind,
                family: def.family,
                timeouts: def.timeout.is_some(),
                nft_name: format!("set{id}-{}", def.name),
            },
        );
        self.scrap.push(id);
        id
    }

    /// Marks a storage as used by a set.
    pub fn adopt(&mut self, id: u32) {
        self.scrap.retain(|s| *s != id);
    }

    /// Marks a storage as no longer used.
    pub fn discard(&mut self, id: u32) {
        if !self.scrap.contains(&id) {
            self.scrap.push(id);
        }
    }
}

/// ipset's limits on set names.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "set name `{name}' must be 1 to {MAX_NAME_LEN} characters"
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("set name `{name}' contains whitespace"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str, kind: SetKind, family: Family) -> String {
        let m = parse_member(text, kind, family).unwrap();
        assert_eq!(m.len(), 1, "{text}");
        format_member(&m[0], kind, family)
    }

    #[test]
    fn members_read_and_write_as_ipset_does() {
        use Family::*;
        use SetKind::*;
        assert_eq!(one("1.2.3.4", HashIp, V4), "1.2.3.4");
        assert_eq!(one("10.1.2.3/8", HashNet, V4), "10.0.0.0/8");
        assert_eq!(one("10.1.2.3/32", HashNet, V4), "10.1.2.3");
        assert_eq!(one("1.2.3.4,80", HashIpPort, V4), "1.2.3.4,tcp:80");
        assert_eq!(one("1.2.3.4,udp:53", HashIpPort, V4), "1.2.3.4,udp:53");
        assert_eq!(one("1.2.3.4,udp:domain", HashIpPort, V4), "1.2.3.4,udp:53");
        assert_eq!(one("2001:db8::1", HashIp, V6), "2001:db8::1");
        assert_eq!(one("2001:db8::1/32", HashNet, V6), "2001:db8::/32");
        assert_eq!(
            one("2001:db8::1,sctp:9", HashIpPort, V6),
            "2001:db8::1,sctp:9"
        );
        assert_eq!(parse_member("10.0.0.0/30", HashIp, V4).unwrap().len(), 4);
        assert_eq!(
            parse_member("1.2.3.4,80-82", HashIpPort, V4).unwrap().len(),
            3
        );
    }

    #[test]
    fn bad_members_say_why() {
        use Family::*;
        use SetKind::*;
        let err = |t, k, f| parse_member(t, k, f).unwrap_err();
        assert!(err("bogus", HashNet, V4).contains("resolving to IPv4 address failed"));
        assert!(err("2001:db8::1", HashIp, V4).contains("IPv4"));
        assert!(err("10.0.0.0/33", HashNet, V4).contains("CIDR"));
        assert!(err("0.0.0.0/0", HashNet, V4).contains("prefix length"));
        assert!(err("1.2.3.4", HashIpPort, V4).contains("Second element is missing"));
        assert!(err("1.2.3.4,icmp:ping", HashIpPort, V4).contains("not supported"));
        assert!(err("1.2.3.4,90-80", HashIpPort, V4).contains("above"));
        assert!(err("10.0.0.0/8", HashIp, V4).contains("hash:net"));
    }

    #[test]
    fn ranges_cover_their_addresses() {
        let m = parse_member("10.0.0.0/8", SetKind::HashNet, Family::V4).unwrap()[0];
        assert_eq!(m.range(Family::V4), (0x0a00_0000, 0x0aff_ffff));
        let m = parse_member("::/1", SetKind::HashNet, Family::V6).unwrap()[0];
        assert_eq!(m.range(Family::V6), (0, u128::MAX >> 1));
    }
}
