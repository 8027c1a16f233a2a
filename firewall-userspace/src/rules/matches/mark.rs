//! `-m mark [!] --mark VALUE[/MASK]`: the packet's mark, masked, equals the value
//! (libxt_mark.c, revision 1).

use serde::{Deserialize, Serialize};

use super::{once, Module, NfMatch, Value};
use crate::rules::{mark::parse_value_mask, options::Options, Family};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkMatch {
    pub value: u32,
    pub mask: u32,
}

const OPTIONS: Options = &[("--mark", "--mark")];

pub const MODULE: Module = Module {
    name: "mark",
    options: OPTIONS,
    take,
    required: "mark match: option \"--mark\" must be specified",
    defaults: None,
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    once("mark", &current, opt)?;
    let text = value()?;
    let (value, mask) = parse_value_mask(&text)
        .ok_or_else(|| format!("mark match: bad value `{text}': VALUE[/MASK], 32 bits"))?;
    Ok((NfMatch::Mark(MarkMatch { value, mask }), negated))
}

impl MarkMatch {
    fn text(self) -> String {
        if self.mask == u32::MAX {
            format!("0x{:x}", self.value)
        } else {
            format!("0x{:x}/0x{:x}", self.value, self.mask)
        }
    }

    pub fn list_text(self, negated: bool, _numeric: bool) -> String {
        format!(
            " mark match {}{}",
            if negated { "! " } else { "" },
            self.text()
        )
    }

    pub fn save_text(self, negated: bool) -> String {
        format!(
            "-m mark {}--mark {}",
            if negated { "! " } else { "" },
            self.text()
        )
    }

    pub fn holds(self, mark: u32) -> bool {
        mark & self.mask == self.value
    }
}

/// `-m connmark [!] --mark VALUE[/MASK]`: the connection's mark (libxt_connmark.c).
pub const CONNMARK: Module = Module {
    name: "connmark",
    options: OPTIONS,
    take: take_connmark,
    required: "connmark match: option \"--mark\" must be specified",
    defaults: None,
};

fn take_connmark(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    family: Family,
) -> Result<(NfMatch, bool), String> {
    match take(current, opt, negated, value, family)? {
        (NfMatch::Mark(m), negated) => Ok((NfMatch::Connmark(m), negated)),
        other => Ok(other),
    }
}

impl MarkMatch {
    /// `-L` for connmark: iptables 1.8.9 prints `!` or a space before the value.
    pub fn connmark_list_text(self, negated: bool) -> String {
        let bang = if negated { "! " } else { " " };
        format!(" connmark match {bang}{}", self.text())
    }

    pub fn connmark_save_text(self, negated: bool) -> String {
        self.save_text(negated)
            .replacen("-m mark", "-m connmark", 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As iptables 1.8.9 listed and saved them (run in a namespace).
    #[test]
    fn lists_and_saves_as_iptables() {
        let cases = [
            ("7", false, " mark match 0x7", "-m mark --mark 0x7"),
            (
                "0x7/0xff",
                true,
                " mark match ! 0x7/0xff",
                "-m mark ! --mark 0x7/0xff",
            ),
            (
                "0xffffffff/0xffffffff",
                false,
                " mark match 0xffffffff",
                "-m mark --mark 0xffffffff",
            ),
        ];
        for (arg, negated, list, save) in cases {
            let (m, neg) =
                take(None, "--mark", negated, &mut || Ok(arg.into()), Family::V4).unwrap();
            assert_eq!(
                (m.list_text(neg, true).as_str(), m.save_text(neg).as_str()),
                (list, save)
            );
        }
        assert!(take(None, "--mark", false, &mut || Ok("x".into()), Family::V4).is_err());
        // connmark's own spacing, as iptables 1.8.9 prints it.
        let m = MarkMatch {
            value: 1,
            mask: u32::MAX,
        };
        assert_eq!(m.connmark_list_text(false), " connmark match  0x1");
        let m = MarkMatch {
            value: 1,
            mask: 0xf,
        };
        assert_eq!(m.connmark_list_text(true), " connmark match ! 0x1/0xf");
        assert_eq!(m.connmark_save_text(true), "-m connmark ! --mark 0x1/0xf");
    }
}
