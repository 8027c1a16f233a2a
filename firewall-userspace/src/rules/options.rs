//! Long option names as getopt_long resolves them for iptables: an exact name, or any
//! prefix of exactly one option (`--to` for `--to-destination`, `--dp` for `--dport`).
//!
//! iptables hands getopt_long its own options merged with those of every extension loaded
//! so far (`-m`, the match `-p tcp` implies, the `-j` target), so whether a prefix is
//! ambiguous depends on the point of the command line: `--d` is ambiguous from the start
//! (`--destination`, `--delete`...), `--dp` only once `-p tcp` has made `--dport` known.
//! The tables list every option iptables 1.8.9 knows for each extension fwctl reads,
//! supported or not, so that a prefix resolves to the option iptables would pick and an
//! option fwctl does not support is refused by its full name.

/// An extension's long options: (name with its `--`, option id). Names with the same id
/// are synonyms (`--sport`, `--source-port`): a prefix of several of them is no ambiguity,
/// as getopt_long sees the same option behind them.
pub type Options = &'static [(&'static str, &'static str)];

/// iptables' own options (`original_opts` in iptables/xshared.c).
pub const BASE: Options = &[
    ("--append", "A"),
    ("--delete", "D"),
    ("--check", "C"),
    ("--insert", "I"),
    ("--replace", "R"),
    ("--list", "L"),
    ("--list-rules", "S"),
    ("--flush", "F"),
    ("--zero", "Z"),
    ("--new-chain", "N"),
    ("--delete-chain", "X"),
    ("--rename-chain", "E"),
    ("--policy", "P"),
    ("--source", "s"),
    ("--destination", "d"),
    ("--src", "s"),
    ("--dst", "d"),
    ("--protocol", "p"),
    ("--in-interface", "i"),
    ("--jump", "j"),
    ("--table", "t"),
    ("--match", "m"),
    ("--numeric", "n"),
    ("--out-interface", "o"),
    ("--verbose", "v"),
    ("--wait", "w"),
    ("--wait-interval", "W"),
    ("--exact", "x"),
    ("--fragments", "f"),
    ("--version", "V"),
    ("--help", "h"),
    ("--line-numbers", "0"),
    ("--modprobe", "M"),
    ("--set-counters", "c"),
    ("--goto", "g"),
    ("--ipv4", "4"),
    ("--ipv6", "6"),
];

pub const TCP: Options = &[
    ("--source-port", "sport"),
    ("--sport", "sport"),
    ("--destination-port", "dport"),
    ("--dport", "dport"),
    ("--syn", "syn"),
    ("--tcp-flags", "tcp-flags"),
    ("--tcp-option", "tcp-option"),
];

pub const UDP: Options = &[
    ("--source-port", "sport"),
    ("--sport", "sport"),
    ("--destination-port", "dport"),
    ("--dport", "dport"),
];

pub const ICMP: Options = &[("--icmp-type", "icmp-type")];
pub const ICMP6: Options = &[("--icmpv6-type", "icmpv6-type")];

pub const MULTIPORT: Options = &[
    ("--source-ports", "sports"),
    ("--sports", "sports"),
    ("--destination-ports", "dports"),
    ("--dports", "dports"),
    ("--ports", "ports"),
];

pub const COMMENT: Options = &[("--comment", "comment")];
pub const STATE: Options = &[("--state", "state")];

pub const CONNTRACK: Options = &[
    ("--ctstate", "ctstate"),
    ("--ctproto", "ctproto"),
    ("--ctorigsrc", "ctorigsrc"),
    ("--ctorigdst", "ctorigdst"),
    ("--ctreplsrc", "ctreplsrc"),
    ("--ctrepldst", "ctrepldst"),
    ("--ctorigsrcport", "ctorigsrcport"),
    ("--ctorigdstport", "ctorigdstport"),
    ("--ctreplsrcport", "ctreplsrcport"),
    ("--ctrepldstport", "ctrepldstport"),
    ("--ctstatus", "ctstatus"),
    ("--ctexpire", "ctexpire"),
    ("--ctdir", "ctdir"),
];

pub const SET: Options = &[
    ("--match-set", "match-set"),
    // The old name of --match-set.
    ("--set", "match-set"),
    ("--return-nomatch", "return-nomatch"),
    ("--update-counters", "update-counters"),
    ("--update-subcounters", "update-subcounters"),
    ("--packets-eq", "packets-eq"),
    ("--packets-lt", "packets-lt"),
    ("--packets-gt", "packets-gt"),
    ("--bytes-eq", "bytes-eq"),
    ("--bytes-lt", "bytes-lt"),
    ("--bytes-gt", "bytes-gt"),
];

pub const LIMIT: Options = &[("--limit", "limit"), ("--limit-burst", "limit-burst")];

