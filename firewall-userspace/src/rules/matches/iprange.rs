//! `-m iprange [!] --src-range A-B [!] --dst-range A-B`: addresses in inclusive ranges
//! (libxt_iprange.c, revision 1). Each range carries its own `!`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub from: IpAddr,
    pub to: IpAddr,
    pub negated: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRange {
    pub src: Option<Range>,
    pub dst: Option<Range>,
}

pub const MODULE: Module = Module {
    name: "iprange",
    options: &[
        ("--src-range", "--src-range"),
        ("--dst-range", "--dst-range"),
    ] as Options,
    take,
    required: "iprange match: option \"--src-range\" or \"--dst-range\" must be specified",
    defaults: None,
};

fn parse_addr(text: &str, family: Family) -> Option<IpAddr> {
    let a: IpAddr = text.parse().ok()?;
    (a.is_ipv4() == (family == Family::V4)).then_some(a)
}

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    family: Family,
) -> Result<(NfMatch, bool), String> {
    let mut m = match current {
        Some(NfMatch::IpRange(m)) => m,
        _ => IpRange::default(),
    };
    let text = value()?;
    let bad = || format!("iprange: bad range `{text}': FROM-TO, addresses of one family");
    let (from, to) = text.split_once('-').ok_or_else(bad)?;
    let (from, to) = (
        parse_addr(from, family).ok_or_else(bad)?,
        parse_addr(to, family).ok_or_else(bad)?,
    );
    let range = Some(Range { from, to, negated });
    let slot = if opt == "--src-range" {
        &mut m.src
    } else {
        &mut m.dst
    };
    if slot.is_some() {
        return Err(format!("iprange: option \"{opt}\" can only be used once."));
    }
    *slot = range;
    Ok((NfMatch::IpRange(m), false))
}

impl IpRange {
    pub fn list_text(self) -> String {
        let mut out = String::new();
        for (what, r) in [("source", self.src), ("destination", self.dst)] {
            if let Some(r) = r {
                let bang = if r.negated { "! " } else { "" };
                out.push_str(&format!(" {what} IP range {bang}{}-{}", r.from, r.to));
            }
        }
        out
    }

    pub fn save_text(self) -> String {
        let mut out = vec!["-m iprange".to_string()];
        for (opt, r) in [("--src-range", self.src), ("--dst-range", self.dst)] {
            if let Some(r) = r {
                let bang = if r.negated { "! " } else { "" };
                out.push(format!("{bang}{opt} {}-{}", r.from, r.to));
            }
        }
        out.join(" ")
    }
}
