//! `fwctl apply --confirm`: the iptables-apply model. The new ruleset goes in at once, the
//! one before is kept in a pending file, and a detached watcher puts it back at the
//! deadline unless `fwctl confirm` removed the pending file first. The watcher outlives
//! the operator's terminal, so a change that cut the session undoes itself.

use std::{
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::{
    firewall::Firewall,
    rules::{edit::Editor, Ruleset},
    state::{read_json, write_json},
};

#[derive(Serialize, Deserialize)]
pub struct Pending {
    /// Unix time at which the previous ruleset comes back.
    pub deadline: u64,
    pub previous: Ruleset,
}

/// How the last confirmable apply ended, for the waiting `fwctl apply`.
pub const CONFIRMED: &str = "confirmed";
pub const ROLLED_BACK: &str = "rolled back";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn pending_path(fw: &Firewall) -> PathBuf {
    fw.ns.state_dir.join("pending.json")
}

fn outcome_path(fw: &Firewall) -> PathBuf {
    fw.ns.state_dir.join("last-apply")
}

/// Records that `previous` comes back in `seconds` unless confirmed.
pub fn arm(fw: &Firewall, previous: Ruleset, seconds: u64) -> Result<()> {
    let _ = std::fs::remove_file(outcome_path(fw));
    write_json(
        &pending_path(fw),
        &Pending {
            deadline: now() + seconds,
            previous,
        },
    )
}

pub fn pending(fw: &Firewall) -> Result<Option<Pending>> {
    read_json(&pending_path(fw))
}

pub fn outcome(fw: &Firewall) -> Option<String> {
    std::fs::read_to_string(outcome_path(fw))
        .ok()
        .map(|s| s.trim().to_string())
}

fn finish(fw: &Firewall, how: &str) -> Result<()> {
    std::fs::remove_file(pending_path(fw))?;
    std::fs::write(outcome_path(fw), how)?;
    Ok(())
}

/// `fwctl confirm`: keeps the applied ruleset.
pub fn confirm(fw: &Firewall) -> Result<()> {
    if pending(fw)?.is_none() {
        bail!("nothing to confirm: no `fwctl apply --confirm` is waiting");
    }
    finish(fw, CONFIRMED)
}

/// The detached watcher: waits for the deadline, then rolls back if still pending.
pub fn watch() -> Result<()> {
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let deadline = {
            let fw = Firewall::lock()?;
            match pending(&fw)? {
                None => return Ok(()),
                Some(p) => p.deadline,
            }
        };
        if now() < deadline {
            continue;
        }
        let mut fw = Firewall::lock()?;
        let Some(p) = pending(&fw)? else {
            return Ok(());
        };
        // Putting back what was in force is never refused.
        fw.force = true;
        fw.commit(Editor::new(p.previous))?;
        return finish(&fw, ROLLED_BACK);
    }
}
