//! The keyed maps of a generation (`FW_IFACE` and the four address tries), written as the
//! difference from what the generation held before.
//!
//! Their keys carry the generation in their tag, so a generation cannot be overwritten in
//! place as the arrays are: what it held must be removed. Finding that out from the kernel
//! means one BPF_MAP_GET_NEXT_KEY per key of both generations, then one call per key to
//! delete and one to insert (~40,000 system calls for 10,000 address rules). Instead each
//! generation's keyed entries are recorded in a file beside the state when written, and
//! the next write of that generation changes only the keys whose value differs, with the
//! batch calls. The file is removed before the generation's maps are touched and written
//! (by rename) after they all were: a run killed in between leaves no file, and the next
//! write clears the generation the slow way. It names the maps' kernel ids, so a file left
//! from other maps (a resize, an upgrade, `down` and a new install) is never trusted, and
//! carries a random token the state file must hold for that generation (saved after the
//! flip): an fwctl that does not know records (a downgrade) drops the tokens with the next
//! state it saves, so a record it could have made stale is never trusted either.

use std::{
    collections::HashMap,
    net::IpAddr,
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use firewall_common::{tag, IfaceKey, LPM_TAG_BITS};

use crate::{compile::Image, rules::Cidr};

/// The keyed maps, in the order [`KeyedImage::maps`] holds them.
pub const IFACE: usize = 0;
pub const SRC4: usize = 1;
pub const DST4: usize = 2;
pub const SRC6: usize = 3;
pub const DST6: usize = 4;
pub const KEYED_MAPS: usize = 5;

/// Bytes of a key of each keyed map: `IfaceKey`, then `struct bpf_lpm_trie_key` (the
/// prefix length) followed by `Lpm4`/`Lpm6`.
pub const KEY_LEN: [usize; KEYED_MAPS] = [12, 4 + 8, 4 + 8, 4 + 20, 4 + 20];

/// What one generation holds in each keyed map: raw keys, as the kernel takes them, and
/// their values (pool offsets).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyedImage {
    pub maps: [Vec<(Vec<u8>, u32)>; KEYED_MAPS],
}

impl KeyedImage {
    /// The keyed entries of `image` when written as `generation`.
    pub fn build(generation: u32, image: &Image) -> KeyedImage {
        let mut out = KeyedImage::default();
        for (table, t) in &image.tables {
            let tg = tag(generation, *table);
            for &(in_ifindex, out_ifindex, at) in &t.iface {
                let key = IfaceKey {
                    in_ifindex,
                    out_ifindex,
                    tag: tg,
                };
                out.maps[IFACE].push((bytemuck::bytes_of(&key).to_vec(), at));
            }
            for (src, prefixes) in [(true, &t.src), (false, &t.dst)] {
                for &(cidr, at) in prefixes {
                    let (map, key) = lpm_key(src, tg, cidr);
                    out.maps[map].push((key, at));
                }
            }
        }
        out
    }
}

/// The trie a prefix goes to and its key.
fn lpm_key(src: bool, tg: u32, cidr: Cidr) -> (usize, Vec<u8>) {
    let len = LPM_TAG_BITS + cidr.prefix as u32;
    let mut key = len.to_ne_bytes().to_vec();
    // The tag byte first, always matched in full (firewall_common::Lpm4).
    key.push(tg as u8);
    // Host bits cleared (as parsing does): the kernel ignores them, and the difference
    // between two records compares whole keys.
    // A prefix longer than the address (never parsed) keeps every bit; the kernel refuses
    // the key.
    let keep = |bits: u32| match bits.checked_sub(cidr.prefix as u32) {
        Some(host) => u128::MAX.checked_shl(host).unwrap_or(0),
        None => u128::MAX,
    };
    match cidr.addr {
        IpAddr::V4(a) => {
            let masked = u32::from(a) & keep(32) as u32;
            key.extend(masked.to_be_bytes());
            key.extend([0u8; 3]);
            (if src { SRC4 } else { DST4 }, key)
        }
        IpAddr::V6(a) => {
            let masked = u128::from(a) & keep(128);
            key.extend(masked.to_be_bytes());
            key.extend([0u8; 3]);
            (if src { SRC6 } else { DST6 }, key)
        }
    }
}

