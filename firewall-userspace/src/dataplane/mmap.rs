//! BPF array maps created with BPF_F_MMAPABLE, written through shared memory: a generation
//! of a few megabytes is memory writes, not a syscall per value.

use std::{os::fd::AsFd, os::fd::AsRawFd, ptr::NonNull};

use anyhow::{bail, Context, Result};
use aya::maps::MapData;

/// An array's pages are mapped a block at a time, when first touched: mapping a BPF
/// array inserts every page at once (~1 ms for the ~15 MiB a change opened, most of which
/// it never touches: the generation in force, unused capacity).
const BLOCK: usize = 256 << 10;

pub struct MmapArray {
    /// Address space reserved for the whole array; its blocks are mapped over it in place,
    /// so the array is one contiguous range however much of it is mapped.
    ptr: NonNull<u8>,
    len: usize,
    /// Bytes per element: the value size rounded up to 8, as the kernel lays them out.
    stride: usize,
    entries: usize,
    /// Which blocks are mapped.
    mapped: Vec<std::cell::Cell<bool>>,
    map: MapData,
}

// SAFETY: the mapping is plain shared memory owned by this value.
unsafe impl Send for MmapArray {}

impl MmapArray {
    pub fn new(map: MapData, name: &str) -> Result<MmapArray> {
        let info = map.info().with_context(|| format!("{name}: map info"))?;
        let stride = (info.value_size() as usize).div_ceil(8) * 8;
        let entries = info.max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = (stride * entries).div_ceil(page) * page;
        // SAFETY: reserving address space, no access; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("reserving {len} bytes for {name}"));
        }
        let array = MmapArray {
            ptr: NonNull::new(ptr.cast()).context("mmap returned null")?,
            len,
            stride,
            entries,
            mapped: (0..len.div_ceil(BLOCK))
                .map(|_| std::cell::Cell::new(false))
                .collect(),
            map,
        };
        // The first block now: a map created without BPF_F_MMAPABLE fails here, by name.
        array
            .ensure(0, 1)
            .with_context(|| format!("mmap of {name} (created without BPF_F_MMAPABLE?)"))?;
        Ok(array)
    }

    /// Maps the blocks that bytes `start..end` of the array lie in, if not yet mapped.
    fn ensure(&self, start: usize, end: usize) -> Result<()> {
        if end <= start {
            return Ok(());
        }
        let fd = self.map.fd().as_fd().as_raw_fd();
        for block in start / BLOCK..=(end - 1) / BLOCK {
            let Some(done) = self.mapped.get(block).filter(|d| !d.get()) else {
                continue;
            };
            let at = block * BLOCK;
            let size = BLOCK.min(self.len - at);
            // SAFETY: over our own reservation (inside it: `at + size <= len`), the BPF
            // array's pages at the same offset; the kernel checks size, offset and flags.
            let got = unsafe {
                libc::mmap(
                    self.ptr.as_ptr().add(at).cast(),
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_FIXED,
                    fd,
                    at as libc::off_t,
                )
            };
            if got == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("mapping bytes {at}..{} of a BPF array", at + size));
            }
            done.set(true);
        }
        Ok(())
    }

    /// Elements of the array (its max_entries).
    pub fn entries(&self) -> usize {
        self.entries
    }

    fn slot(&self, index: usize, size: usize) -> Result<*mut u8> {
        if index >= self.entries || size > self.stride {
            bail!("index {index} outside the map ({} entries)", self.entries);
        }
        self.ensure(index * self.stride, index * self.stride + size)?;
        // SAFETY: in bounds of the mapping, checked above.
        Ok(unsafe { self.ptr.as_ptr().add(index * self.stride) })
    }

    /// Writes `value` at `index`; values are written whole, never torn at the byte level
    /// for the 4- and 8-byte values the classifier reads.
    pub fn write<T: bytemuck::Pod>(&mut self, index: usize, value: &T) -> Result<()> {
        let bytes = bytemuck::bytes_of(value);
        let at = self.slot(index, bytes.len())?;
        // SAFETY: `at` points to `stride >= bytes.len()` writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), at, bytes.len()) };
        Ok(())
    }

    /// The u64 at `index` (of an array of u64s), read as one load.
    pub fn read_u64(&self, index: usize) -> Result<u64> {
        let at = self.slot(index, 8)?;
        // SAFETY: `at` points to 8 readable bytes, 8-aligned (elements are).
        Ok(unsafe { std::ptr::read_volatile(at as *const u64) })
    }

    /// Makes the `count` u64s from `index` on (of an array of u64s) equal `runs` (count,
    /// value), 0 past their end, storing only the words that differ (a generation's 2 MiB
    /// fast table changes in a few words when a rule changes). Returns how many it stored.
    pub fn update_u64_runs(
        &mut self,
        index: usize,
        count: usize,
        runs: impl IntoIterator<Item = (usize, u64)>,
    ) -> Result<usize> {
        if self.stride != 8 || index + count > self.entries {
            bail!(
                "{count} u64s at {index} do not fit the map ({} entries of {} bytes)",
                self.entries,
                self.stride
            );
        }
        self.ensure(index * 8, (index + count) * 8)?;
        let base = self.slot(index, 8)? as *mut u64;
        // SAFETY: `count` 8-byte elements from `index` lie inside the mapping (checked
        // above, and mapped), 8-aligned. The BPF program only reads them, and only those of the
        // generation in force, which is not the one written here.
        let words = unsafe { std::slice::from_raw_parts_mut(base, count) };
        let mut stored = 0;
        let mut at = 0;
        for (n, value) in runs.into_iter().chain([(usize::MAX, 0)]) {
            let span = &mut words[at..at + n.min(count - at)];
            at += span.len();
            // Read first, in a loop the compiler vectorizes; stored only where it differs.
            if span.iter().any(|&w| w != value) {
                for w in span.iter_mut().filter(|w| **w != value) {
                    *w = value;
                    stored += 1;
                }
            }
            if at == count {
                break;
            }
        }
        Ok(stored)
    }

    /// Stores one byte at byte `offset` of the array: a plain byte store, so the other
    /// bytes of its element, which a BPF program may be storing at the same time, stay.
    pub fn set_byte(&mut self, offset: usize, value: u8) -> Result<()> {
        let at = self.slot(offset / self.stride, 1)?;
        // SAFETY: `at + offset % stride` is inside the element `slot` checked.
        unsafe { std::ptr::write_volatile(at.add(offset % self.stride), value) };
        Ok(())
    }

    /// Writes consecutive values from `index` on.
    pub fn write_all<T: bytemuck::Pod>(&mut self, index: usize, values: &[T]) -> Result<()> {
        if index + values.len() > self.entries {
            bail!(
                "{} values at {index} overflow the map ({} entries)",
                values.len(),
                self.entries
            );
        }
        if self.stride == std::mem::size_of::<T>() && self.stride.is_multiple_of(8) {
            // Elements back to back, as the values are: one pass of 8-byte stores (whole
            // words, as `write` promises), without a bounds check per element.
            // The values may be less aligned than a u64: read as bytes.
            let bytes: &[u8] = bytemuck::cast_slice(values);
            self.ensure(index * self.stride, (index + values.len()) * self.stride)?;
            let at = self.slot(index, self.stride)? as *mut u64;
            for (i, w) in bytes.chunks_exact(8).enumerate() {
                let w = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
                // SAFETY: `values.len()` elements from `index` lie inside the mapping
                // (checked above), 8-aligned; `bytes` is exactly that many strides long.
                unsafe { std::ptr::write_volatile(at.add(i), w) };
            }
            return Ok(());
        }
        for (i, v) in values.iter().enumerate() {
            self.write(index + i, v)?;
        }
        Ok(())
    }
}

/// Set by a process that exits once its one command is done (a rule change, a set
/// change, a restore): its mappings are then left to the exit, which tears the whole
/// address space down at once, where a munmap each flushes the other CPUs' TLBs (~1 ms for
/// the ~15 MiB of mappings a change opens, 7-10 % of a small change). Never set by the
/// long-running commands (exporter, watch, top), which open the maps again and again.
static LEFT_TO_EXIT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Leaves every mapping dropped from now on to the process's exit (see [`LEFT_TO_EXIT`]).
pub fn leave_mappings_to_exit() {
    LEFT_TO_EXIT.store(true, std::sync::atomic::Ordering::Relaxed);
}

impl Drop for MmapArray {
    fn drop(&mut self) {
        if LEFT_TO_EXIT.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        // SAFETY: unmapping exactly what new() reserved, with the blocks mapped over it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
