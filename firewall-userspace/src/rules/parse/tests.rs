use super::*;
use crate::rules::model::{NatTo, RejectWith, CT_ESTABLISHED, CT_NEW, CT_RELATED};

fn parse(line: &str) -> Result<Invocation, ParseError> {
    let args: Vec<String> = line.split_whitespace().map(String::from).collect();
    parse_args(&args)
}

fn rules(line: &str) -> Vec<RuleSpec> {
    match parse(line)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
        .command
    {
        Command::Append(_, specs) | Command::Insert(_, _, specs) => specs,
        other => panic!("{line}: not a rule command: {other:?}"),
    }
}

fn rule(line: &str) -> RuleSpec {
    let mut specs = rules(line);
    assert_eq!(specs.len(), 1, "{line}");
    specs.remove(0)
}

fn cidr(s: &str, prefix: u8) -> Option<Neg<Cidr>> {
    Some(Neg::plain(Cidr {
        addr: s.parse().unwrap(),
        prefix,
    }))
}

fn not<T>(value: T) -> Option<Neg<T>> {
    Some(Neg {
        value,
        negated: true,
    })
}

fn yes<T>(value: T) -> Option<Neg<T>> {
    Some(Neg::plain(value))
}

fn ports(min: u16, max: u16) -> PortRange {
    PortRange { min, max }
}

fn accept() -> RuleSpec {
    RuleSpec::any(Target::Accept)
}

/// iptables' grammar beyond the plain forms: any unambiguous prefix of a long option
/// (getopt_long's rule, over the options known at that point), `-m tcp` before `-p tcp`,
/// no `-j`. Each line here was given to iptables 1.8.9 and saved back as the second.
#[test]
fn option_prefixes_and_orders_as_iptables_takes_them() {
    let cases = [
        (
            "-A INPUT --sou 1.2.3.4 -j ACCEPT",
            "-A INPUT -s 1.2.3.4 -j ACCEPT",
        ),
        (
            "-A INPUT -p tcp --dp 22 -j ACCEPT",
            "-A INPUT -p tcp --dport 22 -j ACCEPT",
        ),
        (
            "-A INPUT -p tcp --destination-p 22 --sy -j ACCEPT",
            "-A INPUT -p tcp --dport 22 --syn -j ACCEPT",
        ),
        (
            "-A INPUT -p tcp -m multiport --dpo 22,23 -j ACCEPT",
            "-A INPUT -p tcp -m multiport --dports 22,23 -j ACCEPT",
        ),
        (
            "-A INPUT -m state --state NEW -m tcp -p tcp --dport 22 -j ACCEPT",
            "-A INPUT -p tcp -m state --state NEW --dport 22 -j ACCEPT",
        ),
        (
            "-A INPUT -m udp -p udp --sport 53 -j ACCEPT",
            "-A INPUT -p udp --sport 53 -j ACCEPT",
        ),
        (
            "-A INPUT -m icmp --icmp-type 8 -p icmp -j ACCEPT",
            "-A INPUT -p icmp --icmp-type 8 -j ACCEPT",
        ),
        (
            "-A INPUT -m tcp -p tcp --syn --jum DROP",
            "-A INPUT -p tcp --syn -j DROP",
        ),
        (
            "-t nat -A PREROUTING -p tcp --dport 80 -j DNAT --to 10.0.0.2:8080",
            "-t nat -A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080",
        ),
        (
            "-t nat -A POSTROUTING -j SNAT --to 10.0.0.1",
            "-t nat -A POSTROUTING -j SNAT --to-source 10.0.0.1",
        ),
        (
            "-A INPUT -p tcp -j REJECT --reject tcp-reset",
            "-A INPUT -p tcp -j REJECT --reject-with tcp-reset",
        ),
        (
            "-A INPUT -j LOG --log-p x --log-l 7",
            "-A INPUT -j LOG --log-prefix x --log-level 7",
        ),
        (
            "-A INPUT -p tcp --dport 22",
            "-A INPUT -p tcp --dport 22 -j ACCEPT",
        ),
    ];
    for (given, same) in cases {
        let (a, b) = (parse(given), parse(same));
        let (a, b) = (
            a.unwrap_or_else(|e| panic!("{given}: {e}")),
            b.unwrap_or_else(|e| panic!("{same}: {e}")),
        );
        if given.ends_with("--dport 22") {
            // No -j: the same matches, and a target that only counts.
            let (Command::Append(_, x), Command::Append(_, y)) = (a.command, b.command) else {
                panic!("{given}");
            };
            assert_eq!(x[0].target, Target::Count, "{given}");
            assert_eq!(
                RuleSpec {
                    target: Target::Accept,
                    ..x[0].clone()
                },
                y[0],
                "{given}"
            );
        } else {
            assert_eq!(a, b, "{given}");
        }
    }
    assert_eq!(rule("-A FOO"), RuleSpec::any(Target::Count));
}

/// Short IPv4 forms as iptables 1.8.9 saved them (`-s 172.16/12` is `172.16.0.0/12`).
#[test]
fn short_ipv4_addresses_as_iptables_reads_them() {
    for (given, saved) in [
        ("10/8", "10.0.0.0/8"),
        ("172.16/12", "172.16.0.0/12"),
        ("172.16.0/24", "172.16.0.0/24"),
        ("10.1", "10.1.0.0/32"),
        ("010.1.1.1", "8.1.1.1/32"),
    ] {
        let spec = rule(&format!("-A INPUT -s {given} -j ACCEPT"));
        let c = spec.src.unwrap().value;
        assert_eq!(format!("{}/{}", c.addr, c.prefix), saved, "{given}");
    }
    assert!(parse("-A INPUT -s 10.256 -j ACCEPT").is_err());
    assert!(parse("-A INPUT -s 1.2.3.4.5 -j ACCEPT").is_err());
}

