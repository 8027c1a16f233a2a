//! fwctl against real iptables, on the wire, and rules changed under traffic.
//!
//! Differential: twin hosts with the same addresses, one running iptables (nf_tables
//! backend, `iptables-restore`), the other fwctl (`fwctl restore`, XDP attached), get the
//! same frames from one client namespace; the per-rule and policy counters of `-L -v -x -n`
//! must be the same text. The client sends crafted frames through AF_PACKET and has no IP
//! stack of its own (IPv6 disabled, no addresses), so nothing but the corpus reaches the
//! hosts: no neighbour discovery, MLD or router solicitations to exclude. OUTPUT is left out
//! of the comparison: it holds the hosts' own answers (RSTs, ICMP errors, MLD reports),
//! which neither fwctl's XDP program nor this test is about.
//!
//! Atomicity: a client pushes UDP of four classes while two rulesets are applied in turn;
//! no packet may get a verdict neither ruleset gives, and every packet sent is either
//! received or counted as dropped.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tests::{
    packets::{Packet, L4},
    twins::{
        checksummed, restore_text, wire, Twins, HOST4, HOST4_B, HOST6, HOST6_B, REPLY_PORT,
        SOURCES4, SOURCES6,
    },
    FwNs, Lab, CLIENT_V4, HOST_IF, HOST_V4,
};

/// One ruleset of the corpus, as iptables commands (`-P`, `-N`, `-A`) per family.
struct Case {
    name: &'static str,
    v4: &'static [&'static str],
    v6: &'static [&'static str],
}

const CLASSIC: &[&str] = tests::CLASSIC_RULESET;

