//! `fwctl set ...`: ipset's commands and words (`fwctl set create bl hash:net`, `fwctl set
//! add bl 10.0.0.0/8`, `fwctl set restore < blocklist`), parsed by sets/ipset_format.rs.

use anyhow::{Context, Result};

use super::Exit;
use crate::{
    firewall::Firewall,
    sets::{
        ipset_format::{self, parse_restore, parse_words, ListInfo},
        model::SetDef,
        ops::{test, SetError, NO_SET},
        xdp::now_ns,
    },
};

pub const HELP: &str = "\
Sets, as ipset has them (the same words, and ipset's save format for save and restore):
  fwctl set create bl hash:net [family inet|inet6] [timeout S] [maxelem N]
  fwctl set add bl 10.0.0.0/8 [timeout S]     fwctl set del bl 10.0.0.0/8
  fwctl set test bl 10.1.2.3                  (exit status 0: in the set, 1: not)
  fwctl set list [NAME] [-n|-t]               fwctl set save [NAME] > sets.txt
  fwctl set restore [FILE|-]                  one change: a bad line changes nothing
  fwctl set flush [NAME] / destroy [NAME] / swap A B
Types: hash:ip (1.2.3.4), hash:net (10.0.0.0/8), hash:ip,port (1.2.3.4,80 1.2.3.4,udp:53).
A `create` in a restore file for a set that exists with the same type and family replaces
it, options and members, atomically (ipset would refuse it); with -exist it adds to it.
Rules: fwctl -A INPUT -m set --match-set bl src -j DROP  (! --match-set to negate)";

fn failed(e: SetError) -> anyhow::Error {
    Exit {
        message: e.to_string(),
        status: 1,
    }
    .into()
}

pub fn run(args: &[String]) -> Result<()> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.first().copied() {
        None | Some("help" | "-h" | "--help") => {
            println!("{HELP}");
            Ok(())
        }
        Some("list" | "-L" | "l") => list(&words[1..], false),
        Some("save" | "-S" | "s") => list(&words[1..], true),
        Some("test" | "-T" | "t") => test_member(&words[1..]),
        Some("restore" | "-R" | "r") => restore(&words[1..]),
        Some(_) => {
            let cmd = parse_words(&words).map_err(|message| {
                failed(SetError {
                    line: None,
                    message,
                })
            })?;
            let mut fw = Firewall::lock()?;
            fw.set_commands(&[(None, cmd)]).map_err(into_exit)
        }
    }
}

fn into_exit(e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<SetError>() {
        Ok(set) => failed(set),
        Err(other) => other,
    }
}

fn restore(words: &[&str]) -> Result<()> {
    use std::io::Read;
    let file = match words {
        [] | ["-"] => None,
        [path] | ["-file" | "--file", path] => Some(*path),
        _ => anyhow::bail!("set restore takes one file (or - for standard input)"),
    };
    let text = match file {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading standard input")?;
            s
        }
    };
    let cmds = parse_restore(&text).map_err(|(line, message)| {
        failed(SetError {
            line: Some(line),
            message,
        })
    })?;
    let cmds: Vec<_> = cmds.into_iter().map(|(l, c)| (Some(l), c)).collect();
    let mut fw = Firewall::lock()?;
    fw.set_commands(&cmds).map_err(into_exit)
}

fn test_member(words: &[&str]) -> Result<()> {
    let [name, member] = words else {
        anyhow::bail!("set test takes a set name and a member");
    };
    let fw = Firewall::lock()?;
    let def = fw.state.sets.get(name).context(NO_SET)?;
    let members = fw.set_members(def)?;
    let hit = test(def, &members, member).map_err(|message| {
        failed(SetError {
            line: None,
            message,
        })
    })?;
    if hit {
        eprintln!("Warning: {member} is in set {name}.");
        Ok(())
    } else {
        Err(Exit {
            message: format!("{member} is NOT in set {name}."),
            status: 1,
        }
        .into())
    }
}

/// Kernel memory of one member, measured (README, Sets): XDP trie nodes and the netfilter
/// set's element, roughly.
const BYTES_PER_MEMBER: u64 = 240;

/// `list` (`save`: ipset's save format) of one set or all.
fn list(words: &[&str], save: bool) -> Result<()> {
    let mut name = None;
    let (mut names_only, mut terse, mut as_save) = (false, false, save);
    let mut it = words.iter();
    while let Some(w) = it.next() {
        match *w {
            "-n" | "-name" | "--name" => names_only = true,
            "-t" | "-terse" | "--terse" => terse = true,
            "-o" | "-output" | "--output" => match it.next() {
                Some(&"save") => as_save = true,
                Some(&"plain") => {}
                other => anyhow::bail!("unknown output format {other:?}: use plain or save"),
            },
            n if name.is_none() && !n.starts_with('-') => name = Some(n),
            other => anyhow::bail!("unknown word `{other}' for set list"),
        }
    }
    let fw = Firewall::lock()?;
    let defs: Vec<&SetDef> = match name {
        Some(n) => vec![fw.state.sets.get(n).context(NO_SET)?],
        None => fw.state.sets.sets.iter().collect(),
    };
    let now = now_ns();
    let mut out = String::new();
    for (i, def) in defs.iter().enumerate() {
        if names_only {
            out.push_str(&def.name);
            out.push('\n');
            continue;
        }
        let members = fw.set_members(def)?;
        if as_save {
            ipset_format::save(&mut out, def, &members, now);
            continue;
        }
        if i > 0 {
            out.push('\n');
        }
        let info = ListInfo {
            references: fw.state.ruleset.set_references(&def.name),
            memory: members.len() as u64 * BYTES_PER_MEMBER,
        };
        ipset_format::list(&mut out, def, &members, &info, terse, now);
    }
    print!("{out}");
    Ok(())
}
