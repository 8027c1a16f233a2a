//! `-j MARK` and `-j CT --notrack` / `-j NOTRACK`: their options as iptables 1.8.9 reads
//! them and their text as it lists (`-L`) and saves (`-S`) them (libxt_MARK.c revision 2,
//! libxt_CT.c). Both are non-terminal: the next rule goes on. Netfilter carries them out
//! (netfilter/exprs.rs); XDP leaves their rules to it.

use serde::{Deserialize, Serialize};

use super::options::Options;

/// `-j MARK`: the packet's mark becomes `(mark & !mask) ^ value`, the kernel's one
/// operation behind every option (`--set-xmark value/mask` is it verbatim).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub value: u32,
    pub mask: u32,
}

pub const MARK_OPTIONS: Options = &[
    ("--set-xmark", "--set-xmark"),
    ("--set-mark", "--set-mark"),
    ("--and-mark", "--and-mark"),
    ("--or-mark", "--or-mark"),
    ("--xor-mark", "--xor-mark"),
];

pub const CHECKSUM_OPTIONS: Options = &[("--checksum-fill", "--checksum-fill")];

pub const CT_OPTIONS: Options = &[
    ("--notrack", "--notrack"),
    ("--helper", "--helper"),
    ("--ctevents", "--ctevents"),
    ("--expevents", "--expevents"),
    ("--zone", "--zone"),
    ("--zone-orig", "--zone-orig"),
    ("--zone-reply", "--zone-reply"),
    ("--timeout", "--timeout"),
];

/// A number as xtables_strtoui reads it: decimal, `0x` hex or `0` octal, 32 bits.
pub fn parse_u32(text: &str) -> Option<u32> {
    let (digits, radix) =
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            (hex, 16)
        } else if text.len() > 1 && text.starts_with('0') {
            (&text[1..], 8)
        } else {
            (text, 10)
        };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// `VALUE[/MASK]`; the mask is all ones when absent.
pub fn parse_value_mask(text: &str) -> Option<(u32, u32)> {
    match text.split_once('/') {
        Some((v, m)) => Some((parse_u32(v)?, parse_u32(m)?)),
        None => Some((parse_u32(text)?, u32::MAX)),
    }
}

impl Mark {
    /// One MARK option (`opt` is its full name) with its argument, as libxt_MARK's
    /// revision 2 turns it into (value, mask).
    pub fn from_option(opt: &str, arg: &str) -> Result<Mark, String> {
        let bad = || format!("MARK: bad integer value for option \"{opt}\", or out of range.");
        let single = || {
            if arg.contains('/') {
                Err(bad())
            } else {
                parse_u32(arg).ok_or_else(bad)
            }
        };
        Ok(match opt {
            "--set-xmark" => {
                let (value, mask) = parse_value_mask(arg).ok_or_else(bad)?;
                Mark { value, mask }
            }
            "--set-mark" => {
                let (value, mask) = parse_value_mask(arg).ok_or_else(bad)?;
                Mark {
                    value,
                    mask: value | mask,
                }
            }
            "--and-mark" => Mark {
                value: 0,
                mask: !single()?,
            },
            "--or-mark" => {
                let v = single()?;
                Mark { value: v, mask: v }
            }
            "--xor-mark" => Mark {
                value: single()?,
                mask: 0,
            },
            _ => return Err(format!("unknown option \"{opt}\"")),
        })
    }

    /// What `-L` prints after the matches.
    pub fn list_text(self) -> String {
        let Mark { value, mask } = self;
        if value == 0 {
            format!(" MARK and 0x{:x}", !mask)
        } else if value == mask {
            format!(" MARK or 0x{value:x}")
        } else if mask == 0 {
            format!(" MARK xor 0x{value:x}")
        } else if mask == u32::MAX {
            format!(" MARK set 0x{value:x}")
        } else {
            format!(" MARK xset 0x{value:x}/0x{mask:x}")
        }
    }

    /// The target's options as iptables-save writes them.
    pub fn save_text(self) -> String {
        format!("--set-xmark 0x{:x}/0x{:x}", self.value, self.mask)
    }

    /// The mark a packet with `mark` leaves with.
    pub fn apply(self, mark: u32) -> u32 {
        (mark & !self.mask) ^ self.value
    }
}

/// `-j CONNMARK`: between the packet's mark and its connection's (libxt_CONNMARK.c,
/// revision 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Connmark {
    /// `--save-mark`: the packet's mark becomes the connection's.
    Save,
    /// `--restore-mark`: the connection's mark becomes the packet's.
    Restore,
    /// `--set-xmark` and its forms: `(ctmark & !mask) ^ value`.
    Set(Mark),
    /// `--save-mark` with masks: `ctmark = (ctmark & ~ctmask) ^ (mark & nfmask)`.
    SaveMasked { nfmask: u32, ctmask: u32 },
    /// `--restore-mark` with masks: `mark = (mark & ~nfmask) ^ (ctmark & ctmask)`.
    RestoreMasked { nfmask: u32, ctmask: u32 },
}

pub const CONNMARK_OPTIONS: Options = &[
    ("--set-xmark", "--set-xmark"),
    ("--save-mark", "--save-mark"),
    ("--restore-mark", "--restore-mark"),
    ("--and-mark", "--and-mark"),
    ("--or-mark", "--or-mark"),
    ("--xor-mark", "--xor-mark"),
    ("--set-mark", "--set-mark"),
    ("--nfmask", "--nfmask"),
    ("--ctmask", "--ctmask"),
    ("--mask", "--mask"),
];