const CASES: &[Case] = &[
    Case {
        name: "classic how-to",
        v4: CLASSIC,
        v6: CLASSIC,
    },
    // Per-hour rates: no token comes back while the corpus is sent, so the counts are
    // exact on both sides.
    Case {
        name: "rate limits",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -p udp -m limit --limit 1/hour --limit-burst 3 -j ACCEPT",
            "-A INPUT -p tcp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-name dtcp -j ACCEPT",
            "-A INPUT -p icmp -m hashlimit --hashlimit-above 1/hour --hashlimit-burst 1 --hashlimit-mode srcip,dstip --hashlimit-name dicmp -j DROP",
            "-A INPUT -p icmp -j ACCEPT",
        ],
        v6: &[
            "-P INPUT DROP",
            "-A INPUT -p tcp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 --hashlimit-mode srcip,dstport --hashlimit-srcmask 64 --hashlimit-name d6 -j ACCEPT",
            "-A INPUT -m limit --limit 2/hour -j ACCEPT",
        ],
    },
    // The kernel's xt_string on both sides (fwctl's through nft_compat in its IPv4 and
    // IPv6 tables): offsets count from the network header, so ports sit at 20 (IPv4) and 40.
    Case {
        name: "string match",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -p udp -m string --algo bm --hex-string |0035| --from 20 --to 24 -j ACCEPT",
            "-A INPUT -p udp -m string --algo kmp --hex-string |abababab| -j DROP",
            "-A INPUT -p tcp -m string --algo bm ! --hex-string |0016| --from 20 --to 24 -j ACCEPT",
            "-A INPUT -p icmp -m string --algo bm --string \"A\\\"B\" --icase",
            "-A INPUT -p icmp -j ACCEPT",
        ],
        v6: &[
            "-P INPUT DROP",
            "-A INPUT -p udp -m string --algo kmp --hex-string |0035| --from 40 --to 44 -j ACCEPT",
            "-A INPUT -p tcp -m string --algo bm ! --string ab --to 60 -j ACCEPT",
        ],
    },
    // The kernel's xt_u32 likewise: words from the network header on, `@` follows the
    // IPv4 header length to the transport header.
    Case {
        name: "u32 match",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -m u32 --u32 \"6&0xFF=17 && 0>>22&0x3C@0&0xFFFF=53,123:514\" -j ACCEPT",
            "-A INPUT -m u32 --u32 \"6 & 0xFF = 6 && 0>>22&0x3C@0&0xFFFF=22,80:443\" -j DROP",
            "-A INPUT -p tcp -m u32 ! --u32 \"0>>22&0x3C@12>>16&0x3F=0x10\" -j ACCEPT",
            "-A INPUT -m u32 ! --u32 \"6&0xFF=1\" -j ACCEPT",
        ],
        v6: &[
            "-P INPUT DROP",
            "-A INPUT -m u32 --u32 \"4>>8&0xFF=17 && 40&0xFFFF=53:0x1388\" -j ACCEPT",
            "-A INPUT -m u32 --u32 \"4>>8&0xFF=6\" -j ACCEPT",
        ],
    },
    // Both kernels count the same packets in the same order: nth is exact, and so are
    // probabilities 0 and 1; no connection here has a helper's master.
    Case {
        name: "statistic and helper",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -p udp -m statistic --mode nth --every 3 --packet 1 -j ACCEPT",
            "-A INPUT -p udp -m statistic --mode nth ! --every 2 --packet 0 -j DROP",
            "-A INPUT -p tcp -m statistic --mode random --probability 1 -m helper --helper ftp -j DROP",
            "-A INPUT -p tcp -m helper ! --helper ftp -m statistic --mode random ! --probability 0 -j ACCEPT",
            "-A INPUT -m statistic --mode random --probability 0 -j DROP",
        ],
        v6: &[
            "-A INPUT -m statistic --mode nth --every 5 --packet 4 -j DROP",
        ],
    },
    // Conntrack's counters, as the connections' packets (replies included) raise them;
    // XDP leaves the family to netfilter, which counts what iptables counts.
    Case {
        name: "connbytes",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -p udp --dport 53 -j DROP",
            "-A INPUT -m connbytes --connbytes 2: --connbytes-dir both --connbytes-mode packets -j ACCEPT",
            "-A INPUT -p udp -m connbytes ! --connbytes 1:1 --connbytes-dir original --connbytes-mode packets -j DROP",
            "-A INPUT -p tcp -m connbytes --connbytes 0:60 --connbytes-dir original --connbytes-mode avgpkt -j ACCEPT",
        ],
        v6: &[
            "-A INPUT -p tcp --dport 22 -j DROP",
            "-A INPUT -m connbytes --connbytes 100: --connbytes-dir original --connbytes-mode bytes -j DROP",
        ],
    },
    // The kernel's clock on both sides; dates far from the test's day keep it exact.
    Case {
        name: "time",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -p udp -m time --datestop 2020-01-01 -j ACCEPT",
            "-A INPUT -p udp -m time --datestart 2021-06-01T12:00 --timestart 00:00 --timestop 23:59:59 -j ACCEPT",
            "-A INPUT -p tcp -m time ! --weekdays Mon,Tue,Wed,Thu,Fri,Sat,Sun -j ACCEPT",
            "-A INPUT -p tcp -m time ! --monthdays 31 --datestart 1990 --kerneltz -j DROP",
            "-A INPUT -m time -j ACCEPT",
        ],
        v6: &[
            "-A INPUT -p tcp -m time --datestart 2037-12-31 -j DROP",
            "-A INPUT -p udp -m time --weekdays 1,2,3,4,5,6,7 -j DROP",
        ],
    },
    // Nothing listens on the queues: without --queue-bypass the kernel drops the packet.
    Case {
        name: "nfqueue",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -p udp --dport 53 -j NFQUEUE --queue-num 5 --queue-bypass",
            "-A INPUT -p udp -j NFQUEUE --queue-balance 6:7",
            "-A INPUT -p tcp --dport 22 -j ACCEPT",
            "-A INPUT -p tcp -j NFQUEUE --queue-num 8 --queue-bypass",
        ],
        v6: &[
            "-A INPUT -p tcp -j NFQUEUE --queue-num 5",
            "-A INPUT -p udp -j DROP",
        ],
    },
    // The kernel's xt_recent on both sides: the corpus sends each source's packets in the
    // same order to both, so hit counts, TTLs, masks and removals agree packet for packet.
    // Lists are the namespace's, by name: these names are this case's alone.
    Case {
        name: "recent lists",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -p udp -m recent --update --seconds 3600 --hitcount 4 --name dr4 -j DROP",
            "-A INPUT -p udp -m recent --set --name dr4 -j ACCEPT",
            "-A INPUT -p tcp --dport 22 -m recent --rcheck --seconds 3600 --rttl --name dr4 -j ACCEPT",
            "-A INPUT -p tcp --dport 80 -m recent ! --set --name dt4 --rdest -j DROP",
            "-A INPUT -p tcp -m recent --update --seconds 3600 --hitcount 2 --mask 255.255.255.0 --name dm4 -j ACCEPT",
            "-A INPUT -p tcp -m recent --set --mask 255.255.255.0 --name dm4",
            "-A INPUT -s 10.231.0.5 -p icmp -m recent --remove --name dr4 -j ACCEPT",
            "-A INPUT -p icmp -m recent ! --rcheck --name dr4 -j ACCEPT",
        ],
        v6: &[
            "-P INPUT DROP",
            "-A INPUT -p tcp -m recent --update --seconds 3600 --hitcount 3 --name dr6 -j DROP",
            "-A INPUT -p tcp -m recent --set --name dr6",
            "-A INPUT -p udp -m recent --rcheck --name dr6 -j ACCEPT",
        ],
    },
    // Netfilter-only matches on the packet's own fields, and marks set and read in one
    // pass (MARK and CONNMARK go on to the next rule). Not bridged: physdev's negation holds.
    Case {
        name: "packet fields and marks",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -p udp --dport 53 -m addrtype --dst-type LOCAL -j ACCEPT",
            "-A INPUT -p udp -m length --length 0:40 -j ACCEPT",
            "-A INPUT -p tcp --dport 80 -m ttl --ttl-gt 63 -j ACCEPT",
            "-A INPUT -p tcp -m iprange --src-range 10.231.0.1-10.231.0.5 -j DROP",
            "-A INPUT -p icmp -m pkttype --pkt-type unicast -j MARK --set-mark 7",
            "-A INPUT -m mark --mark 7 -j CONNMARK --save-mark",
            "-A INPUT -m connmark --mark 7 -j ACCEPT",
            "-A INPUT -p tcp --dport 443 -m addrtype ! --src-type LOCAL -j REJECT --reject-with icmp-host-prohibited",
            "-A INPUT -p tcp --dport 25 -m mac ! --mac-source 02:00:00:00:00:09 -j ACCEPT",
            "-A INPUT -p tcp --dport 110 -m physdev ! --physdev-is-bridged -j ACCEPT",
            "-A INPUT -p tcp -j NFLOG --nflog-group 9",
        ],
        v6: &[
            "-P INPUT DROP",
            "-A INPUT -p tcp --dport 22 -m hl --hl-eq 64 -j DROP",
            "-A INPUT -m iprange --src-range fd00:231::1-fd00:231::5 -j DROP",
            "-A INPUT -m length --length 0:80 -j ACCEPT",
            "-A INPUT -p udp -m physdev --physdev-is-in -j DROP",
        ],
    },
    Case {
        name: "empty, policy accept",
        v4: &[],
        v6: &[],
    },
    Case {
        name: "empty, policy drop",
        v4: &["-P INPUT DROP"],
        v6: &["-P INPUT DROP"],
    },
    Case {
        name: "source and destination prefixes",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -s 10.231.0.0/29 -p tcp -j ACCEPT",
            "-A INPUT -s 192.0.2.0/24 -p udp -j ACCEPT",
            "-A INPUT -d 10.231.1.2 -j DROP",
            "-A INPUT -s 10.231.0.64/255.255.255.192 -j ACCEPT",
            "-A INPUT -d 10.231.0.0/16 -p icmp -j ACCEPT",
        ],
        v6: &[
            "-P INPUT DROP",
            "-A INPUT -s fd00:231::/125 -p tcp -j ACCEPT",
            "-A INPUT -s 2001:db8::/32 -p udp -j ACCEPT",
            "-A INPUT -d fd00:231:1::2 -j DROP",
            "-A INPUT -d fd00:231::/48 -p icmpv6 -j ACCEPT",
        ],
    },
    Case {
        name: "comma lists",
        v4: &[
            "-A INPUT -s 10.231.0.1,192.0.2.9 -p tcp -j ACCEPT",
            "-A INPUT -d 10.231.0.2,10.231.1.2/32 -p udp --dport 53 -j ACCEPT",
            "-A INPUT -s 10.231.0.5,10.231.0.66/31 -d 10.231.1.2,10.231.0.2 -j DROP",
            "-A INPUT -s 192.0.2.0/25,10.231.0.64/26 -p icmp -j DROP",
        ],
        v6: &[
            "-A INPUT -s fd00:231::1,2001:db8:5::9 -p tcp -j ACCEPT",
            "-A INPUT -s fd00:231::5,2001:db8::/32 -d fd00:231:1::2,fd00:231::2 -j DROP",
        ],
    },
    Case {
        name: "negations",
        v4: &[
            "-A INPUT ! -s 10.231.0.0/24 -j DROP",
            "-A INPUT -p tcp ! --dport 22 ! --sport 1:1023 -j DROP",
            "-A INPUT ! -p icmp ! -d 10.231.1.2 -j ACCEPT",
            "-A INPUT -p udp ! --sport 53 -j DROP",
            "-A INPUT ! -i fwdh0 -j DROP",
            "-A INPUT -p tcp ! --dport 100:200 -j ACCEPT",
        ],
        v6: &[
            "-A INPUT ! -s fd00:231::/64 -j DROP",
            "-A INPUT -p tcp ! --dport 22 -j DROP",
            "-A INPUT ! -p ipv6-icmp -j ACCEPT",
        ],
    },
    Case {
        name: "multiport",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -p tcp -m multiport --dports 22,80,443 -j ACCEPT",
            "-A INPUT -p udp -m multiport --sports 53,123 -j ACCEPT",
            "-A INPUT -p tcp -m multiport ! --dports 1:1024,8080 -j DROP",
            "-A INPUT -p tcp -m multiport --ports 25,587 -j ACCEPT",
            "-A INPUT -p udp -m multiport --dports 500:600,5000 -j ACCEPT",
            "-A INPUT -p udp -m multiport ! --sports 53,123 -j DROP",
        ],
        v6: &[
            "-P INPUT DROP",
            "-A INPUT -p tcp -m multiport --dports 22,443 -j ACCEPT",
            "-A INPUT -p udp -m multiport ! --dports 53,546 -j ACCEPT",
        ],
    },
    Case {
        name: "ICMP types",
        v4: &[
            "-A INPUT -p icmp --icmp-type echo-request -j ACCEPT",
            "-A INPUT -p icmp --icmp-type 3/4 -j ACCEPT",
            "-A INPUT -p icmp --icmp-type time-exceeded -j ACCEPT",
            "-A INPUT -p icmp ! --icmp-type 0 -j DROP",
            "-A INPUT -p icmp --icmp-type any -j ACCEPT",
            "-A INPUT -p icmp --icmp-type destination-unreachable -j DROP",
        ],
        v6: &[
            "-A INPUT -p icmpv6 --icmpv6-type echo-request -j ACCEPT",
            "-A INPUT -p ipv6-icmp --icmpv6-type 1/3 -j ACCEPT",
            "-A INPUT -p icmpv6 --icmpv6-type packet-too-big -j DROP",
            "-A INPUT -p icmpv6 ! --icmpv6-type 135 -j DROP",
        ],
    },
    Case {
        name: "TCP flags and --syn",
        v4: &[
            "-A INPUT -p tcp --tcp-flags ALL NONE -j DROP",
            "-A INPUT -p tcp --tcp-flags FIN,PSH,URG FIN,PSH,URG -j DROP",
            "-A INPUT -p tcp --tcp-flags SYN,FIN SYN,FIN -j DROP",
            "-A INPUT -p tcp --dport 22 --syn -j ACCEPT",
            "-A INPUT -p tcp --tcp-flags SYN,ACK SYN,ACK -j DROP",
            "-A INPUT -p tcp ! --syn -j ACCEPT",
            "-A INPUT -p tcp --syn -j DROP",
        ],
        v6: &[
            "-A INPUT -p tcp --syn -j DROP",
            "-A INPUT -p tcp --tcp-flags ACK ACK -j ACCEPT",
        ],
    },
    Case {
        name: "user chains with RETURN",
        v4: &[
            "-P INPUT DROP",
            "-N SVC",
            "-N BLOCK",
            "-A INPUT -j BLOCK",
            "-A INPUT -p tcp -j SVC",
            "-A INPUT -p udp --dport 53 -j ACCEPT",
            "-A BLOCK -s 10.231.0.66 -j DROP",
            "-A BLOCK -s 192.0.2.0/24 -p tcp -j DROP",
            "-A BLOCK -j RETURN",
            "-A SVC -p tcp --dport 22 -j ACCEPT",
            "-A SVC -s 10.231.0.5 -j RETURN",
            "-A SVC -p tcp --dport 80:443 -j ACCEPT",
        ],
        v6: &[
            "-N SVC",
            "-A INPUT -p tcp -j SVC",
            "-A INPUT -j DROP",
            "-A SVC -s fd00:231::5 -j RETURN",
            "-A SVC -j ACCEPT",
        ],
    },
    Case {
        name: "nested chains, one jumped to twice, RETURN from INPUT",
        v4: &[
            "-P INPUT DROP",
            "-N OUTER",
            "-N INNER",
            "-N EMPTY",
            "-A INPUT -j EMPTY",
            "-A INPUT -p tcp -j OUTER",
            "-A INPUT -p udp -j INNER",
            "-A INPUT -s 10.231.0.1 -j RETURN",
            "-A INPUT -p icmp -j ACCEPT",
            "-A OUTER -d 10.231.1.2 -j RETURN",
            "-A OUTER -j INNER",
            "-A OUTER -p tcp --dport 80 -j ACCEPT",
            "-A INNER -s 10.231.0.5 -j RETURN",
            "-A INNER -p tcp --dport 22 -j ACCEPT",
            "-A INNER -p udp --dport 53 -j ACCEPT",
            "-A INNER -j DROP",
        ],
        v6: &[],
    },
    Case {
        name: "interfaces with +",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -i lo -j ACCEPT",
            "-A INPUT -i other0 -j ACCEPT",
            "-A INPUT -i fwdh0 -p icmp -j DROP",
            "-A INPUT -i fwdh+ -p udp -j ACCEPT",
            "-A INPUT ! -i eth+ -p tcp --dport 80 -j ACCEPT",
            "-A INPUT -i fwd+ -s 192.0.2.0/24 -j ACCEPT",
            "-A INPUT -i eth+ -j ACCEPT",
        ],
        v6: &[
            "-P INPUT DROP",
            "-A INPUT -i fwdh+ -p tcp -j ACCEPT",
            "-A INPUT ! -i fwdh0 -j ACCEPT",
        ],
    },
    Case {
        name: "REJECT",
        v4: &[
            "-A INPUT -p udp --dport 514 -j REJECT",
            "-A INPUT -p tcp --dport 25 -j REJECT --reject-with tcp-reset",
            "-A INPUT -p icmp --icmp-type 13 -j REJECT --reject-with icmp-admin-prohibited",
            "-A INPUT -p tcp --dport 22 -j ACCEPT",
            "-A INPUT -s 192.0.2.0/24 -j REJECT --reject-with icmp-host-unreachable",
            "-A INPUT -p udp -j REJECT --reject-with icmp-port-unreachable",
        ],
        v6: &[
            "-A INPUT -p udp --dport 53 -j REJECT",
            "-A INPUT -p tcp -j REJECT --reject-with tcp-reset",
            "-A INPUT -p icmpv6 --icmpv6-type 128 -j REJECT --reject-with icmp6-adm-prohibited",
        ],
    },
    Case {
        name: "LOG",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -p tcp --dport 22 -j LOG --log-prefix ssh:",
            "-A INPUT -s 192.0.2.0/24 -j LOG --log-level 4",
            "-A INPUT -p tcp --dport 22 -j ACCEPT",
            "-A INPUT -p udp -j LOG --log-prefix udp: --log-level debug",
            "-A INPUT -p icmp -j ACCEPT",
        ],
        v6: &[
            "-A INPUT -j LOG --log-prefix all6:",
            "-A INPUT -p tcp -j DROP",
        ],
    },
    Case {
        name: "conntrack states",
        v4: &[
            "-A INPUT -m state --state INVALID -j DROP",
            "-A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT",
            "-A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT",
            "-A INPUT -p udp -m conntrack ! --ctstate NEW -j DROP",
            "-A INPUT -p udp -m state --state NEW -j ACCEPT",
            "-A INPUT -p icmp -m conntrack --ctstate NEW,RELATED -j ACCEPT",
            "-A INPUT -j DROP",
        ],
        v6: &[
            "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
            "-A INPUT -m conntrack --ctstate INVALID -j DROP",
            "-A INPUT -p udp -j DROP",
        ],
    },
    Case {
        name: "port ranges",
        v4: &[
            "-A INPUT -p udp --dport 1000:2000 -j DROP",
            "-A INPUT -p tcp --sport 1024: --dport :1023 -j ACCEPT",
            "-A INPUT -p tcp ! --dport 100:200 -j DROP",
            "-A INPUT -p udp --sport :1023 -j ACCEPT",
            "-A INPUT -p udp --dport 5000:5000 -j ACCEPT",
        ],
        v6: &["-A INPUT -p udp --dport 500:600 -j DROP"],
    },
    Case {
        name: "protocols",
        v4: &[
            "-P INPUT DROP",
            "-A INPUT -p 47 -j ACCEPT",
            "-A INPUT -p esp -j DROP",
            "-A INPUT ! -p tcp -s 10.231.0.1 -j ACCEPT",
            "-A INPUT -p udp -j ACCEPT",
            "-A INPUT -p all -s 10.231.0.5 -j ACCEPT",
        ],
        v6: &["-A INPUT -p 58 -j DROP", "-A INPUT -p tcp -j ACCEPT"],
    },
    Case {
        name: "IPv6 services",
        v4: &[],
        v6: &[
            "-P INPUT DROP",
            "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
            "-A INPUT -s 2001:db8::/32 -p tcp --dport 80 -j DROP",
            "-A INPUT -d fd00:231::2 -p tcp -m multiport --dports 22,80,443 -j ACCEPT",
            "-A INPUT -p icmpv6 --icmpv6-type echo-request -j ACCEPT",
            "-A INPUT -p udp --sport 547 --dport 546 -j ACCEPT",
            "-A INPUT -s fd00:231::/120 -p udp -j ACCEPT",
        ],
    },
    Case {
        name: "IPv6 user chains and negations",
        v4: &[],
        v6: &[
            "-N LAN",
            "-N WAN",
            "-A INPUT -s fd00:231::/64 -j LAN",
            "-A INPUT ! -s fd00:231::/64 -j WAN",
            "-A LAN -p tcp ! --syn -j RETURN",
            "-A LAN -p udp -m multiport --dports 53,5000 -j ACCEPT",
            "-A LAN -d fd00:231:1::2 -j RETURN",
            "-A LAN -j ACCEPT",
            "-A WAN -p icmpv6 ! --icmpv6-type echo-request -j ACCEPT",
            "-A WAN -j DROP",
            "-A INPUT -p tcp -j DROP",
        ],
    },
    Case {
        name: "destination lists and prefixes",
        v4: &[
            "-A INPUT -d 10.231.1.0/24 -p tcp -j DROP",
            "-A INPUT ! -d 10.231.0.0/24 -j ACCEPT",
            "-A INPUT -d 10.231.0.2/31,10.231.1.2 -p udp -j DROP",
            "-A INPUT -s 10.231.0.0/24 -d 10.231.0.2 -j ACCEPT",
        ],
        v6: &["-A INPUT -d fd00:231:1::/64,fd00:231::2/128 -p udp -j DROP"],
    },
    Case {
        name: "REJECT and LOG in user chains",
        v4: &[
            "-P INPUT DROP",
            "-N AUDIT",
            "-N DENY",
            "-A INPUT -p tcp -j AUDIT",
            "-A INPUT -p udp --dport 123 -j ACCEPT",
            "-A INPUT -j DENY",
            "-A AUDIT -p tcp --dport 22 -j LOG --log-prefix audit:",
            "-A AUDIT -p tcp --dport 22 -j RETURN",
            "-A AUDIT -p tcp --dport 80 -j ACCEPT",
            "-A DENY -p udp -j REJECT",
            "-A DENY -s 10.231.0.5 -j RETURN",
            "-A DENY -p tcp -j REJECT --reject-with tcp-reset",
        ],
        v6: &[
            "-N DENY",
            "-A INPUT -p tcp -j DENY",
            "-A DENY -p tcp --dport 22 -j LOG",
            "-A DENY -p tcp --dport 443 -j REJECT --reject-with tcp-reset",
        ],
    },
    Case {
        name: "many rules",
        v4: &[
            "-A INPUT -p tcp --dport 1 -j DROP",
            "-A INPUT -p tcp --dport 2 -j DROP",
            "-A INPUT -p tcp --dport 3:21 -j DROP",
            "-A INPUT -s 10.231.0.64/30 -p udp -j DROP",
            "-A INPUT -p tcp --dport 23:24 -j DROP",
            "-A INPUT -p tcp --dport 25 -j ACCEPT",
            "-A INPUT -p udp --dport 53 -j ACCEPT",
            "-A INPUT -p udp --dport 123 -s 192.0.2.0/24 -j ACCEPT",
            "-A INPUT -p tcp --dport 80 -s 10.231.0.1 -j ACCEPT",
            "-A INPUT -p tcp --dport 80 -s 10.231.0.5 -j DROP",
            "-A INPUT -p tcp --dport 80 -j ACCEPT",
            "-A INPUT -p tcp --dport 110 -d 10.231.1.2 -j DROP",
            "-A INPUT -p tcp --dport 110:143 -j ACCEPT",
            "-A INPUT -p tcp --dport 443 -j ACCEPT",
            "-A INPUT -p tcp --dport 587 -j DROP",
            "-A INPUT -p tcp --dport 993:995 -j ACCEPT",
            "-A INPUT -p udp --dport 1400:1600 -j DROP",
            "-A INPUT -p icmp --icmp-type 8 -s 10.231.0.66 -j DROP",
            "-A INPUT -p icmp --icmp-type 8 -j ACCEPT",
            "-A INPUT -p tcp -j DROP",
            "-A INPUT -p udp -j DROP",
        ],
        v6: &[],
    },
    Case {
        name: "IPv6 REJECT, LOG and conntrack",
        v4: &[],
        v6: &[
            "-P INPUT DROP",
            "-A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT",
            "-A INPUT -p tcp --dport 22 -j LOG --log-prefix ssh6:",
            "-A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT",
            "-A INPUT -p udp -j REJECT --reject-with icmp6-port-unreachable",
            "-A INPUT -p icmpv6 --icmpv6-type 1 -j ACCEPT",
        ],
    },
];

