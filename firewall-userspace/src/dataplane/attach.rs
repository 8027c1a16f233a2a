//! Attaching the pinned program to an interface with a pinned BPF link, so the attachment
//! outlives fwctl. aya 0.14 cannot turn its XDP link into a pinnable `FdLink`, so the two
//! syscalls are made here; drop this module for aya's `FdLink::pin` once aya allows it.

use std::{
    ffi::CString,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
pub enum XdpMode {
    /// In the driver, before the kernel allocates an skb (the fast path).
    Native,
    /// In the kernel's generic hook, for drivers without XDP support.
    Generic,
}

impl XdpMode {
    fn flags(self) -> u32 {
        match self {
            XdpMode::Native => XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => XDP_FLAGS_SKB_MODE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }
}

pub fn link_path(pin_dir: &Path, ifindex: u32) -> PathBuf {
    pin_dir.join(format!("link_{ifindex}"))
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a zeroed 128-byte bpf_attr the kernel reads (size passed).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr) as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// Attaches `prog_fd` to `ifindex` and pins the link at `path`.
pub fn attach_pinned(prog_fd: i32, ifindex: u32, mode: XdpMode, path: &Path) -> Result<()> {
    // bpf_attr.link_create: prog_fd u32, target_ifindex u32, attach_type u32, flags u32.
    let mut attr = [0u64; 16];
    attr[0] = (prog_fd as u32 as u64) | ((ifindex as u64) << 32);
    attr[1] = (BPF_XDP as u64) | ((mode.flags() as u64) << 32);
    let fd = match bpf(BPF_LINK_CREATE, &mut attr) {
        Ok(fd) => fd,
        Err(e)
            if e.raw_os_error() == Some(libc::EOPNOTSUPP)
                || e.raw_os_error() == Some(libc::EINVAL) =>
        {
            bail!(
                "the driver does not support {} XDP here ({e}); try --mode generic",
                mode.name()
            )
        }
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            bail!("another XDP program is already attached to this interface ({e})")
        }
        Err(e) => return Err(e).context("BPF_LINK_CREATE"),
    };
    // SAFETY: the kernel just returned this fd to us.
    let link = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // bpf_attr obj_pin: pathname u64, bpf_fd u32, file_flags u32.
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())?;
    let mut attr = [0u64; 16];
    attr[0] = c_path.as_ptr() as u64;
    attr[1] = link.as_raw_fd() as u32 as u64;
    bpf(BPF_OBJ_PIN, &mut attr)
        .with_context(|| format!("pinning the link at {}", path.display()))?;
    // Dropping `link` closes our fd; the pin keeps the link, hence the attachment.
    Ok(())
}

/// Detaches by removing the link's pin, the last reference to it.
pub fn detach_pinned(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}
