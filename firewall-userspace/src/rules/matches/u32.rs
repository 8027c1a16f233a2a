//! `-m u32 [!] --u32 TESTS`: 32-bit words of the packet, from its network header on,
//! shifted, masked and followed as offsets (`@`), compared with ranges (libxt_u32.c).
//! netfilter runs the kernel's xt_u32 through nftables' compat expression
//! (netfilter/exprs.rs), as iptables-nft does.
//!
//! ```text
//! tests    := location "=" value | tests "&&" location "=" value
//! value    := range | value "," range
//! range    := number | number ":" number
//! location := number | location operator number
//! operator := "&" | "<<" | ">>" | "@"
//! ```

use serde::{Deserialize, Serialize};

use super::{once, Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

/// The kernel's limit on numbers per location, ranges per value and tests (XT_U32_MAXSIZE).
const MAX: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    And,
    ShiftLeft,
    ShiftRight,
    At,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Test {
    /// The first number, then each operator with its number.
    pub first: u32,
    pub steps: Vec<(Op, u32)>,
    /// Inclusive ranges: the test holds when the location's value is in one of them.
    pub ranges: Vec<(u32, u32)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct U32 {
    pub tests: Vec<Test>,
    pub invert: bool,
}

pub const MODULE: Module = Module {
    name: "u32",
    options: &[("--u32", "--u32")] as Options,
    take,
    required: "u32: option \"--u32\" must be specified",
    defaults: None,
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    once("u32", &current, opt)?;
    let mut m = parse(&value()?)?;
    m.invert = negated;
    Ok((NfMatch::U32(m), false))
}

/// A number as strtoul reads it with base 0 (`0x` hex, a leading `0` octal), at `*at`.
fn number(s: &[u8], at: &mut usize) -> Result<u32, String> {
    let start = *at;
    let fail = || format!("u32: at char {start}: not a number or out of range");
    let mut i = start;
    while s.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    let (radix, digits_at) = match (s.get(i), s.get(i + 1)) {
        (Some(b'0'), Some(b'x' | b'X')) if s.get(i + 2).is_some_and(u8::is_ascii_hexdigit) => {
            (16, i + 2)
        }
        (Some(b'0'), _) => (8, i),
        _ => (10, i),
    };
    let mut end = digits_at;
    while s.get(end).is_some_and(|c| (*c as char).is_digit(radix)) {
        end += 1;
    }
    if end == digits_at {
        return Err(fail());
    }
    let text = std::str::from_utf8(&s[digits_at..end]).map_err(|_| fail())?;
    let n = u32::from_str_radix(text, radix).map_err(|_| fail())?;
    *at = end;
    Ok(n)
}

/// The tests, as libxt_u32 reads them (its messages, with the position in the text).
pub fn parse(text: &str) -> Result<U32, String> {
    let s = text.as_bytes();
    let mut at = 0;
    let mut m = U32::default();
    let mut test = Test::default();
    let mut numbers = 0;
    let mut reading_values = false;
    loop {
        while s.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        let Some(&c) = s.get(at) else {
            if !reading_values {
                return Err("u32: abrupt end of input after location specifier".into());
            }
            if test.ranges.is_empty() {
                return Err("u32: test ended with no value specified".into());
            }
            m.tests.push(test);
            if m.tests.len() > MAX {
                return Err(format!("u32: at char {at}: too many \"&&\"s"));
            }
            return Ok(m);
        };
        if !reading_values {
            if c == b'=' {
                if numbers == 0 {
                    return Err(format!("u32: at char {at}: location spec missing"));
                }
                at += 1;
                reading_values = true;
                continue;
            }
            let op = if numbers == 0 {
                None
            } else {
                let op = match (c, s.get(at + 1)) {
                    (b'&', _) => Op::And,
                    (b'@', _) => Op::At,
                    (b'<', Some(b'<')) => Op::ShiftLeft,
                    (b'>', Some(b'>')) => Op::ShiftRight,
                    (b'<' | b'>', _) => {
                        return Err(format!(
                            "u32: at char {}: a second '{}' was expected",
                            at + 1,
                            c as char
                        ))
                    }
                    _ => return Err(format!("u32: at char {at}: operator expected")),
                };
                at += if matches!(op, Op::ShiftLeft | Op::ShiftRight) {
                    2
                } else {
                    1
                };
                Some(op)
            };
            let n = number(s, &mut at)?;
            match op {
                None => test.first = n,
                Some(op) => test.steps.push((op, n)),
            }
            numbers += 1;
            if numbers > MAX {
                return Err(format!("u32: at char {at}: too many operators"));
            }
        } else if c == b'&' {
            if s.get(at + 1) != Some(&b'&') {
                return Err(format!(
                    "u32: at char {}: a second '&' was expected",
                    at + 1
                ));
            }
            if test.ranges.is_empty() {
                return Err(format!("u32: at char {}: value spec missing", at + 1));
            }
            m.tests.push(std::mem::take(&mut test));
            if m.tests.len() > MAX {
                return Err(format!("u32: at char {}: too many \"&&\"s", at + 1));
            }
            at += 2;
            reading_values = false;
            numbers = 0;
        } else {
            if !test.ranges.is_empty() {
                if c != b',' {
                    return Err(format!("u32: at char {at}: expected \",\" or \"&&\""));
                }
                at += 1;
            }
            let min = number(s, &mut at)?;
            while s.get(at).is_some_and(u8::is_ascii_whitespace) {
                at += 1;
            }
            let max = if s.get(at) == Some(&b':') {
                at += 1;
                number(s, &mut at)?
            } else {
                min
            };
            test.ranges.push((min, max));
            if test.ranges.len() > MAX {
                return Err(format!("u32: at char {at}: too many \",\"s"));
            }
        }
    }
}

impl U32 {
    /// The tests as libxt_u32 prints them: every number in hex, no spaces, quoted.
    fn tests_text(&self) -> String {
        let mut text = String::from("\"");
        for (i, t) in self.tests.iter().enumerate() {
            if i > 0 {
                text += "&&";
            }
            text += &format!("{:#x}", t.first);
            for (op, n) in &t.steps {
                text += match op {
                    Op::And => "&",
                    Op::ShiftLeft => "<<",
                    Op::ShiftRight => ">>",
                    Op::At => "@",
                };
                text += &format!("{n:#x}");
            }
            text += "=";
            let ranges: Vec<String> = t
                .ranges
                .iter()
                .map(|&(lo, hi)| {
                    if lo == hi {
                        format!("{lo:#x}")
                    } else {
                        format!("{lo:#x}:{hi:#x}")
                    }
                })
                .collect();
            text += &ranges.join(",");
        }
        text + "\""
    }

    pub fn list_text(&self) -> String {
        format!(
            " u32{} {}",
            if self.invert { " !" } else { "" },
            self.tests_text()
        )
    }

    pub fn save_text(&self) -> String {
        format!(
            "-m u32 {}--u32 {}",
            if self.invert { "! " } else { "" },
            self.tests_text()
        )
    }

    /// struct xt_u32 as the kernel reads it: 11 tests of 11 locations (number, operator;
    /// 8 bytes each) and 11 ranges (min, max), each test closed by its counts and padded
    /// to 180 bytes; then the number of tests and the negation. 1984 bytes.
    pub fn xt_info(&self) -> Vec<u8> {
        const SLOTS: usize = MAX + 1;
        const TEST: usize = 180;
        let mut info = vec![0u8; SLOTS * TEST + 4];
        for (t, test) in self.tests.iter().enumerate() {
            let base = t * TEST;
            let locations =
                std::iter::once((0, test.first)).chain(test.steps.iter().map(|&(op, n)| {
                    let op = match op {
                        Op::And => 0,
                        Op::ShiftLeft => 1,
                        Op::ShiftRight => 2,
                        Op::At => 3,
                    };
                    (op, n)
                }));
            for (i, (op, n)) in locations.enumerate() {
                let at = base + i * 8;
                info[at..at + 4].copy_from_slice(&n.to_ne_bytes());
                info[at + 4] = op;
            }
            for (i, &(lo, hi)) in test.ranges.iter().enumerate() {
                let at = base + SLOTS * 8 + i * 8;
                info[at..at + 4].copy_from_slice(&lo.to_ne_bytes());
                info[at + 4..at + 8].copy_from_slice(&hi.to_ne_bytes());
            }
            info[base + SLOTS * 16] = 1 + test.steps.len() as u8;
            info[base + SLOTS * 16 + 1] = test.ranges.len() as u8;
        }
        info[SLOTS * TEST] = self.tests.len() as u8;
        info[SLOTS * TEST + 1] = self.invert as u8;
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_read_and_print_as_libxt_u32_does() {
        let m = parse(" 0 & 0xFFFF = 100:200 , 300 ,010").unwrap();
        assert_eq!(
            m.save_text(),
            "-m u32 --u32 \"0x0&0xffff=0x64:0xc8,0x12c,0x8\""
        );
        let m = parse("6&0xFF=1 && 4&0x3FFF=0 && 0>>22&0x3C@4>>24=0").unwrap();
        assert_eq!(
            m.list_text(),
            " u32 \"0x6&0xff=0x1&&0x4&0x3fff=0x0&&0x0>>0x16&0x3c@0x4>>0x18=0x0\""
        );
        assert_eq!(
            parse("0<<2=1").unwrap().tests[0].steps,
            [(Op::ShiftLeft, 2)]
        );
        for bad in [
            "0=", "0", "0=1 &&", "=1", "0<2=1", "0=1,", "0=1 & 2", "0x=1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let info = parse("0>>22&0x3C@8=0x12345678").unwrap().xt_info();
        assert_eq!(info.len(), 1984);
        assert_eq!(info[8 + 4], 2, ">> after the first number");
        assert_eq!((info[176], info[177], info[1980]), (4, 1, 1));
    }
}
