//! `-L` and `-S` output, laid out byte for byte as iptables 1.8 (nf_tables backend) lays it
//! out; the iptables on the test machines is the oracle the tests compare against.

use std::{fmt::Write, net::IpAddr};

use firewall_common::Counter;

use crate::rules::{
    ct_states_text, icmp,
    matches::NfMatch,
    parse::{ListOptions, TCP_FLAG_NAMES},
    ratelimit, save_string, services, Cidr, CtState, Family, FamilyRules, MultiportKind, Neg,
    PortRange, Rule, RuleSpec, Target, BARE, DEFAULT_LOG_LEVEL, IPPROTO_ICMP, IPPROTO_ICMPV6,
    IPPROTO_TCP, IPPROTO_UDP, LOG_FLAGS, LOG_LEVELS,
};

/// Gives a chain's counters by name.
pub type CountersOf<'a> = &'a dyn Fn(&str) -> ChainCounters;

/// Counters of one chain: its policy (built-in chains) and each rule, in order.
pub struct ChainCounters {
    pub policy: Counter,
    pub rules: Vec<Counter>,
}

/// The chains a listing covers: one by name, or every chain (built-ins first).
pub fn chain_names(rules: &FamilyRules, only: Option<&str>) -> Option<Vec<String>> {
    let all = rules
        .builtins()
        .iter()
        .map(|c| c.name().to_string())
        .chain(rules.user.iter().map(|u| u.name.clone()));
    match only {
        None => Some(all.collect()),
        Some(name) => rules.rules(name).map(|_| vec![name.to_string()]),
    }
}

/// `-L`. `counters` gives each chain's counters.
pub fn list(
    family: Family,
    rules: &FamilyRules,
    chains: &[String],
    opts: ListOptions,
    counters: &dyn Fn(&str) -> ChainCounters,
) -> String {
    let mut out = String::new();
    for (i, name) in chains.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        list_chain(&mut out, family, rules, name, opts, &counters(name));
    }
    out
}

fn list_chain(
    out: &mut String,
    family: Family,
    all: &FamilyRules,
    name: &str,
    opts: ListOptions,
    counters: &ChainCounters,
) {
    let _ = write!(out, "Chain {name} (");
    match all.builtin(name) {
        Some(c) => {
            let _ = write!(out, "policy {}", all.chain(c).policy.name());
            if opts.verbose {
                let _ = write!(
                    out,
                    " {}packets, {}bytes",
                    num_inline(counters.policy.packets, opts),
                    num_inline(counters.policy.bytes, opts)
                );
            }
        }
        None => {
            let _ = write!(out, "{} references", all.references(name));
        }
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
    let _ = write!(out, "{:<9}  {:<4} opt", "target", "prot");
    if opts.verbose {
        let _ = write!(out, " {:<6} {:<6} ", "in", "out");
    }
    let _ = writeln!(out, " {:<19}  {:<19} ", "source", "destination");

    let rules: &[Rule] = all.rules(name).map(Vec::as_slice).unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        let count = counters.rules.get(i).copied().unwrap_or_default();
        rule_line(out, family, i + 1, rule, count, opts);
    }
}

/// `-L CHAIN N`: the rule's line alone, as iptables prints it; nothing past the end.
pub fn list_one(
    family: Family,
    all: &FamilyRules,
    name: &str,
    n: usize,
    opts: ListOptions,
    counters: &ChainCounters,
) -> String {
    let mut out = String::new();
    if let Some(rule) = all.rules(name).and_then(|r| r.get(n - 1)) {
        let count = counters.rules.get(n - 1).copied().unwrap_or_default();
        rule_line(&mut out, family, n, rule, count, opts);
    }
    out
}

