//! The `fwctl` command line: iptables syntax (`fwctl -A INPUT ...`) for rules, subcommands
//! (`fwctl attach eth0`) for the rest. Parse first, with no side effect; then act.

mod docs;
pub mod list;
mod log;
mod names;
mod set;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::{
    dataplane::{attach::XdpMode, namespace},
    firewall::{CounterSource, Firewall},
    rules::{
        edit::{find, EditError, Editor},
        parse::{parse_args, Command, Invocation, ParseError},
        Family, Table,
    },
};

const IPTABLES_HELP: &str = "\
Rules, in iptables syntax (fwctl alone or -4 is IPv4, -6 is IPv6):
  fwctl -P INPUT DROP                               set the INPUT policy
  fwctl -A INPUT -i lo -j ACCEPT                    append a rule
  fwctl -A INPUT -p tcp --dport 22 -j ACCEPT        open SSH
  fwctl -I INPUT 2 -p tcp --dport 587 -j ACCEPT     insert before rule 2
  fwctl -A INPUT -s 10.0.0.0/8 -i tun+ -j DROP      addresses, interface prefixes
  fwctl -A INPUT ! -s 192.168.0.0/16 -j DROP        negation, as in iptables
  fwctl -D INPUT 4                                  delete rule 4 (or give the rule)
  fwctl -C INPUT -p tcp --dport 22 -j ACCEPT        check whether a rule exists
  fwctl -N MAIL ; fwctl -A INPUT -j MAIL            user chains (-N, -X, -E, RETURN)
  fwctl -L -n -v --line-numbers                     list with counters, as iptables does
  fwctl -S                                          list as commands
  fwctl -F / fwctl -Z                               flush rules / zero counters
Matches: -i IFACE[+]  -o IFACE[+]  -s ADDR[/LEN][,ADDR...]  -d ...  -p tcp|udp|icmp|icmpv6|all|NAME|NUM
         --sport/--dport PORT[:PORT]  (after -p tcp or -p udp)   --syn  --tcp-flags MASK COMP
         -m multiport --sports/--dports/--ports P,P:P   --icmp-type T[/C]  --icmpv6-type T[/C]
         -m comment --comment TEXT      -m set --match-set NAME src|dst[,src|dst] (fwctl set help)
         -m conntrack --ctstate NEW,ESTABLISHED,RELATED,INVALID,UNTRACKED   -m state --state ...
         -m limit --limit N/sec|min|hour|day --limit-burst B
         -m hashlimit --hashlimit-upto|--hashlimit-above N/sec --hashlimit-burst B
            --hashlimit-mode srcip,srcport,dstip,dstport --hashlimit-srcmask M --hashlimit-name X
            --hashlimit-htable-max N --hashlimit-htable-expire MS
         -m connlimit --connlimit-above|--connlimit-upto N --connlimit-mask M --connlimit-saddr|daddr
         netfilter alone: -m mark, connmark, pkttype, length, ttl, hl, iprange, mac, addrtype,
            owner, tcpmss, recent, policy, string, u32, helper, statistic, connbytes, time,
            physdev, conntrack --ctorig*..., -f (README)
         (each negatable with ! where iptables allows it)
Targets: ACCEPT, DROP, RETURN, a user chain, REJECT [--reject-with TYPE], LOG [--log-prefix P]
[--log-level L], NFLOG, NFQUEUE, SYNPROXY, SET, MARK, CONNMARK, TCPMSS, CT --notrack (README);
in -t nat: MASQUERADE, SNAT --to-source, DNAT --to-destination, REDIRECT.
INPUT and FORWARD are judged at XDP on attached interfaces, OUTPUT and what XDP cannot
decide (conntrack states it cannot be sure of, REJECT, LOG, connlimit) by fwctl's nftables
tables (ip fwctl, ip6 fwctl), with the same rules.

Whole rulesets, in the iptables-save format (a bad line changes nothing):
  fwctl save > rules.v4        fwctl restore rules.v4       fwctl restore --test rules.v4
  fwctl apply rules.v4 --confirm 30     back to the previous ruleset unless `fwctl confirm`
A change that would drop your own SSH session is refused: --force or FWCTL_FORCE=1.

Rules take effect on the interfaces fwctl is attached to:
  fwctl attach eth0            fwctl detach eth0
  fwctl status                 fwctl down (remove everything)
Watching: fwctl top (live rates per rule, q quits); fwctl exporter --listen 127.0.0.1:9469
(Prometheus, at /metrics)
Every command works per network namespace: ip netns exec NS fwctl ...
The iptables commands also work with their names: fwctl iptables -L -n -v,
fwctl ip6tables -A INPUT ..., fwctl iptables-save, fwctl iptables-restore < rules.v4";

/// `fwctl --version`: the package's version and the layout of the pinned maps it reads, which
/// an upgrade keeps or migrates (a new ABI version pins under a new path).
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (BPF ABI {})",
        env!("CARGO_PKG_VERSION"),
        firewall_common::ABI_VERSION
    )
});

#[derive(Parser)]
#[command(
    name = "fwctl",
    version = VERSION.as_str(),
    about = "An XDP firewall that speaks iptables",
    after_help = IPTABLES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Subcommand)]
