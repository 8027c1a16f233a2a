//! Many entries of a keyed BPF map in one system call (BPF_MAP_UPDATE_BATCH,
//! BPF_MAP_DELETE_BATCH), with one call per entry where the kernel has no batch command
//! for the map type. aya 0.14 has no batch calls, hence the raw `bpf(2)`
//! (dataplane/attach.rs). The keyed classifier maps and the sets' tries both write
//! through here.

use anyhow::{Context, Result};

use super::attach::bpf;

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// `union bpf_attr` as the batch commands read it: in_batch, out_batch, keys, values,
/// count u32 and map_fd u32, elem_flags, flags.
fn batch_attr(fd: u32, keys: &[u8], values: u64, count: usize) -> [u64; 16] {
    let mut attr = [0u64; 16];
    attr[2] = keys.as_ptr() as u64;
    attr[3] = values;
    attr[4] = count as u64 | (fd as u64) << 32;
    attr
}

/// How many elements a batch call got through (the kernel writes it back).
fn done(attr: &[u64; 16]) -> usize {
    attr[4] as u32 as usize
}

/// `union bpf_attr` as the element commands read it: map_fd u32 (and padding), key,
/// value, flags.
fn elem_attr(fd: u32, key: &[u8], value: u64) -> [u64; 16] {
    let mut attr = [0u64; 16];
    attr[0] = fd as u64;
    attr[1] = key.as_ptr() as u64;
    attr[2] = value;
    attr
}

/// A kernel (or map type) without the batch command answers EINVAL or ENOTSUPP (524)
/// before doing anything.
fn no_batch(e: &std::io::Error, attr: &[u64; 16]) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(524)) && done(attr) == 0
}

/// Writes `values[i]` under the i-th key of `keys` (each `key_len` bytes) in map `fd`.
pub fn write<T: bytemuck::Pod>(fd: u32, key_len: usize, keys: &[u8], values: &[T]) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    anyhow::ensure!(
        keys.len() == values.len() * key_len,
        "keys and values do not pair up"
    );
    let mut attr = batch_attr(fd, keys, values.as_ptr() as u64, values.len());
    match bpf(BPF_MAP_UPDATE_BATCH, &mut attr) {
        Ok(_) => return Ok(()),
        Err(e) if no_batch(&e, &attr) => {}
        Err(e) => {
            return Err(e).context(format!(
                "writing {} map entries ({} written)",
                values.len(),
                done(&attr)
            ))
        }
    }
    for (key, value) in keys.chunks_exact(key_len).zip(values) {
        let mut attr = elem_attr(fd, key, value as *const T as u64);
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).context("writing a map entry")?;
    }
    Ok(())
}

/// Removes `keys` (each `key_len` bytes) from map `fd`; a key already gone is no error.
pub fn delete(fd: u32, key_len: usize, keys: &[u8]) -> Result<()> {
    let count = keys.len() / key_len;
    let mut from = 0;
    while from < count {
        let mut attr = batch_attr(fd, &keys[from * key_len..], 0, count - from);
        match bpf(BPF_MAP_DELETE_BATCH, &mut attr) {
            Ok(_) => return Ok(()),
            // The batch stops at a missing key, after `count` deletions.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => from += done(&attr) + 1,
            Err(e) if no_batch(&e, &attr) => break,
            Err(e) => return Err(e).context("removing map entries"),
        }
    }
    for key in keys.chunks_exact(key_len).skip(from) {
        let mut attr = elem_attr(fd, key, 0);
        match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                return Err(e).context("removing a map entry")
            }
            _ => {}
        }
    }
    Ok(())
}
