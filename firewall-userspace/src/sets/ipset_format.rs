//! ipset's own text: the commands of `ipset restore` (and of `fwctl set`, which takes the
//! same words), read into plain data with no side effect, and the `list` and `save`
//! layouts, as ipset 7.17 writes them.

use std::fmt::Write;

use super::model::{
    check_name, family_from_name, format_member, live_at, Members, SetDef, SetKind,
    DEFAULT_HASHSIZE, DEFAULT_MAXELEM, MAX_TIMEOUT,
};
use crate::rules::Family;

/// One command, as ipset's restore format and `fwctl set` write it. `exist`: ipset's
/// `-exist`, no error for what is already so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// The set as the line defines it, with no storage yet (0).
    Create(SetDef, bool),
    /// A member as written (its parsing needs the set's type), and its timeout.
    Add {
        set: String,
        member: String,
        timeout: Option<u32>,
        exist: bool,
    },
    Del {
        set: String,
        member: String,
        exist: bool,
    },
    Flush(Option<String>),
    Destroy(Option<String>),
    Swap(String, String),
}

fn timeout(value: Option<&str>) -> Result<u32, String> {
    let v = value.ok_or("timeout needs a number of seconds")?;
    v.parse::<u32>()
        .ok()
        .filter(|t| *t <= MAX_TIMEOUT)
        .ok_or_else(|| format!("'{v}' is out of range 0-{MAX_TIMEOUT}"))
}

fn number(what: &str, value: Option<&str>) -> Result<u32, String> {
    let v = value.ok_or_else(|| format!("{what} needs a number"))?;
    v.parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("'{v}' is not a valid {what}"))
}

fn name(word: Option<&str>, what: &str) -> Result<String, String> {
    let n = word.ok_or_else(|| format!("{what} needs a set name"))?;
    check_name(n)?;
    Ok(n.to_string())
}

/// One command from its words (`-exist` may come anywhere after the verb).
pub fn parse_words(words: &[&str]) -> Result<Cmd, String> {
    let exist = words
        .iter()
        .any(|w| matches!(*w, "-exist" | "-!" | "--exist"));
    let words: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !matches!(*w, "-exist" | "-!" | "--exist"))
        .collect();
    let (&verb, rest) = words.split_first().ok_or("empty command")?;
    let mut it = rest.iter().copied();
    let cmd = match verb {
        "create" | "-N" | "n" => {
            let name = name(it.next(), "create")?;
            let type_name = it.next().ok_or("create needs a set type")?;
            let kind = SetKind::from_name(type_name).ok_or_else(|| {
                format!("typename '{type_name}' is unknown: fwctl has hash:ip, hash:net and hash:ip,port")
            })?;
            let mut spec = SetDef {
                name,
                kind,
                family: Family::V4,
                timeout: None,
                maxelem: DEFAULT_MAXELEM,
                hashsize: DEFAULT_HASHSIZE,
                storage: 0,
            };
            while let Some(opt) = it.next() {
                match opt {
                    "family" => {
                        let f = it.next().ok_or("family needs inet or inet6")?;
                        spec.family = family_from_name(f)
                            .ok_or_else(|| format!("unknown family '{f}': use inet or inet6"))?;
                    }
                    "-4" => spec.family = Family::V4,
                    "-6" => spec.family = Family::V6,
                    "timeout" => spec.timeout = Some(timeout(it.next())?),
                    "maxelem" => spec.maxelem = number("maxelem", it.next())?,
                    "hashsize" => spec.hashsize = number("hashsize", it.next())?,
                    // ipset's hashing details: nothing to do with them here.
                    "bucketsize" | "initval" | "probes" | "resize" => {
                        it.next().ok_or_else(|| format!("{opt} needs a value"))?;
                    }
                    "counters" | "comment" | "skbinfo" | "forceadd" | "netmask" | "nomatch" => {
                        return Err(format!("option '{opt}' is not supported by fwctl"))
                    }
                    other => return Err(format!("unknown option '{other}' for create")),
                }
            }
            return Ok(Cmd::Create(spec, exist));
        }
        "add" | "-A" | "a" => {
            let set = name(it.next(), "add")?;
            let member = it.next().ok_or("add needs a member")?.to_string();
            let mut t = None;
            while let Some(opt) = it.next() {
                match opt {
                    "timeout" => t = Some(timeout(it.next())?),
                    other => {
                        return Err(format!(
                            "option '{other}' is not supported by fwctl for add (timeout is)"
                        ))
                    }
                }
            }
            Cmd::Add {
                set,
                member,
                timeout: t,
                exist,
            }
        }
        "del" | "-D" | "d" => {
            let set = name(it.next(), "del")?;
            let member = it.next().ok_or("del needs a member")?.to_string();
            Cmd::Del { set, member, exist }
        }
        "flush" | "-F" | "f" => Cmd::Flush(it.next().map(str::to_string)),
        "destroy" | "-X" | "x" => Cmd::Destroy(it.next().map(str::to_string)),
        "swap" | "-W" | "w" => {
            let a = name(it.next(), "swap")?;
            let b = name(it.next(), "swap")?;
            Cmd::Swap(a, b)
        }
        other => {
            return Err(format!(
                "unknown command '{other}': restore takes create, add, del, flush, destroy and swap"
            ))
        }
    };
    if it.next().is_some() {
        return Err(format!("too many words for {verb}"));
    }
    Ok(cmd)
}

/// A restore file, a command per line; blank lines, `#` comments and `COMMIT` are skipped.
/// The error names the (1-based) line.
pub fn parse_restore(text: &str) -> Result<Vec<(usize, Cmd)>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() || words[0].starts_with('#') || words == ["COMMIT"] {
            continue;
        }
        out.push((i + 1, parse_words(&words).map_err(|e| (i + 1, e))?));
    }
    Ok(out)
}

