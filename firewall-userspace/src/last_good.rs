//! The last good ruleset: every change fwctl puts in force is also kept on disk (not on
//! tmpfs, unlike the state and the pins), as a configuration directory `fwctl boot` can read
//! as it reads /etc/fwctl: `rules.v4` and `rules.v6` (iptables-save), `sets` (ipset save)
//! and `fwctl.conf` (the interfaces, mark bits and fail-safe). Boot falls back to it when
//! the configuration does not load.
//!
//! The directory is replaced as a whole: the new copy is written beside it (each file
//! synced), then the two are exchanged with one renameat2(RENAME_EXCHANGE) and the parent
//! synced, so a crash leaves the old copy or the new one, never a mix of both.
//!
//! One set member added or deleted (a ban, an unban) does not rewrite the copy: the change
//! is appended to `sets.journal` beside `sets` and synced (one write, one fdatasync, where
//! writing a whole copy costs six syncs and every member of every set). Boot replays the
//! journal after `sets`; a line a crash cut short is not a change that was recorded. The
//! next change written whole starts a fresh copy without a journal (`sets` then holds
//! everything), or links both files into it when the sets did not change.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::{
    firewall::Firewall,
    rules::{Family, Table},
    sets::ipset_format::Cmd,
    state::write_text,
};

/// The in-place set changes since the copy's `sets` was written, one ipset restore line
/// each (see the module's comment).
pub const JOURNAL: &str = "sets.journal";
/// Past this size the next in-place change writes the copy whole instead, so that boot
/// never replays more than a few thousand lines.
const JOURNAL_LIMIT: u64 = 256 * 1024;

/// Where fwctl keeps what must survive a reboot.
pub const DEFAULT_ROOT: &str = "/var/lib/fwctl";
/// Overrides [`DEFAULT_ROOT`] (tests, or a host whose /var/lib is not persistent).
pub const ROOT_ENV: &str = "FWCTL_STATE_DIR";

/// The last good copy's directory for this network namespace: `$FWCTL_STATE_DIR/last-good`
/// if set; else /var/lib/fwctl/last-good, or /var/lib/fwctl/netns/NAME/last-good in a named
/// namespace (`ip netns exec NAME fwctl ...`), so that a namespace's firewall never
/// overwrites the host's. Network namespace cookies do not survive a reboot; names do.
pub fn dir() -> Result<PathBuf> {
    if let Some(root) = std::env::var_os(ROOT_ENV).filter(|r| !r.is_empty()) {
        return Ok(PathBuf::from(root).join("last-good"));
    }
    let root = Path::new(DEFAULT_ROOT);
    Ok(match netns_name()? {
        Some(name) => root.join("netns").join(name).join("last-good"),
        None => root.join("last-good"),
    })
}

/// The name `ip netns` gave this process's network namespace, if any (a bind mount of it
/// in /run/netns has its inode).
fn netns_name() -> Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let own = fs::metadata("/proc/self/ns/net").context("reading /proc/self/ns/net")?;
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return Ok(None);
    };
    for entry in entries.flatten() {
        if let Ok(meta) = fs::metadata(entry.path()) {
            if meta.dev() == own.dev() && meta.ino() == own.ino() {
                return Ok(Some(entry.file_name().to_string_lossy().into_owned()));
            }
        }
    }
    Ok(None)
}

/// Whether a last good copy exists (one with at least one of its files).
pub fn exists(dir: &Path) -> bool {
    ["rules.v4", "rules.v6", "sets"]
        .iter()
        .any(|f| dir.join(f).exists())
}

