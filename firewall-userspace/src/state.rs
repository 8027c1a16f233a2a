//! The canonical record of a namespace's firewall: the rules as the operator wrote them and
//! the interfaces fwctl attached to. Every fwctl run holds the namespace's lock from reading
//! it to writing it, and writes go to a temporary file renamed over the old one, so two runs
//! never interleave and a crash leaves the old file or the new one, whole.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{dataplane::attach::XdpMode, rules::Ruleset};

const STATE_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub ifindex: u32,
    pub mode: XdpMode,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub ruleset: Ruleset,
    pub interfaces: Vec<Attachment>,
    /// Netfilter's counters at the last `-Z`, subtracted when they are read.
    #[serde(default)]
    pub nft_baseline: crate::netfilter::NftCounters,
    /// Whether XDP may skip conntrack lookups no entry can answer (`fwctl ct-filter`,
    /// dataplane/ct_seen.rs). On unless turned off.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub ct_filter: bool,
    /// Where XDP's verdict bits sit in skb->mark (`fwctl mark-bits`).
    #[serde(default = "default_mark_shift")]
    pub mark_shift: u32,
    /// When the ruleset in force was last committed (Unix time in milliseconds), so
    /// monitoring can tell when the firewall last changed. None before the first commit, and
    /// in state files older than this field.
    #[serde(default)]
    pub last_apply_ms: Option<u64>,
    /// Sets (`fwctl set`); their members are in files beside this one (sets/store.rs).
    #[serde(default)]
    pub sets: crate::sets::model::Registry,
    /// Which ruleset `fwctl boot` put in force and why, kept until an operator changes the
    /// rules (`fwctl status` shows it). None for rules an operator put in force.
    #[serde(default)]
    pub origin: Option<Origin>,
    /// fwctl.conf's `attach` lines (names or `-i` style prefixes such as `eth+`): interfaces
    /// that match are attached when they exist, now or later (`fwctl watch`).
    #[serde(default)]
    pub watch: Vec<crate::boot::AttachLine>,
    /// fwctl.conf's fail-safe, recorded so the last good copy of fwctl.conf keeps it.
    #[serde(default)]
    pub failsafe: crate::boot::Failsafe,
    /// The generation in force, XDP's and netfilter's default alike: an upgrade to another
    /// BPF ABI, which cannot read the old maps, builds its instance with this one active so
    /// that packets XDP defers meet in netfilter the ruleset it used. None in state files
    /// older than this field.
    #[serde(default)]
    pub generation: Option<u32>,
    /// Per XDP generation, the token of the record of its keyed maps this state vouches for
    /// (dataplane/keyed.rs). An fwctl that knows nothing of records drops the field when it
    /// saves the state, and with it every record: it may have written the maps since.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub keyed_records: std::collections::BTreeMap<u32, u64>,
    /// Per nftables generation, the token of the record of its rules this state vouches
    /// for (netfilter/record.rs), dropped as `keyed_records` are by an fwctl that does not
    /// know them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub nft_records: std::collections::BTreeMap<u32, u64>,
}

/// Where the ruleset in force came from, when `fwctl boot` chose it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub source: Source,
    /// The directory it was read from (none for the fail-safe).
    pub from: Option<PathBuf>,
    /// Why boot did not use the configuration (none when it did).
    pub why: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The configuration boot was given (/etc/fwctl).
    Config,
    /// The last ruleset fwctl put in force, kept on disk (last_good.rs).
    LastGood,
    /// fwctl.conf's fail-safe: nothing better could be loaded.
    FailSafe,
}

fn default_mark_shift() -> u32 {
    firewall_common::DEFAULT_MARK_SHIFT
}

impl Default for State {
    fn default() -> Self {
        State {
            version: 0,
            ruleset: Ruleset::default(),
            interfaces: Vec::new(),
            nft_baseline: Default::default(),
            ct_filter: true,
            mark_shift: default_mark_shift(),
            last_apply_ms: None,
            sets: Default::default(),
            origin: None,
            watch: Vec::new(),
            failsafe: Default::default(),
            generation: None,
            keyed_records: Default::default(),
            nft_records: Default::default(),
        }
    }
}

/// The state directory, locked for as long as this value lives.
fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

pub struct StateStore {
    dir: PathBuf,
    _lock: File,
}

impl StateStore {
    /// Takes the namespace's lock, waiting for another fwctl run to finish.
    pub fn lock(dir: &Path) -> Result<StateStore> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("locking {}", path.display()));
        }
        Ok(StateStore {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Whether a state was ever saved here (fwctl installed in this namespace).
    pub fn exists(&self) -> bool {
        self.path().exists()
    }

    pub fn load(&self) -> Result<State> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    version: STATE_VERSION,
                    ..State::default()
                })
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state: State = serde_json::from_str(&text)
            .with_context(|| format!("{} is corrupt", path.display()))?;
        anyhow::ensure!(
            state.version == STATE_VERSION,
            "{} has version {}, this fwctl reads version {STATE_VERSION}",
            path.display(),
            state.version
        );
        Ok(state)
    }

    pub fn save(&self, state: &State) -> Result<()> {
        write_json(&self.path(), state)
    }

    /// Removes the state (the lock file goes last, while still held).
    pub fn remove(self) -> Result<()> {
        for name in [
            "state.json",
            "state.json.tmp",
            "pending.json",
            "last-apply",
            "watch.lock",
            "xdp-keyed-0",
            "xdp-keyed-1",
            "xdp-keyed-0.tmp",
            "xdp-keyed-1.tmp",
            "lock",
        ] {
            match fs::remove_file(self.dir.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {name}")),
            }
        }
        crate::sets::store::remove_all(&self.dir)?;
        let _ = fs::remove_dir(&self.dir);
        Ok(())
    }
}

/// Writes `value` as JSON to `path` through a temporary file and a rename: readers see the
/// old file or the new one, whole. Compact: every change writes the state and reads it
/// back, and indentation made a 10,000-rule state 8.7 MB instead of 3.3 MB, its time
/// doubled (`fwctl save` and `-S` are the forms to read).
///
/// Only for files of the state directory: see [`write_run_text`].
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string(value)?;
    text.push('\n');
    write_run_text(path, &text)
}

/// Writes `text` to `path` through a temporary file, synced, then renamed over it.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    write_renamed(path, text, true)
}

/// As [`write_text`], without waiting for the disk: for the state directory
/// (/run/fwctl/ns-COOKIE), whose files matter only while this boot's pinned maps and this
/// network namespace (whose cookie names the directory) exist. A crash or kill of fwctl
/// still leaves the old file or the new one, whole (the page cache has it); after a power
/// loss there are no pins to describe, and boot starts from the configuration or the last
/// good copy, which are synced. On this machine's disk-backed /run the sync cost 5-170 ms
/// per change.
pub fn write_run_text(path: &Path, text: &str) -> Result<()> {
    write_renamed(path, text, false)
}

fn write_renamed(path: &Path, text: &str, sync: bool) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(text.as_bytes())?;
    if sync {
        file.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Reads a JSON file written by [`write_json`]; None if it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read_to_string(path) {
        Ok(text) => {
            Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!("{} is corrupt", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}