/// The record of generation `generation`'s keyed entries, in `dir`.
fn cache_path(dir: &Path, generation: u32) -> PathBuf {
    dir.join(format!("xdp-keyed-{generation}"))
}

const MAGIC: &[u8; 8] = b"fwkeyed2";

/// Reads the record of `generation`, if there is one with `token` written for the maps
/// `ids`.
pub fn load(dir: &Path, generation: u32, token: u64, ids: [u32; KEYED_MAPS]) -> Option<KeyedImage> {
    let bytes = std::fs::read(cache_path(dir, generation)).ok()?;
    let parsed = parse(&bytes, token, ids);
    if parsed.is_none() {
        log::info!("ignoring the record of XDP generation {generation}'s keyed maps");
    }
    parsed
}

/// A token for a new record: unpredictable enough that a state never vouches for a record
/// it did not see written (time and process id; the kernel's random bytes when it has).
pub fn new_token() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into `bytes`, which outlives the call.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let random = if got == 8 {
        u64::from_ne_bytes(bytes)
    } else {
        0
    };
    random ^ nanos ^ (std::process::id() as u64) << 32
}

fn parse(bytes: &[u8], token: u64, ids: [u32; KEYED_MAPS]) -> Option<KeyedImage> {
    let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (head, tail) = rest.split_first_chunk::<8>()?;
    if u64::from_le_bytes(*head) != token {
        return None;
    }
    rest = tail;
    let u32_at = |rest: &mut &[u8]| -> Option<u32> {
        let (head, tail) = rest.split_first_chunk::<4>()?;
        *rest = tail;
        Some(u32::from_le_bytes(*head))
    };
    let mut out = KeyedImage::default();
    for (map, entries) in out.maps.iter_mut().enumerate() {
        if u32_at(&mut rest)? != ids[map] {
            return None;
        }
        let count = u32_at(&mut rest)? as usize;
        let len = KEY_LEN[map];
        if rest.len() < count.checked_mul(len + 4)? {
            return None;
        }
        entries.reserve(count);
        for _ in 0..count {
            let (key, tail) = rest.split_at(len);
            rest = tail;
            let value = u32_at(&mut rest)?;
            entries.push((key.to_vec(), value));
        }
    }
    rest.is_empty().then_some(out)
}

fn serialize(image: &KeyedImage, token: u64, ids: [u32; KEYED_MAPS]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend(token.to_le_bytes());
    for (map, entries) in image.maps.iter().enumerate() {
        out.extend(ids[map].to_le_bytes());
        out.extend((entries.len() as u32).to_le_bytes());
        for (key, value) in entries {
            out.extend(key);
            out.extend(value.to_le_bytes());
        }
    }
    out
}

/// Removes the record of `generation`, before its maps change.
pub fn forget(dir: &Path, generation: u32) -> Result<()> {
    match std::fs::remove_file(cache_path(dir, generation)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context("removing the record of an XDP generation's keyed maps")
        }
        _ => Ok(()),
    }
}

/// Records what `generation` now holds, once every map of it is written.
pub fn store(
    dir: &Path,
    generation: u32,
    token: u64,
    ids: [u32; KEYED_MAPS],
    image: &KeyedImage,
) -> Result<()> {
    let path = cache_path(dir, generation);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serialize(image, token, ids))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("recording {}", path.display()))
}

