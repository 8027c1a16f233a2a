//! Port names from /etc/services and protocol names from /etc/protocols, as iptables reads
//! them for `--dport ssh` / `-p gre` and for listings.

use std::{collections::HashMap, sync::OnceLock};

struct Services {
    by_name: HashMap<(String, &'static str), u16>,
    by_port: HashMap<(u16, &'static str), String>,
}

fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    SERVICES.get_or_init(|| {
        let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
        parse(&text)
    })
}

/// The lines of /etc/services and /etc/protocols: `name value [aliases...] [# comment]`.
fn entries(text: &str) -> impl Iterator<Item = (&str, &str, Vec<&str>)> {
    text.lines().filter_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let name = fields.next()?;
        let value = fields.next()?;
        Some((name, value, std::iter::once(name).chain(fields).collect()))
    })
}

fn parse(text: &str) -> Services {
    let mut s = Services {
        by_name: HashMap::new(),
        by_port: HashMap::new(),
    };
    for (name, port_proto, names) in entries(text) {
        let Some((port, proto)) = port_proto.split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        let proto: &'static str = match proto {
            "tcp" => "tcp",
            "udp" => "udp",
            _ => continue,
        };
        // The first name listed for a port is the one getservbyport returns.
        s.by_port
            .entry((port, proto))
            .or_insert_with(|| name.to_string());
        for alias in names {
            s.by_name.entry((alias.to_string(), proto)).or_insert(port);
        }
    }
    s
}

pub fn port_by_name(name: &str, proto: &str) -> Option<u16> {
    services()
        .by_name
        .get(&(name.to_string(), proto_key(proto)?))
        .copied()
}

pub fn name_by_port(port: u16, proto: &str) -> Option<&'static str> {
    services()
        .by_port
        .get(&(port, proto_key(proto)?))
        .map(String::as_str)
}

fn proto_key(proto: &str) -> Option<&'static str> {
    match proto {
        "tcp" => Some("tcp"),
        "udp" => Some("udp"),
        _ => None,
    }
}

struct Protocols {
    by_name: HashMap<String, u8>,
    by_number: HashMap<u8, String>,
}

fn protocols() -> &'static Protocols {
    static PROTOCOLS: OnceLock<Protocols> = OnceLock::new();
    PROTOCOLS.get_or_init(|| {
        let text = std::fs::read_to_string("/etc/protocols").unwrap_or_default();
        parse_protocols(&text)
    })
}

fn parse_protocols(text: &str) -> Protocols {
    let mut p = Protocols {
        by_name: HashMap::new(),
        by_number: HashMap::new(),
    };
    for (name, number, names) in entries(text) {
        let Ok(number) = number.parse::<u8>() else {
            continue;
        };
        p.by_number
            .entry(number)
            .or_insert_with(|| name.to_string());
        for alias in names {
            p.by_name
                .entry(alias.to_ascii_lowercase())
                .or_insert(number);
        }
    }
    p
}

/// The name getprotobynumber gives, which iptables prints in `-L` and `-S`.
pub fn proto_name(number: u8) -> Option<&'static str> {
    protocols().by_number.get(&number).map(String::as_str)
}

pub fn proto_by_name(name: &str) -> Option<u8> {
    protocols().by_name.get(&name.to_ascii_lowercase()).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_aliases_and_first_name_per_port() {
        let s = parse("ssh 22/tcp # SSH\nsmtp 25/tcp mail\nfoo 25/tcp\nbad line\nx 7/sctp\n");
        assert_eq!(s.by_name.get(&("ssh".into(), "tcp")), Some(&22));
        assert_eq!(s.by_name.get(&("mail".into(), "tcp")), Some(&25));
        assert_eq!(
            s.by_port.get(&(25, "tcp")).map(String::as_str),
            Some("smtp")
        );
        assert!(!s.by_name.contains_key(&("x".into(), "tcp")));
    }

    #[test]
    fn reads_protocols() {
        let p = parse_protocols("gre\t47\tGRE\t\t# GRE\nipv6-icmp 58 IPv6-ICMP\n");
        assert_eq!(p.by_number.get(&47).map(String::as_str), Some("gre"));
        assert_eq!(p.by_name.get("ipv6-icmp"), Some(&58));
        assert_eq!(p.by_name.get("gre"), Some(&47));
    }
}
