//! The `iptables-save` format, read: a whole ruleset applied as one edit, so a file with a
//! bad line changes nothing. Errors name the line.

use super::{
    edit::{EditError, Editor},
    parse::{parse_args, Command, ParseError},
    Family, Ruleset, Table, Verdict,
};

/// A restore that failed at `line` (1-based); `status` is the exit status iptables-restore
/// would give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RestoreError {
    pub line: usize,
    pub message: String,
    pub status: u8,
}

/// Counters given with `-c`: the rule (by chain and 1-based position) and its packets and
/// bytes, to be written once the rules are in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredCounter {
    pub table: Table,
    pub chain: String,
    pub position: usize,
    pub packets: u64,
    pub bytes: u64,
}

pub struct Restored {
    pub editor: Editor,
    pub counters: Vec<RestoredCounter>,
}

/// Splits a line into words as iptables-restore does: whitespace separates, double quotes
/// group, and inside them a backslash escapes the next character; elsewhere a backslash
/// and single quotes are characters like any other (`--hex-string '|00|'` is five bytes).
/// Public for the parser fuzz targets, which read a rule's saved form back as restore
/// does.
pub fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                word.push(chars.next().ok_or("a line may not end in a backslash")?);
                in_word = true;
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    // iptables-restore lets an open quote run to the end of the line, newline included
    // (files saved from a terminal get their long comments cut so, and still load).
    if quoted {
        word.push('\n');
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

/// `[packets:bytes]`.
fn counters(text: &str) -> Option<(u64, u64)> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let (p, b) = inner.split_once(':')?;
    Some((p.parse().ok()?, b.parse().ok()?))
}

/// Reads `text` into an edit of `current`: with `noflush` the file's rules are added to
/// it, otherwise the file's tables replace the family's rules.
pub fn restore(
    text: &str,
    family: Family,
    current: &Ruleset,
    noflush: bool,
) -> Result<Restored, RestoreError> {
    restore_onto(text, family, Editor::new(current.clone()), noflush)
}

/// As [`restore`], continuing an edit in progress, so that two files (boot's rules.v4 and
/// rules.v6) become one change whose new rules never reuse a slot of the rules in force.
pub fn restore_onto(
    text: &str,
    family: Family,
    mut editor: Editor,
    noflush: bool,
) -> Result<Restored, RestoreError> {
    let mut restored = Vec::new();
    let mut in_table = false;
    let mut table = Table::Filter;
    let mut last_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        last_line = line_no;
        let fail = |message: String, status: u8| RestoreError {
            line: line_no,
            message,
            status,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            if in_table {
                return Err(fail(
                    "a table starts before the last one's COMMIT".into(),
                    1,
                ));
            }
            table = Table::from_name(name).ok_or_else(|| {
                fail(
                    format!(
                        "table `{name}' is not supported: fwctl manages the filter, nat, mangle, raw and security tables"
                    ),
                    1,
                )
            })?;
            editor.table = table;
            editor.ruleset.table_mut(table, family).declared = true;
            in_table = true;
            if !noflush {
                flush_table(&mut editor, family).map_err(|e| fail(e.to_string(), 1))?;
            }
            continue;
        }
        if !in_table {
            return Err(fail(
                format!("`{line}' outside a table: expected *filter first"),
                1,
            ));
        }
        if line == "COMMIT" {
            in_table = false;
            continue;
        }
        if let Some(decl) = line.strip_prefix(':') {
            chain_line(&mut editor, table, family, decl).map_err(|m| fail(m, 1))?;
            continue;
        }
        let mut args = words(line).map_err(|m| fail(m, 1))?;
        let mut count = None;
        if let Some(first) = args.first() {
            if first.starts_with('[') {
                count = Some(counters(first).ok_or_else(|| {
                    fail(
                        format!("bad counters `{first}': expected [packets:bytes]"),
                        1,
                    )
                })?);
                args.remove(0);
            }
        }
        // A line's own -4 or -6 says its family (a -4 line is skipped below).
        let flagged = args
            .iter()
            .any(|a| matches!(a.as_str(), "-4" | "--ipv4" | "-6" | "--ipv6"));
        if family == Family::V6 && !flagged {
            args.insert(0, "-6".into());
        }
        if !args.iter().any(|a| a == "-t" || a.starts_with("--table")) {
            args.splice(0..0, ["-t".to_string(), table.name().to_string()]);
        }
        let inv =
            parse_args(&args).map_err(|ParseError { message, status }| fail(message, status))?;
        // A line marked for the other family (`-4` read by ip6tables-restore, `-6` by
        // iptables-restore) is skipped, as iptables does: parsed for that family, its
        // addresses would otherwise land in this family's rules.
        if inv.family != family {
            continue;
        }
        if inv.table != table {
            return Err(fail(
                format!(
                    "`-t {}' inside *{}: a line belongs to the table it is in",
                    inv.table.name(),
                    table.name()
                ),
                2,
            ));
        }
        let appended = match &inv.command {
            Command::Append(chain, specs) => Some((chain.clone(), specs.len())),
            _ => None,
        };
        let query = editor
            .apply(table, family, inv.command)
            .map_err(|e| fail(e.to_string(), e.status()))?;
        if query.is_some() {
            return Err(fail(
                format!("`{line}' is not a command iptables-restore accepts"),
                2,
            ));
        }
        if let (Some((packets, bytes)), Some((chain, n))) = (count, appended) {
            let len = editor
                .ruleset
                .table(table, family)
                .rules(&chain)
                .map_or(0, Vec::len);
            for position in len + 1 - n..=len {
                restored.push(RestoredCounter {
                    table,
                    chain: chain.clone(),
                    position,
                    packets,
                    bytes,
                });
            }
        }
    }
    if in_table {
        return Err(RestoreError {
            line: last_line,
            message: "the file ends without COMMIT".into(),
            status: 1,
        });
    }
    Ok(Restored {
        editor,
        counters: restored,
    })
}

