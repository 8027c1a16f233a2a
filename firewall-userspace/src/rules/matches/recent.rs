//! `-m recent` (libxt_recent.c, revision 1): lists of addresses seen lately, kept by
//! netfilter as nftables sets with timeouts (`recentv4-NAME`), which outlive rule changes
//! as xt_recent's lists do.
//!
//! What nftables can say exactly: `--set` (`update @list { addr }`), `--rcheck` (lookup),
//! `--update` (lookup, then refresh) and `--remove` (lookup, then delete), with `--seconds
//! S` as the members' timeout, which needs every rule of a list that looks at it to give the
//! same S (`check_lists`). Refused with the option named: `--hitcount` (xt_recent counts
//! each address's packets within the window under a lock; nftables could keep such a count
//! only by rewriting a map element per packet, which two CPUs can interleave, and a rate
//! would judge other packets: docs/notes/facts.md), `--rttl` (the same rewrite, of the TTL),
//! `!` except before `--rcheck`. Not the same: xt_recent
//! keeps at most 100 addresses per list (`ip_list_tot`) and forgets the least recent one
//! for a new one, where fwctl's lists keep every address until its timeout; there is no
//! /proc/net/xt_recent/NAME.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecentCmd {
    Set,
    Rcheck,
    Update,
    Remove,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    pub cmd: Option<RecentCmd>,
    pub name: Option<String>,
    pub seconds: Option<u32>,
    pub reap: bool,
    /// The destination address (`--rdest`), not the source.
    pub rdest: bool,
    /// `--mask`'s prefix length; None: the whole address.
    pub prefix: Option<u8>,
    /// `! --rcheck`. Kept here, as the options after it would otherwise reset it.
    pub invert: bool,
    /// An ip6tables rule (the mask is listed as an IPv6 address).
    pub v6: bool,
}

const OPTIONS: Options = &[
    ("--set", "set"),
    ("--rcheck", "rcheck"),
    ("--update", "update"),
    ("--remove", "remove"),
    ("--seconds", "seconds"),
    ("--reap", "reap"),
    ("--hitcount", "hitcount"),
    ("--rttl", "rttl"),
    ("--name", "name"),
    ("--rsource", "rsource"),
    ("--rdest", "rdest"),
    ("--mask", "mask"),
];

pub const MODULE: Module = Module {
    name: "recent",
    options: OPTIONS,
    take,
    required: "recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'",
    defaults: None,
};

