//! `-j NFQUEUE [--queue-num N | --queue-balance N:M] [--queue-bypass]
//! [--queue-cpu-fanout]`: hands the packet to a userspace program (an inline IPS such as
//! Suricata) through netlink queue N, or one of N..M by flow, which decides its fate
//! (libxt_NFQUEUE.c, revision 3). Without a program on the queue the kernel drops the
//! packet, or with `--queue-bypass` lets it go on as accepted. netfilter alone judges such
//! a rule (`queue` expression); XDP defers it.

use serde::{Deserialize, Serialize};

use super::options::Options;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nfqueue {
    /// The queue, or the first of the balanced range.
    pub num: u16,
    /// The last queue of `--queue-balance` (None: one queue).
    pub last: Option<u16>,
    pub bypass: bool,
    pub cpu_fanout: bool,
}

pub const OPTIONS: Options = &[
    ("--queue-num", "--queue-num"),
    ("--queue-balance", "--queue-balance"),
    ("--queue-bypass", "--queue-bypass"),
    ("--queue-cpu-fanout", "--queue-cpu-fanout"),
];

/// Which options a rule gave, for iptables' checks of repeats and exclusions.
#[derive(Default)]
pub struct Given(Vec<&'static str>);

impl Nfqueue {
    /// Takes option `opt` (full name); `value` gives its argument.
    pub fn take(
        &mut self,
        given: &mut Given,
        opt: &str,
        value: &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<(), String> {
        let name = OPTIONS
            .iter()
            .map(|(n, _)| *n)
            .find(|n| *n == opt)
            .ok_or_else(|| format!("unknown option \"{opt}\""))?;
        if given.0.contains(&name) {
            return Err(format!("NFQUEUE: option \"{name}\" can only be used once."));
        }
        let (num, balance) = ("--queue-num", "--queue-balance");
        if (name == num && given.0.contains(&balance))
            || (name == balance && given.0.contains(&num))
        {
            return Err(format!(
                "NFQUEUE: option \"{num}\" cannot be used together with \"{balance}\"."
            ));
        }
        given.0.push(name);
        let bad = |opt: &str| {
            format!("NFQUEUE: bad value for option \"{opt}\", or out of range (0-65535).")
        };
        match name {
            "--queue-num" => self.num = value()?.parse().map_err(|_| bad(name))?,
            "--queue-balance" => {
                let text = value()?;
                let (a, b) = text.split_once(':').ok_or_else(|| bad(name))?;
                let (a, b): (u16, u16) = (
                    a.parse().map_err(|_| bad(name))?,
                    b.parse().map_err(|_| bad(name))?,
                );
                if a >= b {
                    return Err(format!("{a} should be less than {b}"));
                }
                // The kernel keeps the number of queues in 16 bits (iptables' rule then
                // fails there: EINVAL).
                if (a, b) == (0, u16::MAX) {
                    return Err(
                        "NFQUEUE: --queue-balance 0:65535 is 65536 queues; at most 65535".into(),
                    );
                }
                (self.num, self.last) = (a, Some(b));
            }
            "--queue-bypass" => self.bypass = true,
            _ => self.cpu_fanout = true,
        }
        Ok(())
    }

    /// The options in libxt_NFQUEUE's order: as `-L` prints them (`num 0 bypass`), or
    /// with `--queue-` before each as iptables-save writes them.
    fn text(&self, dashes: &str) -> String {
        let mut text = match self.last {
            Some(last) => format!("{dashes}balance {}:{last}", self.num),
            None => format!("{dashes}num {}", self.num),
        };
        if self.bypass {
            text += &format!(" {dashes}bypass");
        }
        if self.cpu_fanout {
            text += &format!(" {dashes}cpu-fanout");
        }
        text
    }

    /// What `-L` prints after the rule's matches.
    pub fn list_text(&self) -> String {
        format!(" NFQUEUE {}", self.text(""))
    }

    /// The options iptables-save writes after `-j NFQUEUE`.
    pub fn save_text(&self) -> String {
        self.text("--queue-")
    }

    /// How many queues the packets spread over.
    pub fn total(&self) -> u16 {
        self.last.map_or(1, |last| last - self.num + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(opts: &[(&str, &str)]) -> Result<Nfqueue, String> {
        let mut q = Nfqueue::default();
        let mut given = Given::default();
        for (opt, v) in opts {
            let v = v.to_string();
            q.take(&mut given, opt, &mut || Ok(v.clone()))?;
        }
        Ok(q)
    }

    #[test]
    fn options_read_and_print_as_libxt_nfqueue_does() {
        let q = parsed(&[("--queue-balance", "0:3"), ("--queue-bypass", "")]).unwrap();
        assert_eq!(q.list_text(), " NFQUEUE balance 0:3 bypass");
        assert_eq!(q.save_text(), "--queue-balance 0:3 --queue-bypass");
        assert_eq!(q.total(), 4);
        assert_eq!(parsed(&[]).unwrap().save_text(), "--queue-num 0");
        assert!(parsed(&[("--queue-balance", "3:1")]).is_err());
        assert!(parsed(&[("--queue-balance", "2:2")]).is_err());
        assert!(parsed(&[("--queue-balance", "0:65535")]).is_err());
        assert_eq!(
            parsed(&[("--queue-balance", "1:65535")]).unwrap().total(),
            65535
        );
        assert!(parsed(&[("--queue-num", "70000")]).is_err());
        assert!(parsed(&[("--queue-num", "1"), ("--queue-balance", "0:3")]).is_err());
        assert!(parsed(&[("--queue-num", "1"), ("--queue-num", "2")]).is_err());
    }
}
