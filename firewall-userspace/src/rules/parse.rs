//! The iptables command line, parsed into plain data with no side effect.
//!
//! Accepts what iptables accepts for the supported matches, long and short option names,
//! `--opt=value`, and the implicit `-m tcp`/`-m udp`; every error names the argument and
//! what was expected, and maps to iptables' exit status.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    model::{Chain, Cidr, Family, PortRange, RuleSpec, Verdict},
    services, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
};

/// Why a command line was refused. `status` is iptables' exit status for the same error:
/// 2 for a malformed command, 1 for a well-formed one that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
    pub status: u8,
}

fn bad(message: impl Into<String>) -> ParseError {
    ParseError {
        message: message.into(),
        status: 2,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub numeric: bool,
    pub verbose: bool,
    pub exact: bool,
    pub line_numbers: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Append(Chain, RuleSpec),
    /// Position is 1-based, as typed.
    Insert(Chain, usize, RuleSpec),
    DeleteNum(Chain, usize),
    DeleteSpec(Chain, RuleSpec),
    Check(Chain, RuleSpec),
    Policy(Chain, Verdict),
    Flush(Option<Chain>),
    Zero(Option<Chain>),
    List(Option<Chain>),
    ListRules(Option<Chain>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub family: Family,
    pub command: Command,
    pub list: ListOptions,
}

/// The command letters, for "can't use -A with -I".
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Append,
    Insert,
    Delete,
    Check,
    Policy,
    Flush,
    Zero,
    List,
    ListRules,
}

impl Verb {
    fn letter(self) -> &'static str {
        match self {
            Verb::Append => "-A",
            Verb::Insert => "-I",
            Verb::Delete => "-D",
            Verb::Check => "-C",
            Verb::Policy => "-P",
            Verb::Flush => "-F",
            Verb::Zero => "-Z",
            Verb::List => "-L",
            Verb::ListRules => "-S",
        }
    }

    fn takes_rule(self) -> bool {
        matches!(
            self,
            Verb::Append | Verb::Insert | Verb::Delete | Verb::Check
        )
    }
}

/// What the matches and target options said, before the command decides what it needs.
#[derive(Default)]
struct SpecBuilder {
    in_iface: Option<String>,
    src: Option<String>,
    dst: Option<String>,
    proto: Option<u8>,
    sport: Option<PortRange>,
    dport: Option<PortRange>,
    target: Option<Verdict>,
    any: bool,
}

/// Splits `--opt=value` so both spellings take the same path.
fn split_long(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((opt, value)) if opt.starts_with("--") => (opt, Some(value)),
        _ => (arg, None),
    }
}

struct Args<'a> {
    args: &'a [String],
    pos: usize,
}

impl<'a> Args<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let arg = self.args.get(self.pos)?;
        self.pos += 1;
        Some(arg)
    }

    /// The next argument if it is not an option: optional operands such as `-L [CHAIN]`.
    fn operand(&mut self) -> Option<&'a str> {
        let arg = self.args.get(self.pos)?;
        if arg.starts_with('-') && arg.len() > 1 {
            return None;
        }
        self.pos += 1;
        Some(arg)
    }

    fn value(&mut self, opt: &str, inline: Option<&'a str>) -> Result<&'a str, ParseError> {
        if let Some(v) = inline {
            return Ok(v);
        }
        self.next()
            .ok_or_else(|| bad(format!("option \"{opt}\" requires an argument")))
    }
}