/// A contiguous netmask of `family` (dotted, or an IPv6 address) as a prefix length.
fn mask_prefix(text: &str, family: Family) -> Option<u8> {
    let bits: u128 = match (text.parse::<IpAddr>().ok()?, family) {
        (IpAddr::V4(a), Family::V4) => u128::from(u32::from(a)) << 96,
        (IpAddr::V6(a), Family::V6) => u128::from(a),
        _ => return None,
    };
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    family: Family,
) -> Result<(NfMatch, bool), String> {
    let mut m = match current {
        Some(NfMatch::Recent(m)) => m,
        _ => Recent {
            cmd: None,
            name: None,
            seconds: None,
            reap: false,
            rdest: false,
            prefix: None,
            invert: false,
            v6: family == Family::V6,
        },
    };
    let word = opt.trim_start_matches("--");
    let cmd = match word {
        "set" => Some(RecentCmd::Set),
        "rcheck" => Some(RecentCmd::Rcheck),
        "update" => Some(RecentCmd::Update),
        "remove" => Some(RecentCmd::Remove),
        _ => None,
    };
    if let Some(cmd) = cmd {
        if let Some(other) = m.cmd {
            let name = |c: RecentCmd| match c {
                RecentCmd::Set => "--set",
                RecentCmd::Rcheck => "--rcheck",
                RecentCmd::Update => "--update",
                RecentCmd::Remove => "--remove",
            };
            return Err(format!(
                "recent: option \"{}\" cannot be used together with \"{opt}\".",
                name(other)
            ));
        }
        if negated && cmd != RecentCmd::Rcheck {
            return Err(format!(
                "recent: ! {opt} is not supported by this version of fwctl: whether xt_recent then refreshes or removes the address depends on its age, which nftables cannot say"
            ));
        }
        m.cmd = Some(cmd);
        m.invert = negated;
        return Ok((NfMatch::Recent(m), false));
    }
    let keep = |m: Recent| Ok((NfMatch::Recent(m), false));
    match word {
        "seconds" => {
            let text = value()?;
            let s: u32 = text
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| format!("recent: bad --seconds `{text}': a number of seconds"))?;
            m.seconds = Some(s);
        }
        "reap" => m.reap = true,
        "hitcount" => {
            return Err("recent: --hitcount is not supported by this version of fwctl: xt_recent counts each address's packets within --seconds under a lock; nftables has no such count (one built from set elements loses packets to concurrent updates, and a rate limit judges other packets)".into())
        }
        "rttl" => {
            return Err("recent: --rttl is not supported by this version of fwctl: xt_recent rewrites the TTL an address was last seen with under a lock, which nftables cannot do (a map element is rewritten by a delete and an add that concurrent packets can interleave)".into())
        }
        "name" => {
            let text = value()?;
            // A name the save writes raw must read back as itself.
            let odd = |c: char| c == '/' || c == '"' || c == '\\' || c.is_whitespace() || c.is_control();
            if text.is_empty() || text.len() > 200 || text.contains(odd) {
                return Err(format!(
                    "recent: bad --name `{text}': 1 to 200 characters, no space, quote, backslash or `/'"
                ));
            }
            m.name = Some(text);
        }
        "rsource" => m.rdest = false,
        "rdest" => m.rdest = true,
        "mask" => {
            let text = value()?;
            m.prefix = Some(mask_prefix(&text, family).ok_or_else(|| {
                format!("recent: bad --mask `{text}': a contiguous netmask of the rule's family")
            })?);
        }
        _ => return Err(format!("recent: {opt} is not supported by this version of fwctl")),
    }
    keep(m)
}

impl Recent {
    /// The list's name (xt_recent's default is DEFAULT).
    pub fn list(&self) -> &str {
        self.name.as_deref().unwrap_or("DEFAULT")
    }

    fn mask_text(&self) -> String {
        let full = if self.v6 { 128 } else { 32 };
        let ones = u32::from(self.prefix.unwrap_or(full));
        let bits = u128::MAX.checked_shl(128 - ones).unwrap_or(0);
        if self.v6 {
            std::net::Ipv6Addr::from(bits).to_string()
        } else {
            std::net::Ipv4Addr::from((bits >> 96) as u32).to_string()
        }
    }

    pub fn list_text(&self) -> String {
        let mut out = String::from(if self.invert {
            " ! recent:"
        } else {
            " recent:"
        });
        out.push_str(match self.cmd {
            Some(RecentCmd::Set) => " SET",
            Some(RecentCmd::Rcheck) => " CHECK",
            Some(RecentCmd::Update) => " UPDATE",
            Some(RecentCmd::Remove) => " REMOVE",
            None => "",
        });
        if let Some(s) = self.seconds {
            out.push_str(&format!(" seconds: {s}"));
        }
        if self.reap {
            out.push_str(" reap");
        }
        let side = if self.rdest { "dest" } else { "source" };
        out.push_str(&format!(
            " name: {} side: {side} mask: {}",
            self.list(),
            self.mask_text()
        ));
        out
    }

    pub fn save_text(&self) -> String {
        let mut out = String::from("-m recent");
        if self.invert {
            out.push_str(" !");
        }
        out.push_str(match self.cmd {
            Some(RecentCmd::Set) => " --set",
            Some(RecentCmd::Rcheck) => " --rcheck",
            Some(RecentCmd::Update) => " --update",
            Some(RecentCmd::Remove) => " --remove",
            None => "",
        });
        if let Some(s) = self.seconds {
            out.push_str(&format!(" --seconds {s}"));
        }
        if self.reap {
            out.push_str(" --reap");
        }
        let side = if self.rdest { "--rdest" } else { "--rsource" };
        out.push_str(&format!(
            " --name {} --mask {} {side}",
            self.list(),
            self.mask_text()
        ));
        out
    }

