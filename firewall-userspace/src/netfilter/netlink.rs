//! Raw netfilter netlink, for what rustables does not do: a socket with the buffer sizes
//! and receive timeout a caller needs, and the walking and writing of netlink messages and
//! attributes. Batches (nftables writes) and netlink-log (LOG events) both use it.

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

/// Attribute type bits without the nested/byte-order flags.
pub const NLA_TYPE_MASK: u16 = 0x3fff;

/// One netlink message in a buffer: where it starts, its length, type and sequence number.
pub struct Header {
    pub at: usize,
    pub len: usize,
    pub kind: u16,
    pub seq: u32,
}

/// The messages in `buf`, in order; a truncated tail is left out.
pub fn messages(buf: &[u8]) -> Vec<Header> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if len < 16 || at + len > buf.len() {
            break;
        }
        out.push(Header {
            at,
            len,
            kind: u16::from_ne_bytes([buf[at + 4], buf[at + 5]]),
            seq: u32::from_ne_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]),
        });
        at += len.next_multiple_of(4);
    }
    out
}

/// (type with its flags, payload) of each attribute in `buf`.
pub fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((u16::from_ne_bytes([buf[2], buf[3]]), &buf[4..len]));
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    out
}

/// One attribute, padded to 4 bytes.
pub fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
    out.extend(kind.to_ne_bytes());
    out.extend(payload);
    out.resize(out.len().next_multiple_of(4), 0);
    out
}