impl Connmark {
    pub fn list_text(self) -> String {
        match self {
            Connmark::Save => " CONNMARK save".into(),
            Connmark::Restore => " CONNMARK restore".into(),
            // The same wording as MARK's, with CONNMARK's name.
            Connmark::Set(m) => m.list_text().replacen(" MARK", " CONNMARK", 1),
            Connmark::SaveMasked { nfmask, ctmask } if nfmask == ctmask => {
                format!(" CONNMARK save mask 0x{nfmask:x}")
            }
            Connmark::SaveMasked { nfmask, ctmask } => {
                format!(" CONNMARK save nfmask 0x{nfmask:x} ctmask ~0x{ctmask:x}")
            }
            Connmark::RestoreMasked { nfmask, ctmask } if nfmask == ctmask => {
                format!(" CONNMARK restore mask 0x{ctmask:x}")
            }
            Connmark::RestoreMasked { nfmask, ctmask } => {
                format!(" CONNMARK restore ctmask 0x{ctmask:x} nfmask ~0x{nfmask:x}")
            }
        }
    }

    /// The mode with the masks `--nfmask`/`--ctmask`/`--mask` left: whole marks keep the
    /// plain forms. A `--set-xmark` form takes the ctmask as its mask, as libxt_CONNMARK's
    /// shared fields do (`--set-xmark 5 --mask 0xff` is `0x5/0xff`).
    pub fn with_masks(self, nfmask: u32, ctmask: u32) -> Connmark {
        let whole = nfmask == u32::MAX && ctmask == u32::MAX;
        match self {
            Connmark::Save | Connmark::SaveMasked { .. } if whole => Connmark::Save,
            Connmark::Save | Connmark::SaveMasked { .. } => Connmark::SaveMasked { nfmask, ctmask },
            Connmark::Restore | Connmark::RestoreMasked { .. } if whole => Connmark::Restore,
            Connmark::Restore | Connmark::RestoreMasked { .. } => {
                Connmark::RestoreMasked { nfmask, ctmask }
            }
            Connmark::Set(m) => Connmark::Set(Mark {
                value: m.value,
                mask: ctmask,
            }),
        }
    }

    pub fn save_text(self) -> String {
        match self {
            Connmark::Save => "--save-mark --nfmask 0xffffffff --ctmask 0xffffffff".into(),
            Connmark::Restore => "--restore-mark --nfmask 0xffffffff --ctmask 0xffffffff".into(),
            Connmark::Set(m) => m.save_text(),
            Connmark::SaveMasked { nfmask, ctmask } => {
                format!("--save-mark --nfmask 0x{nfmask:x} --ctmask 0x{ctmask:x}")
            }
            Connmark::RestoreMasked { nfmask, ctmask } => {
                format!("--restore-mark --nfmask 0x{nfmask:x} --ctmask 0x{ctmask:x}")
            }
        }
    }
}

/// `-j TCPMSS`: lowers the MSS option of TCP SYNs to `--set-mss N`, or to the route's
/// MTU less the headers (`--clamp-mss-to-pmtu`, None). The kernel never raises an MSS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tcpmss {
    pub mss: Option<u16>,
}

pub const TCPMSS_OPTIONS: Options = &[
    ("--set-mss", "--set-mss"),
    ("--clamp-mss-to-pmtu", "--clamp-mss-to-pmtu"),
];

impl Tcpmss {
    pub fn list_text(self) -> String {
        match self.mss {
            None => " TCPMSS clamp to PMTU".into(),
            Some(n) => format!(" TCPMSS set {n}"),
        }
    }

    pub fn save_text(self) -> String {
        match self.mss {
            None => "--clamp-mss-to-pmtu".into(),
            Some(n) => format!("--set-mss {n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each option as iptables 1.8.9 listed and saved it (run in a namespace).
    #[test]
    fn marks_list_and_save_as_iptables() {
        let cases = [
            (
                "--set-mark",
                "1",
                " MARK set 0x1",
                "--set-xmark 0x1/0xffffffff",
            ),
            (
                "--set-mark",
                "0x10/0xff",
                " MARK xset 0x10/0xff",
                "--set-xmark 0x10/0xff",
            ),
            (
                "--set-xmark",
                "0x5/0xf",
                " MARK xset 0x5/0xf",
                "--set-xmark 0x5/0xf",
            ),
            (
                "--and-mark",
                "0xf0",
                " MARK and 0xf0",
                "--set-xmark 0x0/0xffffff0f",
            ),
            ("--or-mark", "4", " MARK or 0x4", "--set-xmark 0x4/0x4"),
            ("--xor-mark", "2", " MARK xor 0x2", "--set-xmark 0x2/0x0"),
            (
                "--set-xmark",
                "7",
                " MARK set 0x7",
                "--set-xmark 0x7/0xffffffff",
            ),
            (
                "--set-mark",
                "010",
                " MARK set 0x8",
                "--set-xmark 0x8/0xffffffff",
            ),
        ];
        for (opt, arg, list, save) in cases {
            let m = Mark::from_option(opt, arg).unwrap();
            assert_eq!(
                (m.list_text().as_str(), m.save_text().as_str()),
                (list, save)
            );
        }
        for bad in ["0x1ffffffff", "x", "", "-1", "1/"] {
            assert!(Mark::from_option("--set-mark", bad).is_err(), "{bad}");
        }
        assert!(Mark::from_option("--or-mark", "1/2").is_err());
        let m = Mark::from_option("--set-xmark", "0x5/0xf").unwrap();
        assert_eq!(m.apply(0xabcd), 0xabc5);
    }
}