/// The packet corpus of one round: every frame once. Source ports and ICMP identifiers are
/// new in every round, so no conntrack entry of an earlier round makes a packet ESTABLISHED.
/// `replies`: the client ports the twins sent to from `REPLY_PORT` this round.
fn corpus(round: u16, replies: &[(&str, u16)]) -> Vec<Vec<u8>> {
    let mut next = 0u16;
    let mut fresh = || {
        next += 1;
        20000 + round * 200 + next
    };
    let mut frames = Vec::new();
    let mut push = |p: Packet, id: u16| frames.push(wire(&p, id));
    for (i, src) in SOURCES4.iter().enumerate() {
        let dst = if i % 2 == 0 { HOST4 } else { HOST4_B };
        for dport in [22, 25, 80, 110, 143, 443, 587, 993, 995, 1500, 8080] {
            push(Packet::tcp(src, dst, fresh(), dport), 0);
        }
        for (sport, dport) in [
            (0, 53),
            (0, 123),
            (0, 514),
            (0, 1500),
            (0, 5000),
            (53, 40000),
        ] {
            let sport = if sport == 0 { fresh() } else { sport };
            push(Packet::udp(src, dst, sport, dport), 0);
        }
        push(Packet::udp(src, HOST4, 123, 123), 0);
        for icmp in [(8, 0), (0, 0), (3, 4), (3, 3), (11, 0), (13, 0)] {
            let mut p = Packet::new(src, HOST4, L4::Icmp);
            p.icmp = icmp;
            push(p, fresh());
        }
    }
    // TCP flag combinations, from one source.
    for (flags, dport) in [
        (0x10, 22),
        (0x10, 80),
        (0x00, 80),
        (0x29, 80),
        (0x12, 22),
        (0x01, 443),
        (0x03, 22),
        (0x18, 8080),
    ] {
        let mut p = Packet::tcp(SOURCES4[0], HOST4, fresh(), dport);
        p.tcp_flags = flags;
        push(p, 0);
    }
    for proto in [47, 50] {
        push(Packet::new(SOURCES4[1], HOST4, L4::Other(proto)), 0);
    }
    for (i, src) in SOURCES6.iter().enumerate() {
        let dst = if i % 2 == 0 { HOST6 } else { HOST6_B };
        for dport in [22, 80, 443, 587] {
            push(Packet::tcp(src, dst, fresh(), dport), 0);
        }
        let mut ack = Packet::tcp(src, dst, fresh(), 22);
        ack.tcp_flags = 0x10;
        push(ack, 0);
        for dport in [53, 5000] {
            push(Packet::udp(src, dst, fresh(), dport), 0);
        }
        push(Packet::udp(src, dst, 547, 546), 0);
        for icmp in [(128, 0), (129, 0), (1, 3), (2, 0), (1, 4)] {
            let mut p = Packet::new(src, HOST6, L4::Icmpv6);
            p.icmp = icmp;
            push(p, fresh());
        }
    }
    for (src, port) in replies {
        let dst = if src.contains(':') { HOST6 } else { HOST4 };
        push(Packet::udp(src, dst, *port, REPLY_PORT), 0);
    }
    frames
}

