//! The manual page and the shell completions, generated from the same clap definitions that
//! make `--help`, so the three never disagree. The package build (`cargo xtask deb`) runs
//! `fwctl manpage` and `fwctl completions SHELL` on the binary it packs.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;
use roff::{bold, italic, roman, Roff};

use super::{Cli, IPTABLES_HELP};

/// The how-to's commands, as an operator types them on a new server.
const EXAMPLES: &str = "\
fwctl -P INPUT DROP
fwctl -A INPUT -i lo -j ACCEPT
fwctl -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
fwctl -A INPUT -p tcp --dport 22 -j ACCEPT
fwctl -I INPUT 2 -p tcp --dport 587 -j ACCEPT
fwctl -6 -A INPUT -p icmpv6 -j ACCEPT
fwctl attach eth0
fwctl -L -n -v --line-numbers
fwctl -t nat -A POSTROUTING -s 10.8.0.0/24 -o eth0 -j MASQUERADE
fwctl set create bl hash:net ; fwctl set add bl 192.0.2.0/24
fwctl -A INPUT -m set --match-set bl src -j DROP
fwctl save > /etc/fwctl/rules.v4
fwctl apply /etc/fwctl/rules.v4 --diff --confirm 30
ip netns exec blue fwctl status
fwctl down";

const FILES: &[(&str, &str)] = &[
    (
        "/etc/fwctl/fwctl.conf",
        "interfaces to attach, mark bits, fail-safe (read by fwctl boot)",
    ),
    (
        "/etc/fwctl/rules.v4, /etc/fwctl/rules.v6, /etc/fwctl/sets",
        "the ruleset fwctl boot restores (iptables-save and ipset save formats)",
    ),
    (
        "/var/lib/fwctl/last-good/",
        "the last ruleset put in force, restored when the configuration does not load",
    ),
    (
        "/sys/fs/bpf/fwctl/",
        "pinned programs, maps and links: the firewall in force, per network namespace",
    ),
    (
        "/run/fwctl/",
        "state and lock of each network namespace's firewall",
    ),
];

/// fwctl(8) in roff.
pub fn manpage(out: &mut dyn Write) -> Result<()> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone()).section("8");
    man.render_title(out)?;
    man.render_name_section(out)?;
    let mut roff = Roff::new();
    // clap knows only the subcommands; the iptables half of the command line is fwctl's own.
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([
        bold("fwctl"),
        roman(" [-4|-6] [-t filter|nat] -A|-I|-D|-R|-L|-S|-F|-Z|-N|-X|-E|-P|-C "),
        italic("CHAIN"),
        roman(" [matches] [-j "),
        italic("TARGET"),
        roman("]"),
    ]);
    roff.control("br", []);
    roff.text([
        bold("fwctl"),
        roman(" "),
        italic("COMMAND"),
        roman(" [options]"),
    ]);
    roff.control("br", []);
    roff.text([bold("fwctl"), roman(" -h|--help|-V|--version")]);
    roff.to_writer(out)?;
    man.render_description_section(out)?;

    let mut roff = Roff::new();
    roff.control("SH", ["IPTABLES SYNTAX"]);
    preformatted(&mut roff, IPTABLES_HELP);
    roff.control("SH", ["COMMANDS"]);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        command(&mut roff, sub);
    }
    roff.control("SH", ["EXAMPLES"]);
    preformatted(&mut roff, EXAMPLES);
    roff.control("SH", ["FILES"]);
    for (path, what) in FILES {
        roff.control("TP", []);
        roff.text([bold(*path)]);
        roff.text([roman(*what)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "iptables(8), ip6tables(8), ipset(8), nft(8), fail2ban-client(1); README.md and \
         ARCHITECTURE.md in /usr/share/doc/fwctl",
    )]);
    roff.to_writer(out)?;
    man.render_version_section(out)?;
    Ok(())
}