enum Sub {
    /// Attach the firewall to an interface: from now on its packets are judged at XDP.
    /// A prefix (`eth+`, as `-i` takes it) attaches those present and, through `fwctl
    /// watch`, those that appear later.
    ///
    /// Example: fwctl attach eth0 --mode native ; fwctl attach 'tun+'
    Attach {
        iface: String,
        /// native runs in the driver (fastest); generic works on any interface.
        #[arg(long, value_enum, default_value = "native")]
        mode: XdpMode,
    },
    /// Detach the firewall from an interface.
    Detach { iface: String },
    /// Show interfaces, program, generation and rule counts of this namespace's firewall.
    Status {
        /// `json` for machines.
        #[arg(short = 'o', long = "output", value_name = "FORMAT")]
        output: Option<OutputFormat>,
        /// Also the packets decided without a rule, by reason (not IP, malformed...).
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Detach from every interface and remove all of fwctl's pinned state in this namespace.
    Down,
    /// Choose the three skb->mark bits (SHIFT, SHIFT+1, SHIFT+2) that carry XDP's verdict to
    /// netfilter, so they do not clash with other fwmark users. Default 24 (0x07000000).
    ///
    /// Example: fwctl mark-bits 16    # use 0x00070000
    MarkBits { shift: u32 },
    /// Let XDP skip conntrack lookups that cannot find an entry (on, the default), or look
    /// up every packet a state rule needs (off). The filter learns each new connection from
    /// a netfilter program just before conntrack confirms it; turn it off on hosts where
    /// conntrack entries are made another way: ctnetlink (`conntrack -I`, conntrackd's
    /// failover), tc's ct action, Open vSwitch, bridge-family conntrack.
    ///
    /// Example: fwctl ct-filter off
    CtFilter { state: OnOff },
    /// Sets, as ipset has them: create, add, del, test, list, save, restore, flush, destroy,
    /// swap, with ipset's words. `fwctl set help` shows them all.
    ///
    /// Example: fwctl set create bl hash:net ; fwctl set add bl 10.0.0.0/8 ;
    /// fwctl -A INPUT -m set --match-set bl src -j DROP ; fwctl set restore < blocklist.txt
    #[command(after_help = set::HELP)]
    Set {
        /// The command and its words, as ipset takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Write the ruleset in the iptables-save format.
    ///
    /// Example: fwctl save > /etc/fwctl/rules.v4 ; fwctl save -6 -c
    Save {
        /// The IPv6 ruleset (ip6tables-save).
        #[arg(short = '6', long = "ipv6")]
        v6: bool,
        /// IPv4 (the default).
        #[arg(short = '4', long = "ipv4", conflicts_with = "v6")]
        v4: bool,
        /// Include packet and byte counters.
        #[arg(short = 'c', long)]
        counters: bool,
        /// `json` for machines (chains, policies, rules as arguments, counters with -c).
        #[arg(short = 'o', long = "output", value_name = "FORMAT")]
        output: Option<OutputFormat>,
    },
    /// Read a ruleset in the iptables-save format (from FILE or standard input) and put it
    /// in force as one change: a bad line changes nothing and names the line.
    ///
    /// Example: fwctl restore < /etc/iptables/rules.v4 ; fwctl restore --test rules.v4
    Restore {
        file: Option<std::path::PathBuf>,
        /// The IPv6 ruleset (ip6tables-restore).
        #[arg(short = '6', long = "ipv6")]
        v6: bool,
        /// IPv4 (the default).
        #[arg(short = '4', long = "ipv4", conflicts_with = "v6")]
        v4: bool,
        /// Check and compile only; change nothing.
        #[arg(short = 't', long)]
        test: bool,
        /// Add to the rules in force instead of replacing them.
        #[arg(short = 'n', long)]
        noflush: bool,
        /// Restore the packet and byte counters given as [packets:bytes].
        #[arg(short = 'c', long)]
        counters: bool,
        /// Apply even if it would drop your own SSH session.
        #[arg(long)]
        force: bool,
    },
    /// Put a whole ruleset (iptables-save format) in force, with a way back: with
    /// --confirm, the previous ruleset returns after SECONDS unless `fwctl confirm` comes
    /// first, even if this terminal is gone (the iptables-apply model).
    ///
    /// Example: fwctl apply /etc/fwctl/rules.v4 --confirm 30 ; fwctl apply new.rules --diff --dry-run
    Apply {
        file: std::path::PathBuf,
        /// The IPv6 ruleset.
        #[arg(short = '6', long = "ipv6")]
        v6: bool,
        /// Roll back after this many seconds unless confirmed.
        #[arg(long, value_name = "SECONDS")]
        confirm: Option<u64>,
        /// Check and compile only; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Show what would change, rule by rule.
        #[arg(long)]
        diff: bool,
        /// Apply even if it would drop your own SSH session.
        #[arg(long)]
        force: bool,
    },
    /// Keep the ruleset of a pending `fwctl apply --confirm`.
    Confirm,
    /// What the systemd unit runs at boot: restore DIR/sets (ipset save format), rules.v4
    /// and rules.v6, then attach to the interfaces DIR/fwctl.conf names (`attach eth0
    /// [native|generic]` lines, or prefixes: `attach eth+`). If the configuration does not
    /// load, the last good ruleset goes in instead (kept in /var/lib/fwctl, or
    /// $FWCTL_STATE_DIR), or else the fail-safe (fwctl.conf: `failsafe drop [ssh PORT,...]`,
    /// the default with port 22, or `failsafe accept`); boot then exits 1.
    Boot {
        #[arg(long, default_value = crate::boot::CONFIG_DIR)]
        config_dir: std::path::PathBuf,
    },
    /// Install the systemd units: fwctl.service runs `fwctl boot` (then: systemctl enable
    /// fwctl), fwctl-exporter.service runs `fwctl exporter` (systemctl enable fwctl-exporter).
    InstallService {
        /// Install under this root instead of / (for packaging).
        #[arg(long, default_value = "/")]
        root: std::path::PathBuf,
    },
    /// Attach XDP to interfaces that appear later (fwctl.conf's `attach` lines, `fwctl
    /// attach eth+`) as they appear, until `fwctl down`. The unit fwctl-watch.service runs it.
    Watch,
    /// (internal) Wait for a pending apply's deadline and roll it back if unconfirmed.
    #[command(hide = true)]
    RollbackWatch,
    /// Print the completion script for a shell (bash, zsh and fish complete chain names,
    /// set names and interfaces too).
    ///
    /// Example: fwctl completions bash > /etc/bash_completion.d/fwctl;
    /// fwctl completions fish > ~/.config/fish/completions/fwctl.fish
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// (internal) Print the manual page fwctl(8) in roff, for packaging.
    #[command(hide = true)]
    Manpage,
    /// Serve the firewall's counters to Prometheus at http://ADDR:PORT/metrics: per rule
    /// (the numbers of `fwctl -L -v -x`), per policy, drops without a rule, generation,
    /// last change. Each scrape reads everything once and lets go of the lock.
    ///
    /// Example: fwctl exporter --listen 127.0.0.1:9469 ; curl -s localhost:9469/metrics
    ///
    /// One per network namespace: ip netns exec blue fwctl exporter --listen 127.0.0.1:9470
    ///
    /// A scraper on another host must get through the firewall and reach the address:
    /// fwctl exporter --listen 0.0.0.0:9469 ; fwctl -I INPUT -s PROMETHEUS -p tcp --dport 9469 -j ACCEPT
    Exporter {
        /// Where to listen (a host name or an address, and a port).
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9469")]
        listen: String,
    },
    /// Live packets/s and bytes/s of every rule and policy, busiest first, and of the
    /// attached interfaces; XDP% is the share of a rule's packets XDP decided (the rest
    /// netfilter did). `q` quits.
    ///
    /// Examples: fwctl top ; fwctl top -d 5 ; ip netns exec blue fwctl top
    ///
    /// For scripts (plain text, no screen control): fwctl top --once ; fwctl top -n 3 > rates.txt
    Top {
        /// Seconds between refreshes.
        #[arg(short = 'd', long, value_name = "SECONDS", default_value = "1", value_parser = parse_interval)]
        interval: std::time::Duration,
        /// Print one frame (rates over one interval) as plain text and exit.
        #[arg(long, conflicts_with = "iterations")]
        once: bool,
        /// Print N frames as plain text, one per interval, and exit.
        #[arg(short = 'n', long, value_name = "N")]
        iterations: Option<u32>,
    },
    /// Follow LOG rules' events (the kernel's `IN= OUT= SRC= DST= ... PROTO= SPT= DPT=` lines)
    /// and the XDP program's log lines until Ctrl-C. At most --limit lines per second per
    /// LOG prefix after a burst; what was held back is counted and reported.
    ///
    /// Example: fwctl -A INPUT -p tcp --dport 22 -j LOG --log-prefix "ssh: " ; fwctl log --json
    Log {
        /// Also log one line per judged packet while this runs (costly under load).
        #[arg(long)]
        verdicts: bool,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<u64>,
        /// One JSON object per event, for a log pipeline.
        #[arg(long)]
        json: bool,
        /// Lines per second per LOG prefix.
        #[arg(long, default_value_t = 10.0)]
        limit: f64,
        /// Lines let through at once before the limit applies.
        #[arg(long, default_value_t = 20)]
        burst: u32,
    },
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}' is not a number of seconds"))?;
    if !(0.1..=3600.0).contains(&seconds) {
        return Err(format!("{seconds} s: use 0.1 to 3600"));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// Errors that carry their own exit status (iptables' conventions).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Exit {
    message: String,
    status: u8,
}

/// `fwctl iptables -L`, `fwctl ip6tables-save > rules.v6`...: the commands operators know,
/// with fwctl in front, mean what they meant.
fn unalias(mut args: Vec<String>) -> Vec<String> {
    let Some(first) = args.first().cloned() else {
        return args;
    };
    let (replacement, v6): (&[&str], bool) = match first.as_str() {
        "iptables" => (&[], false),
        "ip6tables" => (&[], true),
        "iptables-save" => (&["save"], false),
        "ip6tables-save" => (&["save"], true),
        "iptables-restore" => (&["restore"], false),
        "ip6tables-restore" => (&["restore"], true),
        "iptables-apply" => (&["apply"], false),
        _ => return args,
    };
    args.remove(0);
    let mut out: Vec<String> = replacement.iter().map(|s| s.to_string()).collect();
    if v6 {
        out.push("-6".into());
    }
    out.extend(args);
    out
}

/// Warnings from anywhere in the library (an interrupted resize repaired, replaced sets
/// left behind) reach the operator, or the journal under systemd, on stderr, as
/// `fwctl: warning: ...`. RUST_LOG=info (or debug) shows more. `fwctl log` sets up its own
/// logger, with timestamps, for the program's records.
fn init_warnings() {
    use std::io::Write;
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .target(env_logger::Target::Stderr)
        .format(|buf, record| {
            let level = match record.level() {
                ::log::Level::Error => "error",
                ::log::Level::Warn => "warning",
                ::log::Level::Info => "info",
                ::log::Level::Debug => "debug",
                ::log::Level::Trace => "trace",
            };
            writeln!(buf, "fwctl: {level}: {}", record.args())
        })
        .try_init();
}

pub fn main() -> ExitCode {
    crate::timings::start();
    let args = unalias(std::env::args().skip(1).collect());
    let iptables_style = args.first().is_some_and(|a| {
        a.starts_with('-') && !matches!(a.as_str(), "-h" | "--help" | "-V" | "--version")
    });
    if args.first().map(String::as_str) != Some("log") {
        init_warnings();
    }
    let result = if iptables_style {
        match parse_args(&args) {
            Ok(inv) => {
                crate::timings::phase("parse arguments");
                crate::dataplane::mmap::leave_mappings_to_exit();
                with_root(|| run_rule_command(inv))
            }
            Err(ParseError { message, status }) => {
                eprintln!("fwctl: {message}\nTry `fwctl --help' for more information.");
                return ExitCode::from(status);
            }
        }
    } else {
        let cli = Cli::parse_from(std::iter::once("fwctl".to_string()).chain(args));
        match cli.command {
            // Documentation only: no root, no namespace, nothing touched.
            Sub::Completions { shell } => docs::completions(shell, &mut std::io::stdout()),
            Sub::Manpage => docs::manpage(&mut std::io::stdout()),
            command => with_root(|| run_subcommand(command)),
        }
    };
    crate::timings::phase("command done");
    crate::netfilter::release::after_exit();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let status = e.downcast_ref::<Exit>().map_or(1, |x| x.status);
            eprintln!("fwctl: {}", one_line(&e));
            ExitCode::from(status)
        }
    }
}

