//! `-m tcpmss [!] --mss MIN[:MAX]`: the MSS option of a TCP SYN (libxt_tcpmss.c). A packet
//! without the option satisfies the negated match only, as xt_tcpmss decides.

use serde::{Deserialize, Serialize};

use super::{once, Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpMss {
    pub min: u16,
    pub max: u16,
}

pub const MODULE: Module = Module {
    name: "tcpmss",
    options: &[("--mss", "--mss")] as Options,
    take,
    required: "tcpmss match: option \"--mss\" must be specified",
    defaults: None,
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    once("tcpmss", &current, opt)?;
    let text = value()?;
    let bad = || format!("tcpmss: bad value for --mss `{text}': N or MIN:MAX, 0 to 65535");
    let (min, max) = match text.split_once(':') {
        Some((lo, hi)) => (
            lo.parse::<u16>().map_err(|_| bad())?,
            hi.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let n = text.parse::<u16>().map_err(|_| bad())?;
            (n, n)
        }
    };
    if min > max {
        return Err(bad());
    }
    Ok((NfMatch::TcpMss(TcpMss { min, max }), negated))
}

impl TcpMss {
    fn text(self) -> String {
        if self.min == self.max {
            self.min.to_string()
        } else {
            format!("{}:{}", self.min, self.max)
        }
    }

    pub fn list_text(self, negated: bool) -> String {
        format!(
            " tcpmss match {}{}",
            if negated { "!" } else { "" },
            self.text()
        )
    }

    pub fn save_text(self, negated: bool) -> String {
        let bang = if negated { "! " } else { "" };
        format!("-m tcpmss {bang}--mss {}", self.text())
    }
}