/// Client ports the twins send to before a round, from `REPLY_PORT`: the corpus answers.
fn reply_flows(round: u16) -> Vec<(&'static str, u16)> {
    let port = 40000 + round * 4;
    vec![
        (SOURCES4[0], port),
        (SOURCES4[3], port + 1),
        (SOURCES6[0], port + 2),
        (SOURCES6[2], port + 3),
    ]
}

#[test]
fn counters_match_iptables_on_the_wire() {
    let start = Instant::now();
    let twins = Twins::new("fwd");
    let mut total = 0;
    let mut differences = Vec::new();
    for (round, case) in CASES.iter().enumerate() {
        twins.load(&restore_text(case.v4), &restore_text(case.v6));
        let replies = reply_flows(round as u16);
        twins.ask(&replies);
        let frames = corpus(round as u16, &replies);
        total += frames.len();
        twins.deliver(&frames, case.name);
        for family in ["4", "6"] {
            let (theirs, ours) = twins.listings(family);
            if std::env::var_os("FWD_DUMP").is_some() {
                eprintln!("== {} IPv{family}\n{theirs}-- fwctl\n{ours}", case.name);
            }
            if theirs != ours {
                differences.push(format!(
                    "{} (IPv{family}):\n--- iptables\n{theirs}--- fwctl\n{ours}",
                    case.name
                ));
            }
        }
    }
    // XDP judged, not only netfilter: it dropped some of the corpus itself.
    let xdp_drops = twins.xdp_drops();
    assert!(xdp_drops > 0, "XDP dropped nothing");
    eprintln!(
        "differential: {} rulesets, {} frames per twin ({xdp_drops} dropped at XDP), {:.1}s",
        CASES.len(),
        total,
        start.elapsed().as_secs_f64()
    );
    assert!(
        differences.is_empty(),
        "{} of {} listings differ:\n{}",
        differences.len(),
        CASES.len() * 2,
        differences.join("\n")
    );
}