/// `:CHAIN POLICY [packets:bytes]`, read as iptables-restore reads it: the name and a
/// policy word are required; a built-in chain takes ACCEPT, DROP or `-` (policy unchanged),
/// a user chain is created whatever its policy word says. The counters and any further
/// words are not read: iptables-restore reads policy counters only with `-c`, and fwctl
/// keeps its own policy counters.
fn chain_line(editor: &mut Editor, table: Table, family: Family, decl: &str) -> Result<(), String> {
    let mut words = decl.split_whitespace();
    let (Some(name), Some(policy)) = (words.next(), words.next()) else {
        return Err(format!(
            "chain line `:{decl}' has no policy: expected :CHAIN POLICY [packets:bytes]"
        ));
    };
    match editor.ruleset.table(table, family).builtin(name) {
        Some(_) if policy == "-" => Ok(()),
        Some(chain) => {
            let verdict = Verdict::from_name(policy)
                .ok_or_else(|| format!("bad policy `{policy}' for {name}: use ACCEPT or DROP"))?;
            editor
                .policy(family, chain, verdict)
                .map_err(|e| e.to_string())
        }
        None => {
            let exists = editor
                .ruleset
                .table(table, family)
                .user_chain(name)
                .is_some();
            if exists {
                return Ok(());
            }
            editor.new_chain(family, name).map_err(|e| e.to_string())
        }
    }
}