/// The error chain on one line. Kernel messages such as the verifier's log span many lines;
/// they are cut to their first unless FWCTL_DEBUG is set.
fn one_line(e: &anyhow::Error) -> String {
    if std::env::var_os("FWCTL_DEBUG").is_some() {
        return format!("{e:#}");
    }
    let mut cut = false;
    let parts: Vec<String> = e
        .chain()
        .map(|cause| {
            let text = cause.to_string();
            let first = text.lines().next().unwrap_or_default().to_string();
            cut |= first.len() < text.trim_end().len();
            first
        })
        .collect();
    let mut line = parts.join(": ");
    if cut {
        line.push_str(" (FWCTL_DEBUG=1 shows the kernel's full message)");
    }
    line
}

/// Every command past parsing needs root, and does its file work in the host's mount
/// namespace (see `dataplane::namespace`). Both are checked before anything is touched.
fn with_root(f: impl FnOnce() -> Result<()>) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Exit {
            message: "permission denied: fwctl must run as root (it changes the kernel's firewall)"
                .into(),
            status: 4,
        }
        .into());
    }
    namespace::enter_host_mount_namespace()?;
    crate::timings::phase("mount namespace");
    f()
}

fn edit_failed(e: EditError) -> anyhow::Error {
    Exit {
        message: e.to_string(),
        status: e.status(),
    }
    .into()
}