/// Four classes of UDP: accepted by ruleset A only, by B only, by both, by neither.
const PORTS: [u16; 4] = [7001, 7002, 7003, 7004];
const RULESET_A: &[&str] = &[
    "-P INPUT DROP",
    "-A INPUT -p udp --dport 7003 -j ACCEPT",
    "-A INPUT -p udp --dport 7001 -j ACCEPT",
];
const RULESET_B: &[&str] = &[
    "-P INPUT DROP",
    "-A INPUT -p udp -m multiport --dports 7002,7003 -j ACCEPT",
];
const CHANGES: usize = 500;

#[test]
fn rulesets_change_atomically_under_traffic() {
    let lab = Lab::named("fwd-atom").unwrap();
    let host: &FwNs = &lab.host;
    let dir = std::env::temp_dir();
    let files: Vec<String> = [RULESET_A, RULESET_B]
        .iter()
        .enumerate()
        .map(|(i, rules)| {
            let path = dir.join(format!("fwd-{}-atom{i}.v4", std::process::id()));
            std::fs::write(&path, restore_text(rules)).unwrap();
            path.to_str().unwrap().to_string()
        })
        .collect();
    host.fwctl_ok(&["restore", &files[0]]);
    host.fwctl_ok(&["attach", HOST_IF]);
    assert_eq!(lab.xdp_mode().unwrap().as_deref(), Some("xdp"));

    let stop = Arc::new(AtomicBool::new(false));
    let receivers: Vec<_> = PORTS
        .iter()
        .map(|&port| {
            let sock = host
                .udp_socket(SocketAddr::new(HOST_V4.parse().unwrap(), port))
                .unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut got = 0u64;
                let mut buf = [0u8; 64];
                loop {
                    match sock.recv_from(&mut buf) {
                        Ok(_) => got += 1,
                        Err(_) if stop.load(Ordering::Relaxed) => return got,
                        Err(_) => {}
                    }
                }
            })
        })
        .collect();
    let sender = {
        let sock = lab
            .client
            .udp_socket(SocketAddr::new(CLIENT_V4.parse().unwrap(), 0))
            .unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = [0u64; 4];
            while !stop.load(Ordering::Relaxed) {
                for (i, port) in PORTS.iter().enumerate() {
                    let to = SocketAddr::new(HOST_V4.parse().unwrap(), *port);
                    sock.send_to(&[0x5a; 16], to).unwrap();
                    sent[i] += 1;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            sent
        })
    };

    let overflows_before = host.snmp("Udp", "RcvbufErrors").expect("Udp RcvbufErrors");
    let start = Instant::now();
    for change in 1..=CHANGES {
        host.fwctl_ok(&["restore", &files[change % 2]]);
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    // Let the last datagrams land before the receivers give up.
    std::thread::sleep(Duration::from_millis(300));
    let received: Vec<u64> = receivers.into_iter().map(|r| r.join().unwrap()).collect();
    let listing = host.fwctl_ok(&["-L", "-n", "-v", "-x", "--line-numbers"]);
    let (dropped, _) = tests::listed_counters(&listing, "INPUT", 0).unwrap();
    for f in &files {
        let _ = std::fs::remove_file(f);
    }
    eprintln!(
        "atomicity: {CHANGES} changes in {:.1}s ({:.1} ms each); sent {sent:?}, received {received:?}, policy dropped {dropped}",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / CHANGES as f64
    );
    assert!(
        sent.iter().all(|&n| n > 1000),
        "too little traffic: {sent:?}"
    );
    assert_eq!(received[3], 0, "a packet neither ruleset accepts arrived");
    // A receiver starved of CPU (the machine is small) loses datagrams its socket had no
    // room for, after the firewall let them in: the kernel counts those apart.
    let overflowed = host.snmp("Udp", "RcvbufErrors").expect("Udp RcvbufErrors") - overflows_before;
    assert!(
        sent[2] - received[2] <= overflowed,
        "a packet both rulesets accept was lost: {} of {}, {overflowed} socket overflows",
        sent[2] - received[2],
        sent[2]
    );
    for class in 0..2 {
        assert!(
            0 < received[class] && received[class] < sent[class],
            "port {}: both rulesets should have judged it: {received:?} of {sent:?}",
            PORTS[class]
        );
    }
    let lost: u64 = sent.iter().zip(&received).map(|(s, r)| s - r).sum();
    assert_eq!(
        dropped + overflowed,
        lost,
        "every packet not received is one the policy dropped ({overflowed} socket overflows)\n{listing}"
    );
}

