//! `-L` and `-S` output, laid out byte for byte as iptables 1.8 lays it out (the iptables on
//! the test machines is the oracle), so eyes and scripts used to iptables keep working.

use std::{fmt::Write, net::IpAddr};

use firewall_common::Counter;

use crate::rules::{
    parse::ListOptions, services, Chain, ChainRules, Cidr, Family, FamilyRules, RuleSpec,
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
};

/// Counters of one chain: its policy and each rule, in order.
pub struct ChainCounters {
    pub policy: Counter,
    pub rules: Vec<Counter>,
}

/// `-L [CHAIN]`. `counters` gives each chain's counters.
pub fn list(
    family: Family,
    rules: &FamilyRules,
    only: Option<Chain>,
    opts: ListOptions,
    counters: &dyn Fn(Chain) -> ChainCounters,
) -> String {
    let mut out = String::new();
    let chains = Chain::ALL
        .into_iter()
        .filter(|c| only.is_none_or(|o| o == *c));
    for (i, chain) in chains.enumerate() {
        if i > 0 {
            out.push('\n');
        }
        list_chain(
            &mut out,
            family,
            chain,
            rules.chain(chain),
            opts,
            &counters(chain),
        );
    }
    out
}

fn list_chain(
    out: &mut String,
    family: Family,
    chain: Chain,
    rules: &ChainRules,
    opts: ListOptions,
    counters: &ChainCounters,
) {
    let _ = write!(out, "Chain {} (policy {}", chain, rules.policy.name());
    if opts.verbose {
        let _ = write!(
            out,
            " {}packets, {}bytes",
            num_inline(counters.policy.packets, opts),
            num_inline(counters.policy.bytes, opts)
        );
    }
    out.push_str(")\n");

    // Header: the same columns as a rule, with their titles.
    if opts.line_numbers {
        let _ = write!(out, "{:<4} ", "num");
    }
    if opts.verbose {
        if opts.exact {
            let _ = write!(out, "{:>8} {:>10} ", "pkts", "bytes");
        } else {
            let _ = write!(out, "{:>5} {:>5} ", "pkts", "bytes");
        }
    }
    let _ = write!(out, "{:<9}  {:<5}opt", "target", "prot");
    if opts.verbose {
        let _ = write!(out, " {:<6} {:<6} ", "in", "out");
    }
    let _ = writeln!(out, " {:<19}  {:<19} ", "source", "destination");

    for (i, rule) in rules.rules.iter().enumerate() {
        let count = counters.rules.get(i).copied().unwrap_or_default();
        if opts.line_numbers {
            let _ = write!(out, "{:<4} ", i + 1);
        }
        if opts.verbose {
            out.push_str(&num_column(count.packets, opts));
            out.push_str(&num_column(count.bytes, opts));
        }
        let spec = &rule.spec;
        let _ = write!(
            out,
            "{:<9}  {:<4} -- ",
            spec.target.name(),
            proto_column(spec.proto, opts.numeric)
        );
        if opts.verbose {
            let any = if opts.numeric { "*" } else { "any" };
            let _ = write!(
                out,
                " {:<6} {:<6} ",
                spec.in_iface.as_deref().unwrap_or(any),
                any
            );
        }
        let _ = write!(
            out,
            " {:<19}  {:<19} ",
            addr_column(spec.src, family, opts.numeric),
            addr_column(spec.dst, family, opts.numeric)
        );
        out.push_str(&ports_column(spec, opts.numeric));
        out.push('\n');
    }
}

/// xtables_print_num: counts in a column, with K/M/G/T above 99999 unless `-x`.
fn num_column(n: u64, opts: ListOptions) -> String {
    if opts.exact {
        return format!("{n:>8} ");
    }
    let (value, suffix) = scaled(n);
    match suffix {
        None => format!("{value:>5} "),
        Some(s) => format!("{value:>4}{s} "),
    }
}

/// The same numbers inside the policy line, without padding.
fn num_inline(n: u64, opts: ListOptions) -> String {
    if opts.exact {
        return format!("{n} ");
    }
    match scaled(n) {
        (value, None) => format!("{value} "),
        (value, Some(s)) => format!("{value}{s} "),
    }
}

/// Rounds as iptables does: each step adds 500 before dividing by 1000.
fn scaled(n: u64) -> (u64, Option<char>) {
    if n <= 99_999 {
        return (n, None);
    }
    let mut value = n;
    for suffix in ['K', 'M', 'G'] {
        value = (value + 500) / 1000;
        if value <= 9999 {
            return (value, Some(suffix));
        }
    }
    ((value + 500) / 1000, Some('T'))
}

fn proto_column(proto: Option<u8>, numeric: bool) -> String {
    // iptables 1.8.9 prints the protocol number under -n.
    let number = proto.unwrap_or(0);
    if numeric {
        return number.to_string();
    }
    proto_name(number)
        .map(str::to_string)
        .unwrap_or_else(|| number.to_string())
}

