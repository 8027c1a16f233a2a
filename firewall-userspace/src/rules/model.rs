//! Rules and rulesets as the operator wrote them, with no kernel detail: the parser builds
//! these, the state file stores them, the compiler and the listing read them.

use std::{fmt, net::IpAddr};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The family's index in firewall-common's maps.
    pub fn index(self) -> u32 {
        match self {
            Family::V4 => firewall_common::FAMILY_V4,
            Family::V6 => firewall_common::FAMILY_V6,
        }
    }

    pub fn max_prefix(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// The command iptables users would have typed, for messages.
    pub fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

/// Built-in chains of the filter table. Only INPUT is enforced so far (at XDP); FORWARD and
/// OUTPUT exist so listings look like iptables' and keep their ACCEPT policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Chain {
    Input,
    Forward,
    Output,
}

impl Chain {
    pub const ALL: [Chain; 3] = [Chain::Input, Chain::Forward, Chain::Output];

    pub fn name(self) -> &'static str {
        match self {
            Chain::Input => "INPUT",
            Chain::Forward => "FORWARD",
            Chain::Output => "OUTPUT",
        }
    }

    pub fn from_name(name: &str) -> Option<Chain> {
        Chain::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Accept,
    Drop,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Accept => "ACCEPT",
            Verdict::Drop => "DROP",
        }
    }

    pub fn from_name(name: &str) -> Option<Verdict> {
        match name {
            "ACCEPT" => Some(Verdict::Accept),
            "DROP" => Some(Verdict::Drop),
            _ => None,
        }
    }
}

/// An address with a prefix length; the address has its host bits cleared, as iptables
/// stores it (`-s 10.1.2.3/24` lists as `10.1.2.0/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn family(&self) -> Family {
        match self.addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// An inclusive port range; a single port is `min == max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

/// One rule's matches and target. Absent fields match everything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// `-i`: an interface name, or a prefix when it ends in `+` (`tun+`).
    pub in_iface: Option<String>,
    pub src: Option<Cidr>,
    pub dst: Option<Cidr>,
    /// `-p`: protocol number; `None` is `all`.
    pub proto: Option<u8>,
    pub sport: Option<PortRange>,
    pub dport: Option<PortRange>,
    pub target: Verdict,
}

/// A rule in the ruleset: the operator's spec and the counter slot it owns for as long as
/// it exists, so that its counters survive changes to other rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub spec: RuleSpec,
    pub slot: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRules {
    pub policy: Verdict,
    pub rules: Vec<Rule>,
}

impl Default for ChainRules {
    fn default() -> Self {
        ChainRules {
            policy: Verdict::Accept,
            rules: Vec::new(),
        }
    }
}

/// The filter table of one family.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyRules {
    pub input: ChainRules,
    pub forward: ChainRules,
    pub output: ChainRules,
}

impl FamilyRules {
    pub fn chain(&self, chain: Chain) -> &ChainRules {
        match chain {
            Chain::Input => &self.input,
            Chain::Forward => &self.forward,
            Chain::Output => &self.output,
        }
    }

    pub fn chain_mut(&mut self, chain: Chain) -> &mut ChainRules {
        match chain {
            Chain::Input => &mut self.input,
            Chain::Forward => &mut self.forward,
            Chain::Output => &mut self.output,
        }
    }
}

/// Everything fwctl enforces in one network namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ruleset {
    pub v4: FamilyRules,
    pub v6: FamilyRules,
}

impl Ruleset {
    pub fn family(&self, family: Family) -> &FamilyRules {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    pub fn family_mut(&mut self, family: Family) -> &mut FamilyRules {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    /// Every counter slot in use, across families and chains.
    pub fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        [&self.v4, &self.v6].into_iter().flat_map(|f| {
            Chain::ALL
                .into_iter()
                .flat_map(move |c| f.chain(c).rules.iter().map(|r| r.slot))
        })
    }
}