/// Parses the arguments after the program name, iptables style.
pub fn parse_args<'a>(args: &'a [String]) -> Result<Invocation, ParseError> {
    let mut family = Family::V4;
    let mut verb: Option<(Verb, Option<&'a str>, Option<&'a str>)> = None;
    let mut list = ListOptions::default();
    let mut spec = SpecBuilder::default();
    let mut args = Args { args, pos: 0 };

    while let Some(raw) = args.next() {
        let (opt, inline) = split_long(raw);
        let mut set_verb = |v: Verb, args: &mut Args<'a>| -> Result<(), ParseError> {
            if let Some((prev, _, _)) = verb {
                return Err(bad(format!(
                    "Can't use {} with {}",
                    v.letter(),
                    prev.letter()
                )));
            }
            let chain = match v {
                Verb::Append | Verb::Insert | Verb::Delete | Verb::Check | Verb::Policy => {
                    Some(args.value(v.letter(), inline).map_err(|_| {
                        bad(format!("option \"{}\" requires an argument", v.letter()))
                    })?)
                }
                _ => inline.or_else(|| args.operand()),
            };
            // The second operand: rule number for -I/-D, target for -P.
            let extra = match v {
                Verb::Insert | Verb::Delete => args.operand().filter(|s| s.parse::<i64>().is_ok()),
                Verb::Policy => Some(
                    args.next()
                        .ok_or_else(|| bad("-P requires a chain and a policy (ACCEPT or DROP)"))?,
                ),
                _ => None,
            };
            verb = Some((v, chain, extra));
            Ok(())
        };
        match opt {
            "-A" | "--append" => set_verb(Verb::Append, &mut args)?,
            "-I" | "--insert" => set_verb(Verb::Insert, &mut args)?,
            "-D" | "--delete" => set_verb(Verb::Delete, &mut args)?,
            "-C" | "--check" => set_verb(Verb::Check, &mut args)?,
            "-P" | "--policy" => set_verb(Verb::Policy, &mut args)?,
            "-F" | "--flush" => set_verb(Verb::Flush, &mut args)?,
            "-Z" | "--zero" => set_verb(Verb::Zero, &mut args)?,
            "-L" | "--list" => set_verb(Verb::List, &mut args)?,
            "-S" | "--list-rules" => set_verb(Verb::ListRules, &mut args)?,
            "-4" | "--ipv4" => family = Family::V4,
            "-6" | "--ipv6" => family = Family::V6,
            "-t" | "--table" => {
                let table = args.value(opt, inline)?;
                if table != "filter" {
                    return Err(ParseError {
                        message: format!(
                            "table `{table}' is not supported yet: fwctl manages the filter table"
                        ),
                        status: 3,
                    });
                }
            }
            "-n" | "--numeric" => list.numeric = true,
            "-v" | "--verbose" => list.verbose = true,
            "-x" | "--exact" => list.exact = true,
            "--line-numbers" => list.line_numbers = true,
            "-i" | "--in-interface" => {
                let name = args.value(opt, inline)?;
                spec.in_iface = Some(parse_iface(name)?);
                spec.any = true;
            }
            "-s" | "--source" | "--src" => {
                spec.src = Some(args.value(opt, inline)?.to_string());
                spec.any = true;
            }
            "-d" | "--destination" | "--dst" => {
                spec.dst = Some(args.value(opt, inline)?.to_string());
                spec.any = true;
            }
            "-p" | "--protocol" => {
                spec.proto = parse_proto(args.value(opt, inline)?)?;
                spec.any = true;
            }
            "-m" | "--match" => {
                let name = args.value(opt, inline)?;
                let implied = match (name, spec.proto) {
                    ("tcp", Some(IPPROTO_TCP)) | ("udp", Some(IPPROTO_UDP)) => true,
                    ("tcp", _) | ("udp", _) => {
                        return Err(bad(format!("-m {name} needs -p {name} before it")));
                    }
                    _ => false,
                };
                if !implied {
                    return Err(bad(format!(
                        "Couldn't load match `{name}': not supported by this version of fwctl"
                    )));
                }
            }
            "--sport" | "--source-port" | "--dport" | "--destination-port" => {
                let proto = match spec.proto {
                    Some(IPPROTO_TCP) => "tcp",
                    Some(IPPROTO_UDP) => "udp",
                    _ => {
                        return Err(bad(format!(
                        "unknown option \"{opt}\": port matches need -p tcp or -p udp before them"
                    )))
                    }
                };
                let range = parse_ports(args.value(opt, inline)?, proto)?;
                if opt.starts_with("--s") {
                    spec.sport = Some(range);
                } else {
                    spec.dport = Some(range);
                }
                spec.any = true;
            }
            "-j" | "--jump" => {
                let target = args.value(opt, inline)?;
                spec.target = Some(Verdict::from_name(target).ok_or_else(|| {
                    bad(format!(
                        "Couldn't load target `{target}': fwctl supports ACCEPT and DROP so far"
                    ))
                })?);
                spec.any = true;
            }
            "!" => {
                return Err(bad(
                    "negation with `!' is not supported by this version of fwctl",
                ))
            }
            _ if opt.starts_with('-') => {
                return Err(bad(format!("unknown option \"{raw}\"")));
            }
            _ => return Err(bad(format!("Bad argument `{raw}'"))),
        }
    }

    let (verb, chain, extra) = verb.ok_or_else(|| bad("no command specified"))?;
    if spec.any && !verb.takes_rule() {
        return Err(bad(format!(
            "Illegal option with {}: rule options go with -A, -I, -D or -C",
            verb.letter()
        )));
    }
    let chain = chain.map(parse_chain).transpose()?;
    let needs_chain = |chain: Option<Chain>| {
        chain.ok_or_else(|| bad(format!("{} requires a chain", verb.letter())))
    };
    let command = match verb {
        Verb::Append => Command::Append(needs_chain(chain)?, spec.build(family)?),
        Verb::Check => Command::Check(needs_chain(chain)?, spec.build(family)?),
        Verb::Insert => {
            let position = match extra {
                Some(n) => parse_rule_number(n)?,
                None => 1,
            };
            Command::Insert(needs_chain(chain)?, position, spec.build(family)?)
        }
        Verb::Delete => match extra {
            Some(n) if !spec.any => Command::DeleteNum(needs_chain(chain)?, parse_rule_number(n)?),
            Some(_) => return Err(bad("-D takes a rule number or a rule, not both")),
            None => Command::DeleteSpec(needs_chain(chain)?, spec.build(family)?),
        },
        Verb::Policy => {
            let target = extra.unwrap_or_default();
            let verdict = Verdict::from_name(target)
                .ok_or_else(|| bad(format!("Bad policy name `{target}': use ACCEPT or DROP")))?;
            Command::Policy(needs_chain(chain)?, verdict)
        }
        Verb::Flush => Command::Flush(chain),
        Verb::Zero => Command::Zero(chain),
        Verb::List => Command::List(chain),
        Verb::ListRules => Command::ListRules(chain),
    };
    Ok(Invocation {
        family,
        command,
        list,
    })
}

