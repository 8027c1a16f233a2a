//! `-m length [!] --length MIN[:MAX]`: the IP packet's length, headers included
//! (libxt_length.c; xt_length reads IPv4's total length, IPv6's payload length plus 40).

use serde::{Deserialize, Serialize};

use super::{once, Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Length {
    pub min: u16,
    pub max: u16,
}

pub const MODULE: Module = Module {
    name: "length",
    options: &[("--length", "--length")] as Options,
    take,
    required: "length match: option \"--length\" must be specified",
    defaults: None,
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    once("length", &current, opt)?;
    let text = value()?;
    let bad = || format!("length: bad value for --length `{text}': N or MIN:MAX, 0 to 65535");
    let num = |s: &str, empty: u16| {
        if s.is_empty() {
            Ok(empty)
        } else {
            s.parse::<u16>().map_err(|_| bad())
        }
    };
    let (min, max) = match text.split_once(':') {
        Some((lo, hi)) => (num(lo, 0)?, num(hi, u16::MAX)?),
        None => {
            let n = num(&text, 0).and_then(|n| if text.is_empty() { Err(bad()) } else { Ok(n) })?;
            (n, n)
        }
    };
    if min > max {
        return Err(bad());
    }
    Ok((NfMatch::Length(Length { min, max }), negated))
}

impl Length {
    fn text(self) -> String {
        if self.min == self.max {
            self.min.to_string()
        } else {
            format!("{}:{}", self.min, self.max)
        }
    }

    pub fn list_text(self, negated: bool) -> String {
        format!(" length {}{}", if negated { "!" } else { "" }, self.text())
    }

    pub fn save_text(self, negated: bool) -> String {
        format!(
            "-m length {}--length {}",
            if negated { "! " } else { "" },
            self.text()
        )
    }
}
