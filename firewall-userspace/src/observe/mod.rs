//! Watching the firewall without bpftool: one [`Snapshot`] of every counter, read the way
//! `fwctl -L -v -x` reads them, rendered for Prometheus ([`metrics`], served by
//! [`exporter`]) or as rates on a terminal ([`top`]).

pub mod exporter;
pub mod metrics;
pub mod top;

use std::time::Instant;

use anyhow::Result;
use firewall_common::Counter;

use crate::{
    cli::list,
    firewall::Firewall,
    rules::{Family, Table},
};

/// One rule's counters at one moment.
#[derive(Clone, Debug)]
pub struct RuleSample {
    pub family: Family,
    pub table: Table,
    pub chain: String,
    /// Position in its chain, from 1, as `--line-numbers` shows it.
    pub number: usize,
    /// The rule's counter slot: it keeps it for its lifetime, whatever moves around it.
    pub slot: u32,
    pub comment: Option<String>,
    /// The rule as `-S` writes it, without `-A CHAIN`.
    pub args: String,
    /// Both paths together: what `-L -v -x` shows.
    pub total: Counter,
    /// The share netfilter counted (the rest was XDP's).
    pub netfilter: Counter,
}

/// A built-in chain's policy counters at one moment.
#[derive(Clone, Debug)]
pub struct PolicySample {
    pub family: Family,
    pub table: Table,
    pub chain: String,
    pub policy: &'static str,
    pub total: Counter,
    pub netfilter: Counter,
}

/// An attached interface's kernel statistics (/proc/net/dev) at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceSample {
    pub name: String,
    pub mode: &'static str,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// Everything the exporter and `top` show, read in one go under the namespace's lock.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Monotonic, for rates.
    pub taken: Instant,
    /// The active generation; None when nothing is installed.
    pub generation: Option<u32>,
    /// Unix time in milliseconds of the last commit.
    pub last_apply_ms: Option<u64>,
    /// Packets the XDP program decided without a rule, by reason.
    pub reasons: Vec<(&'static str, u64)>,
    pub rules: Vec<RuleSample>,
    pub policies: Vec<PolicySample>,
    pub interfaces: Vec<InterfaceSample>,
    /// Source prefixes (/24, /64) of sampled drops at XDP, busiest first, with their share
    /// of the samples.
    pub talkers: Vec<(String, f64)>,
}

/// The busiest source prefixes among sampled drops: (prefix, share of the samples).
pub fn top_talkers(samples: &[(u32, [u32; 4])], most: usize) -> Vec<(String, f64)> {
    // The program stores addresses as it read them from the packet: network order bytes.
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    for (family, src) in samples {
        let bytes: Vec<u8> = src.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let prefix = if *family == firewall_common::FAMILY_V4 {
            format!("{}.{}.{}.0/24", bytes[0], bytes[1], bytes[2])
        } else {
            let mut a = [0u8; 16];
            a[..8].copy_from_slice(&bytes[..8]);
            format!("{}/64", std::net::Ipv6Addr::from(a))
        };
        *counts.entry(prefix).or_default() += 1;
    }
    let mut list: Vec<(String, usize)> = counts.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    list.into_iter()
        .take(most)
        .map(|(p, n)| (p, n as f64 / samples.len().max(1) as f64))
        .collect()
}