pub const HASHLIMIT: Options = &[
    ("--hashlimit", "hashlimit-upto"),
    ("--hashlimit-upto", "hashlimit-upto"),
    ("--hashlimit-above", "hashlimit-above"),
    ("--hashlimit-burst", "hashlimit-burst"),
    ("--hashlimit-mode", "hashlimit-mode"),
    ("--hashlimit-name", "hashlimit-name"),
    ("--hashlimit-srcmask", "hashlimit-srcmask"),
    ("--hashlimit-dstmask", "hashlimit-dstmask"),
    ("--hashlimit-htable-size", "hashlimit-htable-size"),
    ("--hashlimit-htable-max", "hashlimit-htable-max"),
    (
        "--hashlimit-htable-gcinterval",
        "hashlimit-htable-gcinterval",
    ),
    ("--hashlimit-htable-expire", "hashlimit-htable-expire"),
    ("--hashlimit-rate-match", "hashlimit-rate-match"),
    ("--hashlimit-rate-interval", "hashlimit-rate-interval"),
];

pub const CONNLIMIT: Options = &[
    ("--connlimit-upto", "connlimit-upto"),
    ("--connlimit-above", "connlimit-above"),
    ("--connlimit-mask", "connlimit-mask"),
    ("--connlimit-saddr", "connlimit-saddr"),
    ("--connlimit-daddr", "connlimit-daddr"),
];

pub const SNAT: Options = &[
    ("--to-source", "to-source"),
    ("--random", "random"),
    ("--random-fully", "random-fully"),
    ("--persistent", "persistent"),
];

pub const DNAT: Options = &[
    ("--to-destination", "to-destination"),
    ("--random", "random"),
    ("--persistent", "persistent"),
];

pub const MASQUERADE: Options = &[
    ("--to-ports", "to-ports"),
    ("--random", "random"),
    ("--random-fully", "random-fully"),
];

pub const REDIRECT: Options = &[("--to-ports", "to-ports"), ("--random", "random")];

pub const REJECT: Options = &[("--reject-with", "reject-with")];

pub const LOG: Options = &[
    ("--log-level", "log-level"),
    ("--log-prefix", "log-prefix"),
    ("--log-tcp-sequence", "log-tcp-sequence"),
    ("--log-tcp-options", "log-tcp-options"),
    ("--log-ip-options", "log-ip-options"),
    ("--log-uid", "log-uid"),
    ("--log-macdecode", "log-macdecode"),
];

pub const NFLOG: Options = &[
    ("--nflog-group", "--nflog-group"),
    ("--nflog-prefix", "--nflog-prefix"),
    ("--nflog-range", "--nflog-range"),
    ("--nflog-size", "--nflog-size"),
    ("--nflog-threshold", "--nflog-threshold"),
];

/// The long option `opt` (with its `--`) stands for among `known`: itself when it is one,
/// the one option it is a prefix of, or None when it names none. A prefix of options with
/// different ids is ambiguous: the error names them, as getopt_long's own message does.
/// Short options and other words are not long options: they come back as they are.
pub fn resolve<'a>(opt: &'a str, known: &[Options]) -> Result<Option<&'a str>, String> {
    let all = || known.iter().flat_map(|o| o.iter());
    if !opt.starts_with("--") || opt.len() == 2 || all().any(|(n, _)| *n == opt) {
        return Ok(Some(opt));
    }
    let mut hits: Vec<(&'static str, &'static str)> = Vec::new();
    for &(n, id) in all().filter(|(n, _)| n.starts_with(opt)) {
        if !hits.iter().any(|(seen, _)| *seen == n) {
            hits.push((n, id));
        }
    }
    match hits.as_slice() {
        [] => Ok(None),
        [(first, id), rest @ ..] if rest.iter().all(|(_, other)| other == id) => Ok(Some(first)),
        _ => Err(format!(
            "option \"{opt}\" is ambiguous; possibilities: {}",
            hits.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_resolve_as_getopt_long_does() {
        let tcp = [BASE, TCP];
        type Case<'a> = (&'a [Options], &'a str, Result<Option<&'a str>, &'a str>);
        let cases: &[Case] = &[
            (&[BASE], "--sou", Ok(Some("--source"))),
            (&[BASE], "--dst", Ok(Some("--dst"))),
            (&[BASE], "--jum", Ok(Some("--jump"))),
            (&tcp, "--dp", Ok(Some("--dport"))),
            (&tcp, "--destination-p", Ok(Some("--destination-port"))),
            (&tcp, "--sy", Ok(Some("--syn"))),
            (&[BASE], "--nope", Ok(None)),
            (&[BASE, DNAT], "--to", Ok(Some("--to-destination"))),
            (&[BASE, SNAT], "--to", Ok(Some("--to-source"))),
            (&[BASE, HASHLIMIT], "--hashlimit", Ok(Some("--hashlimit"))),
            (
                &[BASE],
                "--s",
                Err("option \"--s\" is ambiguous; possibilities: --source --src --set-counters"),
            ),
            (
                &tcp,
                "--d",
                Err("option \"--d\" is ambiguous; possibilities: --delete --delete-chain --destination --dst --destination-port --dport"),
            ),
            (
                &[BASE, MASQUERADE],
                "--random",
                Ok(Some("--random")),
            ),
            (
                &[BASE, MASQUERADE],
                "--rand",
                Err("option \"--rand\" is ambiguous; possibilities: --random --random-fully"),
            ),
        ];
        for (known, opt, want) in cases {
            let got = resolve(opt, known);
            assert_eq!(
                got.as_ref().map_err(String::as_str).copied(),
                *want,
                "{opt}"
            );
        }
    }
}
