//! `-m statistic --mode random [!] --probability P` and `--mode nth [!] --every N
//! --packet P`: a share of the packets, at random or every Nth from the rule's own count
//! (libxt_statistic.c), as load balancers and samplers use it. netfilter runs the kernel's
//! xt_statistic through the compat expression.

use serde::{Deserialize, Serialize};

use super::{Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

/// xt_statistic's scale: a probability is stored as P * 2^31, rounded.
const SCALE: f64 = 2147483648.0;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statistic {
    /// `--mode nth` (else random).
    pub nth: Option<bool>,
    /// The probability as the kernel keeps it (scaled).
    pub probability: Option<u32>,
    pub every: Option<u32>,
    pub packet: Option<u32>,
    pub invert: bool,
}

pub const MODULE: Module = Module {
    name: "statistic",
    options: &[
        ("--mode", "--mode"),
        ("--probability", "--probability"),
        ("--every", "--every"),
        ("--packet", "--packet"),
    ] as Options,
    take,
    required: "statistic: option \"--mode\" must be specified",
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
        Some(NfMatch::Statistic(m)) => m,
        _ => Statistic::default(),
    };
    if negated && !matches!(opt, "--probability" | "--every") {
        return Err(format!("statistic: option \"{opt}\" cannot be inverted."));
    }
    m.invert |= negated;
    let text = value()?;
    let given = match opt {
        "--mode" => m.nth.is_some(),
        "--probability" => m.probability.is_some(),
        "--every" => m.every.is_some(),
        _ => m.packet.is_some(),
    };
    if given {
        return Err(format!(
            "statistic: option \"{opt}\" can only be used once."
        ));
    }
    let range = |range: &str| {
        format!("statistic: bad value for option \"{opt}\", or out of range ({range}).")
    };
    match opt {
        "--mode" => {
            m.nth = Some(match text.as_str() {
                "random" => false,
                "nth" => true,
                _ => return Err(format!("statistic: Bad mode \"{text}\"")),
            })
        }
        "--probability" => {
            let p = text
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=1.0).contains(p))
                .ok_or_else(|| range("0-1"))?;
            m.probability = Some((SCALE * p).round() as u32);
        }
        "--every" => {
            m.every = Some(
                text.parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| range("1-4294967295"))?,
            )
        }
        _ => m.packet = Some(text.parse().map_err(|_| range("0-4294967295"))?),
    }
    Ok((NfMatch::Statistic(m), false))
}

impl Statistic {
    /// libxt_statistic's final check.
    pub fn check(&self) -> Result<(), String> {
        match self.nth {
            None => Err(MODULE.required.into()),
            Some(false) if self.probability.is_none() => {
                Err("--probability must be specified when using random mode".into())
            }
            Some(false) if self.every.is_some() || self.packet.is_some() => {
                Err("statistic: --every and --packet are nth mode's, not random's".into())
            }
            Some(true) if self.every.is_none() || self.packet.is_none() => {
                Err("--every and --packet must be specified when using nth mode".into())
            }
            Some(true) if self.probability.is_some() => {
                Err("statistic: --probability is random mode's, not nth's".into())
            }
            Some(true) if self.packet >= self.every => {
                Err("the --packet p must be 0 <= p <= n-1".into())
            }
            Some(_) => Ok(()),
        }
    }

    /// The options as libxt_statistic prints them; `dashes` "--" for save, where nth's
    /// packet is written even when 0.
    fn text(&self, dashes: &str) -> String {
        let not = if self.invert { "! " } else { "" };
        if self.nth == Some(true) {
            let (every, packet) = (self.every.unwrap_or(1), self.packet.unwrap_or(0));
            let mut text = format!("{dashes}mode nth {not}{dashes}every {every}");
            if packet != 0 || !dashes.is_empty() {
                text += &format!(" {dashes}packet {packet}");
            }
            text
        } else {
            let p = f64::from(self.probability.unwrap_or(0)) / SCALE;
            format!("{dashes}mode random {not}{dashes}probability {p:.11}")
        }
    }

    pub fn list_text(&self) -> String {
        format!(" statistic {}", self.text(""))
    }

    pub fn save_text(&self) -> String {
        format!("-m statistic {}", self.text("--"))
    }

    /// struct xt_statistic_info: mode, flags, then the probability or nth's every - 1,
    /// packet and count (every - 1 - packet, where the kernel starts counting), and room
    /// for the kernel's pointer; 24 bytes.
    pub fn xt_info(&self) -> Vec<u8> {
        const MODE_RANDOM: u16 = 0;
        const MODE_NTH: u16 = 1;
        const INVERT: u16 = 1;
        let mut info = Vec::with_capacity(24);
        let nth = self.nth == Some(true);
        info.extend(if nth { MODE_NTH } else { MODE_RANDOM }.to_ne_bytes());
        info.extend(if self.invert { INVERT } else { 0 }.to_ne_bytes());
        if nth {
            let every = self.every.unwrap_or(1) - 1;
            let packet = self.packet.unwrap_or(0);
            for field in [every, packet, every - packet] {
                info.extend(field.to_ne_bytes());
            }
        } else {
            info.extend(self.probability.unwrap_or(0).to_ne_bytes());
        }
        info.resize(24, 0);
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_libxt_statistic_does() {
        let random = Statistic {
            nth: Some(false),
            probability: Some((SCALE * 0.3333333f64).round() as u32),
            ..Statistic::default()
        };
        assert_eq!(
            random.save_text(),
            "-m statistic --mode random --probability 0.33333329996"
        );
        let nth = Statistic {
            nth: Some(true),
            every: Some(3),
            packet: Some(0),
            ..Statistic::default()
        };
        assert_eq!(nth.list_text(), " statistic mode nth every 3");
        assert_eq!(
            nth.save_text(),
            "-m statistic --mode nth --every 3 --packet 0"
        );
        assert_eq!(&nth.xt_info()[4..16], &[2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
        let late = Statistic {
            packet: Some(3),
            ..nth
        };
        assert!(late.check().is_err());
    }
}
