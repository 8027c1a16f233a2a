//! Ruleset -> map images: what the XDP program reads, computed once per change so the
//! per-packet path only compares masked words.

use std::net::IpAddr;

use firewall_common::{RulesetHeader, MAX_RULES, RULE_NEEDS_PORTS, VERDICT_ACCEPT, VERDICT_DROP};

use crate::rules::{Chain, Cidr, Family, RuleSpec, Ruleset, Verdict};

/// The compiled INPUT chain of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyImage {
    pub header: RulesetHeader,
    pub rules: Vec<firewall_common::Rule>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("{family} {chain} has {count} rules; this version enforces at most {max} per chain")]
    TooManyRules {
        family: &'static str,
        chain: Chain,
        count: usize,
        max: u32,
    },
}

pub fn compile(ruleset: &Ruleset, family: Family) -> Result<FamilyImage, CompileError> {
    let chain = &ruleset.family(family).input;
    if chain.rules.len() > MAX_RULES as usize {
        return Err(CompileError::TooManyRules {
            family: family.tool(),
            chain: Chain::Input,
            count: chain.rules.len(),
            max: MAX_RULES,
        });
    }
    Ok(FamilyImage {
        header: RulesetHeader {
            policy: verdict(chain.policy),
            rule_count: chain.rules.len() as u32,
        },
        rules: chain
            .rules
            .iter()
            .map(|r| compile_rule(&r.spec, r.slot))
            .collect(),
    })
}

pub fn verdict(v: Verdict) -> u32 {
    match v {
        Verdict::Accept => VERDICT_ACCEPT,
        Verdict::Drop => VERDICT_DROP,
    }
}

pub fn compile_rule(spec: &RuleSpec, slot: u32) -> firewall_common::Rule {
    let (src, src_mask) = spec.src.map(addr_and_mask).unwrap_or_default();
    let (dst, dst_mask) = spec.dst.map(addr_and_mask).unwrap_or_default();
    let (iface, iface_mask) = spec
        .in_iface
        .as_deref()
        .map(iface_and_mask)
        .unwrap_or_default();
    let sport = spec.sport.map(|p| (p.min, p.max)).unwrap_or((0, u16::MAX));
    let dport = spec.dport.map(|p| (p.min, p.max)).unwrap_or((0, u16::MAX));
    firewall_common::Rule {
        src,
        src_mask,
        dst,
        dst_mask,
        iface,
        iface_mask,
        sport_min: sport.0,
        sport_max: sport.1,
        dport_min: dport.0,
        dport_max: dport.1,
        proto: spec.proto.unwrap_or(0) as u32,
        flags: if spec.sport.is_some() || spec.dport.is_some() {
            RULE_NEEDS_PORTS
        } else {
            0
        },
        verdict: verdict(spec.target),
        counter: slot,
    }
}

/// Address and mask as the program reads packet addresses: network byte order, IPv4 in word
/// 0 and the other words zero (mask zero, so they always compare equal).
fn addr_and_mask(cidr: Cidr) -> ([u32; 4], [u32; 4]) {
    let (bytes, len): ([u8; 16], usize) = match cidr.addr {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (b, 4)
        }
        IpAddr::V6(a) => (a.octets(), 16),
    };
    let mut mask = [0u8; 16];
    for (i, m) in mask.iter_mut().enumerate().take(len) {
        let bits = (cidr.prefix as usize).saturating_sub(i * 8).min(8);
        *m = (0xffu16 << (8 - bits)) as u8;
    }
    (words32(bytes), words32(mask))
}

fn words32(b: [u8; 16]) -> [u32; 4] {
    std::array::from_fn(|i| {
        u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    })
}

/// An interface name as two words, with the mask that compares the whole name (and its NUL
/// padding) for `eth0`, only the prefix for `tun+`, and nothing for `+`.
pub fn iface_and_mask(name: &str) -> ([u64; 2], [u64; 2]) {
    let (prefix, wildcard) = match name.strip_suffix('+') {
        Some(p) => (p, true),
        None => (name, false),
    };
    let mut bytes = [0u8; 16];
    let n = prefix.len().min(15);
    bytes[..n].copy_from_slice(&prefix.as_bytes()[..n]);
    let mut mask = [0xffu8; 16];
    if wildcard {
        mask = [0; 16];
        mask[..n].fill(0xff);
    }
    (words64(bytes), words64(mask))
}

pub fn iface_words(name: &str) -> [u64; 2] {
    iface_and_mask(name).0
}

fn words64(b: [u8; 16]) -> [u64; 2] {
    std::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[8 * i..8 * i + 8]);
        u64::from_ne_bytes(w)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::parse::parse_cidr;

    #[test]
    fn ipv4_prefix_masks_only_word_zero() {
        let (addr, mask) = addr_and_mask(parse_cidr("10.1.2.0/23", Family::V4).unwrap());
        assert_eq!(addr, [u32::from_ne_bytes([10, 1, 2, 0]), 0, 0, 0]);
        assert_eq!(mask, [u32::from_ne_bytes([255, 255, 254, 0]), 0, 0, 0]);
    }

    #[test]
    fn ipv6_prefix_spans_words() {
        let (_, mask) = addr_and_mask(parse_cidr("2001:db8::/36", Family::V6).unwrap());
        assert_eq!(mask[0], u32::MAX);
        assert_eq!(mask[1], u32::from_ne_bytes([0xf0, 0, 0, 0]));
        assert_eq!(mask[2..], [0, 0]);
    }

    #[test]
    fn interface_masks() {
        let exact = iface_and_mask("eth0");
        assert_eq!(exact.1, [u64::MAX; 2]);
        assert_eq!(exact.0, iface_words("eth0"));
        let wild = iface_and_mask("tun+");
        assert_eq!(
            wild.1,
            [u64::from_ne_bytes([0xff, 0xff, 0xff, 0, 0, 0, 0, 0]), 0]
        );
        // `tun+` matches tun0 and tun12 but not tap0 or the name "tu".
        for (name, hit) in [
            ("tun0", true),
            ("tun12", true),
            ("tap0", false),
            ("tu", false),
        ] {
            let w = iface_words(name);
            let m = (w[0] & wild.1[0]) == wild.0[0] && (w[1] & wild.1[1]) == wild.0[1];
            assert_eq!(m, hit, "{name}");
        }
        assert_eq!(iface_and_mask("+").1, [0, 0]);
    }
}
