//! `-m string --algo bm|kmp [!] --string S | [!] --hex-string H [--from N] [--to N]
//! [--icase]`: a byte pattern in the packet, from the network header on (libxt_string.c,
//! revision 1). nftables has no expression of its own for it: netfilter runs the kernel's
//! xt_string through nft_compat, as iptables-nft does (netfilter/exprs.rs `xt_string`).

use serde::{Deserialize, Serialize};

use super::{Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

/// The kernel's limit on a pattern (XT_STRING_MAX_PATTERN_SIZE).
pub const MAX_PATTERN: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StringMatch {
    /// The textsearch algorithm: `bm` (Boyer-Moore) or `kmp` (Knuth-Morris-Pratt).
    pub algo: String,
    pub pattern: Vec<u8>,
    /// Offsets into the packet, from its network header, where the search starts and ends.
    pub from: u16,
    pub to: u16,
    pub icase: bool,
    pub invert: bool,
}

impl Default for StringMatch {
    fn default() -> Self {
        StringMatch {
            algo: String::new(),
            pattern: Vec::new(),
            from: 0,
            to: u16::MAX,
            icase: false,
            invert: false,
        }
    }
}

pub const MODULE: Module = Module {
    name: "string",
    options: &[
        ("--from", "--from"),
        ("--to", "--to"),
        ("--algo", "--algo"),
        ("--string", "--string"),
        ("--hex-string", "--hex-string"),
        ("--icase", "--icase"),
    ] as Options,
    take,
    required: "string: option \"--algo\" must be specified",
    defaults: None,
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    let mut m = match current {
        Some(NfMatch::String(m)) => m,
        _ => StringMatch::default(),
    };
    let pattern_opt = opt == "--string" || opt == "--hex-string";
    if negated && !pattern_opt {
        return Err(format!("string: option \"{opt}\" cannot be inverted."));
    }
    // iptables marks what each option set; a second one is refused, and --string and
    // --hex-string exclude each other.
    let given = match opt {
        "--from" => m.from != 0,
        "--to" => m.to != u16::MAX,
        "--algo" => !m.algo.is_empty(),
        "--icase" => m.icase,
        _ => !m.pattern.is_empty(),
    };
    if given {
        return Err(if pattern_opt {
            "string: --string and --hex-string may be given once, and not both".into()
        } else {
            format!("string: option \"{opt}\" can only be used once.")
        });
    }
    match opt {
        "--icase" => m.icase = true,
        "--from" | "--to" => {
            let text = value()?;
            let n: u16 = text.parse().map_err(|_| {
                format!("string: bad value for option \"{opt}\", or out of range (0-65535).")
            })?;
            *(if opt == "--from" {
                &mut m.from
            } else {
                &mut m.to
            }) = n;
        }
        "--algo" => {
            let text = value()?;
            // The kernel's textsearch algorithms a pattern of bytes can use (fsm takes
            // tokens); another name fails in the kernel (iptables: "No such file").
            if text != "bm" && text != "kmp" {
                return Err(format!(
                    "string: unknown --algo `{text}': bm (Boyer-Moore) or kmp (Knuth-Morris-Pratt)"
                ));
            }
            m.algo = text;
        }
        _ => {
            let text = value()?;
            m.pattern = if opt == "--string" {
                text.into_bytes()
            } else {
                hex_string(&text)?
            };
            if m.pattern.is_empty() {
                return Err("string: STRING must contain at least one char".into());
            }
            if m.pattern.len() > MAX_PATTERN {
                return Err(format!(
                    "string: STRING too long \"{}\" (at most {MAX_PATTERN} bytes)",
                    String::from_utf8_lossy(&m.pattern)
                ));
            }
            m.invert = negated;
        }
    }
    Ok((NfMatch::String(m), false))
}

/// `--hex-string`'s text: literal characters, `|hex digits|` blocks (spaces allowed
/// between the digits) and `\c` for a literal `c`, as libxt_string reads them.
fn hex_string(text: &str) -> Result<Vec<u8>, String> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut hex = false;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'|' => {
                hex = !hex;
                i += 1;
                while hex && s.get(i) == Some(&b' ') {
                    i += 1;
                }
            }
            b'\\' if hex => return Err("string: Cannot include literals in hex data".into()),
            b'\\' => {
                let c = *s
                    .get(i + 1)
                    .ok_or("string: Bad literal placement at end of string")?;
                out.push(c);
                i += 2;
            }
            _ if hex => {
                let pair = s.get(i..i + 2).ok_or("string: Odd number of hex digits")?;
                if s.len() <= i + 2 {
                    return Err("string: Invalid hex block (a `|' must end it)".into());
                }
                let digits = std::str::from_utf8(pair).unwrap_or("");
                let byte = u8::from_str_radix(digits, 16)
                    .ok()
                    .filter(|_| pair.iter().all(u8::is_ascii_hexdigit))
                    .ok_or_else(|| format!("string: Invalid hex char in `{text}'"))?;
                out.push(byte);
                i += 2;
                while s.get(i) == Some(&b' ') {
                    i += 1;
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    if hex {
        return Err("string: Invalid hex block (a `|' must end it)".into());
    }
    Ok(out)
}

impl StringMatch {
    /// iptables' final check (after `--algo`, which `required` covers).
    pub fn check(&self) -> Result<(), String> {
        if self.algo.is_empty() {
            return Err(MODULE.required.into());
        }
        if self.pattern.is_empty() {
            return Err("STRING match: You must specify `--string' or `--hex-string'".into());
        }
        if self.from > self.to {
            return Err(format!(
                "string: --from {} is past --to {}: no byte could match",
                self.from, self.to
            ));
        }
        Ok(())
    }

    /// The pattern as iptables prints it: quoted, or as a hex block when a byte is not
    /// printable or it ends in a backslash.
    fn pattern_text(&self) -> (bool, String) {
        let printable = self.pattern.iter().all(|b| (0x20..0x7f).contains(b));
        if !printable || self.pattern.last() == Some(&b'\\') {
            let hex: String = self.pattern.iter().map(|b| format!("{b:02x}")).collect();
            return (true, format!("\"|{hex}|\""));
        }
        let mut text = String::from("\"");
        for &b in &self.pattern {
            if b == b'"' || b == b'\\' {
                text.push('\\');
            }
            text.push(b as char);
        }
        text.push('"');
        (false, text)
    }

    pub fn list_text(&self) -> String {
        let (_, pattern) = self.pattern_text();
        let mut text = format!(
            " STRING match {} {pattern} ALGO name {}",
            if self.invert { "!" } else { "" },
            self.algo
        );
        if self.from != 0 {
            text += &format!(" FROM {}", self.from);
        }
        if self.to != u16::MAX {
            text += &format!(" TO {}", self.to);
        }
        if self.icase {
            text += " ICASE";
        }
        text
    }

    pub fn save_text(&self) -> String {
        let (hex, pattern) = self.pattern_text();
        let mut text = format!(
            "-m string {}--{} {pattern} --algo {}",
            if self.invert { "! " } else { "" },
            if hex { "hex-string" } else { "string" },
            self.algo
        );
        if self.from != 0 {
            text += &format!(" --from {}", self.from);
        }
        if self.to != u16::MAX {
            text += &format!(" --to {}", self.to);
        }
        if self.icase {
            text += " --icase";
        }
        text
    }

    /// struct xt_string_info (revision 1) as the kernel reads it: offsets in host order,
    /// the algorithm's name, the pattern, its length, the flags, and room for the kernel's
    /// own pointer (160 bytes on a 64-bit kernel).
    pub fn xt_info(&self) -> Vec<u8> {
        const ALGO: usize = 16;
        const INVERT: u8 = 1;
        const IGNORECASE: u8 = 2;
        let mut info = Vec::with_capacity(160);
        info.extend(self.from.to_ne_bytes());
        info.extend(self.to.to_ne_bytes());
        let mut algo = [0u8; ALGO];
        let name = self.algo.as_bytes();
        algo[..name.len().min(ALGO - 1)].copy_from_slice(&name[..name.len().min(ALGO - 1)]);
        info.extend(algo);
        let mut pattern = [0u8; MAX_PATTERN];
        pattern[..self.pattern.len()].copy_from_slice(&self.pattern);
        info.extend(pattern);
        info.push(self.pattern.len() as u8);
        info.push(if self.invert { INVERT } else { 0 } | if self.icase { IGNORECASE } else { 0 });
        // The kernel's `struct ts_config *config`, 8-aligned, after the fields.
        info.resize(160, 0);
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_strings_read_as_libxt_string_reads_them() {
        assert_eq!(hex_string("|0000FF0001|").unwrap(), [0, 0, 0xff, 0, 1]);
        assert_eq!(hex_string("ab|20|cd").unwrap(), b"ab cd");
        assert_eq!(hex_string("| 41 42 |x").unwrap(), b"ABx");
        assert_eq!(hex_string("a\\|b").unwrap(), b"a|b");
        // iptables-restore keeps single quotes: they are pattern bytes.
        assert_eq!(hex_string("'|00|'").unwrap(), b"'\0'");
        assert!(hex_string("|0g|").is_err());
        assert!(hex_string("|0|").is_err());
        assert!(hex_string("|00").is_err());
        assert!(hex_string("a\\").is_err());
    }

    #[test]
    fn patterns_print_as_iptables_prints_them() {
        let m = |p: &[u8]| StringMatch {
            algo: "bm".into(),
            pattern: p.to_vec(),
            ..StringMatch::default()
        };
        assert_eq!(
            m(b"a\"b\\c").save_text(),
            "-m string --string \"a\\\"b\\\\c\" --algo bm"
        );
        assert_eq!(
            m(b"ab\\").save_text(),
            "-m string --hex-string \"|61625c|\" --algo bm"
        );
        assert_eq!(
            m(&[0, 0, 0xff]).list_text(),
            " STRING match  \"|0000ff|\" ALGO name bm"
        );
        let negated = StringMatch {
            invert: true,
            ..m(b"x")
        };
        assert_eq!(negated.list_text(), " STRING match ! \"x\" ALGO name bm");
        assert_eq!(m(b"x").xt_info().len(), 160);
    }
}