fn run_rule_command(inv: Invocation) -> Result<()> {
    let Invocation {
        family,
        table,
        command,
        list: opts,
    } = inv;
    let mut fw = Firewall::lock()?;
    let mut editor = Editor::new(fw.state.ruleset.clone());
    let applied = editor.apply(table, family, command).map_err(edit_failed)?;
    crate::timings::phase("edit");
    let Some(query) = applied else {
        // iptables refuses a rule naming a missing or unfit set as a usage error.
        return fw
            .commit(editor)
            .map_err(|e| match e.downcast::<crate::sets::SetRefError>() {
                Ok(set) => Exit {
                    message: set.to_string(),
                    status: 2,
                }
                .into(),
                Err(other) => other,
            });
    };
    match query {
        Command::Check(chain, specs) => {
            for spec in &specs {
                find(&fw.state.ruleset, table, family, &chain, spec)
                    .map_err(edit_failed)?
                    .ok_or_else(|| edit_failed(EditError::NoSuchRule))?;
            }
            Ok(())
        }
        Command::Zero(chain, rule) => fw.zero(table, family, chain.as_deref(), rule),
        Command::List(chain, rule) => {
            let rules = fw.state.ruleset.table(table, family);
            let names = list::chain_names(rules, chain.as_deref())
                .ok_or_else(|| edit_failed(EditError::NoSuchChain(chain.unwrap_or_default())))?;
            // Only -v and --json print counters: no netfilter dump for a plain -L.
            let src = if opts.verbose || opts.json {
                fw.counter_source()?
            } else {
                CounterSource::none()
            };
            let counters = |c: &str| {
                fw.counters(&src, table, family, c).unwrap_or_else(|e| {
                    eprintln!("fwctl: warning: counters unavailable: {e:#}");
                    list::ChainCounters {
                        policy: Default::default(),
                        rules: Vec::new(),
                    }
                })
            };
            if opts.json {
                let value = list::json(family, rules, &names, Some(&counters));
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else if let (Some(n), Some(name)) = (rule, names.first()) {
                print!(
                    "{}",
                    list::list_one(family, rules, name, n, opts, &counters(name))
                );
            } else {
                print!("{}", list::list(family, rules, &names, opts, &counters));
            }
            Ok(())
        }
        Command::ListRules(chain, rule) => {
            let rules = fw.state.ruleset.table(table, family);
            let names = list::chain_names(rules, chain.as_deref())
                .ok_or_else(|| edit_failed(EditError::NoSuchChain(chain.unwrap_or_default())))?;
            match (rule, names.first()) {
                (Some(n), Some(name)) => print!("{}", list::list_rule_one(rules, name, n)),
                _ => print!("{}", list::list_rules(rules, &names)),
            }
            Ok(())
        }
        // apply() only hands back queries.
        _ => Ok(()),
    }
}

fn run_subcommand(cmd: Sub) -> Result<()> {
    match cmd {
        Sub::Attach { iface, mode } if iface.ends_with('+') => {
            let mut fw = Firewall::lock()?;
            for line in fw.attach_pattern(&iface, mode)? {
                println!("{line}");
            }
            if !crate::watch::running(&fw.ns.state_dir) {
                println!(
                    "{iface}: interfaces that appear later are attached while `fwctl watch` runs"
                );
            }
            Ok(())
        }
        Sub::Attach { iface, mode } => {
            Firewall::lock()?.attach(&iface, mode)?;
            println!("attached to {iface} ({})", mode.name());
            Ok(())
        }
        Sub::Detach { iface } => {
            Firewall::lock()?.detach(&iface)?;
            println!("detached from {iface}");
            Ok(())
        }
        Sub::Status { output, verbose } => {
            collect_garbage();
            status(output == Some(OutputFormat::Json), verbose)
        }
        Sub::Set { args } => {
            crate::dataplane::mmap::leave_mappings_to_exit();
            set::run(&args)
        }
        Sub::MarkBits { shift } => {
            Firewall::lock()?.set_mark_shift(shift)?;
            println!(
                "XDP's verdict now travels in mark bits {:#010x}",
                firewall_common::mark_mask(shift)
            );
            Ok(())
        }
        Sub::CtFilter { state } => {
            let on = state == OnOff::On;
            Firewall::lock()?.set_ct_filter(on)?;
            println!(
                "{}",
                if on {
                    "XDP skips conntrack lookups no entry can answer"
                } else {
                    "XDP looks up every packet a conntrack state rule needs"
                }
            );
            Ok(())
        }
        Sub::Down => {
            let fw = Firewall::lock_for_down()?;
            let n = fw.state.interfaces.len();
            fw.down()?;
            println!("fwctl is down: detached from {n} interface(s), pinned state removed");
            collect_garbage();
            Ok(())
        }
        Sub::Log {
            verdicts,
            duration,
            json,
            limit,
            burst,
        } => log::follow(log::Options {
            verdicts,
            duration,
            json,
            limit,
            burst,
        }),
        Sub::Exporter { listen } => crate::observe::exporter::serve(&listen),
        Sub::Top {
            interval,
            once,
            iterations,
        } => crate::observe::top::run(crate::observe::top::Options {
            interval,
            iterations: if once { Some(1) } else { iterations },
        }),
        Sub::Save {
            v6,
            counters,
            output,
            ..
        } => save(family_of(v6), counters, output == Some(OutputFormat::Json)),
        Sub::Restore {
            file,
            v6,
            test,
            noflush,
            counters,
            force,
            ..
        } => {
            crate::dataplane::mmap::leave_mappings_to_exit();
            restore(file, family_of(v6), test, noflush, counters, force)
        }
        Sub::Apply {
            file,
            v6,
            confirm,
            dry_run,
            diff,
            force,
        } => apply(&file, family_of(v6), confirm, dry_run, diff, force),
        Sub::Confirm => {
            crate::apply::confirm(&Firewall::lock()?)?;
            println!("confirmed: the applied ruleset stays");
            Ok(())
        }
        Sub::RollbackWatch => crate::apply::watch(),
        Sub::Boot { config_dir } => {
            collect_garbage();
            let outcome = crate::boot::boot(&config_dir)?;
            for line in outcome.done {
                println!("{line}");
            }
            match outcome.problem {
                // stderr is the journal's under systemd; the status makes the unit failed.
                Some(problem) => Err(anyhow::anyhow!(problem)),
                None => Ok(()),
            }
        }
        Sub::Watch => crate::watch::run(),
        Sub::InstallService { root } => install_service(&root),
        // Answered in main() before with_root: documentation needs no root.
        Sub::Completions { .. } | Sub::Manpage => Ok(()),
    }
}

/// Takes away the pins and state of network namespaces deleted without `fwctl down`; a
/// failure costs only memory, so it is a warning and the command goes on.
fn collect_garbage() {
    match crate::dataplane::gc::collect() {
        Ok(gone) if gone.is_empty() => {}
        Ok(gone) => eprintln!(
            "fwctl: removed the pinned state of {} network namespace(s) that no longer exist (cookies {})",
            gone.len(),
            gone.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ),
        Err(e) => ::log::warn!("removing the pins of deleted network namespaces: {e:#}"),
    }
}

fn family_of(v6: bool) -> Family {
    if v6 {
        Family::V6
    } else {
        Family::V4
    }
}

/// The date as iptables-save writes it (ctime's format, local time).
pub(crate) fn date() -> String {
    // SAFETY: time, localtime_r and strftime with buffers we own.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        let mut buf = [0u8; 64];
        let fmt = c"%a %b %e %H:%M:%S %Y";
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

fn save(family: Family, with_counters: bool, json: bool) -> Result<()> {
    let fw = Firewall::lock()?;
    let src = if with_counters {
        fw.counter_source()?
    } else {
        CounterSource::none()
    };
    let counters_of = |table: Table| {
        let (fw, src) = (&fw, &src);
        move |c: &str| {
            fw.counters(src, table, family, c)
                .unwrap_or_else(|_| list::ChainCounters {
                    policy: Default::default(),
                    rules: Vec::new(),
                })
        }
    };
    let counters = Table::SAVE_ORDER.map(counters_of);
    // In iptables-save's order of tables.
    let tables: Vec<(&crate::rules::FamilyRules, Option<list::CountersOf>)> = Table::SAVE_ORDER
        .iter()
        .zip(&counters)
        .map(|(&t, c)| {
            let c: Option<list::CountersOf> = if with_counters { Some(c) } else { None };
            (fw.state.ruleset.table(t, family), c)
        })
        .collect();
    if json {
        // Filter first, then nat, as this format always had them; mangle and raw once
        // they exist.
        let mut tables = tables;
        tables.sort_by_key(|(rules, _)| Table::ALL.iter().position(|t| *t == rules.table));
        let value: Vec<serde_json::Value> = tables
            .iter()
            .filter(|(rules, _)| {
                matches!(rules.table, Table::Filter | Table::Nat) || rules.exists()
            })
            .map(|(rules, counters)| {
                let names = list::chain_names(rules, None).unwrap_or_default();
                list::json(family, rules, &names, *counters)
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "tables": value }))?
        );
    } else {
        print!("{}", list::save(&tables, &date()));
    }
    Ok(())
}

