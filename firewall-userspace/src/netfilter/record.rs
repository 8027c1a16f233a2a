//! What a generation of the nftables table holds, recorded in a file beside the state when
//! it is written: per chain, each rule's source, alternative, kernel handle and counter
//! slot. The next change to that generation then sends only the
//! rules that differ (`incremental`), by handle, instead of the whole ruleset.
//!
//! Trusted as `dataplane/keyed.rs` trusts its records: the file is removed before the
//! generation is written and written (by rename) after the kernel applied the batch, and
//! it carries a random token the state file must hold for that generation. A run killed
//! in between, or a state saved by an fwctl that knows nothing of records, leaves nothing
//! to trust, and the generation is rewritten whole.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// One nftables rule of a generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleRecord {
    /// Its source rule and which of that rule's alternatives it is (`super::NftRule`).
    pub source: u64,
    pub alt: u32,
    pub handle: u64,
    /// Its counter slot, or `super::POLICY_RULE`.
    pub slot: u32,
}

/// A generation of the table as the last write of it left it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenRecord {
    pub chains: BTreeMap<String, Vec<RuleRecord>>,
}

impl RuleRecord {
    /// What a change compares it by.
    pub fn fingerprint(&self) -> u64 {
        fingerprint(self.source, self.alt)
    }
}

/// The fingerprint of alternative `alt` of source rule `source`.
pub fn fingerprint(source: u64, alt: u32) -> u64 {
    (source ^ alt as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ alt as u64
}

impl GenRecord {
    /// The source rules it holds, and how many nftables rules each.
    pub fn known(&self) -> super::Known {
        let mut out = super::Known::default();
        for r in self.chains.values().flatten() {
            let n = out.entry(r.source).or_insert(0);
            *n = (*n).max(r.alt + 1);
        }
        out
    }
}

const MAGIC: &[u8; 8] = b"fwnftgn3";

fn path(dir: &Path, generation: u32) -> PathBuf {
    dir.join(format!("nft-generation-{generation}"))
}

/// The record of `generation`, if there is one written with `token`.
pub fn load(dir: &Path, generation: u32, token: u64) -> Option<GenRecord> {
    let bytes = std::fs::read(path(dir, generation)).ok()?;
    let parsed = parse(&bytes, token);
    if parsed.is_none() {
        log::info!("ignoring the record of nftables generation {generation}");
    }
    parsed
}

/// Removes the record of `generation`, before the generation changes.
pub fn forget(dir: &Path, generation: u32) -> Result<()> {
    match std::fs::remove_file(path(dir, generation)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context("removing the record of an nftables generation")
        }
        _ => Ok(()),
    }
}

/// Records what `generation` now holds, once the kernel has it.
pub fn store(dir: &Path, generation: u32, token: u64, record: &GenRecord) -> Result<()> {
    let path = path(dir, generation);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serialize(record, token))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("recording {}", path.display()))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u32).to_le_bytes());
    out.extend(s.as_bytes());
}

fn serialize(record: &GenRecord, token: u64) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend(token.to_le_bytes());
    out.extend((record.chains.len() as u32).to_le_bytes());
    for (name, rules) in &record.chains {
        put_str(&mut out, name);
        out.extend((rules.len() as u32).to_le_bytes());
        for r in rules {
            out.extend(r.source.to_le_bytes());
            out.extend(r.alt.to_le_bytes());
            out.extend(r.handle.to_le_bytes());
            out.extend(r.slot.to_le_bytes());
        }
    }
    out
}

/// Reads what [`serialize`] wrote; None for anything else.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.0.split_first_chunk::<N>()?;
        self.0 = tail;
        Some(*head)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        if self.0.len() < len {
            return None;
        }
        let (s, tail) = self.0.split_at(len);
        self.0 = tail;
        String::from_utf8(s.to_vec()).ok()
    }
}

fn parse(bytes: &[u8], token: u64) -> Option<GenRecord> {
    let mut r = Reader(bytes.strip_prefix(MAGIC.as_slice())?);
    if r.u64()? != token {
        return None;
    }
    let mut out = GenRecord::default();
    for _ in 0..r.u32()? {
        let name = r.string()?;
        let count = r.u32()? as usize;
        if r.0.len() < count.checked_mul(24)? {
            return None;
        }
        let mut rules = Vec::with_capacity(count);
        for _ in 0..count {
            rules.push(RuleRecord {
                source: r.u64()?,
                alt: r.u32()?,
                handle: r.u64()?,
                slot: r.u32()?,
            });
        }
        out.chains.insert(name, rules);
    }
    r.0.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_only_with_its_token() {
        let mut record = GenRecord::default();
        record.chains.insert(
            "0v4-INPUT".into(),
            vec![
                RuleRecord {
                    source: 7,
                    alt: 0,
                    handle: 41,
                    slot: 12,
                },
                RuleRecord {
                    source: 7,
                    alt: 1,
                    handle: 42,
                    slot: super::super::POLICY_RULE,
                },
            ],
        );
        record.chains.insert("0v6-MY CHAIN".into(), Vec::new());
        let bytes = serialize(&record, 99);
        assert_eq!(record.known().get(&7), Some(&2));
        assert_eq!(parse(&bytes, 99), Some(record));
        assert_eq!(parse(&bytes, 98), None);
        assert_eq!(parse(&bytes[..bytes.len() - 1], 99), None);
    }
}
