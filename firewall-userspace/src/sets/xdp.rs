//! The XDP side of sets: the members of every storage in the `FW_SET4`/`FW_SET6` LPM tries
//! (layout in firewall-common). A whole storage goes in with BPF_MAP_UPDATE_BATCH, many
//! thousand members a system call (dataplane/batch.rs).

use std::{
    os::fd::{AsFd, AsRawFd},
    path::Path,
};

use anyhow::{Context, Result};
use aya::maps::MapData;
use firewall_common::{MAP_SET4, MAP_SET6, SET_KEY_FIXED_BITS};

use super::model::Member;
use crate::{dataplane::batch, rules::Family};

/// Members per batch call: large enough that the calls cost nothing beside the inserts,
/// small enough that the key buffer stays a few MB.
const BATCH: usize = 65_536;

/// The two tries, opened from their pins.
pub struct Tries {
    v4: MapData,
    v6: MapData,
}

/// `struct bpf_lpm_trie_key` followed by the set key's data (firewall-common `SetKey4/6`).
fn key(family: Family, storage: u32, m: &Member) -> Vec<u8> {
    let mut k = Vec::with_capacity(28);
    k.extend((SET_KEY_FIXED_BITS + m.prefix as u32).to_ne_bytes());
    k.extend(storage.to_be_bytes());
    k.extend(((m.proto as u32) << 16 | m.port as u32).to_be_bytes());
    match family {
        Family::V4 => k.extend((m.addr as u32).to_be_bytes()),
        Family::V6 => k.extend(m.addr.to_be_bytes()),
    }
    k
}

fn key_len(family: Family) -> usize {
    match family {
        Family::V4 => 4 + 12,
        Family::V6 => 4 + 24,
    }
}

impl Tries {
    pub fn open(pin_dir: &Path) -> Result<Tries> {
        let open = |name: &str| {
            let path = pin_dir.join(name);
            MapData::from_pin(&path)
                .with_context(|| format!("opening pinned map {}", path.display()))
        };
        Ok(Tries {
            v4: open(MAP_SET4)?,
            v6: open(MAP_SET6)?,
        })
    }

    fn fd(&self, family: Family) -> u32 {
        let map = match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        };
        map.fd().as_fd().as_raw_fd() as u32
    }

    /// Writes members with their values (expiries), in batches.
    pub fn update(&self, family: Family, storage: u32, values: &[(Member, u64)]) -> Result<()> {
        for chunk in values.chunks(BATCH) {
            let keys: Vec<u8> = chunk
                .iter()
                .flat_map(|(m, _)| key(family, storage, m))
                .collect();
            let vals: Vec<u64> = chunk.iter().map(|(_, v)| *v).collect();
            batch::write(self.fd(family), key_len(family), &keys, &vals)
                .context("writing set members into the XDP trie")?;
        }
        Ok(())
    }

    /// Removes members; those already gone are no error.
    pub fn delete(&self, family: Family, storage: u32, members: &[Member]) -> Result<()> {
        for chunk in members.chunks(BATCH) {
            let keys: Vec<u8> = chunk.iter().flat_map(|m| key(family, storage, m)).collect();
            batch::delete(self.fd(family), key_len(family), &keys)
                .context("removing set members from the XDP trie")?;
        }
        Ok(())
    }
}

/// Now in the XDP program's clock (`bpf_ktime_get_ns`: CLOCK_MONOTONIC), in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Fills the tries of a program instance pinned in `pin_dir` with the members of every set
/// in `registry`, from their storage files: a new instance (a resize) starts with empty
/// tries, and rules checking sets at XDP must find them full before a packet reaches it.
pub fn reload_sets(
    pin_dir: &Path,
    state_dir: &Path,
    registry: &super::model::Registry,
) -> Result<()> {
    let tries = Tries::open(pin_dir)?;
    for def in &registry.sets {
        let members = super::store::read(state_dir, def.storage)
            .with_context(|| format!("reading the members of set {}", def.name))?;
        let (values, _) = super::layout::layout(members.iter(), def.kind, def.family);
        tries
            .update(def.family, def.storage, &values)
            .with_context(|| format!("loading set {} into the new instance", def.name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_laid_out_as_the_program_reads_them() {
        let m = Member {
            addr: 0x0102_0304,
            prefix: 24,
            proto: 6,
            port: 80,
        };
        let k = key(Family::V4, 5, &m);
        assert_eq!(k.len(), key_len(Family::V4));
        assert_eq!(&k[..4], &(64u32 + 24).to_ne_bytes());
        assert_eq!(&k[4..], &[0, 0, 0, 5, 0, 6, 0, 80, 1, 2, 3, 4]);
        assert_eq!(key(Family::V6, 5, &m).len(), key_len(Family::V6));
    }
}
