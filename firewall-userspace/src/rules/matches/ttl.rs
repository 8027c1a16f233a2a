//! `-m ttl --ttl-eq|--ttl-lt|--ttl-gt N` (IPv4) and `-m hl --hl-eq|--hl-lt|--hl-gt N`
//! (IPv6): the time to live or hop limit (libipt_ttl.c, libip6t_hl.c). Only `--*-eq` may
//! be negated, as iptables allows.

use serde::{Deserialize, Serialize};

use super::{Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TtlOp {
    Eq,
    Lt,
    Gt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ttl {
    pub op: TtlOp,
    pub value: u8,
    /// `-m hl` (IPv6's hop limit).
    pub hl: bool,
}

pub const TTL: Module = Module {
    name: "ttl",
    options: &[
        ("--ttl-eq", "--ttl-eq"),
        ("--ttl-lt", "--ttl-lt"),
        ("--ttl-gt", "--ttl-gt"),
    ] as Options,
    take,
    required: "ttl match: one of --ttl-eq, --ttl-lt, --ttl-gt must be specified",
    defaults: None,
};

pub const HL: Module = Module {
    name: "hl",
    options: &[
        ("--hl-eq", "--hl-eq"),
        ("--hl-lt", "--hl-lt"),
        ("--hl-gt", "--hl-gt"),
    ] as Options,
    take,
    required: "hl match: one of --hl-eq, --hl-lt, --hl-gt must be specified",
    defaults: None,
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    family: Family,
) -> Result<(NfMatch, bool), String> {
    let hl = opt.starts_with("--hl");
    let module = if hl { "hl" } else { "ttl" };
    if (hl && family == Family::V4) || (!hl && family == Family::V6) {
        return Err(format!(
            "Couldn't load match `{module}': it is for {}",
            if hl { "ip6tables" } else { "iptables" }
        ));
    }
    if current.is_some() {
        return Err(format!("{module}: Only one of the options may be given"));
    }
    let op = match &opt[opt.len() - 2..] {
        "eq" => TtlOp::Eq,
        "lt" => TtlOp::Lt,
        _ => TtlOp::Gt,
    };
    if negated && op != TtlOp::Eq {
        return Err(format!("{module}: option \"{opt}\" cannot be inverted."));
    }
    let text = value()?;
    let value = text
        .parse::<u8>()
        .map_err(|_| format!("{module}: bad value for option \"{opt}\" `{text}': 0 to 255"))?;
    Ok((NfMatch::Ttl(Ttl { op, value, hl }), negated))
}

impl Ttl {
    pub fn list_text(self, negated: bool) -> String {
        let what = if self.hl { "HL" } else { "TTL" };
        let op = match (self.op, negated) {
            (TtlOp::Eq, false) => "==",
            (TtlOp::Eq, true) => "!=",
            (TtlOp::Lt, _) => "<",
            (TtlOp::Gt, _) => ">",
        };
        format!(" {what} match {what} {op} {}", self.value)
    }

    pub fn save_text(self, negated: bool) -> String {
        let module = if self.hl { "hl" } else { "ttl" };
        let op = match self.op {
            TtlOp::Eq => "eq",
            TtlOp::Lt => "lt",
            TtlOp::Gt => "gt",
        };
        let bang = if negated { "! " } else { "" };
        format!("-m {module} {bang}--{module}-{op} {}", self.value)
    }
}
