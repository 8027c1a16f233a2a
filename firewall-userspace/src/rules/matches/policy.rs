//! `-m policy --dir in|out --pol ipsec|none`: whether the packet was decapsulated from
//! (`in`) or is about to be encapsulated by (`out`) an IPsec policy (libxt_policy.c), as
//! IPsec gateways write it around their NAT and forwarding rules. nftables says the same
//! with `meta secpath exists` (in) and `rt ipsec exists` (out). The element options
//! (`--strict`, `--reqid`, `--spi`, `--proto`, `--mode`, `--tunnel-src/dst`, `--next`) are
//! refused for now.

use serde::{Deserialize, Serialize};

use super::{Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `--dir out` (else `in`); None until given.
    pub out: Option<bool>,
    /// `--pol ipsec` (else `none`); None until given.
    pub ipsec: Option<bool>,
}

pub const MODULE: Module = Module {
    name: "policy",
    options: &[
        ("--dir", "--dir"),
        ("--pol", "--pol"),
        ("--strict", "--strict"),
        ("--reqid", "--reqid"),
        ("--spi", "--spi"),
        ("--proto", "--proto"),
        ("--mode", "--mode"),
        ("--tunnel-src", "--tunnel-src"),
        ("--tunnel-dst", "--tunnel-dst"),
        ("--next", "--next"),
    ] as Options,
    take,
    required: "policy match: neither --dir in nor --dir out specified",
    defaults: None,
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    let mut p = match current {
        Some(NfMatch::Policy(p)) => p,
        _ => Policy::default(),
    };
    if negated {
        return Err(format!("policy match: can't invert {opt} option"));
    }
    match opt {
        "--dir" => {
            if p.out.is_some() {
                return Err("policy match: double --dir option".into());
            }
            p.out = Some(match value()?.as_str() {
                "in" => false,
                "out" => true,
                other => return Err(format!("policy_parse: bad --dir argument `{other}'")),
            });
        }
        "--pol" => {
            if p.ipsec.is_some() {
                return Err("policy match: double --pol option".into());
            }
            p.ipsec = Some(match value()?.as_str() {
                "ipsec" => true,
                "none" => false,
                other => return Err(format!("policy_parse: bad --pol argument `{other}'")),
            });
        }
        _ => {
            return Err(format!(
                "policy {opt} is not supported by this version of fwctl (only --dir and --pol)"
            ))
        }
    }
    Ok((NfMatch::Policy(p), false))
}

impl Policy {
    /// iptables' final check: both options given.
    pub fn check(&self) -> Result<(), String> {
        if self.out.is_none() {
            return Err(MODULE.required.into());
        }
        if self.ipsec.is_none() {
            return Err("policy match: --pol ipsec or --pol none is required".into());
        }
        Ok(())
    }

    pub fn dir(&self) -> &'static str {
        if self.out == Some(true) {
            "out"
        } else {
            "in"
        }
    }

    fn pol(&self) -> &'static str {
        if self.ipsec == Some(true) {
            "ipsec"
        } else {
            "none"
        }
    }

    pub fn list_text(&self) -> String {
        format!(" policy match dir {} pol {}", self.dir(), self.pol())
    }

    pub fn save_text(&self) -> String {
        format!("-m policy --dir {} --pol {}", self.dir(), self.pol())
    }
}
