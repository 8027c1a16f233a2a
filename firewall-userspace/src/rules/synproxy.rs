//! `-j SYNPROXY [--mss N] [--wscale N] [--sack-perm] [--timestamp]` (not `--ecn`): answers a SYN
//! with a SYN cookie and opens the connection to the server only once the client's ACK
//! proves the address (libxt_SYNPROXY.c). iptables runs it in the filter table's INPUT and
//! FORWARD on SYNs conntrack does not track (`-t raw ... --syn -j CT --notrack`) and on the
//! ACKs it calls INVALID. Netfilter alone judges such a rule, with nftables' `synproxy`
//! expression, the kernel's same SYN proxy; XDP defers it.

use serde::{Deserialize, Serialize};

use super::options::Options;

/// XT_SYNPROXY_OPT_* (NF_SYNPROXY_OPT_*): which options a rule gives.
const OPT_MSS: u32 = 0x01;
const OPT_WSCALE: u32 = 0x02;
const OPT_SACK_PERM: u32 = 0x04;
const OPT_TIMESTAMP: u32 = 0x08;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synproxy {
    /// The NF_SYNPROXY_OPT_* bits of the options given, as nftables' synproxy takes them.
    pub options: u32,
    pub mss: u16,
    pub wscale: u8,
}

pub const OPTIONS: Options = &[
    ("--mss", "--mss"),
    ("--wscale", "--wscale"),
    ("--sack-perm", "--sack-perm"),
    ("--timestamp", "--timestamp"),
    ("--ecn", "--ecn"),
];

impl Synproxy {
    /// Takes option `opt` (full name); `value` gives its argument.
    pub fn take(
        &mut self,
        opt: &str,
        value: &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<(), String> {
        let bit = match opt {
            "--mss" => OPT_MSS,
            "--wscale" => OPT_WSCALE,
            "--sack-perm" => OPT_SACK_PERM,
            "--timestamp" => OPT_TIMESTAMP,
            // nftables' synproxy refuses the ECN option (NF_SYNPROXY_OPT_MASK leaves it
            // out), and xt_SYNPROXY runs only in a table named filter.
            "--ecn" => {
                return Err(
                    "SYNPROXY --ecn is not supported by this version of fwctl: nftables' SYN proxy cannot offer ECN"
                        .into(),
                )
            }
            _ => return Err(format!("unknown option \"{opt}\"")),
        };
        if self.options & bit != 0 {
            return Err(format!("SYNPROXY: option \"{opt}\" can only be used once."));
        }
        let bad = |text: &str, max: u32| {
            format!("SYNPROXY: Bad value for \"{opt}\" option: \"{text}\" (0-{max})")
        };
        match bit {
            OPT_MSS => {
                let text = value()?;
                self.mss = text.parse().map_err(|_| bad(&text, u16::MAX.into()))?;
            }
            OPT_WSCALE => {
                let text = value()?;
                self.wscale = text.parse().map_err(|_| bad(&text, u8::MAX.into()))?;
            }
            _ => {}
        }
        self.options |= bit;
        Ok(())
    }

    /// The options in libxt_SYNPROXY's order: (bit, `-L` text, save text).
    fn items(&self) -> [(u32, String, String); 4] {
        [
            (OPT_SACK_PERM, "sack-perm".into(), "--sack-perm".into()),
            (OPT_TIMESTAMP, "timestamp".into(), "--timestamp".into()),
            (
                OPT_WSCALE,
                format!("wscale {}", self.wscale),
                format!("--wscale {}", self.wscale),
            ),
            (
                OPT_MSS,
                format!("mss {}", self.mss),
                format!("--mss {}", self.mss),
            ),
        ]
    }

    /// What `-L` prints after the rule's matches: each option followed by a space, as
    /// libxt_SYNPROXY prints them.
    pub fn list_text(&self) -> String {
        let mut out = String::from(" SYNPROXY ");
        for (bit, text, _) in self.items() {
            if self.options & bit != 0 {
                out.push_str(&text);
                out.push(' ');
            }
        }
        out
    }

    /// `-j SYNPROXY` and its options, as iptables-save writes them.
    pub fn save_text(&self) -> String {
        let mut out = String::from("-j SYNPROXY");
        for (bit, _, text) in self.items() {
            if self.options & bit != 0 {
                out.push(' ');
                out.push_str(&text);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_and_print_as_libxt_synproxy_does() {
        let mut s = Synproxy::default();
        for (opt, v) in [
            ("--mss", "1460"),
            ("--timestamp", ""),
            ("--wscale", "7"),
            ("--sack-perm", ""),
        ] {
            s.take(opt, &mut || Ok(v.to_string())).unwrap();
        }
        assert_eq!(
            s.list_text(),
            " SYNPROXY sack-perm timestamp wscale 7 mss 1460 "
        );
        assert_eq!(
            s.save_text(),
            "-j SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460"
        );
        assert!(s.take("--mss", &mut || Ok("1".into())).is_err());
        assert!(Synproxy::default()
            .take("--wscale", &mut || Ok("256".into()))
            .is_err());
    }
}