/// What `*TABLE` does without --noflush: every chain of the editor's table emptied, user
/// chains gone, policies back to ACCEPT (the file's `:CHAIN POLICY` lines set them).
fn flush_table(editor: &mut Editor, family: Family) -> Result<(), EditError> {
    editor.flush(family, None)?;
    editor.delete_chain(family, None)?;
    for &chain in editor.ruleset.table(editor.table, family).builtins() {
        editor.policy(family, chain, Verdict::Accept)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVED: &str = "\
# Generated by iptables-save v1.8.9 (nf_tables) on Wed Nov 25 18:38:04 2026
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:MAIL - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m multiport --dports 25,587 -j MAIL
-A INPUT -m comment --comment \"hello world\" -j ACCEPT
-A MAIL -s 1.2.3.4/32 -j RETURN
-A MAIL -j ACCEPT
COMMIT
# Completed on Wed Nov 25 18:38:04 2026
";

    #[test]
    fn reads_iptables_save_output() {
        let r = restore(SAVED, Family::V4, &Ruleset::default(), false).unwrap();
        let v4 = &r.editor.ruleset.v4;
        assert_eq!(v4.input.policy, Verdict::Drop);
        assert_eq!(v4.input.rules.len(), 4);
        assert_eq!(v4.user_chain("MAIL").unwrap().rules.len(), 2);
        assert_eq!(
            v4.input.rules[3].spec.comment.as_deref(),
            Some("hello world")
        );
    }

    /// Found by the iptables_save fuzz target: a `-4` line restored as IPv6 put an IPv4
    /// address in the IPv6 rules, whose save `fwctl restore -6` then refused.
    #[test]
    fn lines_for_the_other_family_are_skipped() {
        let text = "*filter\n-A INPUT -4 -s 10.0.0.0/8 -j DROP\n-A INPUT -6 -s fd00::/8 -j DROP\n-A INPUT -j ACCEPT\nCOMMIT\n";
        for (family, kept) in [(Family::V4, "10.0.0.0"), (Family::V6, "fd00::")] {
            let r = restore(text, family, &Ruleset::default(), false).unwrap();
            let rules = &r.editor.ruleset.family(family).input.rules;
            assert_eq!(rules.len(), 2, "{family:?}");
            let src = rules[0].spec.src.as_ref().map(|c| c.value.addr.to_string());
            assert_eq!(src.as_deref(), Some(kept), "{family:?}");
        }
    }

    #[test]
    fn replaces_unless_noflush() {
        let first = restore(SAVED, Family::V4, &Ruleset::default(), false).unwrap();
        let again = restore(SAVED, Family::V4, &first.editor.ruleset, false).unwrap();
        assert_eq!(again.editor.ruleset.v4.input.rules.len(), 4);
        let more = "*filter\n-A INPUT -p udp -j DROP\nCOMMIT\n";
        let added = restore(more, Family::V4, &first.editor.ruleset, true).unwrap();
        assert_eq!(added.editor.ruleset.v4.input.rules.len(), 5);
        assert_eq!(added.editor.ruleset.v4.input.policy, Verdict::Drop);
    }

    #[test]
    fn counters_with_c() {
        let text = "*filter\n:INPUT ACCEPT [0:0]\n[5:300] -A INPUT -p tcp -j ACCEPT\nCOMMIT\n";
        let r = restore(text, Family::V4, &Ruleset::default(), false).unwrap();
        assert_eq!(
            r.counters,
            [RestoredCounter {
                table: Table::Filter,
                chain: "INPUT".into(),
                position: 1,
                packets: 5,
                bytes: 300
            }]
        );
    }

    /// Chain lines as iptables-restore 1.8.9 takes them (each checked with
    /// `iptables-restore --test`): extra words and bad counters are ignored without `-c`,
    /// a user chain's policy word is not read, `-` leaves a built-in chain's policy.
    #[test]
    fn chain_lines_as_iptables_restore_reads_them() {
        let text = "*filter\n:INPUT DROP [5:6x] extra words\n:FORWARD - [0:0]\n:OUTPUT DROP\n\
                    :LOGGING - [0:0] foo bar\n:MAIL ACCEPT [x]\n:LOG;GING -\nCOMMIT\n";
        let r = restore(text, Family::V4, &Ruleset::default(), false).unwrap();
        let v4 = &r.editor.ruleset.v4;
        assert_eq!(v4.input.policy, Verdict::Drop);
        assert_eq!(v4.forward.policy, Verdict::Accept);
        assert_eq!(v4.output.policy, Verdict::Drop);
        let names: Vec<&str> = v4.user.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["LOG;GING", "LOGGING", "MAIL"]);
    }

    /// An open quote runs to the end of the line, newline included, as iptables-restore
    /// 1.8.9 reads it: the rule below is a comment and no target.
    #[test]
    fn an_open_quote_runs_to_the_end_of_the_line() {
        let text = "*filter\n-A INPUT -m comment --comment \"abc def -j ACCEPT\nCOMMIT\n";
        let r = restore(text, Family::V4, &Ruleset::default(), false).unwrap();
        let rule = &r.editor.ruleset.v4.input.rules[0].spec;
        assert_eq!(rule.comment.as_deref(), Some("abc def -j ACCEPT\n"));
        assert_eq!(rule.target, crate::rules::Target::Count);
    }

    /// Rules without `-j` count and go on; `-A CHAIN` alone is one.
    #[test]
    fn rules_without_target() {
        let text = "*filter\n:FOO - [0:0]\n-A INPUT -p tcp --dport 22\n-A FOO\nCOMMIT\n";
        let r = restore(text, Family::V4, &Ruleset::default(), false).unwrap();
        let v4 = &r.editor.ruleset.v4;
        assert_eq!(v4.input.rules[0].spec.target, crate::rules::Target::Count);
        assert_eq!(
            v4.user_chain("FOO").unwrap().rules[0].spec,
            crate::rules::RuleSpec::any(crate::rules::Target::Count)
        );
    }

    /// Bad files with the line and message each must give.
    #[test]
    fn bad_files_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "-A INPUT -j DROP\n",
                1,
                "`-A INPUT -j DROP' outside a table: expected *filter first",
            ),
            (
                "*filter\n-A INPUT -j CT --notrack\nCOMMIT\n",
                2,
                "CT belongs to the raw table: use -t raw",
            ),
            (
                "*mangle\n-A INPUT -p tcp -j TCPMSS --clamp-mss-to-pmtu\nCOMMIT\n",
                2,
                "TCPMSS --clamp-mss-to-pmtu works in FORWARD, OUTPUT and POSTROUTING only, not in INPUT",
            ),
            (
                "*filter\n-A INPUT -m owner --uid-owner 0 -j DROP\nCOMMIT\n",
                2,
                "-m owner works in OUTPUT and POSTROUTING only, not in INPUT",
            ),
            (
                "*filter\n-A OUTPUT -m mac --mac-source 00:11:22:33:44:55 -j DROP\nCOMMIT\n",
                2,
                "-m mac works in PREROUTING, INPUT and FORWARD only, not in OUTPUT",
            ),
            (
                "*broute\nCOMMIT\n",
                1,
                "table `broute' is not supported: fwctl manages the filter, nat, mangle, raw and security tables",
            ),
            (
                "*filter\n-A INPUT -j DROP\n",
                2,
                "the file ends without COMMIT",
            ),
            (
                "*filter\n\n-A INPUT -p tcp --dport 99999 -j DROP\nCOMMIT\n",
                3,
                "invalid port/service `99999' specified",
            ),
            (
                "*filter\n-A NOPE -j DROP\nCOMMIT\n",
                2,
                "Chain `NOPE' does not exist",
            ),
            (
                "*filter\n:INPUT MAYBE [0:0]\nCOMMIT\n",
                2,
                "bad policy `MAYBE' for INPUT: use ACCEPT or DROP",
            ),
            (
                "*filter\n:MAIL\nCOMMIT\n",
                2,
                "chain line `:MAIL' has no policy: expected :CHAIN POLICY [packets:bytes]",
            ),
            (
                "*nat\n:PREROUTING DROP [0:0]\nCOMMIT\n",
                2,
                "the nat table is not intended for filtering: DROP is not allowed there",
            ),
            (
                "*nat\n-A FORWARD -j ACCEPT\nCOMMIT\n",
                2,
                "Chain `FORWARD' does not exist",
            ),
            (
                "*filter\n-t nat -A POSTROUTING -j MASQUERADE\nCOMMIT\n",
                2,
                "`-t nat' inside *filter: a line belongs to the table it is in",
            ),

            (
                "*filter\n[1:x] -A INPUT -j DROP\nCOMMIT\n",
                2,
                "bad counters `[1:x]': expected [packets:bytes]",
            ),
            (
                "*filter\n-L INPUT\nCOMMIT\n",
                2,
                "`-L INPUT' is not a command iptables-restore accepts",
            ),
            (
                "*filter\n*filter\nCOMMIT\n",
                2,
                "a table starts before the last one's COMMIT",
            ),
            (
                "*filter\n-A INPUT -j NOCHAIN\nCOMMIT\n",
                2,
                "Couldn't load target `NOCHAIN': no chain by that name",
            ),
        ];
        for (text, line, message) in cases {
            let err = restore(text, Family::V4, &Ruleset::default(), false)
                .err()
                .unwrap_or_else(|| panic!("{text:?} was accepted"));
            assert_eq!(
                (err.line, err.message.as_str()),
                (*line, *message),
                "{text:?}"
            );
        }
    }
}
