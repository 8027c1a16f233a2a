//! `-m pkttype [!] --pkt-type unicast|broadcast|multicast|...`: the link-layer class of
//! the packet (libxt_pkttype.c).

use serde::{Deserialize, Serialize};

use super::{once, Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

/// The kernel's PACKET_* value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PktType(pub u8);

/// iptables' names, first one per value printed.
const NAMES: [(&str, u8); 6] = [
    ("unicast", 0),
    ("broadcast", 1),
    ("multicast", 2),
    ("host", 0),
    ("otherhost", 3),
    ("outgoing", 4),
];

pub const MODULE: Module = Module {
    name: "pkttype",
    options: &[("--pkt-type", "--pkt-type")] as Options,
    take,
    required: "pkttype match: option \"--pkt-type\" must be specified",
    defaults: None,
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    once("pkttype", &current, opt)?;
    let text = value()?;
    let kind = NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(&text))
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("Bad packet type '{text}'"))?;
    Ok((NfMatch::PktType(PktType(kind)), negated))
}

impl PktType {
    fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, v)| *v == self.0)
            .map_or("unicast", |(n, _)| n)
    }

    pub fn list_text(self, negated: bool) -> String {
        format!(
            " PKTTYPE {} {}",
            if negated { "!=" } else { "=" },
            self.name()
        )
    }

    pub fn save_text(self, negated: bool) -> String {
        format!(
            "-m pkttype {}--pkt-type {}",
            if negated { "! " } else { "" },
            self.name()
        )
    }
}