impl SpecBuilder {
    fn build(&self, family: Family) -> Result<RuleSpec, ParseError> {
        let target = self
            .target
            .ok_or_else(|| bad("a rule needs a target: -j ACCEPT or -j DROP"))?;
        Ok(RuleSpec {
            in_iface: self.in_iface.clone(),
            src: any_is_none(
                self.src
                    .as_deref()
                    .map(|s| parse_cidr(s, family))
                    .transpose()?,
            ),
            dst: any_is_none(
                self.dst
                    .as_deref()
                    .map(|s| parse_cidr(s, family))
                    .transpose()?,
            ),
            proto: self.proto,
            sport: self.sport,
            dport: self.dport,
            target,
        })
    }
}

/// `-s 0.0.0.0/0` is no match at all, and iptables stores (and lists) it as such.
fn any_is_none(cidr: Option<Cidr>) -> Option<Cidr> {
    cidr.filter(|c| c.prefix != 0)
}

fn parse_chain(name: &str) -> Result<Chain, ParseError> {
    Chain::from_name(name).ok_or_else(|| ParseError {
        message: format!(
            "Chain `{name}' does not exist (built-in chains are INPUT, FORWARD and OUTPUT)"
        ),
        status: 1,
    })
}

fn parse_rule_number(text: &str) -> Result<usize, ParseError> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(bad(format!(
            "Invalid rule number `{text}': rules are numbered from 1"
        ))),
    }
}

fn parse_iface(name: &str) -> Result<String, ParseError> {
    // IFNAMSIZ is 16 including the NUL.
    if name.is_empty() || name.len() > 15 {
        return Err(bad(format!(
            "interface name `{name}' must be 1 to 15 characters"
        )));
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b.is_ascii_whitespace() || b == 0)
    {
        return Err(bad(format!("invalid interface name `{name}'")));
    }
    Ok(name.to_string())
}

/// `-p`: a name iptables knows, `all`, or a number 0-255.
pub fn parse_proto(text: &str) -> Result<Option<u8>, ParseError> {
    let lower = text.to_ascii_lowercase();
    let number = match lower.as_str() {
        "all" | "0" => return Ok(None),
        "tcp" => IPPROTO_TCP,
        "udp" => IPPROTO_UDP,
        "icmp" => IPPROTO_ICMP,
        "icmpv6" | "ipv6-icmp" => IPPROTO_ICMPV6,
        _ => lower
            .parse::<u8>()
            .ok()
            .or_else(|| services::proto_by_name(&lower))
            .ok_or_else(|| bad(format!("unknown protocol \"{text}\" specified")))?,
    };
    Ok(Some(number))
}