impl Snapshot {
    /// Reads every counter of both tables and both families. The caller holds the lock
    /// (`fw`) for exactly this long.
    pub fn take(fw: &Firewall) -> Result<Snapshot> {
        let src = fw.counter_source()?;
        let taken = Instant::now();
        let (generation, reasons, talkers) = match &src.dp {
            Some(dp) => (
                Some(dp.maps.config()?.active),
                dp.maps.reasons()?,
                top_talkers(&dp.maps.talkers()?, 5),
            ),
            None => (None, Vec::new(), Vec::new()),
        };
        let mut rules = Vec::new();
        let mut policies = Vec::new();
        for table in Table::ALL {
            for family in Family::ALL {
                let chains = fw.state.ruleset.table(table, family);
                // The mangle, raw and security tables once they exist (filter and nat
                // always).
                if matches!(table, Table::Mangle | Table::Raw | Table::Security) && !chains.exists()
                {
                    continue;
                }
                for chain in list::chain_names(chains, None).unwrap_or_default() {
                    // The very function `-L` uses, so the numbers cannot drift apart.
                    let counted = fw.counters(&src, table, family, &chain)?;
                    for (i, rule) in chains.rules(&chain).into_iter().flatten().enumerate() {
                        let (packets, bytes) = src.nft.rule(rule.slot);
                        rules.push(RuleSample {
                            family,
                            table,
                            chain: chain.clone(),
                            number: i + 1,
                            slot: rule.slot,
                            comment: rule.spec.comment.clone(),
                            args: list::rule_args(&rule.spec),
                            total: counted.rules.get(i).copied().unwrap_or_default(),
                            netfilter: Counter { packets, bytes },
                        });
                    }
                    if let Some(builtin) = chains.builtin(&chain) {
                        let (packets, bytes) = src.nft.policy(table, family, builtin);
                        policies.push(PolicySample {
                            family,
                            table,
                            chain: chain.clone(),
                            policy: chains.chain(builtin).policy.name(),
                            total: counted.policy,
                            netfilter: Counter { packets, bytes },
                        });
                    }
                }
            }
        }
        let dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
        let interfaces = fw
            .state
            .interfaces
            .iter()
            .map(|a| {
                let mut stats = proc_net_dev(&dev, &a.name).unwrap_or_default();
                stats.name = a.name.clone();
                stats.mode = a.mode.name();
                stats
            })
            .collect();
        Ok(Snapshot {
            taken,
            generation,
            last_apply_ms: fw.state.last_apply_ms,
            reasons,
            talkers,
            rules,
            policies,
            interfaces,
        })
    }

    /// Locks the namespace, reads, and lets go at once: a watcher never holds up a change
    /// for longer than one read.
    pub fn sample() -> Result<Snapshot> {
        let fw = Firewall::lock()?;
        Snapshot::take(&fw)
    }
}

/// One interface's line of /proc/net/dev. /proc/net follows the reader's network
/// namespace, unlike /sys/class/net, which follows the namespace sysfs was mounted in (and
/// fwctl runs in the operator's mount namespace, see `dataplane::namespace`).
fn proc_net_dev(text: &str, iface: &str) -> Option<InterfaceSample> {
    let line = text
        .lines()
        .find_map(|l| l.split_once(':').filter(|(name, _)| name.trim() == iface))?;
    let fields: Vec<u64> = line
        .1
        .split_whitespace()
        .map(|w| w.parse().unwrap_or(0))
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    Some(InterfaceSample {
        rx_bytes: field(0),
        rx_packets: field(1),
        rx_dropped: field(3),
        tx_bytes: field(8),
        tx_packets: field(9),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_dev_lines_are_read_by_name() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
fwhost0: 1280 10 0 3 0 0 0 0 640 5 0 0 0 0 0 0
";
        let s = proc_net_dev(text, "fwhost0").unwrap();
        assert_eq!(
            (
                s.rx_bytes,
                s.rx_packets,
                s.rx_dropped,
                s.tx_bytes,
                s.tx_packets
            ),
            (1280, 10, 3, 640, 5)
        );
        assert!(proc_net_dev(text, "fwhost").is_none());
    }
}

#[cfg(test)]
mod talker_tests {
    use super::top_talkers;

    #[test]
    fn samples_group_by_prefix_busiest_first() {
        let v4 = |a: [u8; 4]| (firewall_common::FAMILY_V4, [u32::from_ne_bytes(a), 0, 0, 0]);
        let mut v6 = [0u32; 4];
        v6[0] = u32::from_ne_bytes([0x20, 0x01, 0x0d, 0xb8]);
        let samples = [
            v4([10, 0, 0, 1]),
            v4([10, 0, 0, 9]),
            v4([10, 0, 0, 200]),
            v4([192, 0, 2, 1]),
            (firewall_common::FAMILY_V6, v6),
        ];
        let top = top_talkers(&samples, 2);
        assert_eq!(top[0].0, "10.0.0.0/24");
        assert!((top[0].1 - 0.6).abs() < 1e-9);
        assert_eq!(top.len(), 2);
        let all = top_talkers(&samples, 5);
        assert!(all.iter().any(|(p, _)| p == "2001:db8::/64"), "{all:?}");
    }
}
