//! `-j SET --add-set NAME FLAGS [--exist] [--timeout N] --del-set NAME FLAGS`: adds the
//! packet's address (and port) to a set or deletes it (libxt_SET.c, revision 3), and goes
//! on. Netfilter does it (`add`/`update`/`delete @set { key }`); the XDP tries never see
//! such members, so every `-m set` on a set some SET rule writes is left to netfilter
//! (compile::compile_with_sets), and `fwctl set list` shows the members given by command
//! only (`nft list set inet fwctl ...` shows the others).

use serde::{Deserialize, Serialize};

use super::{model::SetMatch, options::Options};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetTarget {
    pub add: Option<SetMatch>,
    pub del: Option<SetMatch>,
    /// `--exist`: an add refreshes the timeout of a member already there.
    pub exist: bool,
    /// `--timeout`: seconds, for the members added (otherwise the set's default).
    pub timeout: Option<u32>,
}

pub const OPTIONS: Options = &[
    ("--add-set", "add-set"),
    ("--del-set", "del-set"),
    ("--exist", "exist"),
    ("--timeout", "timeout"),
    ("--map-set", "map-set"),
    ("--map-mark", "map-mark"),
    ("--map-prio", "map-prio"),
    ("--map-queue", "map-queue"),
];

impl SetTarget {
    pub fn empty() -> SetTarget {
        SetTarget {
            add: None,
            del: None,
            exist: false,
            timeout: None,
        }
    }

    /// libxt_SET's final check.
    pub fn check(&self) -> Result<(), String> {
        if self.add.is_none() && self.del.is_none() {
            return Err("You must specify either `--add-set' or `--del-set' or `--map-set'".into());
        }
        if self.add.is_none() && self.exist {
            return Err("Flag `--exist' can be used with `--add-set' only".into());
        }
        if self.add.is_none() && self.timeout.is_some() {
            return Err("Option `--timeout' can be used with `--add-set' only".into());
        }
        // ipset's 0 is "never expires"; nftables reads 0 as "the set's default".
        if self.timeout == Some(0) {
            return Err(
                "SET --timeout 0 (a member that never expires) is not supported by this version of fwctl: nftables cannot say it".into(),
            );
        }
        Ok(())
    }

    /// The sets the rule writes.
    pub fn sets(&self) -> impl Iterator<Item = &SetMatch> {
        self.add.iter().chain(&self.del)
    }

    fn parts(&self, dashes: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(a) = &self.add {
            out.push(format!("{dashes}add-set {} {}", a.name, a.flags()));
            if self.exist {
                out.push(format!("{dashes}exist"));
            }
            if let Some(t) = self.timeout {
                out.push(format!("{dashes}timeout {t}"));
            }
        }
        if let Some(d) = &self.del {
            out.push(format!("{dashes}del-set {} {}", d.name, d.flags()));
        }
        out
    }

    /// `-L`'s text (leading space included).
    pub fn list_text(&self) -> String {
        self.parts("").iter().map(|p| format!(" {p}")).collect()
    }

    /// The target's options as iptables-save writes them.
    pub fn save_text(&self) -> String {
        self.parts("--").join(" ")
    }
}
