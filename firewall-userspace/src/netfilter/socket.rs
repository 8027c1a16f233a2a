//! A raw netfilter netlink socket with the buffer sizes and receive timeout a caller needs:
//! batches (nftables writes) and netlink-log (LOG events) both open one.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use anyhow::{Context, Result};

const NETLINK_NETFILTER: i32 = 12;

fn set<T>(fd: &OwnedFd, option: libc::c_int, value: &T) {
    // SAFETY: setsockopt with a value we own, of its own size. A failure leaves the
    // default, which the caller's next call then reports in its own terms.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as u32,
        );
    }
}

/// `send_buffer`/`receive_buffer` in bytes, set with the FORCE options (above the system's
/// maximum, as nft does; they need CAP_NET_ADMIN, which writing nftables needs anyway).
pub fn open(send_buffer: usize, receive_buffer: usize, timeout: Duration) -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right below.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, NETLINK_NETFILTER) };
    if raw < 0 {
        return Err(io::Error::last_os_error()).context("opening a netfilter netlink socket");
    }
    // SAFETY: raw is a new fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let size = |n: usize| n.min(i32::MAX as usize) as libc::c_int;
    set(&fd, libc::SO_SNDBUFFORCE, &size(send_buffer));
    set(&fd, libc::SO_RCVBUFFORCE, &size(receive_buffer));
    let timeout = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    set(&fd, libc::SO_RCVTIMEO, &timeout);
    Ok(fd)
}
