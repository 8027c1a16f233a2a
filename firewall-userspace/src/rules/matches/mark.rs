//! `-m mark [!] --mark VALUE[/MASK]`: the packet's mark, masked, equals the value
//! (libxt_mark.c, revision 1).

use serde::{Deserialize, Serialize};

use super::{Module, NfMatch, Value};
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
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    if current.is_some() {
        return Err(format!("mark: option \"{opt}\" can only be used once."));
    }
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
    }
}
