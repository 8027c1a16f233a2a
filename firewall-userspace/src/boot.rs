//! What the systemd unit runs at boot (`fwctl boot`): put the configuration in force, or
//! the last good ruleset if the configuration does not load, or the fail-safe if neither
//! does, and never leave the host with no rules, at any moment:
//!
//! 1. With nothing in force (a fresh boot), the fail-safe goes in first, so that a bad
//!    file, a crash or a `kill -9` of boot from then on leaves a closed firewall.
//! 2. DIR/sets, rules.v4 and rules.v6 are read and parsed whole before anything changes;
//!    both families then go in as one change (the sets just before it).
//! 3. If any of them fails, the last good copy (last_good.rs) is loaded the same way;
//!    if that fails too, or there is none, the fail-safe stays. Either is said on stderr
//!    and in `fwctl status`, and boot exits non-zero so the unit shows as failed.
//! 4. Interfaces named by fwctl.conf's `attach` lines (names, or prefixes as `-i` takes
//!    them: `eth+`) are attached if present; `fwctl watch` attaches the others when they
//!    appear. Until then netfilter judges their packets.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::{
    dataplane::attach::XdpMode,
    fault_point,
    firewall::Firewall,
    last_good,
    rules::{edit::Editor, restore::restore_onto, Family, Table},
    state::{Origin, Source},
};

pub const CONFIG_DIR: &str = "/etc/fwctl";

/// fwctl.conf: `attach IFACE [native|generic]` lines (IFACE a name or a prefix ending in
/// `+`), an optional `mark-bits SHIFT` line, an optional `ct-filter on|off` line, an
/// optional `failsafe` line, `#` comments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub attach: Vec<AttachLine>,
    pub mark_shift: Option<u32>,
    /// `fwctl ct-filter`'s setting, if the file gives one.
    pub ct_filter: Option<bool>,
    pub failsafe: Failsafe,
}

/// One `attach` line: an interface name, or a prefix as `-i eth+` has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachLine {
    pub iface: String,
    pub mode: XdpMode,
}

impl AttachLine {
    pub fn matches(&self, name: &str) -> bool {
        match self.iface.strip_suffix('+') {
            Some(prefix) => name.starts_with(prefix),
            None => name == self.iface,
        }
    }

    pub fn is_pattern(&self) -> bool {
        self.iface.ends_with('+')
    }
}

/// What is put in force when nothing better loads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failsafe {
    /// Policy DROP on INPUT and FORWARD; loopback, established and related connections
    /// and these TCP ports (SSH) accepted, so an operator can log in and fix things.
    Drop { ssh: Vec<u16> },
    /// Policy ACCEPT everywhere (`failsafe accept`, for those who insist).
    Accept,
}

impl Default for Failsafe {
    fn default() -> Self {
        Failsafe::Drop { ssh: vec![22] }
    }
}

/// As fwctl.conf writes it.
impl fmt::Display for Failsafe {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Failsafe::Accept => write!(f, "failsafe accept"),
            Failsafe::Drop { ssh } if ssh.is_empty() => write!(f, "failsafe drop ssh none"),
            Failsafe::Drop { ssh } => write!(f, "failsafe drop ssh {}", ports(ssh)),
        }
    }
}

