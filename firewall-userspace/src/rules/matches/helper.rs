//! `-m helper [!] --helper NAME[-PORT]`: the conntrack helper (ftp, sip, ...) that expected
//! the packet's connection, i.e. that of its master (libxt_helper.c). nftables' `ct helper`
//! looks at the connection's own helper instead (the control connection, not the data
//! one), so netfilter runs the kernel's xt_helper through the compat expression.

use serde::{Deserialize, Serialize};

use super::{once, Module, NfMatch, Value};
use crate::rules::{options::Options, save_string, Family};

/// The kernel's name field, its NUL included.
const NAME_SIZE: usize = 30;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Helper {
    pub name: String,
    pub invert: bool,
}

pub const MODULE: Module = Module {
    name: "helper",
    options: &[("--helper", "--helper")] as Options,
    take,
    required: "helper: option \"--helper\" must be specified",
    defaults: None,
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    once("helper", &current, opt)?;
    let mut name = value()?;
    // libxt_helper copies at most 29 bytes and drops the rest, as iptables lists it.
    while name.len() >= NAME_SIZE {
        name.pop();
    }
    Ok((
        NfMatch::Helper(Helper {
            name,
            invert: negated,
        }),
        false,
    ))
}

impl Helper {
    pub fn list_text(&self) -> String {
        format!(
            " helper match {}\"{}\"",
            if self.invert { "! " } else { "" },
            self.name
        )
    }

    pub fn save_text(&self) -> String {
        format!(
            "-m helper {}--helper {}",
            if self.invert { "! " } else { "" },
            save_string(&self.name)
        )
    }

    /// struct xt_helper_info: `int invert`, then the name; 40 bytes once aligned.
    pub fn xt_info(&self) -> Vec<u8> {
        let mut info = Vec::with_capacity(40);
        info.extend((self.invert as i32).to_ne_bytes());
        info.extend(self.name.as_bytes());
        info.resize(40, 0);
        info
    }
}
