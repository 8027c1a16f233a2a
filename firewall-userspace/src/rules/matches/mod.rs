//! Matches netfilter judges alone, one module each: the option names, parsing, the text
//! `-L` and `-S`/save print, and what the reference evaluator knows of them. XDP defers
//! every rule that has one (compile/flatten.rs); netfilter/exprs.rs `nf_match` writes each
//! as nftables expressions. Adding such a match is a module here and a line in [`MODULES`]
//! and in `NfMatch`.

pub mod addrtype;
pub mod connbytes;
pub mod conntrack;
pub mod helper;
pub mod iprange;
pub mod length;
pub mod mac;
pub mod mark;
pub mod owner;
pub mod physdev;
pub mod pkttype;
pub mod policy;
pub mod recent;
pub mod statistic;
pub mod string;
pub mod tcpmss;
pub mod time;
pub mod ttl;
pub mod u32;

use serde::{Deserialize, Serialize};

use super::{options::Options, Family};

/// One netfilter-only match of a rule, as parsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NfMatch {
    Mark(mark::MarkMatch),
    Connmark(mark::MarkMatch),
    PktType(pkttype::PktType),
    Length(length::Length),
    Ttl(ttl::Ttl),
    IpRange(iprange::IpRange),
    Mac(mac::Mac),
    AddrType(addrtype::AddrType),
    Owner(owner::Owner),
    TcpMss(tcpmss::TcpMss),
    /// `-m conntrack` with more than `--ctstate`.
    Conntrack(conntrack::CtMatch),
    /// `-m recent`.
    Recent(recent::Recent),
    /// `-m policy`.
    Policy(policy::Policy),
    /// `-m string`.
    String(string::StringMatch),
    /// `-m u32`.
    U32(u32::U32),
    /// `-m helper`.
    Helper(helper::Helper),
    /// `-m statistic`.
    Statistic(statistic::Statistic),
    /// `-m connbytes`.
    Connbytes(connbytes::Connbytes),
    /// `-m time`.
    Time(time::Time),
    /// `-m physdev`.
    Physdev(physdev::Physdev),
    /// `-f`: a fragment other than the first (IPv4). iptables' own option, not a module:
    /// listed in the `opt` column and saved after `-p`.
    Fragment,
}

/// Gives an option's argument when the option takes one.
pub type Value<'a> = &'a mut dyn FnMut() -> Result<String, String>;

/// Takes option `opt` (its full name; `negated` when `!` came first) into the match being
/// built (`None` before its first option); returns it with whether the whole match is
/// negated. A module with several options that each take their own `!` (iprange,
/// addrtype) keeps those inside its value and returns false.
pub type Take = fn(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    family: Family,
) -> Result<(NfMatch, bool), String>;

/// iptables' refusal of a second option for a module that takes one (the message its
/// option parser gives).
pub fn once(module: &str, current: &Option<NfMatch>, opt: &str) -> Result<(), String> {
    match current {
        Some(_) => Err(format!("{module}: option \"{opt}\" can only be used once.")),
        None => Ok(()),
    }
}

/// A match module as `-m NAME` loads it.
pub struct Module {
    pub name: &'static str,
    pub options: Options,
    pub take: Take,
    /// iptables' final check, when the rule is read: the message if an option it needs is
    /// missing.
    pub required: &'static str,
    /// The match a `-m NAME` without options stands for, where iptables takes one
    /// (`-m time` alone: any time); None where an option is required.
    pub defaults: Option<fn() -> NfMatch>,
}

/// Every module, by `-m` name.
pub const MODULES: &[Module] = &[
    mark::MODULE,
    mark::CONNMARK,
    pkttype::MODULE,
    length::MODULE,
    ttl::TTL,
    ttl::HL,
    iprange::MODULE,
    mac::MODULE,
    addrtype::MODULE,
    owner::MODULE,
    tcpmss::MODULE,
    conntrack::MODULE,
    recent::MODULE,
    policy::MODULE,
    string::MODULE,
    u32::MODULE,
    helper::MODULE,
    statistic::MODULE,
    connbytes::MODULE,
    time::MODULE,
    physdev::MODULE,
];

pub fn module(name: &str) -> Option<&'static Module> {
    MODULES.iter().find(|m| m.name == name)
}

