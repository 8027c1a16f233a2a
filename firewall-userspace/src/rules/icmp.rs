//! ICMP and ICMPv6 type names, as iptables' icmp and icmp6 matches know them.

/// (name, type, code or None for every code).
const ICMP: &[(&str, u8, Option<u8>)] = &[
    ("echo-reply", 0, None),
    ("pong", 0, None),
    ("destination-unreachable", 3, None),
    ("network-unreachable", 3, Some(0)),
    ("host-unreachable", 3, Some(1)),
    ("protocol-unreachable", 3, Some(2)),
    ("port-unreachable", 3, Some(3)),
    ("fragmentation-needed", 3, Some(4)),
    ("source-route-failed", 3, Some(5)),
    ("network-unknown", 3, Some(6)),
    ("host-unknown", 3, Some(7)),
    ("network-prohibited", 3, Some(9)),
    ("host-prohibited", 3, Some(10)),
    ("TOS-network-unreachable", 3, Some(11)),
    ("TOS-host-unreachable", 3, Some(12)),
    ("communication-prohibited", 3, Some(13)),
    ("host-precedence-violation", 3, Some(14)),
    ("precedence-cutoff", 3, Some(15)),
    ("source-quench", 4, None),
    ("redirect", 5, None),
    ("network-redirect", 5, Some(0)),
    ("host-redirect", 5, Some(1)),
    ("TOS-network-redirect", 5, Some(2)),
    ("TOS-host-redirect", 5, Some(3)),
    ("echo-request", 8, None),
    ("ping", 8, None),
    ("router-advertisement", 9, None),
    ("router-solicitation", 10, None),
    ("time-exceeded", 11, None),
    ("ttl-exceeded", 11, None),
    ("ttl-zero-during-transit", 11, Some(0)),
    ("ttl-zero-during-reassembly", 11, Some(1)),
    ("parameter-problem", 12, None),
    ("ip-header-bad", 12, Some(0)),
    ("required-option-missing", 12, Some(1)),
    ("timestamp-request", 13, None),
    ("timestamp-reply", 14, None),
    ("address-mask-request", 17, None),
    ("address-mask-reply", 18, None),
];

const ICMPV6: &[(&str, u8, Option<u8>)] = &[
    ("destination-unreachable", 1, None),
    ("no-route", 1, Some(0)),
    ("communication-prohibited", 1, Some(1)),
    ("beyond-scope", 1, Some(2)),
    ("address-unreachable", 1, Some(3)),
    ("port-unreachable", 1, Some(4)),
    ("failed-policy", 1, Some(5)),
    ("reject-route", 1, Some(6)),
    ("packet-too-big", 2, None),
    ("time-exceeded", 3, None),
    ("ttl-exceeded", 3, None),
    ("ttl-zero-during-transit", 3, Some(0)),
    ("ttl-zero-during-reassembly", 3, Some(1)),
    ("parameter-problem", 4, None),
    ("bad-header", 4, Some(0)),
    ("unknown-header-type", 4, Some(1)),
    ("unknown-option", 4, Some(2)),
    ("echo-request", 128, None),
    ("ping", 128, None),
    ("echo-reply", 129, None),
    ("pong", 129, None),
    ("mld-listener-query", 130, None),
    ("mld-listener-report", 131, None),
    ("mld-listener-done", 132, None),
    ("mld-listener-reduction", 132, None),
    ("router-solicitation", 133, None),
    ("router-advertisement", 134, None),
    ("neighbour-solicitation", 135, None),
    ("neighbor-solicitation", 135, None),
    ("neighbour-advertisement", 136, None),
    ("neighbor-advertisement", 136, None),
    ("redirect", 137, None),
];

fn table(v6: bool) -> &'static [(&'static str, u8, Option<u8>)] {
    if v6 {
        ICMPV6
    } else {
        ICMP
    }
}

/// `TYPE[/CODE]`, a name, or `any` (IPv4 only, as type 255): (type, code_min, code_max).
pub fn parse(text: &str, v6: bool) -> Option<(u8, u8, u8)> {
    if text == "any" && !v6 {
        return Some((255, 0, 255));
    }
    if let Some(&(_, t, code)) = table(v6)
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(text))
    {
        return Some(match code {
            Some(c) => (t, c, c),
            None => (t, 0, 255),
        });
    }
    match text.split_once('/') {
        Some((t, c)) => {
            let c = c.parse().ok()?;
            Some((t.parse().ok()?, c, c))
        }
        None => Some((text.parse().ok()?, 0, 255)),
    }
}

/// The name iptables prints without `-n`: the first entry for the type and code.
pub fn name(kind: u8, code_min: u8, code_max: u8, v6: bool) -> Option<&'static str> {
    if !v6 && kind == 255 && code_min == 0 && code_max == 255 {
        return Some("any");
    }
    let code = (code_min == code_max).then_some(code_min);
    let whole = code_min == 0 && code_max == 255;
    table(v6)
        .iter()
        .find(|(_, t, c)| *t == kind && ((whole && c.is_none()) || (c.is_some() && *c == code)))
        .map(|(n, _, _)| *n)
}