fn restore(
    file: Option<std::path::PathBuf>,
    family: Family,
    test: bool,
    noflush: bool,
    with_counters: bool,
    force: bool,
) -> Result<()> {
    use std::io::Read;
    let text = match &file {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading standard input")?;
            s
        }
    };
    let mut fw = Firewall::lock()?;
    fw.force |= force;
    let restored = crate::rules::restore::restore(&text, family, &fw.state.ruleset, noflush)
        .map_err(|e| Exit {
            message: e.to_string(),
            status: e.status,
        })?;
    if test {
        crate::firewall::check(&restored.editor.ruleset, &fw.state.sets)?;
        return Ok(());
    }
    fw.commit(restored.editor)?;
    if with_counters {
        if let Some(mut dp) = fw.dataplane()? {
            // The restored ruleset is the one in force now.
            for c in &restored.counters {
                let rules = fw.state.ruleset.table(c.table, family).rules(&c.chain);
                if let Some(rule) = rules.and_then(|r| r.get(c.position - 1)) {
                    let value = firewall_common::Counter {
                        packets: c.packets,
                        bytes: c.bytes,
                    };
                    dp.maps.set_counter(rule.slot, value)?;
                }
            }
        }
    }
    Ok(())
}

/// Rule lines (`-S`) only in `old` (-) and only in `new` (+).
fn diff_rules(old: &str, new: &str) -> String {
    let mut removed: Vec<&str> = old.lines().collect();
    let mut out = String::new();
    for line in new.lines() {
        match removed.iter().position(|l| *l == line) {
            Some(i) => {
                removed.remove(i);
            }
            None => out.push_str(&format!("+ {line}\n")),
        }
    }
    let mut minus: String = removed.iter().map(|l| format!("- {l}\n")).collect();
    minus.push_str(&out);
    minus
}