impl NfMatch {
    /// The `-m` name of the match's module.
    pub fn module(&self) -> &'static str {
        match self {
            NfMatch::Mark(_) => "mark",
            NfMatch::Connmark(_) => "connmark",
            NfMatch::PktType(_) => "pkttype",
            NfMatch::Length(_) => "length",
            NfMatch::Ttl(t) if t.hl => "hl",
            NfMatch::Ttl(_) => "ttl",
            NfMatch::IpRange(_) => "iprange",
            NfMatch::Mac(_) => "mac",
            NfMatch::AddrType(_) => "addrtype",
            NfMatch::Owner(_) => "owner",
            NfMatch::TcpMss(_) => "tcpmss",
            NfMatch::Conntrack(_) => "conntrack",
            NfMatch::Recent(_) => "recent",
            NfMatch::Policy(_) => "policy",
            NfMatch::String(_) => "string",
            NfMatch::U32(_) => "u32",
            NfMatch::Helper(_) => "helper",
            NfMatch::Statistic(_) => "statistic",
            NfMatch::Connbytes(_) => "connbytes",
            NfMatch::Time(_) => "time",
            NfMatch::Physdev(_) => "physdev",
            NfMatch::Fragment => "",
        }
    }

    /// The text `-L` prints for the match (leading space included).
    pub fn list_text(&self, negated: bool, numeric: bool) -> String {
        match self {
            NfMatch::Mark(m) => m.list_text(negated, numeric),
            NfMatch::Connmark(m) => m.connmark_list_text(negated),
            NfMatch::PktType(m) => m.list_text(negated),
            NfMatch::Length(m) => m.list_text(negated),
            NfMatch::Ttl(m) => m.list_text(negated),
            NfMatch::IpRange(m) => m.list_text(),
            NfMatch::Mac(m) => m.list_text(negated),
            NfMatch::AddrType(m) => m.list_text(),
            NfMatch::Owner(m) => m.list_text(numeric),
            NfMatch::TcpMss(m) => m.list_text(negated),
            NfMatch::Conntrack(m) => m.list_text(numeric),
            NfMatch::Recent(m) => m.list_text(),
            NfMatch::Policy(m) => m.list_text(),
            NfMatch::String(m) => m.list_text(),
            NfMatch::U32(m) => m.list_text(),
            NfMatch::Helper(m) => m.list_text(),
            NfMatch::Statistic(m) => m.list_text(),
            NfMatch::Connbytes(m) => m.list_text(),
            NfMatch::Time(m) => m.list_text(),
            NfMatch::Physdev(m) => m.list_text(),
            NfMatch::Fragment => String::new(),
        }
    }

    /// `-m NAME [!] --option value` as iptables-save writes it.
    pub fn save_text(&self, negated: bool) -> String {
        match self {
            NfMatch::Mark(m) => m.save_text(negated),
            NfMatch::Connmark(m) => m.connmark_save_text(negated),
            NfMatch::PktType(m) => m.save_text(negated),
            NfMatch::Length(m) => m.save_text(negated),
            NfMatch::Ttl(m) => m.save_text(negated),
            NfMatch::IpRange(m) => m.save_text(),
            NfMatch::Mac(m) => m.save_text(negated),
            NfMatch::AddrType(m) => m.save_text(),
            NfMatch::Owner(m) => m.save_text(),
            NfMatch::TcpMss(m) => m.save_text(negated),
            NfMatch::Conntrack(m) => m.save_text(),
            NfMatch::Recent(m) => m.save_text(),
            NfMatch::Policy(m) => m.save_text(),
            NfMatch::String(m) => m.save_text(),
            NfMatch::U32(m) => m.save_text(),
            NfMatch::Helper(m) => m.save_text(),
            NfMatch::Statistic(m) => m.save_text(),
            NfMatch::Connbytes(m) => m.save_text(),
            NfMatch::Time(m) => m.save_text(),
            NfMatch::Physdev(m) => m.save_text(),
            NfMatch::Fragment => String::new(),
        }
    }

    /// The module's final check of its options, once the rule is read.
    pub fn check(&self) -> Result<(), String> {
        match self {
            NfMatch::Recent(m) => m.check(),
            NfMatch::Policy(m) => m.check(),
            NfMatch::Conntrack(m) => m.check(),
            NfMatch::String(m) => m.check(),
            NfMatch::Statistic(m) => m.check(),
            NfMatch::Connbytes(m) => m.check(),
            NfMatch::Time(m) => m.check(),
            _ => Ok(()),
        }
    }

    /// Whether a packet arriving from the wire (mark 0, no socket) satisfies the match,
    /// negation aside, where that is known without the packet's other fields; None where
    /// the reference evaluator cannot tell (it then takes the rule not to match).
    pub fn holds_on_arrival(&self) -> Option<bool> {
        match self {
            // A connection's mark starts at 0 too.
            NfMatch::Mark(m) | NfMatch::Connmark(m) => Some(m.holds(0)),
            _ => None,
        }
    }
}