/// iptables' names: its own for the common ones, /etc/protocols for the rest.
fn proto_name(proto: u8) -> Option<&'static str> {
    match proto {
        0 => Some("all"),
        IPPROTO_ICMP => Some("icmp"),
        IPPROTO_TCP => Some("tcp"),
        IPPROTO_UDP => Some("udp"),
        IPPROTO_ICMPV6 => Some("ipv6-icmp"),
        other => services::proto_name(other),
    }
}

fn addr_column(cidr: Option<Cidr>, family: Family, numeric: bool) -> String {
    match cidr {
        None if !numeric => "anywhere".to_string(),
        None => match family {
            Family::V4 => "0.0.0.0/0".to_string(),
            Family::V6 => "::/0".to_string(),
        },
        Some(c) => cidr_text(c, false),
    }
}

/// `10.0.0.0/8`, and a host without its `/32` in listings (`-S` always writes the prefix).
fn cidr_text(cidr: Cidr, always_prefix: bool) -> String {
    let max = match cidr.addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    if cidr.prefix == max && !always_prefix {
        cidr.addr.to_string()
    } else {
        format!("{}/{}", cidr.addr, cidr.prefix)
    }
}

fn ports_column(spec: &RuleSpec, numeric: bool) -> String {
    let proto = match spec.proto {
        Some(IPPROTO_TCP) => "tcp",
        Some(IPPROTO_UDP) => "udp",
        _ => return String::new(),
    };
    if spec.sport.is_none() && spec.dport.is_none() {
        return String::new();
    }
    let port = |p: u16| {
        (!numeric)
            .then(|| services::name_by_port(p, proto))
            .flatten()
            .map(str::to_string)
            .unwrap_or_else(|| p.to_string())
    };
    let mut out = format!(" {proto}");
    for (name, range) in [("spt", spec.sport), ("dpt", spec.dport)] {
        match range {
            Some(r) if r.min == r.max => {
                let _ = write!(out, " {name}:{}", port(r.min));
            }
            Some(r) => {
                let _ = write!(out, " {name}s:{}:{}", port(r.min), port(r.max));
            }
            None => {}
        }
    }
    out
}

/// `-S [CHAIN]`: policies, then each rule as the `-A` command that recreates it.
pub fn list_rules(rules: &FamilyRules, only: Option<Chain>) -> String {
    let mut out = String::new();
    let chains: Vec<Chain> = Chain::ALL
        .into_iter()
        .filter(|c| only.is_none_or(|o| o == *c))
        .collect();
    for &chain in &chains {
        let _ = writeln!(out, "-P {} {}", chain, rules.chain(chain).policy.name());
    }
    for &chain in &chains {
        for rule in &rules.chain(chain).rules {
            let _ = writeln!(out, "-A {} {}", chain, rule_args(&rule.spec));
        }
    }
    out
}

/// A rule's options in iptables-save order: addresses, interface, protocol, matches, target.
pub fn rule_args(spec: &RuleSpec) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(c) = spec.src {
        parts.push(format!("-s {}", cidr_text(c, true)));
    }
    if let Some(c) = spec.dst {
        parts.push(format!("-d {}", cidr_text(c, true)));
    }
    if let Some(i) = &spec.in_iface {
        parts.push(format!("-i {i}"));
    }
    if let Some(p) = spec.proto {
        let name = proto_name(p)
            .map(str::to_string)
            .unwrap_or_else(|| p.to_string());
        parts.push(format!("-p {name}"));
        if spec.sport.is_some() || spec.dport.is_some() {
            parts.push(format!("-m {name}"));
        }
    }
    for (opt, range) in [("--sport", spec.sport), ("--dport", spec.dport)] {
        match range {
            Some(r) if r.min == r.max => parts.push(format!("{opt} {}", r.min)),
            Some(r) => parts.push(format!("{opt} {}:{}", r.min, r.max)),
            None => {}
        }
    }
    parts.push(format!("-j {}", spec.target.name()));
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_columns_round_as_iptables() {
        let o = ListOptions {
            verbose: true,
            ..Default::default()
        };
        let cases = [
            (0, "    0 "),
            (99_999, "99999 "),
            (100_000, " 100K "),
            (123_456, " 123K "),
            (98_765_432, "  99M "),
            (12_345_678_901, "  12G "),
            (1_234_567_890_123, "1235G "),
        ];
        for (n, want) in cases {
            assert_eq!(num_column(n, o), want, "{n}");
        }
        let x = ListOptions {
            verbose: true,
            exact: true,
            ..Default::default()
        };
        assert_eq!(num_column(98_765_432, x), "98765432 ");
        assert_eq!(num_inline(123_456, o), "123K ");
    }
}