fn rule_line(
    out: &mut String,
    family: Family,
    number: usize,
    rule: &Rule,
    count: Counter,
    opts: ListOptions,
) {
    if opts.line_numbers {
        let _ = write!(out, "{number:<4} ");
    }
    if opts.verbose {
        out.push_str(&num_column(count.packets, opts));
        out.push_str(&num_column(count.bytes, opts));
    }
    let spec = &rule.spec;
    let (proto_neg, proto) = match &spec.proto {
        Some(p) => (p.negated, Some(p.value)),
        None => (false, None),
    };
    let _ = write!(
        out,
        "{:<9} {}{:<4} {} ",
        spec.target.name(),
        if proto_neg { '!' } else { ' ' },
        proto_column(proto, opts.numeric),
        match fragment(spec) {
            None => "--",
            Some(false) => "-f",
            Some(true) => "!f",
        }
    );
    if opts.verbose {
        let any = if opts.numeric { "*" } else { "any" };
        let iface = match &spec.in_iface {
            Some(i) => format!("{}{}", bang(i.negated), i.value),
            None => any.to_string(),
        };
        let oface = match &spec.out_iface {
            Some(o) => format!("{}{}", bang(o.negated), o.value),
            None => any.to_string(),
        };
        let _ = write!(out, " {iface:<6} {oface:<6} ");
    }
    // The separator before an address is where its `!` goes.
    for (i, addr) in [&spec.src, &spec.dst].into_iter().enumerate() {
        let bang = if addr.as_ref().is_some_and(|a| a.negated) {
            '!'
        } else {
            ' '
        };
        let pad = if i == 0 { "" } else { " " };
        let _ = write!(
            out,
            "{pad}{bang}{:<19}",
            addr_column(addr, family, opts.numeric)
        );
    }
    out.push(' ');
    out.push_str(&matches_column(spec, family, opts.numeric));
    out.push('\n');
}

/// NFLOG's options as libxt_NFLOG prints them, `-L` (`dashes` empty) and save alike.
fn nflog_text(group: u16, prefix: &Option<String>, dashes: &str) -> String {
    let mut out = String::new();
    if let Some(p) = prefix {
        let _ = write!(out, " {dashes}nflog-prefix {}", save_string(p));
    }
    if group != 0 {
        let _ = write!(out, " {dashes}nflog-group {group}");
    }
    out
}

/// The matches' texts, keyed by module, in the order the rule gave its modules
/// (`RuleSpec::order`, as iptables keeps them), the others after in fwctl's own order.
fn in_given_order(order: &[String], mut segs: Vec<(&str, String)>) -> Vec<String> {
    let mut out = Vec::with_capacity(segs.len());
    for key in order {
        if let Some(at) = segs.iter().position(|(k, _)| k == key) {
            out.push(segs.remove(at).1);
        }
    }
    out.extend(segs.into_iter().map(|(_, text)| text));
    out
}

/// The protocol matches the rule gave without options (`-p tcp -m tcp`), each under its
/// own key in `RuleSpec::order`: ` tcp` in `-L`, `-m tcp` in the save.
fn bare_segs(spec: &RuleSpec, save: bool) -> Vec<(&str, String)> {
    spec.order
        .iter()
        .filter_map(|key| {
            let name = key.strip_prefix(BARE)?;
            let text = if save {
                format!("-m {name}")
            } else {
                format!(" {name}")
            };
            Some((key.as_str(), text))
        })
        .collect()
}

fn is_conntrack(m: &NfMatch) -> bool {
    matches!(m, NfMatch::Conntrack(_))
}

/// `-f` (Some(false)) or `! -f` (Some(true)).
fn fragment(spec: &RuleSpec) -> Option<bool> {
    spec.nf
        .iter()
        .find(|m| m.value == NfMatch::Fragment)
        .map(|m| m.negated)
}