/// Keys to delete and entries to write in one map.
pub type Changes<'a> = (Vec<&'a [u8]>, Vec<(&'a [u8], u32)>);

/// What to change in one map to go from `old` to `new`.
pub fn diff<'a>(old: &'a [(Vec<u8>, u32)], new: &'a [(Vec<u8>, u32)]) -> Changes<'a> {
    let before: HashMap<&[u8], u32> = old.iter().map(|(k, v)| (k.as_slice(), *v)).collect();
    let after: HashMap<&[u8], u32> = new.iter().map(|(k, v)| (k.as_slice(), *v)).collect();
    let deletes = old
        .iter()
        .map(|(k, _)| k.as_slice())
        .filter(|k| !after.contains_key(k))
        .collect();
    let writes = new
        .iter()
        .filter(|(k, v)| before.get(k.as_slice()) != Some(v))
        .map(|(k, v)| (k.as_slice(), *v))
        .collect();
    (deletes, writes)
}

fn raw_fd(map: &aya::maps::MapData) -> u32 {
    map.fd().as_fd().as_raw_fd() as u32
}

/// Writes `entries` (keys of `key_len` bytes) into `map`.
pub fn write(map: &aya::maps::MapData, key_len: usize, entries: &[(&[u8], u32)]) -> Result<()> {
    let keys: Vec<u8> = entries
        .iter()
        .flat_map(|(k, _)| k.iter().copied())
        .collect();
    let values: Vec<u32> = entries.iter().map(|(_, v)| *v).collect();
    super::batch::write(raw_fd(map), key_len, &keys, &values)
}

/// Removes `keys` from `map`; a key already gone is no error (the record said it was
/// there; absent, it is as wanted).
pub fn delete(map: &aya::maps::MapData, key_len: usize, keys: &[&[u8]]) -> Result<()> {
    let flat: Vec<u8> = keys.iter().flat_map(|k| k.iter().copied()).collect();
    super::batch::delete(raw_fd(map), key_len, &flat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_only_for_the_same_maps_and_token() {
        let mut image = KeyedImage::default();
        image.maps[IFACE].push((vec![1; 12], 7));
        image.maps[SRC4].push((vec![2; 12], 8));
        image.maps[DST6].push((vec![3; 24], 9));
        let ids = [1, 2, 3, 4, 5];
        let bytes = serialize(&image, 77, ids);
        assert_eq!(parse(&bytes, 77, ids), Some(image));
        assert_eq!(parse(&bytes, 78, ids), None, "another token");
        assert_eq!(parse(&bytes, 77, [1, 2, 3, 4, 6]), None, "other maps");
        assert_eq!(parse(&bytes[..bytes.len() - 1], 77, ids), None);
        assert_eq!(parse(b"fwkeyed2", 77, ids), None);
    }

    #[test]
    fn prefix_keys_are_laid_out_as_the_program_reads_them() {
        let cidr = |text: &str, prefix| Cidr {
            addr: text.parse().unwrap(),
            prefix,
        };
        let (map, key) = lpm_key(true, 3, cidr("10.1.2.3", 16));
        assert_eq!(map, SRC4);
        let mut want = (LPM_TAG_BITS + 16).to_ne_bytes().to_vec();
        want.extend([3, 10, 1, 0, 0, 0, 0, 0]);
        assert_eq!(key, want);
        let (map, key) = lpm_key(false, 2, cidr("2001:db8::1", 128));
        assert_eq!((map, key.len()), (DST6, KEY_LEN[DST6]));
        let (_, key) = lpm_key(false, 2, cidr("2001:db8::1", 0));
        assert!(key[5..].iter().all(|b| *b == 0));
    }

    #[test]
    fn the_difference_writes_changed_values_and_removes_gone_keys() {
        let old = vec![(vec![1], 1), (vec![2], 2), (vec![3], 3)];
        let new = vec![(vec![2], 2), (vec![3], 4), (vec![5], 5)];
        let (deletes, writes) = diff(&old, &new);
        assert_eq!(deletes, vec![&[1u8][..]]);
        assert_eq!(writes, vec![(&[3u8][..], 4), (&[5u8][..], 5)]);
    }
}
