//! Never lock the operator out: a change that would drop the caller's own SSH session (as
//! `SSH_CONNECTION` describes it) is refused unless forced, saying which rule and why.

use std::{ffi::CStr, net::IpAddr};

use crate::{
    cli::list::append_command,
    rules::{
        eval::{evaluate_by, with_set_answers, Decision, Judge, PacketView},
        Chain, Family, Neg, Ruleset, SetMatch,
    },
};

/// The caller's SSH session as this host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub client: IpAddr,
    pub client_port: u16,
    pub server: IpAddr,
    pub server_port: u16,
}

impl Session {
    /// From `SSH_CONNECTION` ("client port server port").
    pub fn from_env() -> Option<Session> {
        Session::parse(&std::env::var("SSH_CONNECTION").ok()?)
    }

    pub fn parse(text: &str) -> Option<Session> {
        let f: Vec<&str> = text.split_whitespace().collect();
        let [client, cport, server, sport] = f.as_slice() else {
            return None;
        };
        Some(Session {
            client: client.parse().ok()?,
            client_port: cport.parse().ok()?,
            server: server.parse().ok()?,
            server_port: sport.parse().ok()?,
        })
    }
}

/// The interface that holds `addr` in this network namespace.
pub fn interface_of(addr: IpAddr) -> Option<String> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below; every pointer is checked before use.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return None;
        }
        let mut found = None;
        let mut cur = list;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null() {
                let family = (*ifa.ifa_addr).sa_family as i32;
                let here = match family {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        Some(IpAddr::from(
                            u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                        ))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                    }
                    _ => None,
                };
                if here == Some(addr) {
                    found = Some(CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned());
                    break;
                }
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(list);
        found
    }
}

/// Why `ruleset` would drop an ACK of `session` arriving on `iface`, or None if it passes.
/// `in_set` says whether a set match holds for the session's packet.
pub fn would_cut(
    ruleset: &Ruleset,
    session: &Session,
    iface: &str,
    in_set: &dyn Fn(Family, &Neg<SetMatch>) -> bool,
) -> Option<String> {
    let family = match session.server {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    };
    let packet = PacketView {
        family,
        iface: iface.to_string(),
        out_iface: None,
        src: session.client,
        dst: session.server,
        proto: 6,
        ports: Some((session.client_port, session.server_port)),
        tcp_flags: Some(0x10),
        icmp: None,
        // The session's own packets: netfilter judges what XDP defers with this state.
        ct_state: Some(crate::rules::model::CT_ESTABLISHED),
        fragment: false,
    };
    let rules = ruleset.family(family);
    let judged = with_set_answers(rules, |m| in_set(family, m));
    // Netfilter's view: a REJECT cuts the session as surely as a DROP.
    let outcome = evaluate_by(&judged, Chain::Input, &packet, Judge::Netfilter);
    if outcome.verdict == Decision::Accept {
        return None;
    }
    let what = if outcome.policy {
        "the INPUT policy DROP".to_string()
    } else {
        // The last rule met is the one that decided.
        let slot = outcome.counted.last().copied();
        let found = crate::cli::list::chain_names(rules, None)
            .unwrap_or_default()
            .into_iter()
            .find_map(|chain| {
                let list = rules.rules(&chain)?;
                let at = list.iter().position(|r| Some(r.slot) == slot)?;
                Some(format!(
                    "rule {} of {chain} ({})",
                    at + 1,
                    append_command(&chain, &list[at].spec)
                ))
            });
        found.unwrap_or_else(|| "a DROP rule".to_string())
    };
    Some(format!(
        "{what} would drop your SSH session {} port {} -> {} port {} on {iface}",
        session.client, session.client_port, session.server, session.server_port
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_sets(_: Family, m: &Neg<SetMatch>) -> bool {
        m.negated
    }

    use crate::rules::edit::ruleset_of as ruleset;

    #[test]
    fn finds_the_rule_or_policy_that_cuts() {
        let s = Session::parse("10.0.0.9 50000 10.0.0.1 22").unwrap();
        assert_eq!(would_cut(&ruleset(&[]), &s, "eth0", &no_sets), None);
        let cut = would_cut(&ruleset(&["-P INPUT DROP"]), &s, "eth0", &no_sets).unwrap();
        assert!(cut.starts_with("the INPUT policy DROP would drop"), "{cut}");
        let ok = ruleset(&["-P INPUT DROP", "-A INPUT -p tcp --dport 22 -j ACCEPT"]);
        assert_eq!(would_cut(&ok, &s, "eth0", &no_sets), None);
        let rule = ruleset(&["-A INPUT -s 10.0.0.0/8 -j DROP"]);
        let cut = would_cut(&rule, &s, "eth0", &no_sets).unwrap();
        assert!(
            cut.starts_with("rule 1 of INPUT (-A INPUT -s 10.0.0.0/8 -j DROP)"),
            "{cut}"
        );
        assert!(Session::parse("garbage").is_none());
    }

    /// XDP defers conntrack rules to netfilter, which sees the session's packets as
    /// ESTABLISHED: the guard judges them as netfilter will.
    #[test]
    fn judges_conntrack_rules_as_netfilter_will() {
        let s = Session::parse("10.0.0.9 50000 10.0.0.1 22").unwrap();
        let established = ruleset(&[
            "-P INPUT DROP",
            "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        ]);
        assert_eq!(would_cut(&established, &s, "eth0", &no_sets), None);
        let new_only = ruleset(&[
            "-P INPUT DROP",
            "-A INPUT -p tcp -m state --state NEW -j ACCEPT",
        ]);
        let cut = would_cut(&new_only, &s, "eth0", &no_sets).unwrap();
        assert!(cut.starts_with("the INPUT policy DROP"), "{cut}");
    }

    /// Set matches are answered for the session's packet: an allow-list holding the client
    /// keeps the session, a block-list holding it cuts it, naming the rule as written.
    #[test]
    fn answers_set_matches_for_the_session() {
        let s = Session::parse("10.0.0.9 50000 10.0.0.1 22").unwrap();
        let admins = |_: Family, m: &Neg<SetMatch>| (m.value.name == "admins") != m.negated;
        let allow = ruleset(&[
            "-P INPUT DROP",
            "-A INPUT -m set --match-set admins src -j ACCEPT",
        ]);
        assert_eq!(would_cut(&allow, &s, "eth0", &admins), None);
        assert!(would_cut(&allow, &s, "eth0", &no_sets).is_some());
        let block = ruleset(&[
            "-A INPUT -p udp -j DROP",
            "-A INPUT -m set --match-set admins src -j DROP",
        ]);
        let cut = would_cut(&block, &s, "eth0", &admins).unwrap();
        assert!(
            cut.starts_with("rule 2 of INPUT (-A INPUT -m set --match-set admins src -j DROP)"),
            "{cut}"
        );
    }
}
