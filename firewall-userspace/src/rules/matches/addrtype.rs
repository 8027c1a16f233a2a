//! `-m addrtype [!] --src-type T[,T] [!] --dst-type T[,T] [--limit-iface-in|-out]`: the
//! routing type of the source or destination address (libxt_addrtype.c, revision 1),
//! judged by netfilter's FIB lookup (`fib daddr type local`). Docker's `--dst-type LOCAL`.

use serde::{Deserialize, Serialize};

use super::{Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

/// Route types by RTN_* number, as iptables names them.
pub const TYPES: [&str; 12] = [
    "UNSPEC",
    "UNICAST",
    "LOCAL",
    "BROADCAST",
    "ANYCAST",
    "MULTICAST",
    "BLACKHOLE",
    "UNREACHABLE",
    "PROHIBIT",
    "THROW",
    "NAT",
    "XRESOLVE",
];

/// Types as bits (`1 << RTN_*`), and whether `!` came before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Types {
    pub bits: u16,
    pub negated: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrType {
    pub src: Option<Types>,
    pub dst: Option<Types>,
    pub limit_in: bool,
    pub limit_out: bool,
}

pub const MODULE: Module = Module {
    name: "addrtype",
    options: &[
        ("--src-type", "--src-type"),
        ("--dst-type", "--dst-type"),
        ("--limit-iface-in", "--limit-iface-in"),
        ("--limit-iface-out", "--limit-iface-out"),
    ] as Options,
    take,
    required: "addrtype: you must specify --src-type or --dst-type",
    defaults: None,
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    let mut m = match current {
        Some(NfMatch::AddrType(m)) => m,
        _ => AddrType::default(),
    };
    match opt {
        "--limit-iface-in" | "--limit-iface-out" => {
            if negated {
                return Err(format!("addrtype: option \"{opt}\" cannot be inverted."));
            }
            if opt.ends_with("in") {
                m.limit_in = true;
            } else {
                m.limit_out = true;
            }
            if m.limit_in && m.limit_out {
                return Err(
                    "addrtype: you can't specify both --limit-iface-in and --limit-iface-out"
                        .into(),
                );
            }
        }
        _ => {
            let text = value()?;
            let mut bits = 0u16;
            for name in text.split(',') {
                let i = TYPES
                    .iter()
                    .position(|t| t.eq_ignore_ascii_case(name))
                    .ok_or_else(|| format!("addrtype: bad type \"{name}\""))?;
                bits |= 1 << i;
            }
            // One type, or none of several: a disjunction of types has no single test.
            if !negated && bits.count_ones() > 1 {
                return Err(format!(
                    "addrtype: several types without `!' (\"{text}\") are not supported by this version of fwctl: write one rule per type"
                ));
            }
            let slot = if opt == "--src-type" {
                &mut m.src
            } else {
                &mut m.dst
            };
            if slot.is_some() {
                return Err(format!("addrtype: option \"{opt}\" can only be used once."));
            }
            *slot = Some(Types { bits, negated });
        }
    }
    Ok((NfMatch::AddrType(m), false))
}

impl Types {
    fn text(self) -> String {
        TYPES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.bits & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The RTN_* numbers.
    pub fn numbers(self) -> impl Iterator<Item = u32> {
        (0..TYPES.len() as u32).filter(move |i| self.bits & (1 << i) != 0)
    }
}

impl AddrType {
    pub fn list_text(self) -> String {
        let mut out = " ADDRTYPE match".to_string();
        for (what, t) in [("src-type", self.src), ("dst-type", self.dst)] {
            if let Some(t) = t {
                let bang = if t.negated { "!" } else { "" };
                out.push_str(&format!(" {what} {bang}{}", t.text()));
            }
        }
        if self.limit_in {
            out.push_str(" limit-in");
        }
        if self.limit_out {
            out.push_str(" limit-out");
        }
        out
    }

    pub fn save_text(self) -> String {
        let mut out = vec!["-m addrtype".to_string()];
        for (opt, t) in [("--src-type", self.src), ("--dst-type", self.dst)] {
            if let Some(t) = t {
                let bang = if t.negated { "! " } else { "" };
                out.push(format!("{bang}{opt} {}", t.text()));
            }
        }
        if self.limit_in {
            out.push("--limit-iface-in".into());
        }
        if self.limit_out {
            out.push("--limit-iface-out".into());
        }
        out.join(" ")
    }
}
