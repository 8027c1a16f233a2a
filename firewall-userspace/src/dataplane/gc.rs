//! Pins and state of network namespaces that no longer exist.
//!
//! A namespace deleted without `fwctl down` leaves its pinned maps and programs in bpffs
//! (kernel memory, held by the pins alone) and its state in /run/fwctl. Nothing can reach
//! them again, since a cookie is never reused. `collect` removes them; `down`, `status` and
//! `boot` call it.
//!
//! A namespace is alive while something can still enter it: a process or thread in it, an
//! open nsfs file descriptor of it, or an nsfs bind mount of it (`ip netns add`, in any
//! mount namespace). Each of those is found through /proc and its cookie read from a socket
//! made inside it; a namespace fwctl cannot see is one no fwctl can manage either. The pin
//! directories are listed before the live namespaces are, so a namespace created meanwhile
//! is never taken for a dead one.

use std::{
    collections::{HashMap, HashSet},
    fs::{self, File},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use super::namespace::{netns_cookie, BPFFS};

/// A directory of fwctl's and the namespace it belongs to.
struct Leftover {
    cookie: u64,
    path: PathBuf,
}

/// Removes the pins and state of dead namespaces; returns their cookies.
pub fn collect() -> Result<Vec<u64>> {
    let leftovers = leftovers()?;
    if leftovers.is_empty() {
        return Ok(Vec::new());
    }
    let Some(live) = live_cookies()? else {
        log::warn!(
            "not removing pins of deleted network namespaces: a namespace could not be read"
        );
        return Ok(Vec::new());
    };
    let mut gone: Vec<u64> = Vec::new();
    for l in leftovers.iter().filter(|l| !live.contains(&l.cookie)) {
        fs::remove_dir_all(&l.path).with_context(|| format!("removing {}", l.path.display()))?;
        if !gone.contains(&l.cookie) {
            gone.push(l.cookie);
        }
    }
    Ok(gone)
}

/// `ns-<cookie>` (and `ns-<cookie>-new`, an interrupted resize's scratch) under every ABI
/// version's pin folder, and `ns-<cookie>` state folders.
fn leftovers() -> Result<Vec<Leftover>> {
    let mut dirs: Vec<PathBuf> = vec![PathBuf::from("/run/fwctl")];
    let versions = Path::new(BPFFS).join("fwctl");
    if let Ok(entries) = fs::read_dir(&versions) {
        dirs.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Some(rest) = name.strip_prefix("ns-") else {
                continue;
            };
            let digits = rest.strip_suffix("-new").unwrap_or(rest);
            if let Ok(cookie) = digits.parse() {
                out.push(Leftover {
                    cookie,
                    path: e.path(),
                });
            }
        }
    }
    Ok(out)
}

/// The cookies of every network namespace something can still enter, or None when one of
/// them could not be read (its cookie unknown, no pin may go).
fn live_cookies() -> Result<Option<HashSet<u64>>> {
    // Every way in to each namespace (by nsfs inode): a process that exits meanwhile takes
    // one way with it, not the namespace.
    let mut ways: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    let mut add = |path: PathBuf| {
        if let Ok(meta) = fs::metadata(&path) {
            ways.entry((meta.dev(), meta.ino())).or_default().push(path);
        }
    };
    let procs = fs::read_dir("/proc").context("reading /proc")?;
    for pid in procs.filter_map(|e| e.ok()) {
        let pid_dir = pid.path();
        if !pid
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        // Every thread: one may sit in another namespace than its process.
        if let Ok(tasks) = fs::read_dir(pid_dir.join("task")) {
            for t in tasks.filter_map(|e| e.ok()) {
                add(t.path().join("ns/net"));
            }
        }
        if let Ok(fds) = fs::read_dir(pid_dir.join("fd")) {
            for fd in fds.filter_map(|e| e.ok()) {
                let is_netns = fs::read_link(fd.path())
                    .is_ok_and(|t| t.to_string_lossy().starts_with("net:["));
                if is_netns {
                    add(fd.path());
                }
            }
        }
        // nsfs bind mounts as this process's mount namespace sees them, through its root.
        if let Ok(mountinfo) = fs::read_to_string(pid_dir.join("mountinfo")) {
            for line in mountinfo.lines() {
                let Some((left, right)) = line.split_once(" - ") else {
                    continue;
                };
                if right.split_whitespace().next() != Some("nsfs") {
                    continue;
                }
                if let Some(mount_point) = left.split_whitespace().nth(4) {
                    let path = format!("{}/root{}", pid_dir.display(), unescape(mount_point));
                    add(PathBuf::from(path));
                }
            }
        }
    }
    // setns on a thread of its own: the main thread's namespace is the one fwctl manages.
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut cookies = HashSet::new();
            for paths in ways.values() {
                let cookie = paths.iter().find_map(|p| {
                    let f = File::open(p).ok()?;
                    // SAFETY: setns on an fd we own; only this thread moves.
                    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return None;
                    }
                    netns_cookie().ok()
                });
                cookies.insert(cookie?);
            }
            Some(cookies)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread reading namespace cookies panicked"))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(c as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(super::unescape(r"/run/netns/a\040b"), "/run/netns/a b");
        assert_eq!(super::unescape("/run/netns/plain"), "/run/netns/plain");
    }
}