fn bang(negated: bool) -> &'static str {
    if negated {
        "!"
    } else {
        ""
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

fn addr_column(cidr: &Option<Neg<Cidr>>, family: Family, numeric: bool) -> String {
    match cidr {
        None if !numeric => "anywhere".to_string(),
        None => match family {
            Family::V4 => "0.0.0.0/0".to_string(),
            Family::V6 => "::/0".to_string(),
        },
        Some(c) if numeric => cidr_text(c.value, false),
        // iptables names the address and keeps the prefix a number.
        Some(c) => {
            let text = cidr_text(c.value, false);
            let name = super::names::address(c.value.addr);
            match text.split_once('/') {
                Some((_, prefix)) => format!("{name}/{prefix}"),
                None => name,
            }
        }
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

fn l4_name(spec: &RuleSpec) -> Option<&'static str> {
    match spec.proto.as_ref().filter(|p| !p.negated).map(|p| p.value) {
        Some(IPPROTO_TCP) => Some("tcp"),
        Some(IPPROTO_UDP) => Some("udp"),
        _ => None,
    }
}

fn port_text(p: u16, proto: &str, numeric: bool) -> String {
    (!numeric)
        .then(|| services::name_by_port(p, proto))
        .flatten()
        .map(str::to_string)
        .unwrap_or_else(|| p.to_string())
}

fn range_text(r: PortRange, proto: &str, numeric: bool) -> String {
    if r.min == r.max {
        port_text(r.min, proto, numeric)
    } else {
        format!(
            "{}:{}",
            port_text(r.min, proto, numeric),
            port_text(r.max, proto, numeric)
        )
    }
}

fn tcp_flags_text(bits: u8, numeric: bool) -> String {
    if numeric {
        return format!("0x{bits:02X}");
    }
    if bits == 0 {
        return "NONE".to_string();
    }
    TCP_FLAG_NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// The per-match descriptions after the destination column, in iptables' order.
fn matches_column(spec: &RuleSpec, family: Family, numeric: bool) -> String {
    // Each match's text under its module's name, put in the order the rule gave them.
    let mut segs: Vec<(&str, String)> = Vec::new();
    let mut out = String::new();
    if let Some(proto) = l4_name(spec) {
        let mut parts = String::new();
        for (name, range) in [("spt", &spec.sport), ("dpt", &spec.dport)] {
            if let Some(r) = range {
                let plural = if r.value.min == r.value.max { "" } else { "s" };
                let _ = write!(
                    parts,
                    " {name}{plural}:{}{}",
                    bang(r.negated),
                    range_text(r.value, proto, numeric)
                );
            }
        }
        if let Some(f) = &spec.tcp_flags {
            let _ = write!(
                parts,
                " flags:{}{}/{}",
                bang(f.negated),
                tcp_flags_text(f.value.mask, numeric),
                tcp_flags_text(f.value.comp, numeric)
            );
        }
        if !parts.is_empty() {
            let _ = write!(out, " {proto}{parts}");
        }
        segs.push((proto, std::mem::take(&mut out)));
    }
    segs.extend(bare_segs(spec, false));
    if let Some(i) = &spec.icmp {
        let v6 = family == Family::V6;
        let t = i.value;
        let name = (!numeric)
            .then(|| icmp::name(t.kind, t.code_min, t.code_max, v6))
            .flatten();
        let (short, long) = if v6 {
            ("ipv6-icmp", "ipv6-icmptype")
        } else {
            ("icmp", "icmptype")
        };
        match name {
            Some(n) => {
                let _ = write!(out, " {short} {}{n}", bang(i.negated));
            }
            None => {
                if i.negated {
                    let _ = write!(out, " {short} !type {}", t.kind);
                } else {
                    let _ = write!(out, " {long} {}", t.kind);
                }
                if !(t.code_min == 0 && t.code_max == 255) {
                    if t.code_min == t.code_max {
                        let _ = write!(out, " code {}", t.code_min);
                    } else {
                        let _ = write!(out, " codes {}-{}", t.code_min, t.code_max);
                    }
                }
            }
        }
        segs.push((if v6 { "icmp6" } else { "icmp" }, std::mem::take(&mut out)));
    }
    if let Some(m) = &spec.multiport {
        let proto = l4_name(spec).unwrap_or("tcp");
        let kind = match m.value.kind {
            MultiportKind::Sports => "sports",
            MultiportKind::Dports => "dports",
            MultiportKind::Ports => "ports",
        };
        let list: Vec<String> = m
            .value
            .ports
            .iter()
            .map(|r| range_text(*r, proto, numeric))
            .collect();
        let neg = if m.negated { " !" } else { "" };
        let _ = write!(out, " multiport {kind} {neg}{}", list.join(","));
        segs.push(("multiport", std::mem::take(&mut out)));
    }
    if let Some(c) = &spec.ctstate {
        let what = if c.value.legacy { "state" } else { "ctstate" };
        let neg = if c.negated { " !" } else { "" };
        let module = if c.value.legacy { "state" } else { "conntrack" };
        let _ = write!(out, "{neg} {what} {}", ct_states_text(c.value.states));
        segs.push((module, std::mem::take(&mut out)));
    }
    // The other `-m conntrack` matches go where the state's does when no order is kept.
    for m in spec.nf.iter().filter(|m| is_conntrack(&m.value)) {
        segs.push(("conntrack", m.value.list_text(m.negated, numeric)));
    }
    for m in &spec.sets {
        let neg = if m.negated { " !" } else { "" };
        segs.push((
            "set",
            format!("{neg} match-set {} {}", m.value.name, m.value.flags()),
        ));
    }
    for (module, one) in ratelimit::each(&spec.rate) {
        segs.push((module, ratelimit::list_text(&one)));
    }
    for m in spec.nf.iter().filter(|m| !is_conntrack(&m.value)) {
        segs.push((m.value.module(), m.value.list_text(m.negated, numeric)));
    }
    if let Some(c) = &spec.comment {
        segs.push(("comment", format!(" /* {c} */")));
    }
    let mut out: String = in_given_order(&spec.order, segs).concat();
    match &spec.target {
        Target::Snat(to) | Target::Dnat(to) => {
            let _ = write!(out, " to:{to}");
        }
        Target::Redirect(Some(ports)) => {
            let _ = write!(out, " redir ports {ports}");
        }
        Target::Masquerade(Some(ports)) => {
            let _ = write!(out, " masq ports: {ports}");
        }
        _ => {}
    }
    out.push_str(&spec.nat_flags.list_text());
    match &spec.target {
        Target::Reject(with, family) => {
            let _ = write!(out, " reject-with {}", with.name(*family));
        }
        Target::Mark(m) => out.push_str(&m.list_text()),
        Target::Nfqueue(q) => out.push_str(&q.list_text()),
        Target::Synproxy(s) => out.push_str(&s.list_text()),
        Target::Nflog { group, prefix } => out.push_str(&nflog_text(*group, prefix, "")),
        Target::Connmark(c) => out.push_str(&c.list_text()),
        Target::Tcpmss(t) => out.push_str(&t.list_text()),
        Target::Notrack { legacy: false } => out.push_str(" CT notrack"),
        Target::CtZone(z) => {
            let _ = write!(out, " CT {} {}", &z.option()[2..], z.zone);
        }
        Target::Checksum => out.push_str(" CHECKSUM fill"),
        Target::Set(st) => out.push_str(&st.list_text()),
        Target::Notrack { legacy: true } => out.push_str(" NOTRACK"),
        Target::Log(log) => {
            if numeric {
                let _ = write!(out, " LOG flags {} level {}", log.flags, log.level);
            } else {
                let _ = write!(out, " LOG level {}", LOG_LEVELS[log.level as usize & 7]);
                for (bit, _, word) in LOG_FLAGS {
                    if log.flags & bit != 0 {
                        let _ = write!(out, " {word}");
                    }
                }
            }
            if let Some(p) = &log.prefix {
                let _ = write!(out, " prefix \"{p}\"");
            }
        }
        _ => {}
    }
    out
}

/// `-S CHAIN N`: the rule as its `-A` command; nothing past the end.
pub fn list_rule_one(rules: &FamilyRules, name: &str, n: usize) -> String {
    rules
        .rules(name)
        .and_then(|r| r.get(n - 1))
        .map(|r| format!("{}\n", append_command(name, &r.spec)))
        .unwrap_or_default()
}

/// `-S [CHAIN]`: policies, new chains, then each rule as the `-A` command that recreates it.
pub fn list_rules(rules: &FamilyRules, chains: &[String]) -> String {
    let mut out = String::new();
    for name in chains {
        match rules.builtin(name) {
            Some(c) => {
                let _ = writeln!(out, "-P {} {}", name, rules.chain(c).policy.name());
            }
            None => {
                let _ = writeln!(out, "-N {name}");
            }
        }
    }
    for name in chains {
        for rule in rules.rules(name).into_iter().flatten() {
            let _ = writeln!(out, "{}", append_command(name, &rule.spec));
        }
    }
    out
}

/// `-L -o json` and `save -o json`: every chain with its policy, references and counters,
/// and each rule as its `-A` arguments with its counters. Zeros where no counters are given.
pub fn json(
    family: Family,
    rules: &FamilyRules,
    chains: &[String],
    counters: Option<&dyn Fn(&str) -> ChainCounters>,
) -> serde_json::Value {
    let chains: Vec<serde_json::Value> = chains
        .iter()
        .map(|name| {
            let c = counters.map(|f| f(name));
            let count = |i: Option<usize>| -> Counter {
                match (&c, i) {
                    (Some(c), None) => c.policy,
                    (Some(c), Some(i)) => c.rules.get(i).copied().unwrap_or_default(),
                    (None, _) => Counter::default(),
                }
            };
            let list: Vec<serde_json::Value> = rules
                .rules(name)
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, r)| {
                    let n = count(Some(i));
                    serde_json::json!({
                        "number": i + 1,
                        "rule": rule_args(&r.spec),
                        "target": r.spec.target.name(),
                        "comment": r.spec.comment,
                        "packets": n.packets,
                        "bytes": n.bytes,
                    })
                })
                .collect();
            let builtin = rules.builtin(name);
            let policy = count(None);
            serde_json::json!({
                "name": name,
                "policy": builtin.map(|c| rules.chain(c).policy.name()),
                "policy_packets": builtin.map(|_| policy.packets),
                "policy_bytes": builtin.map(|_| policy.bytes),
                "references": builtin.is_none().then(|| rules.references(name)),
                "rules": list,
            })
        })
        .collect();
    serde_json::json!({
        "family": family.label(),
        "table": rules.table.name(),
        "chains": chains,
    })
}

/// `save`: the iptables-save format, one section per table that exists
/// ([`FamilyRules::exists`]), as iptables-save shows only tables that exist. `counters` gives each
/// chain's counters for `-c`; without it every counter is written as [0:0], as
/// iptables-save does.
pub fn save(tables: &[(&FamilyRules, Option<CountersOf>)], date: &str) -> String {
    let mut out = String::new();
    for (rules, counters) in tables {
        if !rules.exists() {
            continue;
        }
        save_table(&mut out, rules, *counters, date);
    }
    out
}

fn save_table(
    out: &mut String,
    rules: &FamilyRules,
    counters: Option<&dyn Fn(&str) -> ChainCounters>,
    date: &str,
) {
    let _ = writeln!(
        out,
        "# Generated by fwctl save v{} on {date}",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(out, "*{}", rules.table.name());
    let chains = chain_names(rules, None).unwrap_or_default();
    let counted: Vec<Option<ChainCounters>> =
        chains.iter().map(|c| counters.map(|f| f(c))).collect();
    for (name, count) in chains.iter().zip(&counted) {
        let builtin = rules.builtin(name);
        let policy = builtin.map_or("-", |c| rules.chain(c).policy.name());
        let (p, b) = match (builtin, count) {
            (Some(_), Some(c)) => (c.policy.packets, c.policy.bytes),
            _ => (0, 0),
        };
        let _ = writeln!(out, ":{name} {policy} [{p}:{b}]");
    }
    for (name, count) in chains.iter().zip(&counted) {
        for (i, rule) in rules.rules(name).into_iter().flatten().enumerate() {
            if let Some(c) = count {
                let n = c.rules.get(i).copied().unwrap_or_default();
                let _ = write!(out, "[{}:{}] ", n.packets, n.bytes);
            }
            let _ = writeln!(out, "{}", append_command(name, &rule.spec));
        }
    }
    out.push_str("COMMIT\n");
    let _ = writeln!(out, "# Completed on {date}");
}

fn neg_opt(negated: bool, opt: &str, value: impl std::fmt::Display) -> String {
    format!("{}{opt} {value}", if negated { "! " } else { "" })
}

/// `-A CHAIN` and the rule's options; a rule that matches everything and has no target is
/// `-A CHAIN` alone, as iptables writes it.
pub fn append_command(chain: &str, spec: &RuleSpec) -> String {
    let args = rule_args(spec);
    if args.is_empty() {
        format!("-A {chain}")
    } else {
        format!("-A {chain} {args}")
    }
}

/// A rule's options in iptables-save order: addresses, interface, protocol, matches, target.
pub fn rule_args(spec: &RuleSpec) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(c) = &spec.src {
        parts.push(neg_opt(c.negated, "-s", cidr_text(c.value, true)));
    }
    if let Some(c) = &spec.dst {
        parts.push(neg_opt(c.negated, "-d", cidr_text(c.value, true)));
    }
    if let Some(i) = &spec.in_iface {
        parts.push(neg_opt(i.negated, "-i", &i.value));
    }
    if let Some(o) = &spec.out_iface {
        parts.push(neg_opt(o.negated, "-o", &o.value));
    }
    if let Some(p) = &spec.proto {
        let name = proto_name(p.value)
            .map(str::to_string)
            .unwrap_or_else(|| p.value.to_string());
        parts.push(neg_opt(p.negated, "-p", name));
    }
    if let Some(negated) = fragment(spec) {
        parts.push(if negated { "! -f" } else { "-f" }.to_string());
    }
    // Each match's options under its module's name, put in the order the rule gave them.
    let mut segs: Vec<(&str, String)> = Vec::new();
    let head = std::mem::take(&mut parts);
    if let Some(proto) = l4_name(spec) {
        if spec.sport.is_some() || spec.dport.is_some() || spec.tcp_flags.is_some() {
            parts.push(format!("-m {proto}"));
        }
        for (opt, range) in [("--sport", &spec.sport), ("--dport", &spec.dport)] {
            if let Some(r) = range {
                parts.push(neg_opt(r.negated, opt, range_text(r.value, proto, true)));
            }
        }
        if let Some(f) = &spec.tcp_flags {
            parts.push(neg_opt(
                f.negated,
                "--tcp-flags",
                format!(
                    "{} {}",
                    tcp_flags_text(f.value.mask, false),
                    tcp_flags_text(f.value.comp, false)
                ),
            ));
        }
        segs.push((proto, std::mem::take(&mut parts).join(" ")));
    }
    segs.extend(bare_segs(spec, true));
    if let Some(i) = &spec.icmp {
        let t = i.value;
        let (module, opt) = match spec.proto.as_ref().map(|p| p.value) {
            Some(IPPROTO_ICMPV6) => ("icmp6", "--icmpv6-type"),
            _ => ("icmp", "--icmp-type"),
        };
        let value = if t.kind == 255 && t.code_min == 0 && t.code_max == 255 && module == "icmp" {
            "any".to_string()
        } else if t.code_min == 0 && t.code_max == 255 {
            t.kind.to_string()
        } else {
            format!("{}/{}", t.kind, t.code_min)
        };
        segs.push((
            module,
            format!("-m {module} {}", neg_opt(i.negated, opt, value)),
        ));
    }
    if let Some(m) = &spec.multiport {
        let opt = match m.value.kind {
            MultiportKind::Sports => "--sports",
            MultiportKind::Dports => "--dports",
            MultiportKind::Ports => "--ports",
        };
        let proto = l4_name(spec).unwrap_or("tcp");
        let list: Vec<String> = m
            .value
            .ports
            .iter()
            .map(|r| range_text(*r, proto, true))
            .collect();
        segs.push((
            "multiport",
            format!("-m multiport {}", neg_opt(m.negated, opt, list.join(","))),
        ));
    }
    if let Some(Neg {
        value: CtState { states, legacy },
        negated,
    }) = &spec.ctstate
    {
        let (module, opt) = if *legacy {
            ("state", "--state")
        } else {
            ("conntrack", "--ctstate")
        };
        segs.push((
            module,
            format!(
                "-m {module} {}",
                neg_opt(*negated, opt, ct_states_text(*states))
            ),
        ));
    }
    for m in spec.nf.iter().filter(|m| is_conntrack(&m.value)) {
        segs.push(("conntrack", m.value.save_text(m.negated)));
    }
    for m in &spec.sets {
        let set = format!("{} {}", m.value.name, m.value.flags());
        segs.push((
            "set",
            format!("-m set {}", neg_opt(m.negated, "--match-set", set)),
        ));
    }
    for (module, one) in ratelimit::each(&spec.rate) {
        segs.push((module, ratelimit::save_text(&one).trim_start().to_string()));
    }
    for m in spec
        .nf
        .iter()
        .filter(|m| m.value != NfMatch::Fragment && !is_conntrack(&m.value))
    {
        segs.push((m.value.module(), m.value.save_text(m.negated)));
    }
    if let Some(c) = &spec.comment {
        segs.push((
            "comment",
            format!("-m comment --comment {}", save_string(c)),
        ));
    }
    parts = head;
    // A protocol match without options writes nothing.
    parts.extend(
        in_given_order(&spec.order, segs)
            .into_iter()
            .filter(|text| !text.is_empty()),
    );
    match &spec.target {
        Target::Count => {}
        Target::Notrack { legacy: true } => parts.push("-j NOTRACK".to_string()),
        Target::Notrack { legacy: false } => parts.push("-j CT --notrack".to_string()),
        Target::CtZone(z) => parts.push(format!("-j CT {} {}", z.option(), z.zone)),
        Target::Checksum => parts.push("-j CHECKSUM --checksum-fill".to_string()),
        Target::Set(st) => parts.push(format!("-j SET {}", st.save_text())),
        Target::Mark(m) => parts.push(format!("-j MARK {}", m.save_text())),
        Target::Nfqueue(q) => parts.push(format!("-j NFQUEUE {}", q.save_text())),
        Target::Synproxy(s) => parts.push(s.save_text()),
        Target::Nflog { group, prefix } => {
            parts.push(format!("-j NFLOG{}", nflog_text(*group, prefix, "--")))
        }
        Target::Connmark(c) => parts.push(format!("-j CONNMARK {}", c.save_text())),
        Target::Tcpmss(t) => parts.push(format!("-j TCPMSS {}", t.save_text())),
        t => parts.push(format!("-j {}", t.name())),
    }
    match &spec.target {
        Target::Snat(to) => parts.push(format!("--to-source {to}")),
        Target::Dnat(to) => parts.push(format!("--to-destination {to}")),
        Target::Redirect(Some(ports)) | Target::Masquerade(Some(ports)) => {
            parts.push(format!("--to-ports {ports}"))
        }
        _ => {}
    }
    parts.extend(spec.nat_flags.save_words().map(str::to_string));
    match &spec.target {
        Target::Reject(with, family) => parts.push(format!("--reject-with {}", with.name(*family))),
        Target::Log(log) => {
            if let Some(p) = &log.prefix {
                parts.push(format!("--log-prefix {}", save_string(p)));
            }
            if log.level != DEFAULT_LOG_LEVEL {
                parts.push(format!("--log-level {}", log.level));
            }
            for (bit, option, _) in LOG_FLAGS {
                if log.flags & bit != 0 {
                    parts.push(option.to_string());
                }
            }
        }
        _ => {}
    }
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

    /// Matches list and save in the order the rule gave them, as iptables keeps them
    /// (each pair checked against iptables 1.8.9's -S and -L -n).
    #[test]
    fn matches_keep_the_order_given() {
        let cases = [
            (
                "-A INPUT -m state --state NEW -m tcp -p tcp --dport 22 -j ACCEPT",
                "-p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT",
                " state NEW tcp dpt:22",
            ),
            (
                "-A INPUT -p tcp -m comment --comment x --dport 22 -j ACCEPT",
                "-p tcp -m comment --comment x -m tcp --dport 22 -j ACCEPT",
                " /* x */ tcp dpt:22",
            ),
            (
                "-A INPUT -p tcp --dport 22 -m state --state NEW -j ACCEPT",
                "-p tcp -m tcp --dport 22 -m state --state NEW -j ACCEPT",
                " tcp dpt:22 state NEW",
            ),
            (
                "-A INPUT -m mark --mark 1 -m conntrack --ctstate NEW -p udp --dport 53",
                "-p udp -m mark --mark 0x1 -m conntrack --ctstate NEW -m udp --dport 53",
                " mark match 0x1 ctstate NEW udp dpt:53",
            ),
        ];
        check_listed_forms(&cases);
    }

    /// Gives each line to the parser and compares its save and its `-L -n` text with
    /// iptables 1.8.9's, which `listed`'s and `saved`'s strings are copies of.
    fn check_listed_forms(cases: &[(&str, &str, &str)]) {
        use crate::rules::parse::{parse_args, Command};
        for &(line, saved, listed) in cases {
            let args: Vec<String> = line.split_whitespace().map(String::from).collect();
            let Command::Append(_, specs) = parse_args(&args).unwrap().command else {
                panic!("{line}");
            };
            assert_eq!(rule_args(&specs[0]), saved, "{line}");
            assert_eq!(
                matches_column(&specs[0], Family::V4, true),
                listed,
                "{line}"
            );
            // The save reads back as the same rule.
            let again: Vec<String> = format!("-A INPUT {saved}")
                .split_whitespace()
                .map(String::from)
                .collect();
            let Command::Append(_, back) = parse_args(&again).unwrap().command else {
                panic!("{saved}");
            };
            assert_eq!(rule_args(&back[0]), saved, "{saved} read back");
        }
    }

    /// A protocol match given without options (`-m tcp`, `-m udp`) stays in the listing,
    /// each where it was given; the options of several `-m tcp` are listed together at
    /// the first that had any. Each triple: the rule given, then iptables 1.8.9's (nf_tables)
    /// -S and -L -n of it.
    #[test]
    fn protocol_matches_without_options_are_listed_where_given() {
        let cases = [
            (
                "-A INPUT -p tcp -m tcp -j ACCEPT",
                "-p tcp -m tcp -j ACCEPT",
                " tcp",
            ),
            (
                "-A INPUT -m tcp -p tcp -j ACCEPT",
                "-p tcp -m tcp -j ACCEPT",
                " tcp",
            ),
            (
                "-A INPUT -p udp -m udp -j ACCEPT",
                "-p udp -m udp -j ACCEPT",
                " udp",
            ),
            (
                "-A INPUT -m tcp -p tcp --dport 22 -j ACCEPT",
                "-p tcp -m tcp --dport 22 -j ACCEPT",
                " tcp dpt:22",
            ),
            (
                "-A INPUT -p tcp -m tcp -m multiport ! --dports 22,80 -j DROP",
                "-p tcp -m tcp -m multiport ! --dports 22,80 -j DROP",
                " tcp multiport dports  !22,80",
            ),
            (
                "-A INPUT -p tcp -m multiport --dports 22,80 -m tcp -j DROP",
                "-p tcp -m multiport --dports 22,80 -m tcp -j DROP",
                " multiport dports 22,80 tcp",
            ),
            (
                "-A INPUT -m state --state NEW -m tcp -p tcp -j ACCEPT",
                "-p tcp -m state --state NEW -m tcp -j ACCEPT",
                " state NEW tcp",
            ),
            (
                "-A INPUT -p tcp -m tcp -m tcp -j ACCEPT",
                "-p tcp -m tcp -m tcp -j ACCEPT",
                " tcp tcp",
            ),
            (
                "-A INPUT -p tcp -m tcp --dport 22 -m tcp -j ACCEPT",
                "-p tcp -m tcp --dport 22 -m tcp -j ACCEPT",
                " tcp dpt:22 tcp",
            ),
            (
                "-A INPUT -p tcp --dport 22 -m tcp -j ACCEPT",
                "-p tcp -m tcp --dport 22 -m tcp -j ACCEPT",
                " tcp dpt:22 tcp",
            ),
            (
                "-A INPUT -p tcp -m tcp -m tcp --dport 22 -j ACCEPT",
                "-p tcp -m tcp -m tcp --dport 22 -j ACCEPT",
                " tcp tcp dpt:22",
            ),
            (
                "-A INPUT -p tcp -m tcp -m mark --mark 1 -m tcp --sport 1 -j ACCEPT",
                "-p tcp -m tcp -m mark --mark 0x1 -m tcp --sport 1 -j ACCEPT",
                " tcp mark match 0x1 tcp spt:1",
            ),
            (
                "-A INPUT -p tcp -m tcp --dport 22 -m mark --mark 1 -m tcp --sport 1 -j ACCEPT",
                "-p tcp -m tcp --sport 1 --dport 22 -m mark --mark 0x1 -j ACCEPT",
                " tcp spt:1 dpt:22 mark match 0x1",
            ),
            (
                "-A INPUT -p tcp -m mark --mark 1 -m tcp --dport 22 -m tcp -j ACCEPT",
                "-p tcp -m mark --mark 0x1 -m tcp --dport 22 -m tcp -j ACCEPT",
                " mark match 0x1 tcp dpt:22 tcp",
            ),
            (
                "-A INPUT -p tcp -m tcp -m multiport --dports 1,2 -m tcp --dport 3 -j ACCEPT",
                "-p tcp -m tcp -m multiport --dports 1,2 -m tcp --dport 3 -j ACCEPT",
                " tcp multiport dports 1,2 tcp dpt:3",
            ),
            (
                "-A INPUT -p tcp -m conntrack --ctstate NEW -m tcp -j ACCEPT",
                "-p tcp -m conntrack --ctstate NEW -m tcp -j ACCEPT",
                " ctstate NEW tcp",
            ),
            (
                "-A INPUT -p tcp -m tcp -m comment --comment y -j ACCEPT",
                "-p tcp -m tcp -m comment --comment y -j ACCEPT",
                " tcp /* y */",
            ),
            (
                "-A INPUT -p tcp -m tcp --syn -m tcp --dport 22 -j ACCEPT",
                "-p tcp -m tcp --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT",
                " tcp dpt:22 flags:0x17/0x02",
            ),
            (
                "-A INPUT -p udp -m udp --dport 53 -m udp -j ACCEPT",
                "-p udp -m udp --dport 53 -m udp -j ACCEPT",
                " udp dpt:53 udp",
            ),
            (
                "-A INPUT -p tcp --dport 22 -m tcp --sport 5 -j ACCEPT",
                "-p tcp -m tcp --sport 5 --dport 22 -j ACCEPT",
                " tcp spt:5 dpt:22",
            ),
        ];
        check_listed_forms(&cases);
    }

    #[test]
    fn strings_are_quoted_as_iptables_save_does() {
        assert_eq!(save_string("ssh"), "ssh");
        assert_eq!(save_string("hello world"), "\"hello world\"");
        assert_eq!(save_string("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(save_string("ssh:"), "\"ssh:\"");
        assert_eq!(save_string("it's"), "\"it\\'s\"");
    }
}