fn ports(list: &[u16]) -> String {
    list.iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl Failsafe {
    /// The fail-safe ruleset of one family, in iptables-save form; its nat table is empty.
    pub fn rules(&self, family: Family) -> String {
        let Failsafe::Drop { ssh } = self else {
            return "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n*nat\nCOMMIT\n".into();
        };
        let mut out = String::from(
            "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             -A INPUT -i lo -j ACCEPT\n\
             -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n",
        );
        if family == Family::V6 {
            // Without neighbour discovery (and router advertisements) no IPv6 packet,
            // SSH included, gets through at all.
            for t in 133..=136 {
                out.push_str(&format!(
                    "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT\n"
                ));
            }
        }
        match ssh.as_slice() {
            [] => {}
            [port] => out.push_str(&format!(
                "-A INPUT -p tcp -m tcp --dport {port} -j ACCEPT\n"
            )),
            many => out.push_str(&format!(
                "-A INPUT -p tcp -m multiport --dports {} -j ACCEPT\n",
                ports(many)
            )),
        }
        out.push_str("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n*nat\nCOMMIT\n");
        out
    }

    pub fn describe(&self) -> String {
        match self {
            Failsafe::Accept => "policy ACCEPT (failsafe accept)".into(),
            Failsafe::Drop { ssh } if ssh.is_empty() => {
                "policy DROP on INPUT and FORWARD; lo and established connections open".into()
            }
            Failsafe::Drop { ssh } => format!(
                "policy DROP on INPUT and FORWARD; lo, established connections and TCP {} open",
                ports(ssh)
            ),
        }
    }
}

pub fn parse_config(text: &str) -> Result<Config> {
    let mut config = Config::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fail = |what: &str| anyhow::anyhow!("fwctl.conf line {}: {what}, got `{line}'", i + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["mark-bits", shift] => {
                let shift = shift
                    .parse()
                    .ok()
                    .filter(|s| *s <= 29)
                    .ok_or_else(|| fail("expected `mark-bits SHIFT` with SHIFT 0 to 29"))?;
                config.mark_shift = Some(shift);
            }
            ["ct-filter", "on"] => config.ct_filter = Some(true),
            ["ct-filter", "off"] => config.ct_filter = Some(false),
            ["ct-filter", ..] => bail!(fail("expected `ct-filter on` or `ct-filter off`")),
            ["failsafe", "accept"] => config.failsafe = Failsafe::Accept,
            ["failsafe", "drop"] => config.failsafe = Failsafe::default(),
            ["failsafe", "drop", "ssh", "none"] => config.failsafe = Failsafe::Drop { ssh: vec![] },
            ["failsafe", "drop", "ssh", list] => {
                let ssh = list
                    .split(',')
                    .map(|p| p.parse::<u16>().ok().filter(|p| *p > 0))
                    .collect::<Option<Vec<u16>>>()
                    .ok_or_else(|| fail("expected `failsafe drop [ssh PORT[,PORT...]|none]`"))?;
                config.failsafe = Failsafe::Drop { ssh };
            }
            ["failsafe", ..] => {
                bail!(fail(
                    "expected `failsafe drop [ssh PORT[,PORT...]|none]` or `failsafe accept`"
                ))
            }
            ["attach", iface, rest @ ..] if valid_iface(iface) => {
                let mode = match rest {
                    [] | ["native"] => XdpMode::Native,
                    ["generic"] => XdpMode::Generic,
                    _ => bail!(fail("expected `attach IFACE [native|generic]`")),
                };
                config.attach.push(AttachLine {
                    iface: iface.to_string(),
                    mode,
                });
            }
            _ => bail!(fail(
                "expected `attach IFACE [native|generic]`, `mark-bits SHIFT` or `failsafe ...`"
            )),
        }
    }
    Ok(config)
}

/// A name the kernel could give an interface (at most 15 bytes, no `/`, blanks or `:`),
/// with an optional `+` at the end, as iptables' `-i` takes it.
fn valid_iface(name: &str) -> bool {
    let base = name.strip_suffix('+').unwrap_or(name);
    name.len() <= 15 && !base.contains(['/', ':', '+']) && (name.ends_with('+') || !base.is_empty())
}

/// What boot did, line by line, and, if it could not put the configuration in force,
/// why (boot then exits non-zero).
pub struct Outcome {
    pub done: Vec<String>,
    pub problem: Option<String>,
}