/// Text whose line breaks and columns matter (command lines, tables).
fn preformatted(roff: &mut Roff, text: &str) {
    roff.control("nf", []);
    roff.control("RS", ["4"]);
    for line in text.lines() {
        roff.text([roman(line)]);
    }
    roff.control("RE", []);
    roff.control("fi", []);
}

/// One subcommand: usage, its long help and its options.
fn command(roff: &mut Roff, sub: &clap::Command) {
    let mut sub = sub.clone().bin_name(format!("fwctl {}", sub.get_name()));
    let usage = sub.render_usage().to_string();
    let usage = usage.trim_start_matches("Usage: ");
    roff.control("SS", [usage]);
    if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
        for paragraph in about.to_string().split("\n\n") {
            roff.control("PP", []);
            roff.text([roman(paragraph.replace('\n', " "))]);
        }
    }
    // --help is everywhere; the page says it once, in SYNOPSIS.
    for arg in sub
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_id() != "help")
    {
        let mut names: Vec<String> = Vec::new();
        if let Some(s) = arg.get_short() {
            names.push(format!("-{s}"));
        }
        if let Some(l) = arg.get_long() {
            names.push(format!("--{l}"));
        }
        let value = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| v.to_string())
            .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
        roff.control("TP", []);
        match (names.is_empty(), arg.get_action().takes_values()) {
            (true, _) => roff.text([italic(value)]),
            (false, true) => roff.text([bold(names.join(", ")), roman(" "), italic(value)]),
            (false, false) => roff.text([bold(names.join(", "))]),
        };
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let help = match defaults.is_empty() {
            true => help,
            false => format!("{help} (default: {})", defaults.join(",")),
        };
        roff.text([roman(help)]);
    }
}

/// The completion script for `shell` (bash, zsh, fish, elvish, powershell).
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> Result<()> {
    use clap_complete::Shell;
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "fwctl", &mut script);
    let mut script = String::from_utf8(script).context("clap's completion script")?;
    match shell {
        Shell::Bash => script.push_str(BASH_DYNAMIC),
        Shell::Fish => script.push_str(FISH_DYNAMIC),
        // The script's last lines hand completion to clap's `_fwctl` (called at once when
        // autoloaded from fpath, or registered with compdef when sourced): hand it to the
        // wrapper instead, defined before them.
        Shell::Zsh => {
            let dispatch = script
                .rfind("if [ \"$funcstack[1]\" = \"_fwctl\" ]; then")
                .context("clap's zsh script no longer ends as expected")?;
            let tail = script.split_off(dispatch);
            script.push_str(ZSH_DYNAMIC);
            script.push_str(
                &tail
                    .replace("    _fwctl \"$@\"", "    _fwctl_iptables \"$@\"")
                    .replace("compdef _fwctl fwctl", "compdef _fwctl_iptables fwctl"),
            );
        }
        _ => {}
    }
    out.write_all(script.as_bytes())
        .context("writing the completion script")
}

/// zsh's side of [`BASH_DYNAMIC`]: the same names after the same options.
const ZSH_DYNAMIC: &str = r#"
_fwctl_iptables() {
    local prev=${words[CURRENT-1]}
    case $prev in
        (-A|-I|-D|-R|-L|-S|-F|-Z|-X|-P|-E|-C|--append|--insert|--delete|--list|--flush)
            compadd -- INPUT FORWARD OUTPUT PREROUTING POSTROUTING ${(f)"$(fwctl -S 2>/dev/null | awk '$1 == "-N" { print $2 }')"}
            return ;;
        (-i|-o|--in-interface|--out-interface|attach|detach)
            compadd -- ${(f)"$(ls /sys/class/net 2>/dev/null)"}
            return ;;
        (--match-set|add|del|test|list|flush|destroy|swap)
            if [[ $prev == --match-set || ${words[2]} == set ]]; then
                compadd -- ${(f)"$(fwctl set list -n 2>/dev/null)"}
                return
            fi ;;
        (-j|--jump)
            compadd -- ACCEPT DROP RETURN REJECT LOG MASQUERADE SNAT DNAT REDIRECT
            return ;;
        (-p|--protocol)
            compadd -- tcp udp icmp icmpv6 all
            return ;;
        (-m|--match)
            compadd -- multiport conntrack state comment set limit hashlimit connlimit
            return ;;
    esac
    [[ ${words[2]} == -* ]] && return 1
    _fwctl "$@"
}