/// `--dport`: a port, a service name, or `a:b` with either side optional (`:1024`, `1024:`).
fn parse_ports(text: &str, proto: &str) -> Result<PortRange, ParseError> {
    let port = |s: &str| -> Result<u16, ParseError> {
        s.parse::<u16>()
            .ok()
            .or_else(|| services::port_by_name(s, proto))
            .ok_or_else(|| bad(format!("invalid port/service `{s}' specified")))
    };
    let range = match text.split_once(':') {
        None => {
            let p = port(text)?;
            PortRange { min: p, max: p }
        }
        Some((lo, hi)) => PortRange {
            min: if lo.is_empty() { 0 } else { port(lo)? },
            max: if hi.is_empty() { u16::MAX } else { port(hi)? },
        },
    };
    if range.min > range.max {
        return Err(bad(format!(
            "invalid portrange `{text}': the first port is above the second"
        )));
    }
    Ok(range)
}

/// `-s`/`-d`: an address or `address/prefix` (or a dotted netmask for IPv4) of `family`.
pub fn parse_cidr(text: &str, family: Family) -> Result<Cidr, ParseError> {
    let not_found = || bad(format!("host/network `{text}' not found"));
    let (addr, mask) = match text.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| not_found())?;
    let addr_family = match addr {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    };
    if addr_family != family {
        return Err(not_found());
    }
    let max = family.max_prefix();
    let prefix = match mask {
        None => max,
        Some(m) => match m.parse::<u8>() {
            Ok(p) if p <= max => p,
            Ok(_) => return Err(bad(format!("invalid mask `{m}' specified"))),
            Err(_) => dotted_mask(m, family)
                .ok_or_else(|| bad(format!("invalid mask `{m}' specified")))?,
        },
    };
    Ok(Cidr {
        addr: network(addr, prefix),
        prefix,
    })
}

/// `255.255.255.0` to 24; only contiguous masks, as iptables lists them.
fn dotted_mask(mask: &str, family: Family) -> Option<u8> {
    if family != Family::V4 {
        return None;
    }
    let bits = u32::from(mask.parse::<Ipv4Addr>().ok()?);
    let prefix = bits.leading_ones();
    (bits.checked_shl(prefix).unwrap_or(0) == 0).then_some(prefix as u8)
}

