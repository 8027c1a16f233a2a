//! `-m physdev` (libxt_physdev.c): the bridge ports a bridged packet came in by and goes out
//! by, as bridge-netfilter hands bridged traffic to iptables' hooks
//! (`net.bridge.bridge-nf-call-iptables`). Netfilter runs the kernel's xt_physdev through
//! the compat expression (it registers per family: fwctl's tables are per family for it);
//! XDP never sees a bridge's ports' verdict, so every rule with it is netfilter's.

use serde::{Deserialize, Serialize};

use super::{Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

/// XT_PHYSDEV_OP_*: which options the rule gives (`bitmask`) and which are negated.
const OP_IN: u8 = 0x01;
const OP_OUT: u8 = 0x02;
const OP_BRIDGED: u8 = 0x04;
const OP_ISIN: u8 = 0x08;
const OP_ISOUT: u8 = 0x10;

/// IFNAMSIZ: a name field, its NUL included.
const NAME_SIZE: usize = 16;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Physdev {
    /// `--physdev-in`'s port (a trailing `+` matches every name it starts).
    pub port_in: String,
    pub port_out: String,
    pub bitmask: u8,
    pub invert: u8,
}

const OPTIONS: Options = &[
    ("--physdev-in", "in"),
    ("--physdev-out", "out"),
    ("--physdev-is-in", "is-in"),
    ("--physdev-is-out", "is-out"),
    ("--physdev-is-bridged", "is-bridged"),
];

pub const MODULE: Module = Module {
    name: "physdev",
    options: OPTIONS,
    take,
    required: "PHYSDEV: no physdev option specified",
    defaults: None,
};

/// A port name as xtables_parse_interface takes it.
fn port(text: String) -> Result<String, String> {
    if text.len() >= NAME_SIZE {
        return Err(format!(
            "interface name `{text}' must be shorter than IFNAMSIZ ({})",
            NAME_SIZE - 1
        ));
    }
    if text.contains('\0') {
        return Err(format!("invalid interface name `{text}'"));
    }
    Ok(text)
}

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    let mut m = match current {
        Some(NfMatch::Physdev(m)) => m,
        _ => Physdev::default(),
    };
    let bit = match opt.trim_start_matches("--physdev-") {
        "in" => OP_IN,
        "out" => OP_OUT,
        "is-in" => OP_ISIN,
        "is-out" => OP_ISOUT,
        "is-bridged" => OP_BRIDGED,
        _ => return Err(format!("physdev: unknown option {opt}")),
    };
    if m.bitmask & bit != 0 {
        return Err(format!("physdev: option \"{opt}\" can only be used once."));
    }
    match bit {
        OP_IN => m.port_in = port(value()?)?,
        OP_OUT => m.port_out = port(value()?)?,
        _ => {}
    }
    m.bitmask |= bit;
    if negated {
        m.invert |= bit;
    }
    Ok((NfMatch::Physdev(m), false))
}

impl Physdev {
    /// The options in libxt_physdev's order, each with its `!`.
    fn options(&self) -> String {
        let mut out = String::new();
        let not = |bit: u8| if self.invert & bit != 0 { " !" } else { "" };
        for (bit, text) in [
            (OP_ISIN, "--physdev-is-in".to_string()),
            (OP_IN, format!("--physdev-in {}", self.port_in)),
            (OP_ISOUT, "--physdev-is-out".to_string()),
            (OP_OUT, format!("--physdev-out {}", self.port_out)),
            (OP_BRIDGED, "--physdev-is-bridged".to_string()),
        ] {
            if self.bitmask & bit != 0 {
                out.push_str(&format!("{} {text}", not(bit)));
            }
        }
        out
    }

    pub fn list_text(&self) -> String {
        format!(" PHYSDEV match{}", self.options())
    }

    pub fn save_text(&self) -> String {
        format!("-m physdev{}", self.options())
    }

    /// struct xt_physdev_info: physindev, in_mask, physoutdev, out_mask (IFNAMSIZ each),
    /// invert, bitmask; 72 bytes once aligned. A mask covers the name and its NUL, or the
    /// letters before a trailing `+` (xtables_parse_interface).
    pub fn xt_info(&self) -> Vec<u8> {
        let mut info = Vec::with_capacity(72);
        for name in [&self.port_in, &self.port_out] {
            let mut field = name.as_bytes().to_vec();
            field.resize(NAME_SIZE, 0);
            let covered = match name.strip_suffix('+') {
                Some(stem) => stem.len(),
                None if name.is_empty() => 0,
                None => name.len() + 1,
            };
            let mut mask = vec![0xff; covered];
            mask.resize(NAME_SIZE, 0);
            info.extend(field);
            info.extend(mask);
        }
        info.push(self.invert);
        info.push(self.bitmask);
        info.resize(72, 0);
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_masks_cover_the_name_or_the_stem_before_plus() {
        let m = Physdev {
            port_in: "eth+".into(),
            port_out: "vnet0".into(),
            bitmask: OP_IN | OP_OUT,
            invert: OP_OUT,
        };
        let info = m.xt_info();
        assert_eq!(info.len(), 72);
        assert_eq!(&info[..4], b"eth+");
        assert_eq!(&info[16..20], &[0xff, 0xff, 0xff, 0]);
        assert_eq!(&info[32..37], b"vnet0");
        assert_eq!(&info[48..55], &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
        assert_eq!((info[64], info[65]), (OP_OUT, OP_IN | OP_OUT));
        assert_eq!(
            m.save_text(),
            "-m physdev --physdev-in eth+ ! --physdev-out vnet0"
        );
    }
}
