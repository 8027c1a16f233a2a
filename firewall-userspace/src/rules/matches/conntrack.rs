//! `-m conntrack` with more than `--ctstate` (libxt_conntrack.c, revision 3): the
//! connection's original and reply tuples, protocol, status, time to expiry and the
//! packet's direction. Each option carries its own `!`.
//!
//! A `-m conntrack` whose only option is `--ctstate` is the rule's `ctstate`, which XDP
//! can judge; any other one is this match, netfilter's alone. xt_conntrack judges a packet
//! without a connection (INVALID, UNTRACKED) by `--ctstate` alone and ignores the other
//! options, while nftables' `ct` keys find nothing to compare: a state that accepts such
//! packets beside other options is refused rather than judged differently.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Module, NfMatch, Value};
use crate::rules::{
    model::{ct_states_text, Neg, PortRange, CT_INVALID, CT_UNTRACKED},
    options,
    parse::{parse_ctstates, parse_ports, parse_proto},
    Family,
};

/// An address and prefix length as written: xt_conntrack keeps the host bits (and
/// iptables prints them), comparing under the mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtAddr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// The kernel's `IPS_*` status bits `--ctstatus` names, in iptables' order.
pub const CT_STATUS: [(u32, &str); 4] = [
    (1, "EXPECTED"),
    (2, "SEEN_REPLY"),
    (4, "ASSURED"),
    (8, "CONFIRMED"),
];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtMatch {
    pub state: Option<Neg<u8>>,
    pub proto: Option<Neg<u8>>,
    /// Original source, original destination, reply source, reply destination.
    pub addrs: [Option<Neg<CtAddr>>; 4],
    /// Their ports (the tuple's `u.all`: ICMP's id for ICMP), same order.
    pub ports: [Option<Neg<PortRange>>; 4],
    pub status: Option<Neg<u32>>,
    /// Seconds to expiry, inclusive.
    pub expire: Option<Neg<(u32, u32)>>,
    /// `--ctdir REPLY` (true) or `ORIGINAL`.
    pub reply: Option<bool>,
}

/// The options' words in iptables' order (also the tuples' order in `addrs`/`ports`).
const ADDR_WORDS: [&str; 4] = ["ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst"];
const PORT_WORDS: [&str; 4] = [
    "ctorigsrcport",
    "ctorigdstport",
    "ctreplsrcport",
    "ctrepldstport",
];

pub const MODULE: Module = Module {
    name: "conntrack",
    options: options::CONNTRACK,
    take,
    required: "conntrack: At least one option is required",
    defaults: None,
};

fn parse_addr(text: &str, family: Family) -> Option<CtAddr> {
    let (a, mask) = match text.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (text, None),
    };
    let addr: IpAddr = a.parse().ok()?;
    if addr.is_ipv4() != (family == Family::V4) {
        return None;
    }
    let full = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match mask {
        None => full,
        Some(m) => match m.parse::<u8>() {
            Ok(p) if p <= full => p,
            Ok(_) => return None,
            // A dotted netmask, contiguous only.
            Err(_) if addr.is_ipv4() => {
                let bits = u32::from(m.parse::<std::net::Ipv4Addr>().ok()?);
                let ones = bits.leading_ones();
                (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)?
            }
            Err(_) => return None,
        },
    };
    Some(CtAddr { addr, prefix })
}

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    family: Family,
) -> Result<(NfMatch, bool), String> {
    let mut m = match current {
        Some(NfMatch::Conntrack(m)) => m,
        _ => CtMatch::default(),
    };
    let word = opt.trim_start_matches("--");
    let twice = || format!("conntrack: option \"{opt}\" can only be used once.");
    let text = value()?;
    let bad = |what: &str| format!("conntrack: bad {opt} `{text}': {what}");
    if let Some(i) = ADDR_WORDS.iter().position(|w| *w == word) {
        if m.addrs[i].is_some() {
            return Err(twice());
        }
        let value = parse_addr(&text, family).ok_or_else(|| {
            bad("an address of the rule's family, with an optional /prefix or netmask")
        })?;
        m.addrs[i] = Some(Neg { value, negated });
    } else if let Some(i) = PORT_WORDS.iter().position(|w| *w == word) {
        if m.ports[i].is_some() {
            return Err(twice());
        }
        let value = parse_ports(&text, "tcp").map_err(|e| e.message)?;
        m.ports[i] = Some(Neg { value, negated });
    } else {
        match word {
            "ctstate" => {
                if m.state.is_some() {
                    return Err(twice());
                }
                let value = parse_ctstates(&text).map_err(|e| e.message)?;
                m.state = Some(Neg { value, negated });
            }
            "ctproto" => {
                if m.proto.is_some() {
                    return Err(twice());
                }
                // `all` is protocol 0 to xt_conntrack: iptables saves it as `--ctproto 0`.
                let value = parse_proto(&text).map_err(|e| e.message)?.unwrap_or(0);
                m.proto = Some(Neg { value, negated });
            }
            "ctstatus" => {
                if m.status.is_some() {
                    return Err(twice());
                }
                let value = text.split(',').try_fold(0u32, |acc, name| {
                    if name.eq_ignore_ascii_case("NONE") {
                        return Ok(acc);
                    }
                    CT_STATUS
                        .iter()
                        .find(|(_, n)| n.eq_ignore_ascii_case(name))
                        .map(|(bit, _)| acc | bit)
                        .ok_or_else(|| {
                            bad("NONE, EXPECTED, SEEN_REPLY, ASSURED, CONFIRMED, comma-separated")
                        })
                })?;
                m.status = Some(Neg { value, negated });
            }
            "ctexpire" => {
                if m.expire.is_some() {
                    return Err(twice());
                }
                let number = |s: &str| s.parse::<u32>().map_err(|_| bad("SECONDS[:SECONDS]"));
                let value = match text.split_once(':') {
                    Some((lo, hi)) => (number(lo)?, number(hi)?),
                    None => (number(&text)?, number(&text)?),
                };
                m.expire = Some(Neg { value, negated });
            }
            "ctdir" => {
                if negated {
                    return Err("conntrack: option \"--ctdir\" cannot be inverted.".into());
                }
                if m.reply.is_some() {
                    return Err(twice());
                }
                m.reply = Some(if text.eq_ignore_ascii_case("ORIGINAL") {
                    false
                } else if text.eq_ignore_ascii_case("REPLY") {
                    true
                } else {
                    return Err(bad("ORIGINAL or REPLY"));
                });
            }
            _ => {
                return Err(format!(
                    "conntrack: {opt} is not supported by this version of fwctl"
                ))
            }
        }
    }
    Ok((NfMatch::Conntrack(m), false))
}

