//! `-m recent` (libxt_recent.c, revision 1): lists of addresses seen lately. Netfilter
//! runs the kernel's xt_recent itself through nftables' compat expression (in a table of
//! the rule's family: xt_recent registers per family), so every option means what it
//! means to iptables: `--hitcount`, `--rttl`, `!` before any command, at most 100
//! addresses per list, `/proc/net/xt_recent/NAME`. A list is the kernel's, by name: the
//! rules of both generations share it, so it outlives rule changes as with iptables.

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

impl RecentCmd {
    const ALL: [RecentCmd; 4] = [Self::Set, Self::Rcheck, Self::Update, Self::Remove];

    /// Its option, its `-L` word and its XT_RECENT_* bit.
    fn words(self) -> (&'static str, &'static str, u8) {
        match self {
            RecentCmd::Set => ("--set", "SET", 2),
            RecentCmd::Rcheck => ("--rcheck", "CHECK", 1),
            RecentCmd::Update => ("--update", "UPDATE", 4),
            RecentCmd::Remove => ("--remove", "REMOVE", 8),
        }
    }
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
    /// `!` before the command. Kept here, as the options after it would otherwise reset it.
    pub invert: bool,
    /// `--hitcount N`: at least N packets within `--seconds` (0: any).
    #[serde(default)]
    pub hitcount: u32,
    /// `--rttl`: the packet's TTL must be the one the address was last seen with.
    #[serde(default)]
    pub rttl: bool,
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

/// xt_recent's XT_RECENT_MAX_NSTAMPS: a hit count must stay below it.
const MAX_HITCOUNT: u32 = 256;

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
            hitcount: 0,
            rttl: false,
            v6: family == Family::V6,
        },
    };
    let word = opt.trim_start_matches("--");
    let cmd = RecentCmd::ALL.into_iter().find(|c| c.words().0 == opt);
    if let Some(cmd) = cmd {
        if let Some(other) = m.cmd {
            return Err(format!(
                "recent: option \"{}\" cannot be used together with \"{opt}\".",
                other.words().0
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
            let s: u32 =
                text.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("recent: bad --seconds `{text}': a number of seconds")
                })?;
            m.seconds = Some(s);
        }
        "reap" => m.reap = true,
        "hitcount" => {
            let text = value()?;
            m.hitcount = text
                .parse()
                .ok()
                .filter(|n| *n < MAX_HITCOUNT)
                .ok_or_else(|| {
                    format!(
                        "recent: bad --hitcount `{text}': a number below {MAX_HITCOUNT} (the kernel keeps at most {} hits per address)",
                        MAX_HITCOUNT - 1
                    )
                })?;
        }
        "rttl" => m.rttl = true,
        "name" => {
            let text = value()?;
            // A name the save writes raw must read back as itself.
            let odd =
                |c: char| c == '/' || c == '"' || c == '\\' || c.is_whitespace() || c.is_control();
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
        _ => {
            return Err(format!(
                "recent: {opt} is not supported by this version of fwctl"
            ))
        }
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

    /// libxt_recent's text: `-L`'s (`save` false) or save's, in its order.
    fn text(&self, save: bool) -> String {
        let pick = |list: &str, option: &str| if save { option } else { list }.to_string();
        let mut out = String::new();
        if self.invert {
            out.push_str(" !");
        }
        if !save {
            out.push_str(" recent:");
        }
        if let Some(cmd) = self.cmd {
            let (option, word, _) = cmd.words();
            out.push_str(&format!(" {}", pick(word, option)));
        }
        if let Some(s) = self.seconds {
            out.push_str(&format!(" {} {s}", pick("seconds:", "--seconds")));
        }
        if self.reap {
            out.push_str(&format!(" {}", pick("reap", "--reap")));
        }
        if self.hitcount > 0 {
            out.push_str(&format!(
                " {} {}",
                pick("hit_count:", "--hitcount"),
                self.hitcount
            ));
        }
        if self.rttl {
            out.push_str(&format!(" {}", pick("TTL-Match", "--rttl")));
        }
        let (name, mask) = (self.list(), self.mask_text());
        if save {
            let side = if self.rdest { "--rdest" } else { "--rsource" };
            out.push_str(&format!(" --name {name} --mask {mask} {side}"));
        } else {
            let side = if self.rdest { "dest" } else { "source" };
            out.push_str(&format!(" name: {name} side: {side} mask: {mask}"));
        }
        out
    }

    pub fn list_text(&self) -> String {
        self.text(false)
    }

    pub fn save_text(&self) -> String {
        format!("-m recent{}", self.text(true))
    }

    /// libxt_recent's final check and xt_recent's (which iptables reports as EINVAL).
    pub fn check(&self) -> Result<(), String> {
        let Some(cmd) = self.cmd else {
            return Err(MODULE.required.into());
        };
        if self.reap && self.seconds.is_none() {
            return Err("recent: option \"--reap\" also requires \"--seconds\".".into());
        }
        let modifiers = [
            (self.seconds.is_some(), "--seconds"),
            (self.hitcount > 0, "--hitcount"),
            (self.rttl, "--rttl"),
            (self.reap, "--reap"),
        ];
        if let Some((_, opt)) = modifiers.iter().find(|(given, _)| *given) {
            if !matches!(cmd, RecentCmd::Rcheck | RecentCmd::Update) {
                return Err(format!(
                    "recent: {opt} goes with --rcheck or --update only (the kernel refuses it otherwise)"
                ));
            }
        }
        Ok(())
    }

    /// xt_recent_mtinfo_v1 as the kernel reads it: seconds, hit_count, check_set, invert,
    /// name[200], side, then the mask (an nf_inet_addr, 4-aligned), padded to 8 bytes.
    pub fn xt_info(&self) -> Vec<u8> {
        const TTL: u8 = 16;
        const REAP: u8 = 32;
        let mut check_set = self.cmd.map_or(0, |c| c.words().2);
        if self.rttl {
            check_set |= TTL;
        }
        if self.reap {
            check_set |= REAP;
        }
        let mut info = Vec::with_capacity(232);
        info.extend(self.seconds.unwrap_or(0).to_ne_bytes());
        info.extend(self.hitcount.to_ne_bytes());
        info.push(check_set);
        info.push(self.invert as u8);
        info.extend(self.list().as_bytes());
        info.resize(210, 0);
        info.push(self.rdest as u8);
        info.push(0);
        // libxt_recent starts from a mask of all ones and writes an IPv4 one over the
        // first word only.
        let full = if self.v6 { 128 } else { 32 };
        let bits = u128::MAX
            .checked_shl(full - u32::from(self.prefix.unwrap_or(full as u8)))
            .unwrap_or(0);
        let mask = if self.v6 {
            (bits).to_be_bytes()
        } else {
            let mut all = [0xff; 16];
            all[..4].copy_from_slice(&((bits as u32).to_be_bytes()));
            all
        };
        info.extend(mask);
        info.resize(232, 0);
        info
    }

    /// Whether the rule changes the list (`--set`, `--update`, `--remove`).
    pub fn changes(&self) -> bool {
        matches!(
            self.cmd,
            Some(RecentCmd::Set | RecentCmd::Update | RecentCmd::Remove)
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
