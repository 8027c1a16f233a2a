//! `-m connbytes [!] --connbytes FROM[:TO] --connbytes-dir original|reply|both
//! --connbytes-mode packets|bytes|avgpkt`: how much the packet's connection has carried so
//! far (libxt_connbytes.c), as QoS rules use it to tell bulk transfers from interactive
//! ones. netfilter runs the kernel's xt_connbytes through the compat expression; it turns
//! conntrack's accounting on for the namespace, as it does under iptables.

use serde::{Deserialize, Serialize};

use super::{Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connbytes {
    /// The range as the kernel keeps it: swapped (from > to) when negated.
    pub from: u64,
    pub to: u64,
    /// Index into [`MODES`] and [`DIRS`].
    pub mode: Option<u8>,
    pub dir: Option<u8>,
    /// `--connbytes` given.
    pub given: bool,
}

const MODES: [&str; 3] = ["packets", "bytes", "avgpkt"];
const DIRS: [&str; 3] = ["original", "reply", "both"];

pub const MODULE: Module = Module {
    name: "connbytes",
    options: &[
        ("--connbytes", "--connbytes"),
        ("--connbytes-dir", "--connbytes-dir"),
        ("--connbytes-mode", "--connbytes-mode"),
    ] as Options,
    take,
    required: "connbytes: option \"--connbytes\" must be specified",
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
        Some(NfMatch::Connbytes(m)) => m,
        _ => Connbytes::default(),
    };
    if negated && opt != "--connbytes" {
        return Err(format!("connbytes: option \"{opt}\" cannot be inverted."));
    }
    let given = match opt {
        "--connbytes" => m.given,
        "--connbytes-dir" => m.dir.is_some(),
        _ => m.mode.is_some(),
    };
    if given {
        return Err(format!(
            "connbytes: option \"{opt}\" can only be used once."
        ));
    }
    let text = value()?;
    let pick = |names: &[&str; 3]| {
        names
            .iter()
            .position(|n| *n == text)
            .map(|i| i as u8)
            .ok_or_else(|| {
                format!(
                    "connbytes: bad value for {opt} `{text}': {}",
                    names.join(", ")
                )
            })
    };
    match opt {
        "--connbytes-dir" => m.dir = Some(pick(&DIRS)?),
        "--connbytes-mode" => m.mode = Some(pick(&MODES)?),
        _ => {
            let bad = || {
                format!("connbytes: bad value for option \"{opt}\", or out of range (0-18446744073709551615).")
            };
            let num = |s: &str, empty: u64| {
                if s.is_empty() {
                    Ok(empty)
                } else {
                    s.parse::<u64>().map_err(|_| bad())
                }
            };
            let (from, to) = match text.split_once(':') {
                Some((a, b)) => (num(a, 0)?, num(b, u64::MAX)?),
                None if text.is_empty() => return Err(bad()),
                None => (num(&text, 0)?, u64::MAX),
            };
            if to < from {
                return Err(format!("{from} should be less than {to}"));
            }
            (m.from, m.to) = if negated { (to, from) } else { (from, to) };
            m.given = true;
        }
    }
    Ok((NfMatch::Connbytes(m), false))
}

impl Connbytes {
    /// libxt_connbytes' final check: all three options are mandatory.
    pub fn check(&self) -> Result<(), String> {
        for (missing, name) in [
            (!self.given, "--connbytes"),
            (self.dir.is_none(), "--connbytes-dir"),
            (self.mode.is_none(), "--connbytes-mode"),
        ] {
            if missing {
                return Err(format!("connbytes: option \"{name}\" must be specified"));
            }
        }
        Ok(())
    }

    /// The range as libxt_connbytes prints it (` !` when swapped; no `:TO` at the top).
    fn range(&self, dashes: &str) -> String {
        let (negated, from, to) = if self.from > self.to {
            (true, self.to, self.from)
        } else {
            (false, self.from, self.to)
        };
        let mut text = format!(
            "{}{dashes}connbytes {from}",
            if negated { "! " } else { "" }
        );
        if to != 0 && to < u64::MAX {
            text += &format!(":{to}");
        }
        text
    }

    fn names(&self) -> (&'static str, &'static str) {
        (
            MODES[self.mode.unwrap_or(0) as usize],
            DIRS[self.dir.unwrap_or(0) as usize],
        )
    }

    pub fn list_text(&self) -> String {
        let (mode, dir) = self.names();
        format!(
            " {} connbytes mode {mode} connbytes direction {dir}",
            self.range("")
        )
    }

    pub fn save_text(&self) -> String {
        let (mode, dir) = self.names();
        format!(
            "-m connbytes {} --connbytes-mode {mode} --connbytes-dir {dir}",
            self.range("--")
        )
    }

    /// struct xt_connbytes_info: from, to, what, direction; 24 bytes.
    pub fn xt_info(&self) -> Vec<u8> {
        let mut info = Vec::with_capacity(24);
        info.extend(self.from.to_ne_bytes());
        info.extend(self.to.to_ne_bytes());
        info.push(self.mode.unwrap_or(0));
        info.push(self.dir.unwrap_or(0));
        info.resize(24, 0);
        info
    }
}
