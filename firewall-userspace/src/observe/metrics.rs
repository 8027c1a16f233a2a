//! A [`Snapshot`] in the Prometheus text exposition format (version 0.0.4): each metric's
//! samples together under its HELP and TYPE lines, as the format requires.

use std::fmt::Write;

use super::Snapshot;

/// The Content-Type Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The page `GET /metrics` serves.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let rule_labels = |r: &super::RuleSample| {
        labels(&[
            ("family", r.family.label()),
            ("table", r.table.name()),
            ("chain", &r.chain),
            ("rule", &r.number.to_string()),
            ("id", &r.slot.to_string()),
            ("comment", r.comment.as_deref().unwrap_or_default()),
        ])
    };
    header(
        &mut out,
        "fwctl_rule_packets_total",
        "counter",
        "Packets that matched the rule, at XDP and in netfilter together (fwctl -L -v -x). \
         id is the rule's counter slot: it stays with the rule while rules around it come and go.",
    );
    for r in &s.rules {
        sample(
            &mut out,
            "fwctl_rule_packets_total",
            &rule_labels(r),
            r.total.packets,
        );
    }
    header(
        &mut out,
        "fwctl_rule_bytes_total",
        "counter",
        "Bytes (IP header and payload) of the packets that matched the rule (fwctl -L -v -x).",
    );
    for r in &s.rules {
        sample(
            &mut out,
            "fwctl_rule_bytes_total",
            &rule_labels(r),
            r.total.bytes,
        );
    }
    header(
        &mut out,
        "fwctl_rule_info",
        "gauge",
        "Each rule as fwctl -S writes it, for legends; join on id.",
    );
    for r in &s.rules {
        let text = format!("-A {} {}", r.chain, r.args).trim_end().to_string();
        let l = labels(&[
            ("family", r.family.label()),
            ("table", r.table.name()),
            ("chain", &r.chain),
            ("rule", &r.number.to_string()),
            ("id", &r.slot.to_string()),
            ("spec", &text),
        ]);
        sample(&mut out, "fwctl_rule_info", &l, 1);
    }

    let policy_labels = |p: &super::PolicySample| {
        labels(&[
            ("family", p.family.label()),
            ("table", p.table.name()),
            ("chain", &p.chain),
            ("policy", p.policy),
        ])
    };
    header(
        &mut out,
        "fwctl_policy_packets_total",
        "counter",
        "Packets a built-in chain's policy decided (no rule matched), as fwctl -L -v -x shows.",
    );
    for p in &s.policies {
        sample(
            &mut out,
            "fwctl_policy_packets_total",
            &policy_labels(p),
            p.total.packets,
        );
    }
    header(
        &mut out,
        "fwctl_policy_bytes_total",
        "counter",
        "Bytes of the packets a built-in chain's policy decided.",
    );
    for p in &s.policies {
        sample(
            &mut out,
            "fwctl_policy_bytes_total",
            &policy_labels(p),
            p.total.bytes,
        );
    }

    header(
        &mut out,
        "fwctl_drop_reason_packets_total",
        "counter",
        "Packets the XDP program decided without a rule, by reason: not_ip passes (iptables \
         never sees it), fragment passes to netfilter (which judges the reassembled datagram), \
         malformed and broken_install are dropped.",
    );
    for (reason, n) in &s.reasons {
        sample(
            &mut out,
            "fwctl_drop_reason_packets_total",
            &labels(&[("reason", reason)]),
            *n,
        );
    }

    if let Some(generation) = s.generation {
        header(
            &mut out,
            "fwctl_generation",
            "gauge",
            "The generation of the classifier maps in force (0 or 1), as fwctl status shows it.",
        );
        sample(&mut out, "fwctl_generation", "", generation);
    }
    if let Some(ms) = s.last_apply_ms {
        header(
            &mut out,
            "fwctl_last_apply_timestamp_seconds",
            "gauge",
            "When the ruleset in force was put in force (Unix time).",
        );
        let _ = writeln!(
            out,
            "fwctl_last_apply_timestamp_seconds {}.{:03}",
            ms / 1000,
            ms % 1000
        );
    }
    header(
        &mut out,
        "fwctl_build_info",
        "gauge",
        "The fwctl that serves these metrics: its version and the map ABI it reads.",
    );
    let build = labels(&[
        ("version", env!("CARGO_PKG_VERSION")),
        ("abi", &firewall_common::ABI_VERSION.to_string()),
    ]);
    sample(&mut out, "fwctl_build_info", &build, 1);
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{name}{labels} {value}");
}

/// `{k="v",...}` with values escaped as the format requires (backslash, quote, newline):
/// comments are the operator's free text.
fn labels(pairs: &[(&str, &str)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use firewall_common::Counter;

    use super::*;
    use crate::{
        observe::{PolicySample, RuleSample},
        rules::{Family, Table},
    };

    fn snapshot() -> Snapshot {
        Snapshot {
            taken: Instant::now(),
            generation: Some(1),
            last_apply_ms: Some(1_700_000_000_042),
            reasons: vec![("not_ip", 4), ("malformed", 0)],
            rules: vec![RuleSample {
                family: Family::V6,
                table: Table::Filter,
                chain: "INPUT".into(),
                number: 2,
                slot: 9,
                comment: Some("say \"hi\"\\".into()),
                args: "-p udp -j ACCEPT".into(),
                total: Counter {
                    packets: 7,
                    bytes: 896,
                },
                netfilter: Counter::default(),
            }],
            policies: vec![PolicySample {
                family: Family::V4,
                table: Table::Nat,
                chain: "POSTROUTING".into(),
                policy: "ACCEPT",
                total: Counter {
                    packets: 3,
                    bytes: 120,
                },
                netfilter: Counter::default(),
            }],
            interfaces: Vec::new(),
            talkers: Vec::new(),
        }
    }

    #[test]
    fn samples_carry_escaped_labels_under_help_and_type() {
        let page = render(&snapshot());
        let want = [
            "# TYPE fwctl_rule_packets_total counter",
            r#"fwctl_rule_packets_total{family="ipv6",table="filter",chain="INPUT",rule="2",id="9",comment="say \"hi\"\\"} 7"#,
            r#"fwctl_rule_bytes_total{family="ipv6",table="filter",chain="INPUT",rule="2",id="9",comment="say \"hi\"\\"} 896"#,
            r#"fwctl_rule_info{family="ipv6",table="filter",chain="INPUT",rule="2",id="9",spec="-A INPUT -p udp -j ACCEPT"} 1"#,
            r#"fwctl_policy_packets_total{family="ipv4",table="nat",chain="POSTROUTING",policy="ACCEPT"} 3"#,
            r#"fwctl_drop_reason_packets_total{reason="not_ip"} 4"#,
            "fwctl_generation 1",
            "fwctl_last_apply_timestamp_seconds 1700000000.042",
            "# TYPE fwctl_build_info gauge",
        ];
        for line in want {
            assert!(page.lines().any(|l| l == line), "no {line:?} in\n{page}");
        }
        // Every sample's metric was introduced by its own TYPE line before it.
        let mut typed = Vec::new();
        for line in page.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.push(rest.split(' ').next().unwrap_or_default().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                assert_eq!(typed.last().map(String::as_str), Some(name), "{line}");
            }
        }
    }
}