"#;

/// fish's side of [`BASH_DYNAMIC`]: the same names after the same options, added to
/// clap's completions (fish merges every `complete` line that applies).
const FISH_DYNAMIC: &str = r#"
function __fwctl_after
    set -l words (commandline -opc)
    contains -- $words[-1] $argv
end
function __fwctl_chains
    printf '%s\n' INPUT FORWARD OUTPUT PREROUTING POSTROUTING
    fwctl -S 2>/dev/null | string replace -r -f '^-N (\S+).*' '$1'
end
complete -c fwctl -x -n '__fwctl_after -A -I -D -R -L -S -F -Z -X -P -E -C --append --insert --delete --list --flush' -a '(__fwctl_chains)'
complete -c fwctl -x -n '__fwctl_after -i -o --in-interface --out-interface attach detach' -a '(ls /sys/class/net 2>/dev/null)'
complete -c fwctl -x -n '__fwctl_after --match-set' -a '(fwctl set list -n 2>/dev/null)'
complete -c fwctl -x -n '__fish_seen_subcommand_from set; and __fwctl_after add del test list flush destroy swap' -a '(fwctl set list -n 2>/dev/null)'
complete -c fwctl -x -n '__fwctl_after -j --jump' -a 'ACCEPT DROP RETURN REJECT LOG MASQUERADE SNAT DNAT REDIRECT'
complete -c fwctl -x -n '__fwctl_after -p --protocol' -a 'tcp udp icmp icmpv6 all'
complete -c fwctl -x -n '__fwctl_after -m --match' -a 'multiport conntrack state comment set limit hashlimit connlimit'
"#;

/// The iptables-style half of the command line is not clap's, so bash completes it here
/// (and zsh and fish, below, alike):
/// chains after -A/-I/-D/..., set names after --match-set and `set` commands, interfaces
/// after -i/-o and attach/detach. Everything else falls through to clap's `_fwctl`. Chain
/// and set names come from fwctl itself and need root; as another user they stay empty.
const BASH_DYNAMIC: &str = r#"
_fwctl_iptables() {
    local cur prev
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    case "$prev" in
        -A|-I|-D|-R|-L|-S|-F|-Z|-X|-P|-E|-C|--append|--insert|--delete|--list|--flush)
            COMPREPLY=( $(compgen -W "INPUT FORWARD OUTPUT PREROUTING POSTROUTING $(fwctl -S 2>/dev/null | awk '$1 == "-N" { print $2 }')" -- "$cur") )
            return 0 ;;
        -i|-o|--in-interface|--out-interface|attach|detach)
            COMPREPLY=( $(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur") )
            return 0 ;;
        --match-set|add|del|test|list|flush|destroy|swap)
            if [[ "$prev" == --match-set || "${COMP_WORDS[1]}" == set ]]; then
                COMPREPLY=( $(compgen -W "$(fwctl set list -n 2>/dev/null)" -- "$cur") )
                return 0
            fi ;;
        -j|--jump)
            COMPREPLY=( $(compgen -W "ACCEPT DROP RETURN REJECT LOG MASQUERADE SNAT DNAT REDIRECT" -- "$cur") )
            return 0 ;;
        -p|--protocol)
            COMPREPLY=( $(compgen -W "tcp udp icmp icmpv6 all" -- "$cur") )
            return 0 ;;
        -m|--match)
            COMPREPLY=( $(compgen -W "multiport conntrack state comment set limit hashlimit connlimit" -- "$cur") )
            return 0 ;;
    esac
    if [[ "${COMP_WORDS[1]}" == -* ]]; then
        return 0
    fi
    _fwctl "$@"
}
complete -F _fwctl_iptables -o bashdefault -o default fwctl
"#;