/// A member's `timeout N` as ipset writes it: seconds left, or 0 for a permanent member of
/// a set with timeouts; nothing in a set without them.
fn member_timeout(def: &SetDef, expiry: u64, now: u64) -> String {
    match def.timeout {
        None => String::new(),
        Some(_) if expiry == 0 => " timeout 0".to_string(),
        Some(_) => format!(" timeout {}", expiry.saturating_sub(now) / 1_000_000_000),
    }
}

/// Members that have not expired at `now`, in the order they are written.
fn live(members: &Members, now: u64) -> impl Iterator<Item = (&super::model::Member, u64)> {
    members
        .iter()
        .filter(move |(_, e)| live_at(**e, now))
        .map(|(m, e)| (m, *e))
}

/// `save`: the `create` line and the `add` lines of a set.
pub fn save(out: &mut String, def: &SetDef, members: &Members, now: u64) {
    let _ = writeln!(
        out,
        "create {} {} {}",
        def.name,
        def.kind.name(),
        def.header()
    );
    for (m, expiry) in live(members, now) {
        let _ = writeln!(
            out,
            "add {} {}{}",
            def.name,
            format_member(m, def.kind, def.family),
            member_timeout(def, expiry, now)
        );
    }
}

/// What `list` shows of a set beside its definition.
pub struct ListInfo {
    pub references: usize,
    pub memory: u64,
}

/// `list`: the header, and unless `terse`, the members.
pub fn list(
    out: &mut String,
    def: &SetDef,
    members: &Members,
    info: &ListInfo,
    terse: bool,
    now: u64,
) {
    let count = live(members, now).count();
    let _ = writeln!(out, "Name: {}", def.name);
    let _ = writeln!(out, "Type: {}", def.kind.name());
    let _ = writeln!(out, "Revision: {}", def.kind.revision());
    let _ = writeln!(out, "Header: {}", def.header());
    let _ = writeln!(out, "Size in memory: {}", info.memory);
    let _ = writeln!(out, "References: {}", info.references);
    let _ = writeln!(out, "Number of entries: {count}");
    if terse {
        return;
    }
    out.push_str("Members:\n");
    for (m, expiry) in live(members, now) {
        let _ = writeln!(
            out,
            "{}{}",
            format_member(m, def.kind, def.family),
            member_timeout(def, expiry, now)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sets::model::parse_member;

    #[test]
    fn ipset_save_lines_are_read() {
        let text = "\
create bl hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x14cf4c02
add bl 10.0.0.0/24

# a comment
create ipp hash:ip,port family inet hashsize 1024 maxelem 65536 timeout 300 bucketsize 12 initval 0x2bf487d3
add ipp 1.2.3.4,udp:53 timeout 9
add bl 192.168.1.1 -exist
";
        let cmds = parse_restore(text).unwrap();
        assert_eq!(cmds.len(), 5);
        assert_eq!(cmds[2].0, 5);
        match &cmds[2].1 {
            Cmd::Create(spec, false) => {
                assert_eq!(spec.kind, SetKind::HashIpPort);
                assert_eq!(spec.timeout, Some(300));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            cmds[3].1,
            Cmd::Add {
                set: "ipp".into(),
                member: "1.2.3.4,udp:53".into(),
                timeout: Some(9),
                exist: false
            }
        );
        assert!(matches!(&cmds[4].1, Cmd::Add { exist: true, .. }));
    }

    #[test]
    fn bad_lines_are_named() {
        let text = "create a hash:ip\nadd a 1.2.3.4\ncreate b hash:foo\n";
        let (line, msg) = parse_restore(text).unwrap_err();
        assert_eq!(line, 3);
        assert!(msg.contains("hash:foo"), "{msg}");
        let (line, msg) = parse_restore("add a 1.2.3.4 timeout 99999999\n").unwrap_err();
        assert_eq!(line, 1);
        assert!(msg.contains("out of range 0-2147483"), "{msg}");
        assert!(parse_restore("create a hash:ip counters\n").is_err());
        assert!(parse_restore("frobnicate a\n").is_err());
    }

    #[test]
    fn list_and_save_are_laid_out_as_ipset_does() {
        let def = match parse_words(&["create", "bl", "hash:net", "timeout", "300"]).unwrap() {
            Cmd::Create(s, _) => SetDef { storage: 1, ..s },
            other => panic!("{other:?}"),
        };
        let mut members = Members::new();
        let now = 1_000_000_000_000;
        for (text, expiry) in [("10.0.0.0/24", now + 299_500_000_000), ("192.168.1.1", 0)] {
            let m = parse_member(text, def.kind, def.family).unwrap()[0];
            members.insert(m, expiry);
        }
        // Expired: neither listed nor saved.
        let m = parse_member("10.9.9.9", def.kind, def.family).unwrap()[0];
        members.insert(m, now - 1);
        let mut saved = String::new();
        save(&mut saved, &def, &members, now);
        assert_eq!(
            saved,
            "create bl hash:net family inet hashsize 1024 maxelem 65536 timeout 300\n\
             add bl 10.0.0.0/24 timeout 299\n\
             add bl 192.168.1.1 timeout 0\n"
        );
        let mut listed = String::new();
        let info = ListInfo {
            references: 1,
            memory: 400,
        };
        list(&mut listed, &def, &members, &info, false, now);
        assert_eq!(
            listed,
            "Name: bl\nType: hash:net\nRevision: 7\n\
             Header: family inet hashsize 1024 maxelem 65536 timeout 300\n\
             Size in memory: 400\nReferences: 1\nNumber of entries: 2\nMembers:\n\
             10.0.0.0/24 timeout 299\n192.168.1.1 timeout 0\n"
        );
    }
}