/// Writes the firewall in force as the last good copy. The sets' members are written when
/// `sets` says they changed (or the copy has none yet); otherwise the previous copy's
/// file is linked into the new one, since writing a million members at every rule change
/// would cost seconds.
pub fn record(fw: &Firewall, sets: bool) -> Result<()> {
    let dir = dir()?;
    let parent = dir
        .parent()
        .context("the last good directory has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let new = sibling(&dir, "new");
    // Left over by a run that died while writing, or the copy before the last exchange.
    remove_dir(&new)?;
    fs::create_dir(&new).with_context(|| format!("creating {}", new.display()))?;
    for family in Family::ALL {
        // The filter table, and every other one that exists: a nat table written empty
        // would come back declared (and judged by netfilter, see compile/nat.rs), and a
        // raw or mangle table left out would be lost.
        let tables: Vec<_> = Table::ALL
            .into_iter()
            .map(|t| fw.state.ruleset.table(t, family))
            .filter(|r| r.table == Table::Filter || r.exists())
            .map(|r| (r, None))
            .collect();
        let text = crate::cli::list::save(&tables, &crate::cli::date());
        put(&dir, &new, rules_file(family), &text)?;
    }
    let old_sets = dir.join("sets");
    if fw.state.sets.sets.is_empty() {
        // No file: nothing to restore (an empty file would be as good, but says less).
    } else if sets || !old_sets.exists() {
        write_text(&new.join("sets"), &sets_text(fw)?)?;
    } else {
        for name in ["sets", JOURNAL] {
            let old = dir.join(name);
            if name == JOURNAL && !old.exists() {
                continue;
            }
            fs::hard_link(&old, new.join(name))
                .with_context(|| format!("linking {}", old.display()))?;
        }
    }
    put(&dir, &new, "fwctl.conf", &conf_text(fw))?;
    sync(&new)?;
    if dir.exists() {
        crate::dataplane::resize::exchange(&new, &dir)?;
    } else {
        fs::rename(&new, &dir).with_context(|| format!("renaming to {}", dir.display()))?;
    }
    sync(parent)?;
    remove_dir(&new)
}

/// Puts file `name` with `text` into the new copy `new`: linked from the copy in place
/// `old` when that one already says the same (it is on the disk already: no write, no
/// sync), written and synced otherwise. A change of one family's rules then syncs one
/// file, not four.
fn put(old: &Path, new: &Path, name: &str, text: &str) -> Result<()> {
    let before = old.join(name);
    let same = fs::read(&before).is_ok_and(|b| same_rules(&b, text.as_bytes()));
    if same {
        return fs::hard_link(&before, new.join(name))
            .with_context(|| format!("linking {}", before.display()));
    }
    write_text(&new.join(name), text)
}

/// Whether two saved texts say the same, the date lines iptables-save writes aside.
fn same_rules(a: &[u8], b: &[u8]) -> bool {
    fn lines(t: &[u8]) -> impl Iterator<Item = &[u8]> {
        t.split(|&c| c == b'\n')
            .filter(|l| !(l.starts_with(b"# Generated by") || l.starts_with(b"# Completed on")))
    }
    lines(a).eq(lines(b))
}

/// Records one set change already in force, made in place (an `add` or `del` of members),
/// by appending it to the copy's journal; writes the copy whole instead when it has no
/// sets yet or its journal is long, or for any other command.
pub fn journal(fw: &Firewall, cmd: &Cmd) -> Result<()> {
    let line = match cmd {
        Cmd::Add {
            set,
            member,
            timeout,
            ..
        } => {
            let timeout = timeout.map(|t| format!(" timeout {t}")).unwrap_or_default();
            format!("add -exist {set} {member}{timeout}\n")
        }
        Cmd::Del { set, member, .. } => format!("del -exist {set} {member}\n"),
        _ => return record(fw, true),
    };
    let dir = dir()?;
    let path = dir.join(JOURNAL);
    let long = path.metadata().is_ok_and(|m| m.len() >= JOURNAL_LIMIT);
    if long || !dir.join("sets").exists() {
        return record(fw, true);
    }
    let fresh = !path.exists();
    let mut file = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // One write of one short line; a crash can cut it short, which boot takes as the
    // change not being recorded.
    std::io::Write::write_all(&mut file, line.as_bytes())
        .with_context(|| format!("appending to {}", path.display()))?;
    file.sync_data()
        .with_context(|| format!("syncing {}", path.display()))?;
    if fresh {
        sync(&dir)?;
    }
    Ok(())
}

/// The journal's complete lines (see [`JOURNAL`]); an unfinished last line is dropped.
pub fn journal_text(text: &str) -> &str {
    match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    }
}

/// Removes the last good copy (`fwctl down`: no trace of fwctl is left).
pub fn remove() -> Result<()> {
    let dir = dir()?;
    remove_dir(&dir)?;
    remove_dir(&sibling(&dir, "new"))?;
    // The per-namespace folders, if now empty; never /var/lib/fwctl's other contents.
    if let Some(parent) = dir.parent() {
        if parent.parent().is_some_and(|p| p.ends_with("netns")) {
            let _ = fs::remove_dir(parent);
        }
    }
    Ok(())
}

pub fn rules_file(family: Family) -> &'static str {
    match family {
        Family::V4 => "rules.v4",
        Family::V6 => "rules.v6",
    }
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".{suffix}"));
    PathBuf::from(name)
}

fn sets_text(fw: &Firewall) -> Result<String> {
    let mut out = String::new();
    let now = crate::sets::xdp::now_ns();
    for def in &fw.state.sets.sets {
        let members = fw.set_members(def)?;
        crate::sets::ipset_format::save(&mut out, def, &members, now);
    }
    Ok(out)
}

/// fwctl.conf as boot reads it: the interfaces attached now (each by name) and the watched
/// names and patterns, the mark bits, the conntrack filter's setting and the fail-safe.
fn conf_text(fw: &Firewall) -> String {
    let state = &fw.state;
    let mut out = String::from("# Written by fwctl: the last good configuration's options.\n");
    out.push_str(&format!("mark-bits {}\n", state.mark_shift));
    let filter = if state.ct_filter { "on" } else { "off" };
    out.push_str(&format!("ct-filter {filter}\n"));
    out.push_str(&format!("{}\n", state.failsafe));
    let mut lines: Vec<crate::boot::AttachLine> = state.watch.clone();
    for a in &state.interfaces {
        if !lines.iter().any(|l| l.matches(&a.name)) {
            lines.push(crate::boot::AttachLine {
                iface: a.name.clone(),
                mode: a.mode,
            });
        }
    }
    for line in lines {
        out.push_str(&format!("attach {} {}\n", line.iface, line.mode.name()));
    }
    out
}

fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

/// fsync on a directory: the names written or renamed in it reach the disk.
fn sync(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}