/// Clears the host bits, as iptables does before storing an address.
fn network(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - prefix as u32).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Invocation, ParseError> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse_args(&args)
    }

    fn rule(line: &str) -> RuleSpec {
        match parse(line)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .command
        {
            Command::Append(_, spec) | Command::Insert(_, _, spec) => spec,
            other => panic!("{line}: not a rule command: {other:?}"),
        }
    }

    fn cidr(s: &str, prefix: u8) -> Option<Cidr> {
        Some(Cidr {
            addr: s.parse().unwrap(),
            prefix,
        })
    }

    const ACCEPT_ALL: RuleSpec = RuleSpec {
        in_iface: None,
        src: None,
        dst: None,
        proto: None,
        sport: None,
        dport: None,
        target: Verdict::Accept,
    };

    /// Every accepted form, with what it must parse to.
    #[test]
    fn accepted_rule_forms() {
        let cases: Vec<(&str, RuleSpec)> = vec![
            ("-A INPUT -j ACCEPT", ACCEPT_ALL),
            ("-A INPUT -p all -j ACCEPT", ACCEPT_ALL),
            ("--append INPUT --jump ACCEPT", ACCEPT_ALL),
            (
                "-A INPUT -i lo -j ACCEPT",
                RuleSpec {
                    in_iface: Some("lo".into()),
                    ..ACCEPT_ALL
                },
            ),
            (
                "-A INPUT -i tun+ -j DROP",
                RuleSpec {
                    in_iface: Some("tun+".into()),
                    target: Verdict::Drop,
                    ..ACCEPT_ALL
                },
            ),
            (
                "-A INPUT -p tcp --dport 22 -j ACCEPT",
                RuleSpec {
                    proto: Some(6),
                    dport: Some(PortRange { min: 22, max: 22 }),
                    ..ACCEPT_ALL
                },
            ),
            (
                "-A INPUT -p tcp -m tcp --dport=22 -j ACCEPT",
                RuleSpec {
                    proto: Some(6),
                    dport: Some(PortRange { min: 22, max: 22 }),
                    ..ACCEPT_ALL
                },
            ),
            (
                "-A INPUT -p UDP --sport 1000:2000 --destination-port :53 -j DROP",
                RuleSpec {
                    proto: Some(17),
                    sport: Some(PortRange {
                        min: 1000,
                        max: 2000,
                    }),
                    dport: Some(PortRange { min: 0, max: 53 }),
                    target: Verdict::Drop,
                    ..ACCEPT_ALL
                },
            ),
            (
                "-A INPUT -p udp --sport 1024: -j ACCEPT",
                RuleSpec {
                    proto: Some(17),
                    sport: Some(PortRange {
                        min: 1024,
                        max: 65535,
                    }),
                    ..ACCEPT_ALL
                },
            ),
            (
                "-A INPUT -p icmp -j ACCEPT",
                RuleSpec {
                    proto: Some(1),
                    ..ACCEPT_ALL
                },
            ),
            (
                "-A INPUT -p 47 -j ACCEPT",
                RuleSpec {
                    proto: Some(47),
                    ..ACCEPT_ALL
                },
            ),
            (
                "-A INPUT -s 10.1.2.3/24 -d 192.168.1.1 -j ACCEPT",
                RuleSpec {
                    src: cidr("10.1.2.0", 24),
                    dst: cidr("192.168.1.1", 32),
                    ..ACCEPT_ALL
                },
            ),
            (
                "-A INPUT --source 10.0.0.0/255.0.0.0 -j ACCEPT",
                RuleSpec {
                    src: cidr("10.0.0.0", 8),
                    ..ACCEPT_ALL
                },
            ),
            ("-A INPUT -s 0.0.0.0/0 -j ACCEPT", ACCEPT_ALL),
            (
                "-6 -A INPUT -s 2001:db8::1/64 -p icmpv6 -j ACCEPT",
                RuleSpec {
                    src: cidr("2001:db8::", 64),
                    proto: Some(58),
                    ..ACCEPT_ALL
                },
            ),
            (
                "-I INPUT 2 -p tcp --dport 587 -j ACCEPT",
                RuleSpec {
                    proto: Some(6),
                    dport: Some(PortRange { min: 587, max: 587 }),
                    ..ACCEPT_ALL
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(rule(line), want, "{line}");
        }
    }

    #[test]
    fn accepted_commands() {
        let cases: Vec<(&str, Family, Command, ListOptions)> = vec![
            (
                "-P INPUT DROP",
                Family::V4,
                Command::Policy(Chain::Input, Verdict::Drop),
                ListOptions::default(),
            ),
            (
                "-6 -P INPUT ACCEPT",
                Family::V6,
                Command::Policy(Chain::Input, Verdict::Accept),
                ListOptions::default(),
            ),
            (
                "-F",
                Family::V4,
                Command::Flush(None),
                ListOptions::default(),
            ),
            (
                "-F INPUT",
                Family::V4,
                Command::Flush(Some(Chain::Input)),
                ListOptions::default(),
            ),
            (
                "-Z INPUT",
                Family::V4,
                Command::Zero(Some(Chain::Input)),
                ListOptions::default(),
            ),
            (
                "-D INPUT 4",
                Family::V4,
                Command::DeleteNum(Chain::Input, 4),
                ListOptions::default(),
            ),
            (
                "-S",
                Family::V4,
                Command::ListRules(None),
                ListOptions::default(),
            ),
            (
                "-L -n -v --line-numbers",
                Family::V4,
                Command::List(None),
                ListOptions {
                    numeric: true,
                    verbose: true,
                    exact: false,
                    line_numbers: true,
                },
            ),
            (
                "-n -L INPUT -v -x",
                Family::V4,
                Command::List(Some(Chain::Input)),
                ListOptions {
                    numeric: true,
                    verbose: true,
                    exact: true,
                    line_numbers: false,
                },
            ),
            (
                "-t filter -L",
                Family::V4,
                Command::List(None),
                ListOptions::default(),
            ),
        ];
        for (line, family, command, list) in cases {
            let got = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(
                got,
                Invocation {
                    family,
                    command,
                    list
                },
                "{line}"
            );
        }
        assert!(matches!(
            parse("-I INPUT -j DROP").unwrap().command,
            Command::Insert(Chain::Input, 1, _)
        ));
        assert!(matches!(
            parse("-D INPUT -p tcp --dport 22 -j ACCEPT")
                .unwrap()
                .command,
            Command::DeleteSpec(Chain::Input, _)
        ));
    }

    /// Bad inputs with the message and exit status each must give.
    #[test]
    fn rejected_inputs() {
        let cases: &[(&str, &str, u8)] = &[
            ("", "no command specified", 2),
            ("-n", "no command specified", 2),
            ("-A", "option \"-A\" requires an argument", 2),
            ("-A INPUT", "a rule needs a target: -j ACCEPT or -j DROP", 2),
            (
                "-A FOO -j ACCEPT",
                "Chain `FOO' does not exist (built-in chains are INPUT, FORWARD and OUTPUT)",
                1,
            ),
            (
                "-A INPUT -j REJECTX",
                "Couldn't load target `REJECTX': fwctl supports ACCEPT and DROP so far",
                2,
            ),
            ("-A INPUT -j", "option \"-j\" requires an argument", 2),
            (
                "-A INPUT -p foo -j ACCEPT",
                "unknown protocol \"foo\" specified",
                2,
            ),
            (
                "-A INPUT -p 256 -j ACCEPT",
                "unknown protocol \"256\" specified",
                2,
            ),
            (
                "-A INPUT --dport 22 -j ACCEPT",
                "unknown option \"--dport\": port matches need -p tcp or -p udp before them",
                2,
            ),
            (
                "-A INPUT -p icmp --dport 22 -j ACCEPT",
                "unknown option \"--dport\": port matches need -p tcp or -p udp before them",
                2,
            ),
            (
                "-A INPUT -p tcp --dport 70000 -j ACCEPT",
                "invalid port/service `70000' specified",
                2,
            ),
            (
                "-A INPUT -p tcp --dport nosuchservice -j ACCEPT",
                "invalid port/service `nosuchservice' specified",
                2,
            ),
            (
                "-A INPUT -p tcp --dport 20:10 -j ACCEPT",
                "invalid portrange `20:10': the first port is above the second",
                2,
            ),
            (
                "-A INPUT -s 300.1.1.1 -j ACCEPT",
                "host/network `300.1.1.1' not found",
                2,
            ),
            (
                "-A INPUT -s 10.0.0.0/33 -j ACCEPT",
                "invalid mask `33' specified",
                2,
            ),
            (
                "-A INPUT -s 10.0.0.0/255.0.255.0 -j ACCEPT",
                "invalid mask `255.0.255.0' specified",
                2,
            ),
            (
                "-A INPUT -s ::1 -j ACCEPT",
                "host/network `::1' not found",
                2,
            ),
            (
                "-6 -A INPUT -d 10.0.0.1 -j ACCEPT",
                "host/network `10.0.0.1' not found",
                2,
            ),
            (
                "-A INPUT -i averyveryverylongname -j ACCEPT",
                "interface name `averyveryverylongname' must be 1 to 15 characters",
                2,
            ),
            (
                "-A INPUT -m state --state NEW -j ACCEPT",
                "Couldn't load match `state': not supported by this version of fwctl",
                2,
            ),
            (
                "-A INPUT -m tcp --dport 22 -j ACCEPT",
                "-m tcp needs -p tcp before it",
                2,
            ),
            (
                "-A INPUT ! -s 10.0.0.1 -j ACCEPT",
                "negation with `!' is not supported by this version of fwctl",
                2,
            ),
            ("-A INPUT -j ACCEPT -I INPUT", "Can't use -I with -A", 2),
            (
                "-A INPUT --bogus -j ACCEPT",
                "unknown option \"--bogus\"",
                2,
            ),
            ("-A INPUT stray -j ACCEPT", "Bad argument `stray'", 2),
            (
                "-P INPUT",
                "-P requires a chain and a policy (ACCEPT or DROP)",
                2,
            ),
            (
                "-P INPUT REJECT",
                "Bad policy name `REJECT': use ACCEPT or DROP",
                2,
            ),
            (
                "-D INPUT 0",
                "Invalid rule number `0': rules are numbered from 1",
                2,
            ),
            (
                "-I INPUT 0 -j ACCEPT",
                "Invalid rule number `0': rules are numbered from 1",
                2,
            ),
            (
                "-L -p tcp",
                "Illegal option with -L: rule options go with -A, -I, -D or -C",
                2,
            ),
            (
                "-t nat -L",
                "table `nat' is not supported yet: fwctl manages the filter table",
                3,
            ),
        ];
        for (line, message, status) in cases {
            let err = parse(line).expect_err(line);
            assert_eq!(err.message, *message, "{line}");
            assert_eq!(err.status, *status, "{line}");
        }
    }
}
