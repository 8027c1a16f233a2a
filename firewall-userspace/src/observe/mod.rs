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
}

impl Snapshot {
    /// Reads every counter of both tables and both families. The caller holds the lock
    /// (`fw`) for exactly this long.
    pub fn take(fw: &Firewall) -> Result<Snapshot> {
        let src = fw.counter_source()?;
        let taken = Instant::now();
        let (generation, reasons) = match &src.dp {
            Some(dp) => (Some(dp.maps.config()?.active), dp.maps.reasons()?),
            None => (None, Vec::new()),
        };
        let mut rules = Vec::new();
        let mut policies = Vec::new();
        for table in Table::ALL {
            for family in Family::ALL {
                let chains = fw.state.ruleset.table(table, family);
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
