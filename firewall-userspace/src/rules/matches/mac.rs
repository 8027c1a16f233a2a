//! `-m mac [!] --mac-source XX:XX:XX:XX:XX:XX`: the Ethernet source address; iptables
//! allows it where a frame arrived (PREROUTING, INPUT, FORWARD).

use serde::{Deserialize, Serialize};

use super::{once, Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mac(pub [u8; 6]);

pub const MODULE: Module = Module {
    name: "mac",
    options: &[("--mac-source", "--mac-source")] as Options,
    take,
    required: "mac match: option \"--mac-source\" must be specified",
    defaults: None,
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    once("mac", &current, opt)?;
    let text = value()?;
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| {
            (b.len() == 2)
                .then(|| u8::from_str_radix(b, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()
        .ok_or_else(|| format!("Bad mac address \"{text}\""))?;
    let mac: [u8; 6] = bytes
        .try_into()
        .map_err(|_| format!("Bad mac address \"{text}\""))?;
    Ok((NfMatch::Mac(Mac(mac)), negated))
}

impl Mac {
    fn text(self) -> String {
        self.0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    pub fn list_text(self, negated: bool) -> String {
        format!(" MAC {}{}", if negated { "! " } else { "" }, self.text())
    }

    pub fn save_text(self, negated: bool) -> String {
        format!(
            "-m mac {}--mac-source {}",
            if negated { "! " } else { "" },
            self.text()
        )
    }
}