    /// libxt_recent's final check and xt_recent's (which iptables reports as EINVAL).
    pub fn check(&self) -> Result<(), String> {
        let Some(cmd) = self.cmd else {
            return Err(MODULE.required.into());
        };
        if self.reap && self.seconds.is_none() {
            return Err("recent: option \"--reap\" also requires \"--seconds\".".into());
        }
        if self.seconds.is_some() && !matches!(cmd, RecentCmd::Rcheck | RecentCmd::Update) {
            return Err(
                "recent: --seconds goes with --rcheck or --update only (the kernel refuses it otherwise)"
                    .into(),
            );
        }
        Ok(())
    }

    /// Whether the rule changes the list (`--set`, `--update`, `--remove`).
    pub fn changes(&self) -> bool {
        matches!(
            self.cmd,
            Some(RecentCmd::Set | RecentCmd::Update | RecentCmd::Remove)
        )
    }

    /// The nftables set that holds the list.
    pub fn set_name(&self) -> String {
        format!(
            "recent{}-{}",
            if self.v6 { "v6" } else { "v4" },
            self.list()
        )
    }

    /// Whether the rule looks the list up (every command but `--set`).
    pub fn looks(&self) -> bool {
        matches!(
            self.cmd,
            Some(RecentCmd::Rcheck | RecentCmd::Update | RecentCmd::Remove)
        )
    }
}

/// Where `-m recent` may stand among a rule's match loads (`loads`, in the order given, an
/// option-less protocol match as `bare:tcp`; `changes`, per `-m recent` in that order,
/// whether it changes its list). fwctl's nftables rule checks the rule's other matches
/// first, then the lists, then the rate matches (netfilter/mod.rs `translate`), where
/// iptables runs them in the order given. The two agree unless a match comes after a
/// `-m recent` that changes its list (iptables changes it also for packets that match
/// refuses) or a rate match comes before a `-m recent` (iptables spends its bucket also on
/// packets the list refuses): those are refused, naming the match to move.
pub fn check_place(loads: &[String], changes: &[bool]) -> Result<(), String> {
    const RATES: [&str; 3] = ["limit", "hashlimit", "connlimit"];
    let mut changes = changes.iter();
    let mut changed = false;
    let mut rate = None;
    for name in loads {
        let name = name.as_str();
        if name == "recent" {
            if let Some(rate) = rate {
                return Err(format!(
                    "recent: -m {rate} before -m recent is not supported by this version of fwctl: netfilter would check the list first, and the {rate} would count other packets than iptables' (give it after -m recent)"
                ));
            }
            changed |= changes.next().copied().unwrap_or(false);
        } else if RATES.contains(&name) {
            rate = Some(name);
        } else if changed && name != "comment" && !name.starts_with(crate::rules::BARE) {
            return Err(format!(
                "recent: a {name} match after -m recent --set, --update or --remove is not supported by this version of fwctl: netfilter would check it first, and the list would change only for packets it lets through (give it before -m recent)"
            ));
        }
    }
    Ok(())
}

/// Every rule that looks a list up must give the same `--seconds` (or none, as `--remove`
/// always does): the list's members carry it as their timeout. Returns each list's seconds, by (family, name).
pub fn check_lists<'a>(
    uses: impl Iterator<Item = &'a Recent>,
) -> Result<std::collections::BTreeMap<(bool, String), Option<u32>>, String> {
    let mut lists: std::collections::BTreeMap<(bool, String), Option<u32>> = Default::default();
    for r in uses.filter(|r| r.looks()) {
        let key = (r.v6, r.list().to_string());
        // xt_recent's --remove takes an address out whatever its age (its --seconds counts
        // for nothing), so a list it removes from keeps its addresses for good.
        let seconds = if r.cmd == Some(RecentCmd::Remove) {
            None
        } else {
            r.seconds
        };
        match lists.get(&key) {
            Some(seen) if *seen != seconds => {
                let say = |s: Option<u32>| {
                    s.map_or("no --seconds".to_string(), |s| format!("--seconds {s}"))
                };
                return Err(format!(
                    "recent list {}: one rule gives {} and another {}: fwctl keeps a list's addresses for one time, the --seconds of every rule that checks it",
                    r.list(),
                    say(*seen),
                    say(seconds)
                ));
            }
            _ => {
                lists.insert(key, seconds);
            }
        }
    }
    Ok(lists)
}