/// Every accepted form, with what it must parse to.
#[test]
fn accepted_rule_forms() {
    let cases: Vec<(&str, RuleSpec)> = vec![
        ("-A INPUT -j ACCEPT", accept()),
        ("-A INPUT -p all -j ACCEPT", accept()),
        ("--append INPUT --jump ACCEPT", accept()),
        ("-A INPUT -j RETURN", RuleSpec::any(Target::Return)),
        (
            "-A INPUT -j MAIL",
            RuleSpec::any(Target::Jump("MAIL".into())),
        ),
        (
            "-A INPUT -i lo -j ACCEPT",
            RuleSpec {
                in_iface: yes("lo".into()),
                ..accept()
            },
        ),
        (
            "-A INPUT ! -i eth0 -j ACCEPT",
            RuleSpec {
                in_iface: not("eth0".into()),
                ..accept()
            },
        ),
        (
            "-A FORWARD -i tun+ ! -o eth0 -j ACCEPT",
            RuleSpec {
                in_iface: yes("tun+".into()),
                out_iface: not("eth0".into()),
                ..accept()
            },
        ),
        (
            "-A INPUT -i tun+ -j DROP",
            RuleSpec {
                in_iface: yes("tun+".into()),
                ..RuleSpec::any(Target::Drop)
            },
        ),
        (
            "-A INPUT -p tcp --dport 22 -j ACCEPT",
            RuleSpec {
                proto: yes(6),
                dport: yes(ports(22, 22)),
                ..accept()
            },
        ),
        (
            "-A INPUT -p tcp -m tcp --dport=ssh -j ACCEPT",
            RuleSpec {
                proto: yes(6),
                dport: yes(ports(22, 22)),
                ..accept()
            },
        ),
        (
            "-A INPUT -p tcp ! --dport 22 ! --sport 1:1023 -j ACCEPT",
            RuleSpec {
                proto: yes(6),
                dport: not(ports(22, 22)),
                sport: not(ports(1, 1023)),
                ..accept()
            },
        ),
        (
            "-A INPUT -p UDP --sport 1000:2000 --destination-port :53 -j ACCEPT",
            RuleSpec {
                proto: yes(17),
                sport: yes(ports(1000, 2000)),
                dport: yes(ports(0, 53)),
                ..accept()
            },
        ),
        (
            "-A INPUT -p udp --sport 1024: -j ACCEPT",
            RuleSpec {
                proto: yes(17),
                sport: yes(ports(1024, 65535)),
                ..accept()
            },
        ),
        (
            "-A INPUT -p icmp -j ACCEPT",
            RuleSpec {
                proto: yes(1),
                ..accept()
            },
        ),
        (
            "-A INPUT ! -p udp -j ACCEPT",
            RuleSpec {
                proto: not(17),
                ..accept()
            },
        ),
        (
            "-A INPUT -p 47 -j ACCEPT",
            RuleSpec {
                proto: yes(47),
                ..accept()
            },
        ),
        (
            "-A INPUT -p gre -j ACCEPT",
            RuleSpec {
                proto: yes(47),
                ..accept()
            },
        ),
        (
            "-A INPUT -s 10.1.2.3/24 -d 192.168.1.1 -j ACCEPT",
            RuleSpec {
                src: cidr("10.1.2.0", 24),
                dst: cidr("192.168.1.1", 32),
                ..accept()
            },
        ),
        (
            "-A INPUT ! -s 10.0.0.0/8 -j ACCEPT",
            RuleSpec {
                src: not(Cidr {
                    addr: "10.0.0.0".parse().unwrap(),
                    prefix: 8,
                }),
                ..accept()
            },
        ),
        (
            "-A INPUT --source 10.0.0.0/255.0.0.0 -j ACCEPT",
            RuleSpec {
                src: cidr("10.0.0.0", 8),
                ..accept()
            },
        ),
        ("-A INPUT -s 0.0.0.0/0 -j ACCEPT", accept()),
        (
            "-6 -A INPUT -s 2001:db8::1/64 -p icmpv6 -j ACCEPT",
            RuleSpec {
                src: cidr("2001:db8::", 64),
                proto: yes(58),
                ..accept()
            },
        ),
        (
            "-A INPUT -p tcp -m multiport --dports 25,587,110:143 -j ACCEPT",
            RuleSpec {
                proto: yes(6),
                multiport: yes(Multiport {
                    kind: MultiportKind::Dports,
                    ports: vec![ports(25, 25), ports(587, 587), ports(110, 143)],
                }),
                ..accept()
            },
        ),
        (
            "-A INPUT -p udp -m multiport ! --sports 53,123 -j ACCEPT",
            RuleSpec {
                proto: yes(17),
                multiport: not(Multiport {
                    kind: MultiportKind::Sports,
                    ports: vec![ports(53, 53), ports(123, 123)],
                }),
                ..accept()
            },
        ),
        (
            "-A INPUT -p tcp -m multiport --ports 80,443 -j ACCEPT",
            RuleSpec {
                proto: yes(6),
                multiport: yes(Multiport {
                    kind: MultiportKind::Ports,
                    ports: vec![ports(80, 80), ports(443, 443)],
                }),
                ..accept()
            },
        ),
        (
            "-A INPUT -p icmp --icmp-type echo-request -j ACCEPT",
            RuleSpec {
                proto: yes(1),
                icmp: yes(IcmpType {
                    kind: 8,
                    code_min: 0,
                    code_max: 255,
                }),
                ..accept()
            },
        ),
        (
            "-A INPUT -p icmp -m icmp ! --icmp-type 3/4 -j ACCEPT",
            RuleSpec {
                proto: yes(1),
                icmp: not(IcmpType {
                    kind: 3,
                    code_min: 4,
                    code_max: 4,
                }),
                ..accept()
            },
        ),
        (
            "-6 -A INPUT -p icmpv6 --icmpv6-type neighbour-solicitation -j ACCEPT",
            RuleSpec {
                proto: yes(58),
                icmp: yes(IcmpType {
                    kind: 135,
                    code_min: 0,
                    code_max: 255,
                }),
                ..accept()
            },
        ),
        (
            "-A INPUT -p tcp --syn -j ACCEPT",
            RuleSpec {
                proto: yes(6),
                tcp_flags: yes(TcpFlags {
                    mask: 0x17,
                    comp: 0x02,
                }),
                ..accept()
            },
        ),
        (
            "-A INPUT -p tcp ! --tcp-flags ALL NONE -j ACCEPT",
            RuleSpec {
                proto: yes(6),
                tcp_flags: not(TcpFlags {
                    mask: 0x3f,
                    comp: 0,
                }),
                ..accept()
            },
        ),
        (
            "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
            RuleSpec {
                ctstate: yes(CtState {
                    states: CT_ESTABLISHED | CT_RELATED,
                    legacy: false,
                }),
                ..accept()
            },
        ),
        (
            "-A INPUT -m state ! --state NEW -j ACCEPT",
            RuleSpec {
                ctstate: not(CtState {
                    states: CT_NEW,
                    legacy: true,
                }),
                ..accept()
            },
        ),
        (
            "-A INPUT -m comment --comment ssh -j ACCEPT",
            RuleSpec {
                comment: Some("ssh".into()),
                ..accept()
            },
        ),
        (
            "-I INPUT 2 -p tcp --dport 587 -j ACCEPT",
            RuleSpec {
                proto: yes(6),
                dport: yes(ports(587, 587)),
                ..accept()
            },
        ),
        (
            "-A INPUT -p udp -j REJECT",
            RuleSpec {
                proto: yes(17),
                ..RuleSpec::any(Target::Reject(RejectWith::PortUnreachable, Family::V4))
            },
        ),
        (
            "-A INPUT -p tcp --dport 23 -j REJECT --reject-with tcp-reset",
            RuleSpec {
                proto: yes(6),
                dport: yes(ports(23, 23)),
                ..RuleSpec::any(Target::Reject(RejectWith::TcpReset, Family::V4))
            },
        ),
        (
            "-6 -A INPUT -j REJECT --reject-with adm-prohibited",
            RuleSpec::any(Target::Reject(RejectWith::AdminProhibited, Family::V6)),
        ),
        (
            "-A FORWARD -j REJECT --reject-with icmp-host-unreachable",
            RuleSpec::any(Target::Reject(RejectWith::HostUnreachable, Family::V4)),
        ),
        (
            "-t nat -A POSTROUTING -s 10.8.0.0/24 -o eth0 -j MASQUERADE",
            RuleSpec {
                src: cidr("10.8.0.0", 24),
                out_iface: yes("eth0".into()),
                ..RuleSpec::any(Target::Masquerade(None))
            },
        ),
        (
            "-t nat -A POSTROUTING -o eth0 -j SNAT --to-source 192.0.2.7",
            RuleSpec {
                out_iface: yes("eth0".into()),
                ..RuleSpec::any(Target::Snat(NatTo {
                    addr: "192.0.2.7".parse().unwrap(),
                    ports: None,
                }))
            },
        ),
        (
            "-t nat -A PREROUTING -i eth0 -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80",
            RuleSpec {
                in_iface: yes("eth0".into()),
                proto: yes(6),
                dport: yes(ports(8080, 8080)),
                ..RuleSpec::any(Target::Dnat(NatTo {
                    addr: "10.0.0.2".parse().unwrap(),
                    ports: Some(ports(80, 80)),
                }))
            },
        ),
        (
            "-t nat -A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 8080",
            RuleSpec {
                proto: yes(6),
                dport: yes(ports(80, 80)),
                ..RuleSpec::any(Target::Redirect(Some(ports(8080, 8080))))
            },
        ),
        (
            "-t nat -A POSTROUTING -p udp -j SNAT --to-source 192.0.2.7:1024-2000",
            RuleSpec {
                proto: yes(17),
                ..RuleSpec::any(Target::Snat(NatTo {
                    addr: "192.0.2.7".parse().unwrap(),
                    ports: Some(ports(1024, 2000)),
                }))
            },
        ),
        (
            "-6 -t nat -A PREROUTING -p tcp --dport 80 -j DNAT --to-destination [2001:db8::2]:8080",
            RuleSpec {
                proto: yes(6),
                dport: yes(ports(80, 80)),
                ..RuleSpec::any(Target::Dnat(NatTo {
                    addr: "2001:db8::2".parse().unwrap(),
                    ports: Some(ports(8080, 8080)),
                }))
            },
        ),
        (
            "-A INPUT -m set --match-set bl src -j ACCEPT",
            RuleSpec {
                sets: vec![Neg::plain(SetMatch {
                    name: "bl".into(),
                    dst: vec![false],
                })],
                ..accept()
            },
        ),
        (
            "-A INPUT -m set ! --match-set svc dst,src -m set --match-set bl src -j ACCEPT",
            RuleSpec {
                sets: vec![
                    Neg {
                        value: SetMatch {
                            name: "svc".into(),
                            dst: vec![true, false],
                        },
                        negated: true,
                    },
                    Neg::plain(SetMatch {
                        name: "bl".into(),
                        dst: vec![false],
                    }),
                ],
                ..accept()
            },
        ),
    ];
    for (line, want) in cases {
        assert_eq!(rule(line), want, "{line}");
    }
}

