//! Whether this network namespace forwards a family on the interfaces XDP judges: where it
//! does not, every packet XDP sees is INPUT's (or the stack drops it unrouted), so the
//! fast table may decide it without asking the FIB (firewall-common `CONFIG_FAST_*`).

use firewall_common::{config_fast, FAMILY_V4, FAMILY_V6};

/// A forwarding sysctl of this namespace; None when it cannot be read.
fn forwarding(family: &str, conf: &str) -> Option<bool> {
    let path = format!("/proc/sys/net/{family}/conf/{conf}/forwarding");
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.trim() != "0")
}

/// The `CONFIG_FAST_*` bits for a namespace whose attached interfaces are `attached`: a
/// family's bit when neither `all` nor any attached interface forwards it. A sysctl that
/// cannot be read counts as forwarding: the classifier with its FIB lookup is always right.
pub fn fast_flags<'a>(attached: impl IntoIterator<Item = &'a str> + Clone) -> u32 {
    let mut flags = 0;
    for (family, name) in [(FAMILY_V4, "ipv4"), (FAMILY_V6, "ipv6")] {
        let off = |conf: &str| forwarding(name, conf) == Some(false);
        if off("all") && attached.clone().into_iter().all(off) {
            flags |= config_fast(family);
        }
    }
    flags
}