/// Frames the kernel never hands to INPUT as they come, among frames it does, and frames
/// that reach INPUT by another way (a priority tag, a broadcast, a joined group):
/// counted by no rule or policy where iptables counts none, and by the rules iptables
/// counts them with otherwise. XDP sees every one of them on the wire; what it may not do
/// is judge one as the interface's own packet.
#[test]
fn frames_the_kernel_never_delivers_are_counted_as_iptables_counts_them() {
    let twins = Twins::new("fwu");
    let v4 = [
        "-A INPUT -p tcp --dport 80 -j DROP".to_string(),
        "-A INPUT -p udp --dport 9 -j ACCEPT".into(),
        "-A INPUT -p icmp -j ACCEPT".into(),
    ];
    let v6 = [
        "-A INPUT -p ipv6-icmp -j ACCEPT".to_string(),
        "-A INPUT -p tcp --dport 80 -j DROP".into(),
    ];
    let text =
        |rules: &[String]| restore_text(&rules.iter().map(String::as_str).collect::<Vec<_>>());
    twins.load(&text(&v4), &text(&v6));

    let mac = |frame: Vec<u8>, mac: [u8; 6]| {
        let mut frame = frame;
        frame[..6].copy_from_slice(&mac);
        frame
    };
    let tagged = |frame: Vec<u8>, vid: u16| {
        let mut out = frame[..12].to_vec();
        out.extend(0x8100u16.to_be_bytes());
        out.extend(vid.to_be_bytes());
        out.extend(&frame[12..]);
        out
    };
    let syn = |dst: &str| wire(&Packet::tcp(SOURCES4[0], dst, 40000, 80), 0);
    let syn6 = |dst: &str| wire(&Packet::tcp(SOURCES6[0], dst, 40000, 80), 0);
    let udp = |dst: &str| wire(&Packet::udp(SOURCES4[0], dst, 40000, 9), 0);
    let icmp6 = |dst: &str, kind: u8| {
        let mut p = Packet::new(SOURCES6[0], dst, L4::Icmpv6);
        p.icmp = (kind, 0);
        wire(&p, 7)
    };
    let mut bad_sum = syn(HOST4);
    bad_sum[24] ^= 0x5a;
    let long = {
        let mut f = syn(HOST4);
        let past = (f.len() - 14 + 4) as u16;
        f[16..18].copy_from_slice(&past.to_be_bytes());
        checksummed(f)
    };
    let mut long6 = syn6(HOST6);
    long6[18..20].copy_from_slice(&0x0400u16.to_be_bytes());
    let never: Vec<(&str, Vec<u8>)> = vec![
        ("another host's MAC", mac(syn(HOST4), [2, 0, 0, 0, 0, 0x99])),
        (
            "another host's MAC, IPv6",
            mac(syn6(HOST6), [2, 0, 0, 0, 0, 0x99]),
        ),
        ("a VLAN the host has no device for", tagged(udp(HOST4), 8)),
        ("a bad IPv4 header checksum", bad_sum),
        ("an IPv4 total length past the frame", long),
        ("an IPv6 payload length past the frame", long6),
        (
            "a group the host has not joined",
            mac(udp("239.1.1.1"), [1, 0, 0x5e, 1, 1, 1]),
        ),
        ("a unicast MAC to a multicast address", udp("239.1.1.1")),
        (
            "a loopback source",
            wire(&Packet::udp("127.0.0.5", HOST4, 1, 9), 0),
        ),
        (
            "neighbour solicitation for an address the host lacks",
            mac(
                icmp6("ff02::1:ff00:99", 135),
                [0x33, 0x33, 0xff, 0, 0, 0x99],
            ),
        ),
        (
            "an MLD report to the routers' group",
            mac(icmp6("ff02::16", 143), [0x33, 0x33, 0, 0, 0, 0x16]),
        ),
    ];
    let elsewhere: Vec<(&str, Vec<u8>, (u64, u64))> = vec![
        // 802.1p: a tag with VLAN 0 is the interface's own (this kernel has no VLAN
        // devices: CONFIG_VLAN_8021Q is off, so no test of a VLAN device's frames here).
        ("a priority tag", tagged(udp(HOST4), 0), (1, 0)),
        ("a priority tag, IPv6", tagged(syn6(HOST6), 0), (0, 1)),
        (
            "a broadcast",
            mac(udp("255.255.255.255"), [0xff; 6]),
            (1, 0),
        ),
        (
            "the all-nodes group",
            mac(icmp6("ff02::1", 128), [0x33, 0x33, 0, 0, 0, 1]),
            (0, 1),
        ),
        (
            "neighbour solicitation for the host's address",
            mac(icmp6("ff02::1:ff00:2", 135), [0x33, 0x33, 0xff, 0, 0, 2]),
            (0, 1),
        ),
    ];
    // Each kind on its own, behind frames every twin takes, so that a difference names it.
    let plain = [syn(HOST4), udp(HOST4), syn6(HOST6)];
    let kinds = never
        .iter()
        .map(|(what, frame)| (*what, frame, (0, 0)))
        .chain(elsewhere.iter().map(|(what, frame, n)| (*what, frame, *n)));
    let mut differences = Vec::new();
    for (what, frame, (n4, n6)) in kinds {
        twins.fw.fwctl_ok(&["-Z"]);
        twins.fw.fwctl_ok(&["-6", "-Z"]);
        for tool in ["iptables", "ip6tables"] {
            tests::twins::run_in(&twins.ipt, tool, &["-Z"]);
        }
        let mut frames: Vec<[&[u8]; 2]> = vec![[frame, frame]; 3];
        frames.extend(plain.iter().map(|f| [&f[..], &f[..]]));
        twins.deliver_expecting(&frames, (2 + 3 * n4, 1 + 3 * n6), what);
        for family in ["4", "6"] {
            let (theirs, ours) = twins.listings(family);
            if std::env::var_os("FWD_DUMP").is_some() {
                eprintln!("== {what} IPv{family}\n{theirs}-- fwctl\n{ours}");
            }
            if theirs != ours {
                differences.push(format!(
                    "{what} (IPv{family}):\n--- iptables\n{theirs}--- fwctl\n{ours}"
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} listings differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// With raw and mangle tables in the ruleset (as iptables-save writes them on most hosts,
/// often empty), iptables counts their PREROUTING and INPUT policies for every packet that
/// reaches them, the ones its filter table then drops included. XDP drops such packets
/// before netfilter, so it counts those policies itself; the packets it accepts or defers
/// meet them in netfilter.
#[test]
fn raw_and_mangle_policies_count_the_packets_xdp_drops() {
    let twins = Twins::new("fwp");
    let prehooks = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n\
        *mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
        :OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
        -A PREROUTING -p udp -m udp --dport 53 -j MARK --set-xmark 0x1/0xffffffff\nCOMMIT\n";
    let filter = [
        "-P INPUT DROP",
        "-A INPUT -p tcp --dport 22 -j ACCEPT",
        "-A INPUT -p udp --dport 53 -j ACCEPT",
    ];
    let text = format!("{prehooks}{}", restore_text(&filter));
    twins.load(&text, &text);
    let mut frames = Vec::new();
    for (i, src) in SOURCES4.iter().chain(SOURCES6.iter()).enumerate() {
        let dst = if src.contains(':') { HOST6 } else { HOST4 };
        let port = 41000 + i as u16;
        for packet in [
            Packet::tcp(src, dst, port, 22),
            Packet::tcp(src, dst, port, 80),
            Packet::udp(src, dst, port, 53),
            Packet::udp(src, dst, port, 99),
        ] {
            frames.push(wire(&packet, 0));
        }
    }
    twins.deliver(&frames, "raw and mangle");
    assert!(twins.xdp_drops() > 0, "XDP dropped nothing");
    same_listings(&twins, &["raw", "mangle", "filter"]);
}

/// Fails unless every table of `tables`, both families, lists on fwctl's twin as on
/// iptables', showing each difference.
fn same_listings(twins: &Twins, tables: &[&str]) {
    let mut differences = Vec::new();
    for table in tables {
        for family in ["4", "6"] {
            let (theirs, ours) = twins.table_listings(table, family);
            if theirs != ours {
                differences.push(format!(
                    "-t {table} (IPv{family}):\n--- iptables\n{theirs}--- fwctl\n{ours}"
                ));
            }
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// iptables counts the nat table's PREROUTING rules and policy for the first packet of
/// every connection, before its filter table drops it. A host with only DNAT rules (no
/// source NAT, which makes XDP leave every INPUT packet to netfilter) must count there the
/// packets XDP drops, as iptables does.
#[test]
fn nat_prerouting_counts_the_packets_xdp_drops() {
    let twins = Twins::new("fwd");
    let nat = |to: &str| {
        format!(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             :POSTROUTING ACCEPT [0:0]\n\
             -A PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination {to}\n\
             -A PREROUTING -p udp -m udp --dport 99 -j RETURN\nCOMMIT\n"
        )
    };
    let filter = restore_text(&["-P INPUT DROP", "-A INPUT -p tcp --dport 22 -j ACCEPT"]);
    twins.load(
        &format!("{}{filter}", nat(&format!("{HOST4}:80"))),
        &format!("{}{filter}", nat(&format!("[{HOST6}]:80"))),
    );
    let mut frames = Vec::new();
    for (i, src) in SOURCES4.iter().chain(SOURCES6.iter()).enumerate() {
        let dst = if src.contains(':') { HOST6 } else { HOST4 };
        let port = 42000 + i as u16;
        for packet in [
            Packet::tcp(src, dst, port, 22),
            Packet::tcp(src, dst, port + 1000, 23),
            Packet::tcp(src, dst, port + 2000, 8080),
            Packet::udp(src, dst, port, 53),
            Packet::udp(src, dst, port, 99),
        ] {
            frames.push(wire(&packet, 0));
        }
    }
    twins.deliver(&frames, "nat prerouting");
    same_listings(&twins, &["nat", "filter"]);
}

/// Raw PREROUTING's DROP rules are judged at XDP, before INPUT, with iptables' counters:
/// the rule counts what it drops, and neither raw's nor mangle's policy counts it (a
/// packet another rule of the filter table drops still passes both policies). With
/// INPUT's policy ACCEPT and no rule there, every XDP drop is a raw rule's. The port rules
/// come first, so the fast table decides their keys; the address rule needs the
/// classifier.
#[test]
fn raw_prerouting_drops_are_judged_at_xdp() {
    let twins = Twins::new("fwr");
    let tables = |net: &str| {
        format!(
            "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             -A PREROUTING -p udp -m udp --dport 53 -j ACCEPT\n\
             -A PREROUTING -p udp -m udp --dport 50:60 -j DROP\n\
             -A PREROUTING -p tcp -m tcp --dport 23 -j DROP\n\
             -A PREROUTING -s {net} -j DROP\nCOMMIT\n\
             *mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
             :OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n\
             *filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
        )
    };
    let net = |src: &str| {
        if src.contains(':') {
            format!("{src}/128")
        } else {
            format!("{src}/32")
        }
    };
    twins.load(&tables(&net(SOURCES4[0])), &tables(&net(SOURCES6[0])));
    let mut frames = Vec::new();
    // Frames that get past raw PREROUTING to INPUT, per family: the raw ACCEPT of port 53
    // first, then the dropped source, ports 23 and 50-60.
    let mut reaching = (0, 0);
    let dropping = [SOURCES4[0], SOURCES6[0]];
    for (i, src) in SOURCES4.iter().chain(SOURCES6.iter()).enumerate() {
        let v6 = src.contains(':');
        let dst = if v6 { HOST6 } else { HOST4 };
        let port = 43000 + i as u16;
        for (packet, dport) in [
            (Packet::tcp(src, dst, port, 22), 22),
            (Packet::tcp(src, dst, port + 1000, 23), 23),
            (Packet::udp(src, dst, port, 53), 53),
            (Packet::udp(src, dst, port, 55), 55),
            (Packet::udp(src, dst, port, 99), 99),
        ] {
            let dropped = dport != 53 && (dropping.contains(src) || dport == 23 || dport == 55);
            if !dropped {
                if v6 {
                    reaching.1 += 1;
                } else {
                    reaching.0 += 1;
                }
            }
            frames.push(wire(&packet, 0));
        }
    }
    let pairs: Vec<[&[u8]; 2]> = frames.iter().map(|f| [&f[..], &f[..]]).collect();
    twins.deliver_expecting(&pairs, reaching, "raw prerouting");
    assert!(twins.xdp_drops() > 0, "no raw DROP was judged at XDP");
    same_listings(&twins, &["raw", "mangle", "filter"]);
}