pub fn boot(dir: &Path) -> Result<Outcome> {
    let mut fw = Firewall::lock()?;
    // Nobody is logged in through these rules yet.
    fw.force = true;
    // One record at the end, of what boot settled on, not of each step.
    fw.defer_last_good = true;
    let mut done = Vec::new();
    let config = read_config(dir);
    let failsafe = config
        .as_ref()
        .map(|c| c.failsafe.clone())
        .unwrap_or_default();
    // The state is saved once a change is in force on both paths: a table without it is
    // a first change killed half-way, which judges nothing yet.
    if !(fw.state_exists() && crate::netfilter::table_exists()?) {
        put_failsafe(&mut fw, &failsafe, "fwctl boot has not finished".into())?;
        done.push(format!(
            "fail-safe in force while booting: {}",
            failsafe.describe()
        ));
        fault_point("boot-failsafe");
    }
    let mut problem = None;
    // The rules may fail while fwctl.conf is fine: its interfaces are still the ones to
    // attach to, whatever ruleset ends up in force.
    let (config, own_config) = match config {
        Ok(c) => (
            load(&mut fw, dir, &c, Source::Config, None).map(|notes| done.extend(notes)),
            Some(c),
        ),
        Err(e) => (Err(e), None),
    };
    let config = match config {
        Ok(()) => {
            done.push(format!("loaded {}", dir.display()));
            None
        }
        Err(e) => {
            let why = format!("{e:#}");
            let fallback = last_good::dir()?;
            let last = if last_good::exists(&fallback) {
                read_config(&fallback).and_then(|c| {
                    load(&mut fw, &fallback, &c, Source::LastGood, Some(why.clone()))
                        .map(|notes| done.extend(notes))
                        .map(|()| c)
                })
            } else {
                Err(anyhow::anyhow!("there is no last good ruleset"))
            };
            match last {
                Ok(c) => {
                    done.push(format!(
                        "loaded the last good ruleset from {}",
                        fallback.display()
                    ));
                    problem = Some(format!(
                        "{why}; the last good ruleset ({}) is in force instead",
                        fallback.display()
                    ));
                    Some(c)
                }
                Err(e2) => {
                    let why = format!("{why}; {}: {e2:#}", fallback.display());
                    put_failsafe(&mut fw, &failsafe, why.clone())?;
                    problem = Some(format!(
                        "{why}; the fail-safe is in force: {}",
                        failsafe.describe()
                    ));
                    None
                }
            }
        }
    };
    // fwctl.conf's interfaces when it reads, even if the rules did not load; else the
    // last good copy's.
    let config = own_config.or(config).unwrap_or_default();
    fw.state.watch = config.attach.clone();
    fw.state.failsafe = failsafe;
    fw.save_state()?;
    fw.defer_last_good = false;
    fw.record_last_good(true);
    fault_point("boot-loaded");
    let mut failed = Vec::new();
    for result in crate::watch::reconcile(&mut fw) {
        match result {
            Ok(line) => done.push(line),
            Err(line) => failed.push(line),
        }
    }
    for line in &config.attach {
        let present = crate::firewall::interface_names()
            .iter()
            .any(|(_, name)| line.matches(name));
        if !present {
            done.push(format!(
                "{}: no such interface yet; fwctl watch attaches it when it appears",
                line.iface
            ));
        } else if !line.is_pattern() && fw.state.interfaces.iter().any(|a| a.name == line.iface) {
            done.push(format!("{}: already attached", line.iface));
        }
    }
    if !failed.is_empty() {
        let failed = failed.join("; ");
        problem = Some(match problem {
            Some(p) => format!("{p}; {failed}"),
            None => failed,
        });
    }
    Ok(Outcome { done, problem })
}

