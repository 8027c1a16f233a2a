//! Names for addresses in `-L` without `-n`, found as iptables finds them: a host's name
//! from the resolver (`/etc/hosts`, then DNS, as nsswitch.conf says), else, for IPv4, the
//! network's name in `/etc/networks` (`loopback/8`), else the number.

use std::{
    cell::RefCell,
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
};

thread_local! {
    /// One lookup per address and listing run: a listing names the same hosts many times,
    /// and each resolver miss may wait on DNS.
    static CACHE: RefCell<HashMap<IpAddr, String>> = RefCell::new(HashMap::new());
}

/// The name iptables would show for `addr`.
pub fn address(addr: IpAddr) -> String {
    if let Some(name) = CACHE.with(|c| c.borrow().get(&addr).cloned()) {
        return name;
    }
    let name = host(addr)
        .or_else(|| match addr {
            IpAddr::V4(v4) => network(v4, &std::fs::read_to_string("/etc/networks").ok()?),
            IpAddr::V6(_) => None,
        })
        .unwrap_or_else(|| addr.to_string());
    CACHE.with(|c| c.borrow_mut().insert(addr, name.clone()));
    name
}

/// The resolver's name for a host (getnameinfo with NI_NAMEREQD, as gethostbyaddr).
fn host(addr: IpAddr) -> Option<String> {
    let mut name = [0 as libc::c_char; libc::NI_MAXHOST as usize];
    // SAFETY: zeroed sockaddr structs are valid; getnameinfo reads `len` bytes of the one
    // passed and writes at most `name.len()` bytes, NUL-terminated, into `name`.
    let rc = unsafe {
        match addr {
            IpAddr::V4(v4) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
                lookup(
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of_val(&sa),
                    &mut name,
                )
            }
            IpAddr::V6(v6) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_addr.s6_addr = v6.octets();
                lookup(
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of_val(&sa),
                    &mut name,
                )
            }
        }
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo succeeded, so `name` holds a NUL-terminated string.
    let text = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    Some(text.to_string_lossy().into_owned())
}

/// # Safety
/// `sa` must point to `len` readable bytes of a socket address.
unsafe fn lookup(sa: *const libc::sockaddr, len: usize, name: &mut [libc::c_char]) -> i32 {
    libc::getnameinfo(
        sa,
        len as libc::socklen_t,
        name.as_mut_ptr(),
        name.len() as libc::socklen_t,
        std::ptr::null_mut(),
        0,
        libc::NI_NAMEREQD,
    )
}

/// The name of the network whose number is `addr` in `networks` (the `/etc/networks`
/// format: name, number, aliases; `#` comments), as getnetbyaddr finds it: the number
/// read as inet_network reads it, compared whole.
fn network(addr: Ipv4Addr, networks: &str) -> Option<String> {
    let want = u32::from(addr);
    networks.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let (name, number) = (words.next()?, words.next()?);
        (inet_network(number)? == want).then(|| name.to_string())
    })
}

/// inet_network(3): one to four dot-separated parts, each decimal, octal (`0…`) or hex
/// (`0x…`), the last part taking the low bits.
fn inet_network(text: &str) -> Option<u32> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut out: u32 = 0;
    for part in parts {
        let value = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16).ok()?
        } else if part.len() > 1 && part.starts_with('0') {
            u32::from_str_radix(&part[1..], 8).ok()?
        } else {
            part.parse().ok()?
        };
        if value > 255 {
            return None;
        }
        out = out << 8 | value;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETWORKS: &str =
        "default\t\t0.0.0.0\nloopback\t127.0.0.0\nlink-local\t169.254.0.0 # rfc3927\n";

    #[test]
    fn networks_are_found_by_their_whole_number() {
        assert_eq!(
            network(Ipv4Addr::new(127, 0, 0, 0), NETWORKS).as_deref(),
            Some("loopback")
        );
        assert_eq!(
            network(Ipv4Addr::new(169, 254, 0, 0), NETWORKS).as_deref(),
            Some("link-local")
        );
        assert_eq!(network(Ipv4Addr::new(10, 0, 0, 0), NETWORKS), None);
        assert_eq!(inet_network("127"), Some(127));
        assert_eq!(inet_network("0x7f.1"), Some(0x7f01));
        assert_eq!(inet_network("256.0.0.0"), None);
    }

    #[test]
    fn localhost_is_named_by_the_resolver() {
        // /etc/hosts names 127.0.0.1 on every Debian system.
        assert_eq!(address(IpAddr::V4(Ipv4Addr::LOCALHOST)), "localhost");
    }
}