fn apply(
    file: &std::path::Path,
    family: Family,
    confirm: Option<u64>,
    dry_run: bool,
    diff: bool,
    force: bool,
) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut fw = Firewall::lock()?;
    fw.force |= force;
    let previous = fw.state.ruleset.clone();
    let restored =
        crate::rules::restore::restore(&text, family, &previous, false).map_err(|e| Exit {
            message: format!("{}: {e}", file.display()),
            status: e.status,
        })?;
    if diff {
        let names = |r: &crate::rules::Ruleset| {
            Table::ALL
                .map(|t| {
                    let f = r.table(t, family);
                    let rules =
                        list::list_rules(f, &list::chain_names(f, None).unwrap_or_default());
                    // `-t nat` (and so on) on the other tables' lines, so the tables' lines
                    // differ.
                    match t {
                        Table::Filter => rules,
                        other => rules
                            .lines()
                            .map(|l| format!("-t {} {l}\n", other.name()))
                            .collect(),
                    }
                })
                .concat()
        };
        let d = diff_rules(&names(&previous), &names(&restored.editor.ruleset));
        print!(
            "{}",
            if d.is_empty() {
                "no change\n".to_string()
            } else {
                d
            }
        );
    }
    if dry_run {
        crate::firewall::check(&restored.editor.ruleset, &fw.state.sets)?;
        println!("{}: checked and compiled; nothing applied", file.display());
        return Ok(());
    }
    fw.commit(restored.editor)?;
    let Some(seconds) = confirm else {
        return Ok(());
    };
    crate::apply::arm(&fw, previous, seconds)?;
    spawn_watcher()?;
    drop(fw);
    wait_for_confirmation(seconds)
}