/// fwctl.conf of `dir`; none is an empty configuration.
fn read_config(dir: &Path) -> Result<Config> {
    let path = dir.join("fwctl.conf");
    match read_optional(&path)? {
        Some(text) => parse_config(&text).with_context(|| path.display().to_string()),
        None => Ok(Config::default()),
    }
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Puts `dir`'s sets and rules in force: everything is read and parsed first, so a bad
/// line changes nothing; the sets go in, then both families' rules as one change. A family
/// without its file gets the fail-safe's rules, never none (said in the notes returned).
fn load(
    fw: &mut Firewall,
    dir: &Path,
    config: &Config,
    source: Source,
    why: Option<String>,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let sets_path = dir.join("sets");
    let sets = read_optional(&sets_path)?;
    let mut files = Vec::new();
    for family in Family::ALL {
        let path: PathBuf = dir.join(last_good::rules_file(family));
        files.push((family, read_optional(&path)?, path));
    }
    if sets.is_none() && files.iter().all(|(_, text, _)| text.is_none()) {
        bail!(
            "{}: no configuration (none of sets, rules.v4, rules.v6)",
            dir.display()
        );
    }
    let set_cmds = match &sets {
        Some(text) => {
            let cmds = crate::sets::ipset_format::parse_restore(text).map_err(|(line, e)| {
                anyhow::anyhow!("{}: line {line}: {e}", sets_path.display())
            })?;
            Some(
                cmds.into_iter()
                    .map(|(l, c)| (Some(l), c))
                    .collect::<Vec<_>>(),
            )
        }
        None => None,
    };
    // In-place changes after `sets` was written (last good copies only; see last_good).
    let journal_path = dir.join(last_good::JOURNAL);
    let journal = match (&sets, read_optional(&journal_path)?) {
        (Some(_), Some(text)) => {
            crate::sets::ipset_format::parse_restore(last_good::journal_text(&text))
                .map_err(|(line, e)| {
                    anyhow::anyhow!("{}: line {line}: {e}", journal_path.display())
                })?
                .into_iter()
                .map(|(l, c)| (Some(l), c))
                .collect::<Vec<_>>()
        }
        _ => Vec::new(),
    };
    let mut editor = Editor::new(fw.state.ruleset.clone());
    let mut restored = Vec::new();
    for (family, text, path) in files {
        if text.is_some() {
            restored.push(format!("restored {}", path.display()));
        }
        let text = text.unwrap_or_else(|| {
            notes.push(format!(
                "{}: none; {} has the fail-safe's rules",
                path.display(),
                family.tool()
            ));
            config.failsafe.rules(family)
        });
        editor = restore_onto(&text, family, editor, false)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            .editor;
        // A table the text does not name and that holds nothing is not the configuration's
        // (the fail-safe's `*nat` flush left it declared): as iptables-restore of this text
        // alone, it does not exist.
        for table in Table::ALL {
            let named = text
                .lines()
                .any(|l| l.trim().strip_prefix('*') == Some(table.name()));
            let rules = editor.ruleset.table_mut(table, family);
            if !named && rules.is_empty() {
                rules.declared = false;
            }
        }
    }
    if let Some(shift) = config.mark_shift {
        fw.state.mark_shift = shift;
    }
    if let Some(on) = config.ct_filter {
        fw.state.ct_filter = on;
    }
    if let Some(cmds) = set_cmds {
        fw.set_commands(&cmds)
            .with_context(|| sets_path.display().to_string())?;
        notes.push(format!("restored {}", sets_path.display()));
        if !journal.is_empty() {
            fw.set_commands(&journal)
                .with_context(|| journal_path.display().to_string())?;
            notes.push(format!(
                "replayed {} set change(s) from {}",
                journal.len(),
                journal_path.display()
            ));
        }
        fault_point("boot-sets");
    }
    fw.origin = Some(Origin {
        source,
        from: Some(dir.to_path_buf()),
        why,
    });
    fw.commit(editor)
        .with_context(|| format!("{}: putting it in force", dir.display()))?;
    notes.extend(restored);
    Ok(notes)
}

fn put_failsafe(fw: &mut Firewall, failsafe: &Failsafe, why: String) -> Result<()> {
    let mut editor = Editor::new(fw.state.ruleset.clone());
    for family in Family::ALL {
        editor = restore_onto(&failsafe.rules(family), family, editor, false)
            .map_err(|e| anyhow::anyhow!("the fail-safe ruleset: {e}"))?
            .editor;
    }
    fw.origin = Some(Origin {
        source: Source::FailSafe,
        from: None,
        why: Some(why),
    });
    fw.commit(editor).context("putting the fail-safe in force")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(iface: &str, mode: XdpMode) -> AttachLine {
        AttachLine {
            iface: iface.into(),
            mode,
        }
    }

    #[test]
    fn config_lines() {
        let c = parse_config("# lab\nattach eth0\nattach eth1 generic # old NIC\n\n").unwrap();
        assert_eq!(
            c.attach,
            [
                line("eth0", XdpMode::Native),
                line("eth1", XdpMode::Generic)
            ]
        );
        assert_eq!(c.mark_shift, None);
        assert_eq!(c.failsafe, Failsafe::Drop { ssh: vec![22] });
        let e = parse_config("attach\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "fwctl.conf line 1: expected `attach IFACE [native|generic]`, `mark-bits SHIFT` or `failsafe ...`, got `attach'"
        );
        assert_eq!(parse_config("mark-bits 16\n").unwrap().mark_shift, Some(16));
        assert_eq!(
            parse_config("ct-filter off\n").unwrap().ct_filter,
            Some(false)
        );
        let e = parse_config("ct-filter no\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "fwctl.conf line 1: expected `ct-filter on` or `ct-filter off`, got `ct-filter no'"
        );
        let e = parse_config("\nmark-bits 30\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "fwctl.conf line 2: expected `mark-bits SHIFT` with SHIFT 0 to 29, got `mark-bits 30'"
        );
    }

    #[test]
    fn patterns_and_failsafe_lines() {
        let c =
            parse_config("attach tun+\nattach eth+ generic\nfailsafe drop ssh 22,2222\n").unwrap();
        assert!(c.attach[0].matches("tun0") && !c.attach[0].matches("eth0"));
        assert!(c.attach[1].matches("eth12") && c.attach[1].is_pattern());
        assert!(!line("eth1", XdpMode::Native).matches("eth10"));
        assert_eq!(
            c.failsafe,
            Failsafe::Drop {
                ssh: vec![22, 2222]
            }
        );
        assert_eq!(
            parse_config("failsafe accept\n").unwrap().failsafe,
            Failsafe::Accept
        );
        assert!(parse_config("failsafe open\n").is_err());
        assert!(parse_config("failsafe drop ssh 0\n").is_err());
        assert!(parse_config("attach a/b\n").is_err());
        assert!(parse_config("attach e+th\n").is_err());
        // What fwctl.conf says is what the last good copy writes back.
        for f in [
            Failsafe::Accept,
            Failsafe::default(),
            Failsafe::Drop { ssh: vec![] },
            Failsafe::Drop {
                ssh: vec![22, 2222],
            },
        ] {
            assert_eq!(parse_config(&f.to_string()).unwrap().failsafe, f);
        }
    }

    /// The fail-safe is a ruleset fwctl's own parser takes, for both families.
    #[test]
    fn failsafe_rules_restore() {
        for f in [
            Failsafe::Accept,
            Failsafe::default(),
            Failsafe::Drop {
                ssh: vec![22, 2222],
            },
        ] {
            let mut editor = Editor::new(Default::default());
            for family in Family::ALL {
                editor = restore_onto(&f.rules(family), family, editor, false)
                    .unwrap_or_else(|e| panic!("{f:?} {family:?}: {e}"))
                    .editor;
            }
            let input = &editor.ruleset.family(Family::V4).input;
            match f {
                Failsafe::Accept => assert!(input.rules.is_empty()),
                _ => assert_eq!(input.policy.name(), "DROP"),
            }
        }
    }
}