fn bang(negated: bool) -> &'static str {
    if negated {
        "! "
    } else {
        ""
    }
}

fn addr_text(a: CtAddr, numeric: bool) -> String {
    let full = if a.addr.is_ipv4() { 32 } else { 128 };
    if a.prefix == 0 && !numeric {
        "anywhere".into()
    } else if a.prefix == full {
        a.addr.to_string()
    } else {
        format!("{}/{}", a.addr, a.prefix)
    }
}

fn ports_text(p: PortRange) -> String {
    if p.min == p.max {
        p.min.to_string()
    } else {
        format!("{}:{}", p.min, p.max)
    }
}

fn status_text(status: u32) -> String {
    if status == 0 {
        return "NONE".into();
    }
    CT_STATUS
        .iter()
        .filter(|(b, _)| status & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

impl CtMatch {
    /// Whether only `--ctstate` was given (the rule's `ctstate`, which XDP can judge).
    pub fn only_state(&self) -> bool {
        self.state.is_some()
            && *self
                == CtMatch {
                    state: self.state.clone(),
                    ..CtMatch::default()
                }
    }

    /// Refuses a state that accepts packets without a connection beside other options
    /// (see the module's comment).
    pub fn check(&self) -> Result<(), String> {
        let Some(s) = &self.state else { return Ok(()) };
        let no_ct = CT_INVALID | CT_UNTRACKED;
        let accepts_no_ct = if s.negated {
            s.value & no_ct != no_ct
        } else {
            s.value & no_ct != 0
        };
        if accepts_no_ct && !self.only_state() {
            return Err(format!(
                "conntrack: {}--ctstate {} with other conntrack options: xt_conntrack ignores them for packets without a connection, which fwctl's nftables rules cannot say; give the state in a -m conntrack of its own",
                bang(s.negated),
                ct_states_text(s.value)
            ));
        }
        Ok(())
    }

    /// (word, negated, value) for each option given, in iptables' order.
    fn parts(&self, numeric: bool) -> Vec<(&'static str, bool, String)> {
        let mut out = Vec::new();
        if let Some(s) = &self.state {
            out.push(("ctstate", s.negated, ct_states_text(s.value)));
        }
        if let Some(p) = &self.proto {
            out.push(("ctproto", p.negated, p.value.to_string()));
        }
        for (word, a) in ADDR_WORDS.iter().zip(&self.addrs) {
            if let Some(a) = a {
                out.push((word, a.negated, addr_text(a.value, numeric)));
            }
        }
        for (word, p) in PORT_WORDS.iter().zip(&self.ports) {
            if let Some(p) = p {
                out.push((word, p.negated, ports_text(p.value)));
            }
        }
        if let Some(s) = &self.status {
            out.push(("ctstatus", s.negated, status_text(s.value)));
        }
        if let Some(Neg {
            value: (min, max),
            negated,
        }) = self.expire.clone()
        {
            let text = if min == max {
                min.to_string()
            } else {
                format!("{min}:{max}")
            };
            out.push(("ctexpire", negated, text));
        }
        if let Some(reply) = self.reply {
            let dir = if reply { "REPLY" } else { "ORIGINAL" };
            out.push(("ctdir", false, dir.to_string()));
        }
        out
    }

    pub fn list_text(&self, numeric: bool) -> String {
        self.parts(numeric)
            .into_iter()
            .map(|(word, negated, value)| format!(" {}{word} {value}", bang(negated)))
            .collect()
    }

    pub fn save_text(&self) -> String {
        let mut out = vec!["-m conntrack".to_string()];
        for (word, negated, value) in self.parts(true) {
            out.push(format!("{}--{word} {value}", bang(negated)));
        }
        out.join(" ")
    }
}