/// Starts `fwctl rollback-watch` in its own session, so that neither Ctrl-C nor a lost
/// terminal stops the rollback.
fn spawn_watcher() -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("locating the fwctl binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("rollback-watch")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().context("starting the rollback watcher")?;
    Ok(())
}

/// The countdown on the terminal, until the watcher or `fwctl confirm` decides.
fn wait_for_confirmation(seconds: u64) -> Result<()> {
    use std::io::Write;
    let tty = unsafe { libc::isatty(1) } == 1;
    loop {
        let (pending, outcome) = {
            let fw = Firewall::lock()?;
            (crate::apply::pending(&fw)?, crate::apply::outcome(&fw))
        };
        match (pending, outcome.as_deref()) {
            (None, Some(crate::apply::CONFIRMED)) => {
                println!("\nconfirmed: the new ruleset stays");
                return Ok(());
            }
            (None, _) => {
                return Err(Exit {
                    message: format!(
                        "not confirmed within {seconds} s: the previous ruleset is back"
                    ),
                    status: 1,
                }
                .into());
            }
            (Some(p), _) => {
                let left = p.deadline.saturating_sub(crate::apply::now());
                if tty {
                    print!("\rrun `fwctl confirm` within {left:>3} s, or the previous ruleset comes back ");
                    let _ = std::io::stdout().flush();
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

const UNIT: &str = include_str!("../../../packaging/fwctl.service");
const EXPORTER_UNIT: &str = include_str!("../../../packaging/fwctl-exporter.service");
const WATCH_UNIT: &str = include_str!("../../../packaging/fwctl-watch.service");

fn install_service(root: &std::path::Path) -> Result<()> {
    let exe = std::env::current_exe().context("locating the fwctl binary")?;
    let exe = exe.to_str().context("the fwctl path is not UTF-8")?;
    let dir = root.join("etc/systemd/system");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, unit) in [
        ("fwctl.service", UNIT),
        ("fwctl-exporter.service", EXPORTER_UNIT),
        ("fwctl-watch.service", WATCH_UNIT),
    ] {
        let path = dir.join(name);
        crate::state::write_text(&path, &unit.replace("@FWCTL@", exe))?;
        println!("installed {}", path.display());
    }
    let conf = root.join("etc/fwctl");
    std::fs::create_dir_all(&conf).with_context(|| format!("creating {}", conf.display()))?;
    println!("next: put your rules in {0}/rules.v4 (fwctl save > {0}/rules.v4), interfaces in {0}/fwctl.conf (attach eth0), then: systemctl daemon-reload && systemctl enable fwctl fwctl-watch", conf.display());
    println!(
        "for Prometheus (http://127.0.0.1:9469/metrics): systemctl enable --now fwctl-exporter"
    );
    Ok(())
}

/// Which ruleset is in force and why, as status says it.
fn origin_line(state: &crate::state::State) -> String {
    use crate::state::Source;
    let Some(o) = &state.origin else {
        return "as fwctl commands last set it".into();
    };
    let from = o
        .from
        .as_ref()
        .map_or(String::new(), |d| format!(" from {}", d.display()));
    let why = o
        .why
        .as_ref()
        .map_or(String::new(), |w| format!(", because {w}"));
    match o.source {
        Source::Config => format!("the configuration{from} (fwctl boot)"),
        Source::LastGood => {
            format!("the LAST GOOD ruleset{from} (fwctl boot){why}; until an operator changes the rules")
        }
        Source::FailSafe => format!(
            "the FAIL-SAFE ({}){why}; until an operator changes the rules",
            state.failsafe.describe()
        ),
    }
}

fn status(json: bool, verbose: bool) -> Result<()> {
    let fw = Firewall::lock()?;
    let dp = fw.dataplane()?;
    let program = fw.program_id()?;
    let generation = match &dp {
        Some(dp) => Some(dp.maps.config()?.active),
        None => None,
    };
    let reasons = match &dp {
        Some(dp) => dp.maps.reasons()?,
        None => Vec::new(),
    };
    let interfaces: Vec<(String, u32, &str, bool)> = fw
        .state
        .interfaces
        .iter()
        .map(|a| {
            let pinned = crate::dataplane::attach::link_path(&fw.ns.pin_dir, a.ifindex).exists();
            (a.name.clone(), a.ifindex, a.mode.name(), pinned)
        })
        .collect();
    let nft_table = crate::netfilter::table_exists()?;
    let watcher = crate::watch::running(&fw.ns.state_dir);
    let origin = origin_line(&fw.state);
    // Rules that need conntrack in netfilter: conntrack state matches and NAT.
    let conntrack_rules = Family::ALL
        .iter()
        .flat_map(|&f| {
            let r = &fw.state.ruleset;
            r.table(Table::Filter, f)
                .all_rules()
                .filter(|x| x.spec.ctstate.is_some())
                .chain(
                    r.table(Table::Nat, f)
                        .all_rules()
                        .filter(|x| x.spec.target.is_nat()),
                )
        })
        .count();
    let netfilter_only = fw
        .netfilter_only_chains()
        .unwrap_or_else(|e| vec![format!("unknown ({e:#})")]);
    let ct_filter = dp.as_ref().map(|_| {
        crate::dataplane::ct_seen::describe(&fw.ns.pin_dir)
            .unwrap_or_else(|e| format!("unknown ({e:#})"))
    });
    if json {
        let value = serde_json::json!({
            "netns_cookie": fw.ns.cookie,
            "ct_filter_setting": if fw.state.ct_filter { "on" } else { "off" },
            "ct_filter": ct_filter,
            "netfilter_table": nft_table.then_some(format!("ip {0}, ip6 {0}", crate::netfilter::TABLE)),
            "conntrack_rules": conntrack_rules,
            "netfilter_only_chains": netfilter_only,
            "sets": fw.state.sets.sets.iter().map(|s| &s.name).collect::<Vec<_>>(),
            "origin": fw.state.origin,
            "ruleset_in_force": origin,
            "watch": fw.state.watch.iter().map(|l| serde_json::json!({"iface": l.iface, "mode": l.mode.name()})).collect::<Vec<_>>(),
            "watcher_running": watcher,
            "program_id": program,
            "pin_dir": program.map(|_| fw.ns.pin_dir.display().to_string()),
            "generation": generation,
            "interfaces": interfaces.iter().map(|(name, ifindex, mode, attached)| serde_json::json!({
                "name": name, "ifindex": ifindex, "mode": mode, "attached": attached,
            })).collect::<Vec<_>>(),
            "decided_without_rule": reasons.iter().map(|(name, n)| (name.to_string(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
            "rulesets": Family::ALL.iter().map(|&f| {
                let r = fw.state.ruleset.family(f);
                serde_json::json!({
                    "family": f.tool(),
                    "input_rules": r.input.rules.len(),
                    "input_policy": r.input.policy.name(),
                    "user_chains": r.user.len(),
                })
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("network namespace: cookie {}", fw.ns.cookie);
    println!("ruleset: {origin}");
    match (program, generation) {
        (Some(id), Some(generation)) => {
            println!(
                "program: fw_ingress, id {id}, pinned in {}",
                fw.ns.pin_dir.display()
            );
            println!("active generation: {generation}");
        }
        _ => println!("program: not installed (the first rule or attach installs it)"),
    }
    if interfaces.is_empty() {
        println!("interfaces: none attached");
    } else {
        println!("interfaces:");
        for (name, ifindex, mode, pinned) in &interfaces {
            println!(
                "  {:<15} ifindex {:<4} xdp {:<8} {}",
                name,
                ifindex,
                mode,
                if *pinned { "attached" } else { "LINK MISSING" }
            );
        }
    }
    for family in Family::ALL {
        let r = fw.state.ruleset.family(family);
        println!(
            "{} INPUT: {} rule(s), policy {}; {} user chain(s)",
            family.tool(),
            r.input.rules.len(),
            r.input.policy.name(),
            r.user.len()
        );
    }
    for why in &netfilter_only {
        println!("beyond XDP's limits, judged by netfilter alone: {why}");
    }
    match nft_table {
        true => println!(
            "netfilter: tables ip {0} and ip6 {0} in force (the whole ruleset, behind XDP and on every interface)",
            crate::netfilter::TABLE
        ),
        false => println!("netfilter: no table (nothing applied yet)"),
    }
    if !fw.state.watch.is_empty() {
        let lines: Vec<String> = fw
            .state
            .watch
            .iter()
            .map(|l| format!("{} ({})", l.iface, l.mode.name()))
            .collect();
        println!(
            "watching for: {} (fwctl watch {})",
            lines.join(", "),
            if watcher { "running" } else { "NOT RUNNING" }
        );
    }
    println!("conntrack: used by {conntrack_rules} rule(s) (state matches and NAT)");
    if let Some(line) = ct_filter {
        println!("conntrack filter at XDP: {line}");
    }
    println!("sets: {} (fwctl set list -t)", fw.state.sets.sets.len());
    if verbose {
        if let Some(dp) = &dp {
            let memory = dp.map_memory()?;
            let total: u64 = memory.iter().map(|(_, b)| b).sum();
            println!("BPF map memory: {:.1} MiB", total as f64 / (1 << 20) as f64);
            let c = dp.maps.capacity();
            println!(
                "  sized to the ruleset: {} pool words and {} entries per generation, {} counter slots",
                c.pool_words, c.entries, c.counters
            );
            for (name, bytes) in &memory {
                println!("  {name:<15} {:.1} MiB", *bytes as f64 / (1 << 20) as f64);
            }
        }
        println!("decided without a rule (per reason, since load):");
        for (name, n) in &reasons {
            println!("  {name:<15} {n}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::unalias;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn iptables_names_map_to_fwctl_commands() {
        assert_eq!(unalias(v("iptables -L -n -v")), v("-L -n -v"));
        assert_eq!(
            unalias(v("ip6tables -A INPUT -j DROP")),
            v("-6 -A INPUT -j DROP")
        );
        assert_eq!(unalias(v("ip6tables-save -c")), v("save -6 -c"));
        assert_eq!(
            unalias(v("iptables-restore --noflush")),
            v("restore --noflush")
        );
        assert_eq!(unalias(v("status")), v("status"));
    }
}