#[test]
fn comma_lists_expand_as_iptables_does() {
    let specs = rules("-A INPUT -s 1.1.1.1,2.2.2.0/24 -d 3.3.3.3,4.4.4.4 -j DROP");
    let pairs: Vec<(String, String)> = specs
        .iter()
        .map(|s| {
            (
                s.src.as_ref().unwrap().value.addr.to_string(),
                s.dst.as_ref().unwrap().value.addr.to_string(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("1.1.1.1", "3.3.3.3"),
            ("1.1.1.1", "4.4.4.4"),
            ("2.2.2.0", "3.3.3.3"),
            ("2.2.2.0", "4.4.4.4")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
}

#[test]
fn accepted_commands() {
    let v4 = Family::V4;
    let none = ListOptions::default();
    let cases: Vec<(&str, Family, Command, ListOptions)> = vec![
        (
            "-P INPUT DROP",
            v4,
            Command::Policy(Chain::Input, Verdict::Drop),
            none,
        ),
        (
            "-6 -P INPUT ACCEPT",
            Family::V6,
            Command::Policy(Chain::Input, Verdict::Accept),
            none,
        ),
        ("-F", v4, Command::Flush(None), none),
        ("-F INPUT", v4, Command::Flush(Some("INPUT".into())), none),
        (
            "-Z INPUT",
            v4,
            Command::Zero(Some("INPUT".into()), None),
            none,
        ),
        (
            "-Z INPUT 2",
            v4,
            Command::Zero(Some("INPUT".into()), Some(2)),
            none,
        ),
        (
            "-L INPUT 3 -n",
            v4,
            Command::List(Some("INPUT".into()), Some(3)),
            ListOptions {
                numeric: true,
                ..none
            },
        ),
        (
            "-S INPUT 1",
            v4,
            Command::ListRules(Some("INPUT".into()), Some(1)),
            none,
        ),
        (
            "-D INPUT 4",
            v4,
            Command::DeleteNum("INPUT".into(), 4),
            none,
        ),
        ("-S", v4, Command::ListRules(None, None), none),
        ("-N MAIL", v4, Command::NewChain("MAIL".into()), none),
        (
            "-X MAIL",
            v4,
            Command::DeleteChain(Some("MAIL".into())),
            none,
        ),
        ("-X", v4, Command::DeleteChain(None), none),
        (
            "-E MAIL POST",
            v4,
            Command::RenameChain("MAIL".into(), "POST".into()),
            none,
        ),
        (
            "-L -n -v --line-numbers",
            v4,
            Command::List(None, None),
            ListOptions {
                numeric: true,
                verbose: true,
                exact: false,
                line_numbers: true,
                json: false,
            },
        ),
        (
            "-n -L INPUT -v -x",
            v4,
            Command::List(Some("INPUT".into()), None),
            ListOptions {
                numeric: true,
                verbose: true,
                exact: true,
                line_numbers: false,
                json: false,
            },
        ),
        ("-t filter -L", v4, Command::List(None, None), none),
        ("-w -L", v4, Command::List(None, None), none),
        ("-w 5 -W 100000 -L", v4, Command::List(None, None), none),
        (
            "-L -o json",
            v4,
            Command::List(None, None),
            ListOptions { json: true, ..none },
        ),
    ];
    for (line, family, command, list) in cases {
        let got = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(
            got,
            Invocation {
                family,
                table: Table::Filter,
                command,
                list
            },
            "{line}"
        );
    }
    assert!(matches!(
        parse("-I INPUT -j DROP").unwrap().command,
        Command::Insert(c, 1, _) if c == "INPUT"
    ));
    assert!(matches!(
        parse("-D INPUT -p tcp --dport 22 -j ACCEPT").unwrap().command,
        Command::DeleteSpec(c, _) if c == "INPUT"
    ));
}

/// Bad inputs with the message and exit status each must give.
#[test]
fn rejected_inputs() {
    let cases: &[(&str, &str, u8)] = &[
        ("", "no command specified", 2),
        ("-n", "no command specified", 2),
        ("-A", "option \"-A\" requires an argument", 2),
        ("-A INPUT -j SET --del-set x src --exist", "Flag `--exist' can be used with `--add-set' only", 2),
        ("-A INPUT -j NFLOG --nflog-threshold 5", "NFLOG --nflog-threshold is not supported by this version of fwctl", 2),
        ("-6 -A INPUT -f -j DROP", "-f is IPv4's: ip6tables has no fragment option", 2),
        ("-A INPUT -m ttl --ttl-gt 3 ! --ttl-lt 5 -j DROP", "ttl: Only one of the options may be given", 2),
        ("-A INPUT -m ttl ! --ttl-gt 3 -j DROP", "ttl: option \"--ttl-gt\" cannot be inverted.", 2),
        ("-A INPUT -m addrtype --dst-type LOCAL,BROADCAST -j DROP", "addrtype: several types without `!' (\"LOCAL,BROADCAST\") are not supported by this version of fwctl: write one rule per type", 2),
        ("-A INPUT -m mac --mac-source 52:54:00:ab:cd -j DROP", "Bad mac address \"52:54:00:ab:cd\"", 2),
        ("-A INPUT -m iprange --src-range 10.0.0.1 -j DROP", "iprange: bad range `10.0.0.1': FROM-TO, addresses of one family", 2),
        ("-A INPUT -m pkttype --pkt-type sometimes -j DROP", "Bad packet type 'sometimes'", 2),
        ("-A INPUT -m length --length 9:3 -j DROP", "length: bad value for --length `9:3': N or MIN:MAX, 0 to 65535", 2),
        ("-A INPUT --log-prefix x -j LOG", "unknown option \"--log-prefix\": it goes after -j LOG", 2),
        ("-A INPUT -j LOG --log-level 9", "log-level `9' unknown: use 0 to 7 or a syslog name", 2),
        ("-A INPUT -j LOG --log-prefix 123456789012345678901234567890", "Maximum prefix length 29 for --log-prefix: `123456789012345678901234567890' is 30", 2),
        ("-A INPUT -j", "option \"-j\" requires an argument", 2),
        ("-A INPUT -p foo -j ACCEPT", "unknown protocol \"foo\" specified", 2),
        ("-A INPUT -p 256 -j ACCEPT", "unknown protocol \"256\" specified", 2),
        ("-A INPUT --dport 22 -j ACCEPT", "unknown option \"--dport\": port matches need -p tcp or -p udp (or -m tcp, -m udp) before them", 2),
        ("-A INPUT -p icmp --dport 22 -j ACCEPT", "unknown option \"--dport\": port matches need -p tcp or -p udp (or -m tcp, -m udp) before them", 2),
        ("-A INPUT ! -p tcp --dport 22 -j ACCEPT", "unknown option \"--dport\": port matches need -p tcp or -p udp (or -m tcp, -m udp) before them", 2),
        ("-A INPUT -p tcp --dport 70000 -j ACCEPT", "invalid port/service `70000' specified", 2),
        ("-A INPUT -p tcp --dport nosuchservice -j ACCEPT", "invalid port/service `nosuchservice' specified", 2),
        ("-A INPUT -p tcp --dport 20:10 -j ACCEPT", "invalid portrange `20:10': the first port is above the second", 2),
        ("-A INPUT -s 300.1.1.1 -j ACCEPT", "host/network `300.1.1.1' not found", 2),
        ("-A INPUT -s 10.0.0.0/33 -j ACCEPT", "invalid mask `33' specified", 2),
        ("-A INPUT -s 10.0.0.0/255.0.255.0 -j ACCEPT", "invalid mask `255.0.255.0' specified", 2),
        ("-A INPUT -s ::1 -j ACCEPT", "host/network `::1' not found", 2),
        ("-A INPUT -s 1.1.1.1,bad -j ACCEPT", "host/network `bad' not found", 2),
        ("-A INPUT ! -s 1.1.1.1,2.2.2.2 -j ACCEPT", "! not allowed with multiple source or destination IP addresses", 2),
        ("-6 -A INPUT -d 10.0.0.1 -j ACCEPT", "host/network `10.0.0.1' not found", 2),
        ("-A INPUT -i averyveryverylongname -j ACCEPT", "interface name `averyveryverylongname' must be 1 to 15 characters", 2),
        ("-A INPUT -m recent --update --seconds 60 --hitcount 256 -j DROP", "recent: bad --hitcount `256': a number below 256 (the kernel keeps at most 255 hits per address)", 2),
        ("-A INPUT -m tcp --dport 22 -j ACCEPT", "TCP match requires '-p tcp'", 2),
        ("-t mangle -A INPUT -j MARK", "MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required", 2),
        ("-t mangle -A INPUT -j MARK --set-mark 0x1ffffffff", "MARK: bad integer value for option \"--set-mark\", or out of range.", 2),
        ("-t mangle -A INPUT -j MARK --set-mark 1 --or-mark 2", "MARK target: Can't specify --set-mark twice", 2),
        ("-A INPUT --set-mark 1 -j MARK", "unknown option \"--set-mark\": it goes after -j MARK or -j CONNMARK", 2),
        ("-t raw -A PREROUTING -j CT", "-j CT does nothing without --notrack or --zone, the CT options fwctl supports", 2),
        ("-A INPUT -m policy --dir in", "policy match: --pol ipsec or --pol none is required", 2),
        ("-A INPUT -m policy --pol ipsec", "policy match: neither --dir in nor --dir out specified", 2),
        ("-A INPUT -m policy --dir in --pol ipsec --strict", "policy --strict is not supported by this version of fwctl (only --dir and --pol)", 2),
        ("-A INPUT -m policy --dir up --pol ipsec", "policy_parse: bad --dir argument `up'", 2),
        ("-t raw -A PREROUTING -j CT --zone mark", "CT --zone `mark': a zone number (0-65535); `mark' is not supported by this version of fwctl", 2),
        ("-t raw -A PREROUTING -j CT --zone 70000", "CT --zone `70000': a zone number (0-65535); `mark' is not supported by this version of fwctl", 2),
        ("-t raw -A PREROUTING -j CT --zone 1 --zone-orig 2", "CT: only one --zone, --zone-orig or --zone-reply", 2),
        ("-t raw -A PREROUTING -j CT --notrack --zone 3", "CT: --notrack with --zone is not supported by this version of fwctl", 2),
        ("-t raw -A PREROUTING -j CT --helper ftp", "CT --helper is not supported by this version of fwctl (only --notrack and --zone)", 2),
        ("-t mangle -A FORWARD -j TCPMSS --set-mss 1400", "TCPMSS target: only valid for -p tcp", 2),
        ("-t mangle -A FORWARD -p tcp -j TCPMSS", "TCPMSS target: At least one parameter is required: --set-mss or --clamp-mss-to-pmtu", 2),
        ("-t mangle -A FORWARD -p tcp -j TCPMSS --set-mss 70000", "TCPMSS: bad value for --set-mss `70000': 0 to 65535", 2),
        ("-t mangle -A FORWARD -j CONNMARK", "CONNMARK target: One of --set-xmark, --save-mark, --restore-mark (or --{and,or,xor,set}-mark) is required", 2),
        ("-t mangle -A FORWARD -j CONNMARK --save-mark --nfmask 0xff --mask 1", "CONNMARK: option \"--nfmask\" cannot be used together with \"--mask\".", 2),
        ("-A OUTPUT -m owner --suppl-groups --gid-owner 5 -j DROP", "owner: Bad value for \"--suppl-groups\" option: \"you need to use --gid-owner first\"", 2),
        ("-A OUTPUT -m owner --uid-owner nosuchuserhere -j DROP", "owner: Bad value for \"--uid-owner\" option: \"nosuchuserhere\" is no user or id range", 2),
        ("-A OUTPUT -m owner -j DROP", "owner: at least one of --uid-owner, --gid-owner or --socket-exists is required", 2),
        ("-A INPUT -m mark -j DROP", "mark match: option \"--mark\" must be specified", 2),
        ("-A INPUT -m mark --mark 1/x -j DROP", "mark match: bad value `1/x': VALUE[/MASK], 32 bits", 2),
        ("-A INPUT --mark 1 -j DROP", "unknown option \"--mark\"", 2),
        ("-A INPUT -m tcp -p udp --dport 5 -j ACCEPT", "TCP match requires '-p tcp'", 2),
        ("-A INPUT -m udp -p tcp --dport 22 -j ACCEPT", "UDP match requires '-p udp'", 2),
        ("-A INPUT -m icmp -p tcp -j ACCEPT", "icmp match requires '-p icmp'", 2),
        ("-A INPUT --s 1.2.3.4 -j ACCEPT", "option \"--s\" is ambiguous; possibilities: --source --src --set-counters", 2),
        ("-A INPUT -p tcp --d 22 -j ACCEPT", "option \"--d\" is ambiguous; possibilities: --delete --delete-chain --destination --dst --destination-port --dport", 2),
        ("-A INPUT -p tcp --dp 22 -j MASQUERADE --rand", "option \"--rand\" is ambiguous; possibilities: --random --random-fully", 2),
        ("-A INPUT -p tcp --dports 22,80 -j ACCEPT", "unknown option \"--dports\": it needs -m multiport", 2),
        ("-A INPUT -m multiport --dports 22,80 -j ACCEPT", "unknown option \"--dports\": port matches need -p tcp or -p udp (or -m tcp, -m udp) before them", 2),
        ("-A INPUT --limit 5/sec -j ACCEPT", "unknown option \"--limit\": it needs -m limit", 2),
        ("-A INPUT -m limit ! --limit 5/sec -j ACCEPT", "limit: option \"--limit\" cannot be inverted.", 2),
        ("-A INPUT -m limit --limit 5/fortnight -j ACCEPT", "bad rate \"5/fortnight\"'", 2),
        ("-A INPUT -m limit --limit 20000/sec -j ACCEPT", "Rate too fast \"20000/sec\"", 2),
        ("-A INPUT -m limit --limit-burst 0 -j ACCEPT", "bad --limit-burst \"0\" (1 to 10000)", 2),
        ("-A INPUT -m hashlimit --hashlimit-upto 5/sec -j ACCEPT", "hashlimit: option \"--hashlimit-name\" must be specified", 2),
        ("-A INPUT -m hashlimit --hashlimit-name x -j ACCEPT", "hashlimit: option \"--hashlimit-upto\" must be specified", 2),
        ("-A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-name x --hashlimit-mode srcmac -j ACCEPT", "hashlimit: bad mode \"srcmac\"", 2),
        ("-A INPUT -m hashlimit --hashlimit-upto 5kb/s --hashlimit-name x -j ACCEPT", "hashlimit: byte rates (\"5kb/s\") are not supported", 2),
        ("-A INPUT -m connlimit --connlimit-mask 24 -j DROP", "connlimit: option \"--connlimit-above\" or \"--connlimit-upto\" must be specified", 2),
        ("-A INPUT -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16 -j ACCEPT", "too many ports in `1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16': multiport takes at most 15 (a range counts 2)", 2),
        ("-A INPUT --icmp-type 8 -j ACCEPT", "unknown option \"--icmp-type\": it needs -p icmp before it", 2),
        ("-A INPUT -p icmp --icmp-type bogus -j ACCEPT", "Invalid ICMP type `bogus'", 2),
        ("-6 -A INPUT -p icmpv6 --icmpv6-type any -j ACCEPT", "Invalid ICMP type `any'", 2),
        ("-A INPUT --syn -j ACCEPT", "unknown option \"--syn\": it needs -p tcp before it", 2),
        ("-A INPUT -p tcp --tcp-flags SYN,BOGUS SYN -j ACCEPT", "Unknown TCP flag `BOGUS'", 2),
        ("-A INPUT -p tcp --tcp-flags SYN -j ACCEPT", "--tcp-flags requires two arguments: MASK COMP", 2),
        ("-A INPUT --ctstate NEW -j ACCEPT", "unknown option \"--ctstate\": it needs -m conntrack", 2),
        ("-A INPUT -m conntrack --ctstate NEW,BOGUS -j ACCEPT", "Bad ctstate \"BOGUS\"", 2),
        ("-A INPUT -m state --ctstate NEW -j ACCEPT", "unknown option \"--ctstate\": it needs -m conntrack", 2),
        ("-A INPUT --match-set bl src -j ACCEPT", "unknown option \"--match-set\": each one needs its own -m set", 2),
        ("-A INPUT -m set --match-set bl src --match-set b2 src -j ACCEPT", "unknown option \"--match-set\": each one needs its own -m set", 2),
        ("-A INPUT -m set --match-set bl -j ACCEPT", "--match-set requires two args: NAME src|dst[,src|dst]", 2),
        ("-A INPUT -m set --match-set bl source -j ACCEPT", "You must specify (the comma separated list of) 'src' or 'dst', not `source'", 2),
        ("-A INPUT -m set --match-set bl src --return-nomatch -j ACCEPT", "--return-nomatch is not supported by this version of fwctl", 2),
        ("-A INPUT --comment hi -j ACCEPT", "unknown option \"--comment\": it needs -m comment", 2),
        ("-A INPUT ! -j ACCEPT", "cannot have ! before -j", 2),
        ("-A INPUT ! ! -s 1.1.1.1 -j ACCEPT", "multiple `!' flags not allowed", 2),
        ("-A INPUT -j ACCEPT !", "`!' at the end of the command: negate what?", 2),
        ("-A INPUT -j ACCEPT -I INPUT", "Can't use -I with -A", 2),
        ("-A INPUT --bogus -j ACCEPT", "unknown option \"--bogus\"", 2),
        ("-A INPUT stray -j ACCEPT", "Bad argument `stray'", 2),
        ("-P INPUT", "-P requires a chain and a policy (ACCEPT or DROP)", 2),
        ("-P INPUT REJECT", "Bad policy name `REJECT': use ACCEPT or DROP", 2),
        ("-P MAIL DROP", "Bad built-in chain name `MAIL': policies belong to INPUT, FORWARD and OUTPUT", 1),
        ("-D INPUT 0", "Invalid rule number `0': rules are numbered from 1", 2),
        ("-I INPUT 0 -j ACCEPT", "Invalid rule number `0': rules are numbered from 1", 2),
        ("-L -p tcp", "Illegal option with -L: rule options go with -A, -I, -D or -C", 2),
        ("-N averyveryveryveryverylongchainname", "chain name `averyveryveryveryverylongchainname' must be 1 to 28 characters", 2),
        ("-E MAIL", "-E requires the old and the new chain name", 2),
        ("-R INPUT -j DROP", "-R requires a chain and a rule number", 2),
        ("-R INPUT 1 -s 1.1.1.1,2.2.2.2 -j DROP", "-R takes one source and one destination address, not lists", 2),
        ("-t broute -L", "table `broute' is not supported: fwctl manages the filter, nat, mangle, raw and security tables", 3),
        ("-t nat -A POSTROUTING -j SNAT", "SNAT needs --to-source ADDR[:PORT]", 2),
        ("-A INPUT -p udp -j REJECT --reject-with tcp-reset", "--reject-with tcp-reset needs -p tcp", 2),
        ("-A INPUT -j REJECT --reject-with icmp6-port-unreachable", "unknown reject type \"icmp6-port-unreachable\" (iptables knows icmp-net-unreachable, icmp-host-unreachable, icmp-proto-unreachable, icmp-port-unreachable, icmp-net-prohibited, icmp-host-prohibited, tcp-reset, icmp-admin-prohibited)", 2),
        ("-6 -A INPUT -j REJECT --reject-with icmp-proto-unreachable", "unknown reject type \"icmp-proto-unreachable\" (ip6tables knows icmp6-no-route, icmp6-adm-prohibited, icmp6-addr-unreachable, icmp6-port-unreachable, tcp-reset, icmp6-policy-fail, icmp6-reject-route)", 2),
        ("-A INPUT --reject-with tcp-reset -j REJECT", "unknown option \"--reject-with\": it goes after -j REJECT", 2),
        ("-t nat -A PREROUTING -j DNAT", "DNAT needs --to-destination ADDR[:PORT]", 2),
        ("-A INPUT --to-source 1.2.3.4 -j ACCEPT", "unknown option \"--to-source\": it goes after -j SNAT", 2),
        ("-t nat -A POSTROUTING -j SNAT --to-destination 1.2.3.4", "unknown option \"--to-destination\": it goes after -j DNAT", 2),
        ("-t nat -A PREROUTING -j DNAT --to-destination 10.0.0.1-10.0.0.5", "`10.0.0.1-10.0.0.5': address ranges are not supported by this version of fwctl: give one address", 2),
        ("-t nat -A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1:90-80", "invalid port range `90-80': the first port is above the second", 2),
        ("-t nat -A PREROUTING -j DNAT --to-destination 10.0.0.1:99", "NAT ports (99) need -p tcp or -p udp", 2),
        ("-t nat -A PREROUTING -j REDIRECT --to-ports 8080", "NAT ports (8080) need -p tcp or -p udp", 2),
        ("-t nat -A PREROUTING -p tcp --to-ports 8080 -j REDIRECT", "unknown option \"--to-ports\": it goes after -j MASQUERADE or -j REDIRECT", 2),
        ("-t nat -A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.300", "Bad IP address `10.0.0.300'", 2),
        ("-t nat -A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.0/24", "Bad IP address `10.0.0.0/24'", 2),
        ("-t nat -A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1:0", "Port `0' not valid", 2),
        ("-6 -t nat -A PREROUTING -p tcp -j DNAT --to-destination [2001:db8::1", "Bad IP address `[2001:db8::1'", 2),
        ("-t nat -A PREROUTING -j DNAT --to-destination 10.0.0.1 --random-fully", "unknown option \"--random-fully\": it goes after a NAT target that takes it (MASQUERADE, SNAT, DNAT, REDIRECT)", 2),
        ("-t nat -A POSTROUTING -j MASQUERADE --random --random", "option \"--random\" can only be used once.", 2),
        ("-L -o eth0", "-o eth0: an output interface goes with -A, -I, -D, -R or -C; `-o json' formats -L", 2),
    ];
    for (line, message, status) in cases {
        let err = parse(line).expect_err(line);
        assert_eq!(err.message, *message, "{line}");
        assert_eq!(err.status, *status, "{line}");
    }
}

/// Found by the rule_grammar fuzz target: `-p 00` was a match on protocol number 0, which
/// no packet carries as iptables reads it; iptables takes any spelling of 0 as `all`.
#[test]
fn protocol_zero_is_all_however_written() {
    for p in ["0", "00", "+0", "all", "ALL"] {
        assert_eq!(
            rule(&format!("-A INPUT -p {p} -j DROP")).proto,
            None,
            "-p {p}"
        );
    }
}

/// Found by the iptables_save fuzz target: `-p icmp --icmp-type 6 ... -p udp` was a UDP
/// rule with an ICMP match, saved as a line `fwctl restore` refuses. iptables refuses a
/// second -p, -s, -d or -i.
#[test]
fn options_iptables_takes_once_are_refused_twice() {
    for line in [
        "-A INPUT -p icmp --icmp-type 6 -j DROP -p udp",
        "-A INPUT -p all -p tcp -j DROP",
        "-A INPUT -s 10.0.0.1 -s 10.0.0.2 -j DROP",
        "-A INPUT -d 10.0.0.1 ! -d 10.0.0.2 -j DROP",
        "-A INPUT -i eth0 -i eth1 -j DROP",
    ] {
        let err = parse(line).expect_err(line);
        assert!(err.message.contains("multiple"), "{line}: {err}");
    }
}

/// Found by the rule_grammar fuzz target (fuzz/seeds/rule_grammar/found-module-order): a
/// `-m comment` without `--comment` kept its place in the rule's module order but saved
/// nothing, so the save read back in another order. iptables 1.8.9 refuses a module
/// without its required option, and a second `-j`; each line here was given to it.
#[test]
fn modules_without_their_option_and_two_targets_are_refused() {
    let cases = [
        ("-A INPUT -m comment -j ACCEPT", "comment: option \"--comment\" must be specified"),
        ("-A INPUT -j ACCEPT -j DROP", "multiple -j flags not allowed"),
        ("-A INPUT -j ACCEPT -j ACCEPT", "multiple -j flags not allowed"),
        ("-A INPUT -m set -j DROP", "You must specify `--match-set' with proper arguments"),
        ("-A INPUT -m conntrack -j ACCEPT", "conntrack: At least one option is required"),
        ("-A INPUT -m state", "state: option \"--state\" must be specified"),
        ("-A INPUT -m multiport -p tcp", "multiport expection an option"),
        (
            "-A INPUT -p tcp --dport 22 -m comment -m set --match-set bl src -m connlimit --connlimit-above 2 -m set --match-set svcc dst,src -j DROP",
            "comment: option \"--comment\" must be specified",
        ),
    ];
    for (line, message) in cases {
        let err = parse(line).expect_err(line);
        assert_eq!(err.message, message, "{line}");
    }
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/seeds/rule_grammar/found-module-order"
    ))
    .expect("the fuzz input");
    let args = crate::rules::restore::words(text.trim_end()).expect("words");
    assert_eq!(
        parse_args(&args).expect_err("two -j").message,
        "multiple -j flags not allowed"
    );
}

/// iptables 1.8.9 refuses an icmp match without `--icmp-type` (each load needs its own),
/// where a bare `-m tcp` or `-m udp` is a match of its own (listed, see cli/list.rs).
#[test]
fn icmp_matches_without_their_type_are_refused() {
    let cases = [
        (
            "-A INPUT -p icmp -m icmp -j ACCEPT",
            "icmp: option \"--icmp-type\" must be specified",
        ),
        (
            "-A INPUT -m icmp -p icmp -j ACCEPT",
            "icmp: option \"--icmp-type\" must be specified",
        ),
        (
            "-A INPUT -p icmp -m icmp --icmp-type 8 -m icmp -j ACCEPT",
            "icmp: option \"--icmp-type\" must be specified",
        ),
        (
            "-6 -A INPUT -p icmpv6 -m icmp6 -j ACCEPT",
            "icmp6: option \"--icmpv6-type\" must be specified",
        ),
    ];
    for (line, message) in cases {
        let err = parse(line).expect_err(line);
        assert_eq!((err.message.as_str(), err.status), (message, 2), "{line}");
    }
    assert!(parse("-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT").is_ok());
    // The bare match is in the rule: -D and -C tell it from the rule without it.
    assert_ne!(
        rule("-A INPUT -p tcp -m tcp -j ACCEPT"),
        rule("-A INPUT -p tcp -j ACCEPT")
    );
}

/// Matches list and save in the order given, each load of a module in its place:
/// iptables 1.8.9 saved each line as written.
#[test]
fn repeated_modules_keep_their_places() {
    for line in [
        "-m set --match-set a src -m connlimit --connlimit-above 3 --connlimit-mask 32 --connlimit-saddr -m set --match-set b src -j DROP",
        "-m mark --mark 0x1 -m set --match-set a src -m mark --mark 0x2",
        "-p tcp -m set --match-set a src -m tcp --dport 22 -m set ! --match-set b dst,src -m connlimit --connlimit-upto 2 --connlimit-mask 32 --connlimit-saddr",
    ] {
        let first = crate::cli::list::rule_args(&rule(&format!("-A INPUT {line}")));
        assert_eq!(first, line);
        let again = crate::cli::list::rule_args(&rule(&format!("-A INPUT {first}")));
        assert_eq!(again, first, "{line}");
    }
}

/// `-m conntrack` options beyond the state: refusals as iptables 1.8.9 words them, and
/// the state beside other options where xt_conntrack would skip them.
#[test]
fn conntrack_options_refused_as_iptables_does() {
    let cases = [
        ("-A INPUT -m conntrack ! --ctdir REPLY", "conntrack: option \"--ctdir\" cannot be inverted."),
        ("-A INPUT -m conntrack --ctproto 6 --ctproto 17", "conntrack: option \"--ctproto\" can only be used once."),
        ("-A INPUT -m conntrack --ctorigsrc fd00::1", "conntrack: bad --ctorigsrc `fd00::1': an address of the rule's family, with an optional /prefix or netmask"),
        ("-A INPUT -m conntrack --ctstatus FOO", "conntrack: bad --ctstatus `FOO': NONE, EXPECTED, SEEN_REPLY, ASSURED, CONFIRMED, comma-separated"),
        ("-A INPUT -m conntrack ! --ctstate NEW --ctorigdstport 22", "conntrack: ! --ctstate NEW with other conntrack options: xt_conntrack ignores them for packets without a connection, which fwctl's nftables rules cannot say; give the state in a -m conntrack of its own"),
        ("-A INPUT --ctstate NEW", "unknown option \"--ctstate\": it needs -m conntrack"),
    ];
    for (line, message) in cases {
        let err = parse(line).expect_err(line);
        assert_eq!(err.message, message, "{line}");
    }
    // The state alone stays the rule's (XDP judges it); with more it is netfilter's.
    let r = rule("-A INPUT -m conntrack --ctstate NEW -j ACCEPT");
    assert!(r.ctstate.is_some() && r.nf.is_empty());
    let r = rule("-A INPUT -m conntrack --ctstate NEW --ctorigdstport 22 -j ACCEPT");
    assert!(r.ctstate.is_none() && r.nf.len() == 1);
}

/// Found by the iptables_save fuzz target (fuzz/seeds/iptables_save/found-log-prefix-newline):
/// an open quote ran a LOG prefix to the end of its line, newline included, which the save
/// then split over two lines. iptables-restore 1.8.9 refuses it (for NFLOG with the same
/// words); a comment keeps its newline.
#[test]
fn newlines_refused_in_log_prefixes() {
    for text in [
        "*filter\n-A INPUT -j LOG --log-prefix \"abc\nCOMMIT\n",
        "*filter\n-A INPUT -j NFLOG --nflog-prefix \"abc\nCOMMIT\n",
    ] {
        let err = crate::rules::restore::restore(text, Family::V4, &Default::default(), false)
            .err()
            .expect(text);
        assert_eq!(
            (err.line, err.message.as_str()),
            (2, "Newlines not allowed in --log-prefix"),
            "{text}"
        );
    }
}

/// `-j SET`'s refusals, in iptables 1.8.9's words where it has them.
#[test]
fn set_target_refusals() {
    let cases = [
        (
            "-A INPUT -j SET",
            "You must specify either `--add-set' or `--del-set' or `--map-set'",
        ),
        (
            "-A INPUT -j SET --del-set s src --timeout 5",
            "Option `--timeout' can be used with `--add-set' only",
        ),
        (
            "-A INPUT -j SET --del-set s src --exist",
            "Flag `--exist' can be used with `--add-set' only",
        ),
        (
            "-A INPUT -j SET --add-set s src --add-set s dst",
            "--add-set can be specified only once",
        ),
        (
            "-A INPUT -j SET --add-set s",
            "--add-set requires two args.",
        ),
        (
            "-A INPUT -j SET --add-set s src --timeout x",
            "SET: bad --timeout `x': seconds, 32 bits",
        ),
        (
            "-A INPUT -j SET --map-set s src --map-mark",
            "SET --map-set is not supported by this version of fwctl",
        ),
        (
            "-A INPUT --add-set s src",
            "unknown option \"--add-set\": it goes after -j SET",
        ),
    ];
    for (line, message) in cases {
        let err = parse(line).expect_err(line);
        assert_eq!(err.message, message, "{line}");
    }
}

/// Found by the rule_grammar fuzz target (fuzz/seeds/rule_grammar/found-fragment-before-6):
/// `-f` before `-6` made an IPv6 rule with IPv4's fragment option, saved as a line that
/// does not read back.
#[test]
fn fragment_option_refused_in_ipv6_wherever_the_6_comes() {
    for line in [
        "-6 -A INPUT -f",
        "-A INPUT -f -6",
        "--fr -A INPUT -6 -j DROP",
    ] {
        let err = parse(line).expect_err(line);
        assert_eq!(
            err.message, "-f is IPv4's: ip6tables has no fragment option",
            "{line}"
        );
    }
}

/// Found by the rule_grammar fuzz target (fuzz/seeds/rule_grammar/found-recent-before-6):
/// a `-6` after a match whose options depend on the family (`-m recent`'s mask) left them
/// read for IPv4: the rule saved `--mask 255.255.255.255`, which does not read back as
/// IPv6. The family flag counts wherever it comes, as in ip6tables; both flags are refused.
#[test]
fn the_family_flag_counts_wherever_it_comes() {
    let save = |line: &str| {
        let specs = rules(line);
        assert_eq!(parse(line).expect(line).family, Family::V6, "{line}");
        crate::cli::list::rule_args(&specs[0])
    };
    let first = save("-6 -A INPUT -p udp -m recent --set --name T -m udp");
    assert!(
        first.contains("--mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        "{first}"
    );
    assert_eq!(
        save("-A INPUT -p udp -m recent --set --name T -6 -m udp"),
        first
    );
    assert_eq!(
        save("-A INPUT -p udp -m recent --set --name T -m udp --ipv6"),
        first
    );
    for line in ["-6 -A INPUT -4", "-A INPUT -4 -j DROP -6"] {
        let err = parse(line).expect_err(line);
        assert_eq!(
            err.message, "-4 and -6 cannot both be given: a rule has one family",
            "{line}"
        );
    }
}

/// `-m recent`: what fwctl refuses, with the option named.
#[test]
fn recent_refusals_name_the_option() {
    let cases = [
        (
            "-A INPUT -m recent --update --seconds 60 --hitcount x --name SSH",
            "recent: bad --hitcount `x'",
        ),
        (
            "-A INPUT -m recent --set --hitcount 3",
            "recent: --hitcount goes with --rcheck or --update only",
        ),
        (
            "-A INPUT -m recent --remove --rttl",
            "recent: --rttl goes with",
        ),
        (
            "-A INPUT -m recent --set --update",
            "recent: option \"--set\" cannot be used together with \"--update\".",
        ),
        (
            "-A INPUT -m recent --set --mask 255.0.255.0",
            "recent: bad --mask `255.0.255.0'",
        ),
        (
            "-A INPUT -m recent --name SSH",
            "recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'",
        ),
    ];
    for (line, start) in cases {
        let err = parse(line).expect_err(line);
        assert!(err.message.starts_with(start), "{line}: {}", err.message);
    }
}

/// `-m recent`'s combinations iptables 1.8.9 (or the kernel under it) refuses.
#[test]
fn recent_combinations_refused_as_iptables_does() {
    let cases = [
        ("-A INPUT -m recent --rcheck --reap", "recent: option \"--reap\" also requires \"--seconds\"."),
        ("-A INPUT -m recent --set --seconds 5", "recent: --seconds goes with --rcheck or --update only (the kernel refuses it otherwise)"),
        ("-A INPUT -m recent --remove --seconds 5", "recent: --seconds goes with --rcheck or --update only (the kernel refuses it otherwise)"),
    ];
    for (line, message) in cases {
        assert_eq!(parse(line).expect_err(line).message, message, "{line}");
    }
}

/// fwctl's nftables rule checks a rule's other matches before its `-m recent` and its rate
/// matches after: a rule where iptables' order would change a list, or spend a bucket, for
/// other packets is refused, naming the match to move. Checked against iptables 1.8.9 for
/// the first: `-p udp -m recent --set --name T -m udp --dport 7000` adds the sender of a
/// datagram to port 7005 to T.
#[test]
fn recent_refused_where_netfilter_would_judge_in_another_order() {
    let after = |m: &str| {
        format!("recent: a {m} match after -m recent --set, --update or --remove is not supported by this version of fwctl: netfilter would check it first, and the list would change only for packets it lets through (give it before -m recent)")
    };
    let cases = [
        ("-A INPUT -p udp -m recent --set --name T -m udp --dport 7000", after("udp")),
        ("-A INPUT -p udp -m recent --set --name T --dport 7000", after("udp")),
        ("-A INPUT -m recent --update --seconds 60 --name S -m state --state NEW", after("state")),
        ("-A INPUT -m recent --remove --name S -m mark --mark 1", after("mark")),
        (
            "-A INPUT -p tcp -m tcp --dport 22 -m recent --set --name S -m tcp --sport 5",
            after("tcp"),
        ),
        (
            "-A INPUT -m limit --limit 1/s -m recent --rcheck --name S",
            "recent: -m limit before -m recent is not supported by this version of fwctl: netfilter would check the list first, and the limit would count other packets than iptables' (give it after -m recent)".to_string(),
        ),
    ];
    for (line, message) in cases {
        let err = parse(line).expect_err(line);
        assert_eq!(err.message, message, "{line}");
    }
    for line in [
        "-A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -m recent --set --name SSH",
        "-A INPUT -m recent --rcheck --name S -m tcp -p tcp --dport 22 -j DROP",
        "-A INPUT -m recent --set --name S -m comment --comment x",
        "-A INPUT -p tcp -m recent --set --name S -m tcp",
        "-A INPUT -m recent --set --name A -m recent --rcheck --name B",
        "-A INPUT -m recent --update --seconds 5 --name S -m limit --limit 1/s",
    ] {
        assert!(parse(line).is_ok(), "{line}");
    }
}

/// An option of a protocol match given twice: in one load iptables 1.8.9 refuses it with
/// these words (each line given to it); in two loads (`--dport 22 -m tcp --dport 80`)
/// iptables requires both (no port is both), where fwctl would keep the last, so fwctl
/// refuses it.
#[test]
fn protocol_match_options_twice_refused() {
    let cases = [
        ("-A INPUT -p tcp --dport 22 --dport 80", "Only one `--destination-port' allowed"),
        ("-A INPUT -p tcp --source-port 1 --sport 2", "Only one `--source-port' allowed"),
        ("-A INPUT -p tcp --syn --syn", "Only one of `--syn' or `--tcp-flags'  allowed"),
        (
            "-A INPUT -p tcp --tcp-flags SYN SYN --syn",
            "Only one of `--syn' or `--tcp-flags'  allowed",
        ),
        (
            "-A INPUT -p udp --dport 1 --dport 2",
            "udp: option \"--destination-port\" can only be used once.",
        ),
        (
            "-A INPUT -p udp -m udp --sport 1 --sport 2",
            "udp: option \"--source-port\" can only be used once.",
        ),
        (
            "-A INPUT -p icmp --icmp-type 8 --icmp-type 0",
            "icmp: option \"--icmp-type\" can only be used once.",
        ),
        (
            "-6 -A INPUT -p icmpv6 --icmpv6-type 128 --icmpv6-type 129",
            "icmp6: option \"--icmpv6-type\" can only be used once.",
        ),
        (
            "-A INPUT -p tcp -m tcp --dport 22 -m tcp --dport 80",
            "--dport in two -m tcp of one rule is not supported by this version of fwctl: it keeps one per rule, where iptables requires both",
        ),
        (
            "-A INPUT -p tcp --syn -m tcp --syn",
            "--syn in two -m tcp of one rule is not supported by this version of fwctl: it keeps one per rule, where iptables requires both",
        ),
        (
            "-A INPUT -p icmp --icmp-type 8 -m icmp --icmp-type 0",
            "--icmp-type in two -m icmp of one rule is not supported by this version of fwctl: it keeps one per rule, where iptables requires both",
        ),
    ];
    for (line, message) in cases {
        let err = parse(line).expect_err(line);
        assert_eq!((err.message.as_str(), err.status), (message, 2), "{line}");
    }
    // Different options in two loads are one match, as iptables-nft lists them.
    assert!(parse("-A INPUT -p tcp --dport 22 -m tcp --sport 5").is_ok());
}
