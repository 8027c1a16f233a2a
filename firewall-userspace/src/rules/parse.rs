//! The iptables command line, parsed into plain data with no side effect.
//!
//! Accepts what iptables accepts for the supported matches: long and short option names,
//! `--opt=value`, `!` before a match, the implicit `-m tcp`/`-m udp`/`-m icmp`, comma lists
//! of addresses (one rule per address, as iptables expands them). Every error names the
//! argument and what was expected, and carries iptables' exit status.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    icmp,
    mark::{self, Connmark, Mark, Tcpmss},
    matches::{self, NfMatch},
    model::{
        Chain, Cidr, CtState, CtZone, Family, IcmpType, LogOpts, Multiport, MultiportKind,
        NatFlags, NatTo, Neg, PortRange, RejectWith, RuleSpec, SetMatch, Table, Target, TcpFlags,
        Verdict, ZoneDir, BARE, CT_STATES, DEFAULT_LOG_LEVEL, LOG_FLAGS,
    },
    nfqueue, options,
    ratelimit::{self, RateMatches},
    services, set_target, synproxy, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
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
    /// `-o json`: the listing as JSON.
    pub json: bool,
}

/// A chain command. Chains are names: user chains exist only in a ruleset, so whether one
/// exists is the editor's question, not the parser's. Rule commands carry one spec per
/// address combination of comma lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Append(String, Vec<RuleSpec>),
    /// Position is 1-based, as typed.
    Insert(String, usize, Vec<RuleSpec>),
    DeleteNum(String, usize),
    DeleteSpec(String, Vec<RuleSpec>),
    /// `-R CHAIN N rule`: one spec (iptables refuses address lists here).
    Replace(String, usize, Box<RuleSpec>),
    Check(String, Vec<RuleSpec>),
    Policy(Chain, Verdict),
    Flush(Option<String>),
    /// `-Z [CHAIN [N]]`, `-L [CHAIN [N]]`, `-S [CHAIN [N]]`: N picks one rule.
    Zero(Option<String>, Option<usize>),
    List(Option<String>, Option<usize>),
    ListRules(Option<String>, Option<usize>),
    NewChain(String),
    DeleteChain(Option<String>),
    RenameChain(String, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub family: Family,
    pub table: Table,
    pub command: Command,
    pub list: ListOptions,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Append,
    Replace,
    Insert,
    Delete,
    Check,
    Policy,
    Flush,
    Zero,
    List,
    ListRules,
    NewChain,
    DeleteChain,
    RenameChain,
}

impl Verb {
    fn letter(self) -> &'static str {
        match self {
            Verb::Append => "-A",
            Verb::Replace => "-R",
            Verb::Insert => "-I",
            Verb::Delete => "-D",
            Verb::Check => "-C",
            Verb::Policy => "-P",
            Verb::Flush => "-F",
            Verb::Zero => "-Z",
            Verb::List => "-L",
            Verb::ListRules => "-S",
            Verb::NewChain => "-N",
            Verb::DeleteChain => "-X",
            Verb::RenameChain => "-E",
        }
    }

    fn takes_rule(self) -> bool {
        matches!(
            self,
            Verb::Append | Verb::Insert | Verb::Delete | Verb::Check | Verb::Replace
        )
    }

    /// Verbs whose chain operand is required.
    fn needs_chain(self) -> bool {
        matches!(
            self,
            Verb::Append
                | Verb::Replace
                | Verb::Insert
                | Verb::Delete
                | Verb::Check
                | Verb::Policy
                | Verb::NewChain
                | Verb::RenameChain
        )
    }
}

/// Match modules loaded with `-m`, which enable their options.
#[derive(Default)]
struct Modules {
    /// `-m tcp`, `-m udp`, `-m icmp`, `-m icmp6`, which may come before the `-p` they
    /// need (RHEL writes `-m state --state NEW -m tcp -p tcp --dport 22`); checked against
    /// `-p` once the whole rule is read.
    proto: [bool; 4],
    /// The protocol match `-p` implies, loaded as iptables loads it: only once an option
    /// is not one of those already known (so `-p tcp -m multiport --dpo` is `--dports`,
    /// while `-p tcp --dp` is `--dport`).
    implied: [bool; 4],
    multiport: bool,
    /// `-m comment` given and not yet used by a `--comment` (each takes its own).
    comment: usize,
    conntrack: bool,
    state: bool,
    /// `-m set` given and not yet used by a `--match-set` (each takes its own).
    set: usize,
    /// limit, hashlimit, connlimit.
    rate: [bool; 3],
    /// Netfilter-only matches loaded, in order, with what each has taken so far.
    nf: Vec<(&'static matches::Module, Option<Neg<NfMatch>>)>,
    /// Every match module in the order iptables loaded it (`-m`, or the protocol's match
    /// when its first option came): the order it lists and saves them in.
    order: Vec<String>,
    /// Per protocol match, where in `order` its latest load is: that load takes the
    /// options that follow, as xtables marks the earlier ones completed.
    proto_last: [Option<usize>; 4],
    /// The options protocol match loads took: (place in `order`, field).
    proto_taken: Vec<(usize, ProtoField)>,
}

/// What a protocol match's option sets; each once per load, as iptables takes them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProtoField {
    Sport,
    Dport,
    /// `--syn` or `--tcp-flags`.
    Flags,
    /// `--icmp-type` or `--icmpv6-type`.
    Icmp,
}

impl ProtoField {
    /// iptables 1.8.9's refusal of the field's second option in one load of `proto`.
    fn twice(self, proto: &str) -> String {
        let long = match self {
            ProtoField::Sport => "--source-port",
            ProtoField::Dport => "--destination-port",
            ProtoField::Flags => return "Only one of `--syn' or `--tcp-flags'  allowed".into(),
            ProtoField::Icmp if proto == "icmp6" => "--icmpv6-type",
            ProtoField::Icmp => "--icmp-type",
        };
        if proto == "tcp" {
            format!("Only one `{long}' allowed")
        } else {
            format!("{proto}: option \"{long}\" can only be used once.")
        }
    }
}

/// The order the listing writes matches in when nothing else is said; the netfilter-only
/// matches keep their own order among themselves, in `RuleSpec::nf`.
const CANONICAL_ORDER: [&str; 12] = [
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "multiport",
    "state",
    "conntrack",
    "set",
    "limit",
    "hashlimit",
    "connlimit",
    "",
];

/// `loaded` (the modules in the order iptables loaded them), kept only when the listing
/// would otherwise write them in another order, or when it names an option-less protocol
/// match (which only the order records). Every load counts: `-m set A -m connlimit -m set
/// B` lists B after connlimit, as iptables does.
fn given_order(loaded: &[String]) -> Vec<String> {
    let rank = |m: &str| {
        let m = m.strip_prefix(BARE).unwrap_or(m);
        if m == "comment" {
            CANONICAL_ORDER.len()
        } else {
            CANONICAL_ORDER
                .iter()
                .position(|c| *c == m)
                .unwrap_or(CANONICAL_ORDER.len() - 1)
        }
    };
    let order = loaded.to_vec();
    let ranks: Vec<usize> = order.iter().map(|m| rank(m)).collect();
    let bare = order.iter().any(|m| m.starts_with(BARE));
    if !bare && ranks.windows(2).all(|w| w[0] <= w[1]) {
        Vec::new()
    } else {
        order
    }
}

/// The loads the listing orders matches by: the options of several loads of one protocol
/// match are one match (iptables-nft lists them together, at the first load that had any),
/// so the later loads that had options are left out.
fn listed_order(loads: &[String]) -> Vec<String> {
    let mut seen: Vec<&String> = Vec::new();
    loads
        .iter()
        .filter(|name| {
            if !PROTO_MATCHES.iter().any(|(n, _, _)| n == *name) {
                return true;
            }
            if seen.contains(name) {
                return false;
            }
            seen.push(name);
            true
        })
        .cloned()
        .collect()
}

/// The protocol matches `-m` can name, with the protocol each needs and the words of
/// iptables' complaint when it is missing.
const PROTO_MATCHES: [(&str, u8, &str); 4] = [
    ("tcp", IPPROTO_TCP, "TCP match requires '-p tcp'"),
    ("udp", IPPROTO_UDP, "UDP match requires '-p udp'"),
    ("icmp", IPPROTO_ICMP, "icmp match requires '-p icmp'"),
    ("icmp6", IPPROTO_ICMPV6, "icmp6 match requires '-p icmpv6'"),
];

impl Modules {
    /// The long options iptables knows at this point of the command line: its own, those
    /// of the matches loaded (the protocol's too, once `-p` names it) and of the target.
    fn known(&self, spec: &SpecBuilder) -> Vec<options::Options> {
        let mut out = vec![options::BASE];
        let protos = [options::TCP, options::UDP, options::ICMP, options::ICMP6];
        for (i, opts) in protos.into_iter().enumerate() {
            if self.proto[i] || self.implied[i] {
                out.push(opts);
            }
        }
        for (loaded, opts) in [
            (self.multiport, options::MULTIPORT),
            (self.comment > 0, options::COMMENT),
            (self.state, options::STATE),
            (self.set > 0, options::SET),
            (self.rate[0], options::LIMIT),
            (self.rate[1], options::HASHLIMIT),
            (self.rate[2], options::CONNLIMIT),
        ] {
            if loaded {
                out.push(opts);
            }
        }
        out.extend(self.nf.iter().map(|(m, _)| m.options));
        out.extend(spec.target.as_ref().and_then(target_options));
        out
    }

    /// `opt` as getopt_long reads it with the options known so far; if it names none of
    /// them (or is ambiguous among them), iptables loads the match `-p` implies and tries
    /// again, and so does this.
    fn resolve<'a>(&mut self, opt: &'a str, spec: &SpecBuilder) -> Result<&'a str, ParseError> {
        let first = options::resolve(opt, &self.known(spec));
        let proto = spec.proto.as_ref().filter(|p| !p.negated).map(|p| p.value);
        let implied = PROTO_MATCHES
            .iter()
            .position(|(_, n, _)| Some(*n) == proto)
            .filter(|i| !self.implied[*i]);
        let result = match (first, implied) {
            (Ok(None) | Err(_), Some(i)) => {
                self.implied[i] = true;
                self.order.push(PROTO_MATCHES[i].0.to_string());
                self.proto_last[i] = Some(self.order.len() - 1);
                options::resolve(opt, &self.known(spec))
            }
            (first, _) => first,
        };
        // An option no one knows stays as written, for the caller to refuse by name.
        Ok(result.map_err(bad)?.unwrap_or(opt))
    }

    /// Notes that the latest load of protocol match `proto` took `opt`, setting `field`;
    /// `given`: whether an earlier load set the field already. iptables refuses a field
    /// twice in one load; in two loads it requires both (and lists the last), where fwctl
    /// keeps one value per rule, so that is refused too rather than judged by the last.
    fn proto_option(
        &mut self,
        proto: &str,
        field: ProtoField,
        opt: &str,
        given: bool,
    ) -> Result<(), ParseError> {
        let at = PROTO_MATCHES.iter().position(|(n, _, _)| *n == proto);
        let Some(load) = at.and_then(|i| self.proto_last[i]) else {
            return Ok(());
        };
        if self.proto_taken.contains(&(load, field)) {
            return Err(bad(field.twice(proto)));
        }
        if given {
            return Err(bad(format!(
                "{opt} in two -m {proto} of one rule is not supported by this version of fwctl: it keeps one per rule, where iptables requires both"
            )));
        }
        self.proto_taken.push((load, field));
        Ok(())
    }

    /// Every load in order, a protocol match load that took no option as `bare:tcp`: it is
    /// listed on its own (`-p tcp -m tcp` lists as `tcp`, saves as `-m tcp`, in iptables
    /// 1.8.9). iptables refuses `-m icmp` without `--icmp-type`.
    fn marked_order(&self) -> Result<Vec<String>, ParseError> {
        let mut out = Vec::with_capacity(self.order.len());
        for (at, name) in self.order.iter().enumerate() {
            let proto = PROTO_MATCHES.iter().any(|(n, _, _)| n == name);
            if !proto || self.proto_taken.iter().any(|(load, _)| *load == at) {
                out.push(name.clone());
                continue;
            }
            match name.as_str() {
                "icmp" => return Err(bad("icmp: option \"--icmp-type\" must be specified")),
                "icmp6" => return Err(bad("icmp6: option \"--icmpv6-type\" must be specified")),
                _ => out.push(format!("{BARE}{name}")),
            }
        }
        Ok(out)
    }

    /// The protocol of the port options: an explicit `-m tcp`/`-m udp` first, else `-p`.
    fn port_proto(&self, spec: &SpecBuilder) -> Option<&'static str> {
        match (self.proto[0], self.proto[1]) {
            (true, _) => Some("tcp"),
            (false, true) => Some("udp"),
            _ => match spec.proto.as_ref().filter(|p| !p.negated).map(|p| p.value) {
                Some(IPPROTO_TCP) => Some("tcp"),
                Some(IPPROTO_UDP) => Some("udp"),
                _ => None,
            },
        }
    }

    /// Whether the match for `proto` is there: loaded with `-m`, or implied by `-p`.
    fn has_proto(&self, spec: &SpecBuilder, proto: u8) -> bool {
        let loaded = PROTO_MATCHES
            .iter()
            .zip(self.proto)
            .any(|((_, p, _), on)| on && *p == proto);
        loaded || spec.proto.as_ref().map(|p| (p.value, p.negated)) == Some((proto, false))
    }

    /// iptables' final check of the modules that need an option: `-m set` without its
    /// `--match-set` would otherwise vanish from the rule, and with it the module's place
    /// in the order the save writes (found by the rule_grammar fuzz target).
    fn check_required(&self, spec: &SpecBuilder) -> Result<(), ParseError> {
        if self.comment > 0 {
            return Err(bad("comment: option \"--comment\" must be specified"));
        }
        if self.set > 0 {
            return Err(bad("You must specify `--match-set' with proper arguments"));
        }
        if self.multiport && spec.multiport.is_none() {
            return Err(bad("multiport expection an option"));
        }
        if self.state && spec.ctstate.is_none() {
            return Err(bad("state: option \"--state\" must be specified"));
        }
        Ok(())
    }

    /// iptables' final check of `-m tcp` and the like: the rule's `-p` must be theirs.
    fn check_proto(&self, spec: &SpecBuilder) -> Result<(), ParseError> {
        let proto = spec.proto.as_ref().filter(|p| !p.negated).map(|p| p.value);
        for ((_, number, message), loaded) in PROTO_MATCHES.iter().zip(self.proto) {
            if loaded && proto != Some(*number) {
                return Err(bad(*message));
            }
        }
        Ok(())
    }
}

/// What the match and target options said, before the command decides what it needs.
#[derive(Default)]
struct SpecBuilder {
    in_iface: Option<Neg<String>>,
    out_iface: Option<Neg<String>>,
    /// `-o VALUE`: an output interface for rule commands, `json` for listings.
    out: Option<(String, bool)>,
    src: Option<(String, bool)>,
    dst: Option<(String, bool)>,
    proto: Option<Neg<u8>>,
    sport: Option<Neg<PortRange>>,
    dport: Option<Neg<PortRange>>,
    multiport: Option<Neg<Multiport>>,
    icmp: Option<Neg<IcmpType>>,
    tcp_flags: Option<Neg<TcpFlags>>,
    ctstate: Option<Neg<CtState>>,
    sets: Vec<Neg<SetMatch>>,
    rate: RateMatches,
    nf: Vec<Neg<NfMatch>>,
    /// The modules' order where it is not fwctl's own (`RuleSpec::order`).
    order: Vec<String>,
    comment: Option<String>,
    target: Option<Target>,
    /// A NAT target's `--random`, `--random-fully`, `--persistent` (NF_NAT_RANGE_* bits).
    nat_flags: u32,
    /// `--to-source`/`--to-destination`, parsed once the family is known.
    nat_to: Option<String>,
    /// `--reject-with`, likewise.
    reject_with: Option<String>,
    /// `-j MARK`'s option, as (value, mask).
    mark: Option<Mark>,
    /// `-j CONNMARK`'s and `-j TCPMSS`'s options.
    connmark: Option<Connmark>,
    /// CONNMARK's ctmask and nfmask fields as its options left them (all ones at first),
    /// and which of `--nfmask`, `--ctmask`, `--mask` were given.
    connmark_masks: Option<(u32, u32)>,
    connmark_mask_opts: Vec<&'static str>,
    tcpmss: Option<Tcpmss>,
    /// `-j CT --notrack` given.
    notrack: bool,
    /// `-j NFQUEUE`'s options given.
    nfqueue_given: nfqueue::Given,
    /// `-j CT --zone*` given.
    ct_zone: Option<CtZone>,
    /// `-j CHECKSUM --checksum-fill` given.
    checksum_fill: bool,
    any: bool,
}

/// Fails on the second use of an option iptables takes once (`-p`, `-s`, `-d`, `-i`).
fn once(given: &mut Vec<&'static str>, opt: &'static str) -> Result<(), ParseError> {
    if given.contains(&opt) {
        return Err(bad(format!("multiple {opt} flags not allowed")));
    }
    given.push(opt);
    Ok(())
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
        if (arg.starts_with('-') && arg.len() > 1) || arg == "!" {
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
    // The -4 or -6 given, if any.
    let mut family_flag: Option<Family> = None;
    let mut table = Table::Filter;
    let mut verb: Option<(Verb, Option<&'a str>, Option<&'a str>)> = None;
    let mut list = ListOptions::default();
    let mut spec = SpecBuilder::default();
    let mut modules = Modules::default();
    let mut negate = false;
    let mut args = Args { args, pos: 0 };
    // Options iptables takes once per rule: a second `-p` would leave the first one's
    // matches (`--icmp-type`) on a rule of another protocol, which no save could restore.
    let mut given: Vec<&'static str> = Vec::new();

    while let Some(raw) = args.next() {
        let (opt, inline) = split_long(raw);
        let opt = modules.resolve(opt, &spec)?;
        if opt == "!" {
            if negate {
                return Err(bad("multiple `!' flags not allowed"));
            }
            negate = true;
            continue;
        }
        let neg = std::mem::take(&mut negate);
        let negatable = matches!(
            opt,
            "-i" | "--in-interface"
                | "-f"
                | "--fragments"
                | "-o"
                | "--out-interface"
                | "-s"
                | "--source"
                | "--src"
                | "-d"
                | "--destination"
                | "--dst"
                | "-p"
                | "--protocol"
                | "--sport"
                | "--source-port"
                | "--dport"
                | "--destination-port"
                | "--sports"
                | "--source-ports"
                | "--dports"
                | "--destination-ports"
                | "--ports"
                | "--icmp-type"
                | "--icmpv6-type"
                | "--syn"
                | "--tcp-flags"
                | "--ctstate"
                | "--state"
                | "--match-set"
        ) || ratelimit::module_of(opt).is_some()
            // Netfilter-only matches say themselves whether `!` may precede an option.
            || modules.nf.iter().any(|(m, _)| m.options.iter().any(|(n, _)| *n == opt));
        if neg && !negatable {
            return Err(bad(format!("cannot have ! before {opt}")));
        }
        let mut set_verb = |v: Verb, args: &mut Args<'a>| -> Result<(), ParseError> {
            if let Some((prev, _, _)) = verb {
                return Err(bad(format!(
                    "Can't use {} with {}",
                    v.letter(),
                    prev.letter()
                )));
            }
            let chain =
                if v.needs_chain() {
                    Some(args.value(v.letter(), inline).map_err(|_| {
                        bad(format!("option \"{}\" requires an argument", v.letter()))
                    })?)
                } else {
                    inline.or_else(|| args.operand())
                };
            // The second operand: rule number for -I/-D, policy for -P, new name for -E.
            let extra = match v {
                Verb::Insert
                | Verb::Delete
                | Verb::Replace
                | Verb::Zero
                | Verb::List
                | Verb::ListRules => args.operand().filter(|s| s.parse::<i64>().is_ok()),
                Verb::Policy => Some(
                    args.next()
                        .ok_or_else(|| bad("-P requires a chain and a policy (ACCEPT or DROP)"))?,
                ),
                Verb::RenameChain => Some(
                    args.operand()
                        .ok_or_else(|| bad("-E requires the old and the new chain name"))?,
                ),
                _ => None,
            };
            verb = Some((v, chain, extra));
            Ok(())
        };
        match opt {
            "-A" | "--append" => set_verb(Verb::Append, &mut args)?,
            "-R" | "--replace" => set_verb(Verb::Replace, &mut args)?,
            "-I" | "--insert" => set_verb(Verb::Insert, &mut args)?,
            "-D" | "--delete" => set_verb(Verb::Delete, &mut args)?,
            "-C" | "--check" => set_verb(Verb::Check, &mut args)?,
            "-P" | "--policy" => set_verb(Verb::Policy, &mut args)?,
            "-F" | "--flush" => set_verb(Verb::Flush, &mut args)?,
            "-Z" | "--zero" => set_verb(Verb::Zero, &mut args)?,
            "-L" | "--list" => set_verb(Verb::List, &mut args)?,
            "-S" | "--list-rules" => set_verb(Verb::ListRules, &mut args)?,
            "-N" | "--new-chain" => set_verb(Verb::NewChain, &mut args)?,
            "-X" | "--delete-chain" => set_verb(Verb::DeleteChain, &mut args)?,
            "-E" | "--rename-chain" => set_verb(Verb::RenameChain, &mut args)?,
            "-f" | "--fragments" => {
                if spec.nf.iter().any(|m| m.value == NfMatch::Fragment) {
                    return Err(bad("multiple -f flags not allowed"));
                }
                spec.nf.push(Neg {
                    value: NfMatch::Fragment,
                    negated: neg,
                });
                spec.any = true;
            }
            "-4" | "--ipv4" | "-6" | "--ipv6" => {
                let wanted = match opt.ends_with('4') {
                    true => Family::V4,
                    false => Family::V6,
                };
                match family_flag {
                    Some(f) if f != wanted => {
                        return Err(bad("-4 and -6 cannot both be given: a rule has one family"))
                    }
                    None if wanted != family && args.pos > 1 => {
                        // ip6tables takes -6 anywhere, but options before it were read for
                        // IPv4 (a recent match's mask, a rate limit's): read them again,
                        // the family first.
                        let at = args.pos - 1;
                        let again: Vec<String> = std::iter::once(raw.to_string())
                            .chain(args.args[..at].iter().cloned())
                            .chain(args.args[at + 1..].iter().cloned())
                            .collect();
                        return parse_args(&again);
                    }
                    _ => {}
                }
                family_flag = Some(wanted);
                family = wanted;
            }
            "-t" | "--table" => {
                let name = args.value(opt, inline)?;
                table = Table::from_name(name).ok_or_else(|| ParseError {
                    message: format!(
                        "table `{name}' is not supported: fwctl manages the filter, nat, mangle, raw and security tables"
                    ),
                    status: 3,
                })?;
            }
            // fwctl always waits for the namespace's lock, so iptables' lock options are
            // accepted and change nothing (scripts pass them routinely).
            "-w" | "--wait" => {
                args.operand().filter(|s| s.parse::<f64>().is_ok());
            }
            "-W" | "--wait-interval" => {
                args.value(opt, inline)?;
            }
            "-n" | "--numeric" => list.numeric = true,
            "-v" | "--verbose" => list.verbose = true,
            "-x" | "--exact" => list.exact = true,
            "--line-numbers" => list.line_numbers = true,
            "-o" | "--out-interface" | "--output" => {
                let value = args.value(opt, inline)?;
                spec.out = Some((value.to_string(), neg));
            }
            "-i" | "--in-interface" => {
                once(&mut given, "-i")?;
                let name = args.value(opt, inline)?;
                spec.in_iface = Some(Neg {
                    value: parse_iface(name)?,
                    negated: neg,
                });
                spec.any = true;
            }
            "-s" | "--source" | "--src" => {
                once(&mut given, "-s")?;
                spec.src = Some((args.value(opt, inline)?.to_string(), neg));
                spec.any = true;
            }
            "-d" | "--destination" | "--dst" => {
                once(&mut given, "-d")?;
                spec.dst = Some((args.value(opt, inline)?.to_string(), neg));
                spec.any = true;
            }
            "-p" | "--protocol" => {
                once(&mut given, "-p")?;
                spec.proto = parse_proto(args.value(opt, inline)?)?.map(|p| Neg {
                    value: p,
                    negated: neg,
                });
                spec.any = true;
            }
            "-m" | "--match" => {
                let name = args.value(opt, inline)?;
                modules.order.push(name.to_string());
                if let Some(i) = PROTO_MATCHES.iter().position(|(n, _, _)| *n == name) {
                    modules.proto[i] = true;
                    modules.proto_last[i] = Some(modules.order.len() - 1);
                    continue;
                }
                match name {
                    "multiport" => modules.multiport = true,
                    "comment" => modules.comment += 1,
                    "conntrack" => {
                        modules.conntrack = true;
                        modules.nf.push((&matches::conntrack::MODULE, None));
                    }
                    "state" => modules.state = true,
                    "set" => modules.set += 1,
                    "limit" => modules.rate[0] = true,
                    "hashlimit" => modules.rate[1] = true,
                    "connlimit" => modules.rate[2] = true,
                    _ if matches::module(name).is_some() => {
                        modules.nf.extend(matches::module(name).map(|m| (m, None)));
                    }
                    _ => {
                        return Err(bad(format!(
                            "Couldn't load match `{name}': not supported by this version of fwctl"
                        )))
                    }
                }
            }
            "--sport" | "--source-port" | "--dport" | "--destination-port" => {
                let proto = modules
                    .port_proto(&spec)
                    .ok_or_else(|| port_needs_proto(opt))?;
                let source = opt.starts_with("--s");
                let (field, given) = if source {
                    (ProtoField::Sport, spec.sport.is_some())
                } else {
                    (ProtoField::Dport, spec.dport.is_some())
                };
                modules.proto_option(proto, field, opt, given)?;
                let range = parse_ports(args.value(opt, inline)?, proto)?;
                let value = Some(Neg {
                    value: range,
                    negated: neg,
                });
                if source {
                    spec.sport = value;
                } else {
                    spec.dport = value;
                }
                spec.any = true;
            }
            "--sports" | "--source-ports" | "--dports" | "--destination-ports" | "--ports" => {
                if !modules.multiport {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it needs -m multiport"
                    )));
                }
                let proto = modules
                    .port_proto(&spec)
                    .ok_or_else(|| port_needs_proto(opt))?;
                let kind = match opt {
                    "--sports" | "--source-ports" => MultiportKind::Sports,
                    "--dports" | "--destination-ports" => MultiportKind::Dports,
                    _ => MultiportKind::Ports,
                };
                let text = args.value(opt, inline)?;
                let ports = text
                    .split(',')
                    .map(|p| parse_ports(p, proto))
                    .collect::<Result<Vec<_>, _>>()?;
                let slots: usize = ports
                    .iter()
                    .map(|r| if r.min == r.max { 1 } else { 2 })
                    .sum();
                if slots > 15 {
                    return Err(bad(format!(
                        "too many ports in `{text}': multiport takes at most 15 (a range counts 2)"
                    )));
                }
                spec.multiport = Some(Neg {
                    value: Multiport { kind, ports },
                    negated: neg,
                });
                spec.any = true;
            }
            "--icmp-type" | "--icmpv6-type" => {
                let v6 = opt == "--icmpv6-type";
                let want = if v6 { IPPROTO_ICMPV6 } else { IPPROTO_ICMP };
                if !modules.has_proto(&spec, want) {
                    let p = if v6 { "icmpv6" } else { "icmp" };
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it needs -p {p} before it"
                    )));
                }
                let proto = if v6 { "icmp6" } else { "icmp" };
                modules.proto_option(proto, ProtoField::Icmp, opt, spec.icmp.is_some())?;
                let text = args.value(opt, inline)?;
                let (kind, code_min, code_max) = icmp::parse(text, v6)
                    .ok_or_else(|| bad(format!("Invalid ICMP type `{text}'")))?;
                spec.icmp = Some(Neg {
                    value: IcmpType {
                        kind,
                        code_min,
                        code_max,
                    },
                    negated: neg,
                });
                spec.any = true;
            }
            "--syn" | "--tcp-flags" => {
                if !modules.has_proto(&spec, IPPROTO_TCP) {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it needs -p tcp before it"
                    )));
                }
                modules.proto_option("tcp", ProtoField::Flags, opt, spec.tcp_flags.is_some())?;
                let flags = if opt == "--syn" {
                    TcpFlags {
                        mask: FIN | SYN | RST | ACK,
                        comp: SYN,
                    }
                } else {
                    let mask = parse_tcp_flags(args.value(opt, inline)?)?;
                    let comp =
                        parse_tcp_flags(args.operand().ok_or_else(|| {
                            bad("--tcp-flags requires two arguments: MASK COMP")
                        })?)?;
                    TcpFlags { mask, comp }
                };
                spec.tcp_flags = Some(Neg {
                    value: flags,
                    negated: neg,
                });
                spec.any = true;
            }
            "--ctstate" if !modules.conntrack => {
                return Err(bad(format!(
                    "unknown option \"{opt}\": it needs -m conntrack"
                )));
            }
            "--state" => {
                if !modules.state {
                    return Err(bad(format!("unknown option \"{opt}\": it needs -m state")));
                }
                if spec.ctstate.is_some() {
                    return Err(bad("state: option \"--state\" can only be used once."));
                }
                let states = parse_ctstates(args.value(opt, inline)?)?;
                spec.ctstate = Some(Neg {
                    value: CtState {
                        states,
                        legacy: true,
                    },
                    negated: neg,
                });
                spec.any = true;
            }
            "--match-set" => {
                if modules.set == 0 {
                    return Err(bad(
                        "unknown option \"--match-set\": each one needs its own -m set",
                    ));
                }
                modules.set -= 1;
                let name = args.value(opt, inline)?;
                let flags = args
                    .operand()
                    .ok_or_else(|| bad("--match-set requires two args: NAME src|dst[,src|dst]"))?;
                spec.sets.push(Neg {
                    value: parse_set_match(name, flags)?,
                    negated: neg,
                });
                spec.any = true;
            }
            "--return-nomatch"
            | "--update-counters"
            | "--update-subcounters"
            | "--packets-eq"
            | "--packets-lt"
            | "--packets-gt"
            | "--bytes-eq"
            | "--bytes-lt"
            | "--bytes-gt" => {
                return Err(bad(format!(
                    "{opt} is not supported by this version of fwctl"
                )))
            }
            _ if ratelimit::module_of(opt).is_some() => {
                let module = ratelimit::module_of(opt).unwrap_or_default();
                let loaded = match module {
                    "limit" => modules.rate[0],
                    "hashlimit" => modules.rate[1],
                    _ => modules.rate[2],
                };
                if !loaded {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it needs -m {module}"
                    )));
                }
                ratelimit::take_option(&mut spec.rate, opt, neg, family == Family::V6, || {
                    args.value(opt, inline).map_err(|e| e.message)
                })
                .map_err(bad)?;
                spec.any = true;
            }
            "--comment" => {
                if modules.comment == 0 {
                    return Err(bad("unknown option \"--comment\": it needs -m comment"));
                }
                // iptables keeps each comment; fwctl's model holds one, so a second would
                // be lost from the listing and the save.
                if spec.comment.is_some() {
                    return Err(bad(
                        "a second -m comment --comment: fwctl keeps one comment per rule",
                    ));
                }
                modules.comment -= 1;
                let text = args.value(opt, inline)?;
                if text.len() > 255 {
                    return Err(bad("comment is longer than 255 characters"));
                }
                spec.comment = Some(text.to_string());
                spec.any = true;
            }
            "-j" | "--jump" => {
                once(&mut given, "-j")?;
                let target = args.value(opt, inline)?;
                spec.target = Some(parse_target(target)?);
                spec.any = true;
            }
            "--to-source" | "--to-destination" => {
                let wants = if opt == "--to-source" { "SNAT" } else { "DNAT" };
                if spec.target.as_ref().map(Target::name) != Some(wants) {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it goes after -j {wants}"
                    )));
                }
                if spec.nat_to.is_some() {
                    return Err(bad(format!("{opt} given twice: fwctl takes one address")));
                }
                spec.nat_to = Some(args.value(opt, inline)?.to_string());
            }
            "--reject-with" => {
                if !matches!(spec.target, Some(Target::Reject(..))) {
                    return Err(bad(
                        "unknown option \"--reject-with\": it goes after -j REJECT",
                    ));
                }
                spec.reject_with = Some(args.value(opt, inline)?.to_string());
            }
            "--log-prefix" | "--log-level" => {
                let Some(Target::Log(log)) = &mut spec.target else {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it goes after -j LOG"
                    )));
                };
                let value = args.value(opt, inline)?;
                if opt == "--log-prefix" {
                    // An open quote runs to the end of the line, newline included (see
                    // restore::words); iptables refuses that in a prefix.
                    if value.contains('\n') {
                        return Err(bad("Newlines not allowed in --log-prefix"));
                    }
                    if value.len() > 29 {
                        return Err(bad(format!(
                            "Maximum prefix length 29 for --log-prefix: `{value}' is {}",
                            value.len()
                        )));
                    }
                    log.prefix = Some(value.to_string());
                } else {
                    log.level = parse_log_level(value)?;
                }
            }
            "--log-tcp-sequence" | "--log-tcp-options" | "--log-ip-options" | "--log-uid"
            | "--log-macdecode" => {
                let Some(Target::Log(log)) = &mut spec.target else {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it goes after -j LOG"
                    )));
                };
                let bit = LOG_FLAGS
                    .iter()
                    .find(|(_, name, _)| *name == opt)
                    .map_or(0, |(bit, _, _)| *bit);
                if log.flags & bit != 0 {
                    return Err(bad(format!("LOG: option \"{opt}\" can only be used once.")));
                }
                log.flags |= bit;
            }
            "--set-xmark" | "--set-mark" | "--and-mark" | "--or-mark" | "--xor-mark" => {
                let connmark = match spec.target {
                    Some(Target::Mark(_)) => false,
                    Some(Target::Connmark(_)) => true,
                    _ => {
                        return Err(bad(format!(
                            "unknown option \"{opt}\": it goes after -j MARK or -j CONNMARK"
                        )))
                    }
                };
                if spec.mark.is_some() || spec.connmark.is_some() {
                    let name = if connmark { "CONNMARK" } else { "MARK" };
                    return Err(bad(format!(
                        "{name} target: Can't specify --set-mark twice"
                    )));
                }
                let value = Mark::from_option(opt, args.value(opt, inline)?).map_err(bad)?;
                if connmark {
                    spec.connmark = Some(Connmark::Set(value));
                    // The set forms write the ctmask field a later --mask may change.
                    let nf = spec.connmark_masks.map_or(u32::MAX, |m| m.0);
                    spec.connmark_masks = Some((nf, value.mask));
                } else {
                    spec.mark = Some(value);
                }
            }
            "--save-mark" | "--restore-mark" => {
                if !matches!(spec.target, Some(Target::Connmark(_))) {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it goes after -j CONNMARK"
                    )));
                }
                if spec.connmark.is_some() {
                    return Err(bad("CONNMARK target: Can't specify --set-mark twice"));
                }
                spec.connmark = Some(if opt == "--save-mark" {
                    Connmark::Save
                } else {
                    Connmark::Restore
                });
            }
            // `-m recent --mask` is the match's, unless CONNMARK came first.
            "--nfmask" | "--ctmask" | "--mask"
                if opt != "--mask"
                    || matches!(spec.target, Some(Target::Connmark(_)))
                    || !modules.nf.iter().any(|(m, _)| m.name == "recent") =>
            {
                if !matches!(spec.target, Some(Target::Connmark(_))) {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it goes after -j CONNMARK"
                    )));
                }
                let name: &'static str = match opt {
                    "--nfmask" => "--nfmask",
                    "--ctmask" => "--ctmask",
                    _ => "--mask",
                };
                if spec.connmark_mask_opts.contains(&name) {
                    return Err(bad(format!(
                        "CONNMARK: option \"{name}\" can only be used once."
                    )));
                }
                for (a, b) in [("--nfmask", "--mask"), ("--ctmask", "--mask")] {
                    let other = if name == a {
                        b
                    } else if name == b {
                        a
                    } else {
                        continue;
                    };
                    if spec.connmark_mask_opts.contains(&other) {
                        let (first, second) = if name == "--mask" {
                            (other, name)
                        } else {
                            (name, other)
                        };
                        return Err(bad(format!(
                            "CONNMARK: option \"{first}\" cannot be used together with \"{second}\"."
                        )));
                    }
                }
                spec.connmark_mask_opts.push(name);
                let text = args.value(opt, inline)?;
                let value = mark::parse_u32(text).ok_or_else(|| {
                    bad(format!("CONNMARK: bad value for {name} `{text}': 32 bits"))
                })?;
                let (nf, ct) = spec.connmark_masks.unwrap_or((u32::MAX, u32::MAX));
                spec.connmark_masks = Some(match name {
                    "--nfmask" => (value, ct),
                    "--ctmask" => (nf, value),
                    _ => (value, value),
                });
            }
            "--nflog-group" | "--nflog-prefix" => {
                let Some(Target::Nflog { group, prefix }) = &mut spec.target else {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it goes after -j NFLOG"
                    )));
                };
                let value = args.value(opt, inline)?;
                if opt == "--nflog-group" {
                    *group = value.parse().map_err(|_| {
                        bad(format!("NFLOG: bad --nflog-group `{value}': 0 to 65535"))
                    })?;
                } else if value.contains('\n') {
                    // iptables' words, --log-prefix even for NFLOG's prefix.
                    return Err(bad("Newlines not allowed in --log-prefix"));
                } else if value.len() > 63 {
                    return Err(bad(format!(
                        "NFLOG: Maximum prefix length 63 for --nflog-prefix: `{value}' is {}",
                        value.len()
                    )));
                } else {
                    *prefix = Some(value.to_string());
                }
            }
            "--nflog-range" | "--nflog-size" | "--nflog-threshold" => {
                return Err(bad(format!(
                    "NFLOG {opt} is not supported by this version of fwctl"
                )))
            }
            "--queue-num" | "--queue-balance" | "--queue-bypass" | "--queue-cpu-fanout" => {
                let Some(Target::Nfqueue(q)) = &mut spec.target else {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it goes after -j NFQUEUE"
                    )));
                };
                let mut value = || {
                    args.value(opt, inline)
                        .map(str::to_string)
                        .map_err(|e| e.to_string())
                };
                q.take(&mut spec.nfqueue_given, opt, &mut value)
                    .map_err(bad)?;
            }
            "--mss" | "--wscale" | "--sack-perm" | "--timestamp" | "--ecn"
                if matches!(spec.target, Some(Target::Synproxy(_))) =>
            {
                let Some(Target::Synproxy(s)) = &mut spec.target else {
                    unreachable!("guarded above");
                };
                let mut value = || {
                    args.value(opt, inline)
                        .map(str::to_string)
                        .map_err(|e| e.to_string())
                };
                s.take(opt, &mut value).map_err(bad)?;
            }
            "--set-mss" | "--clamp-mss-to-pmtu" => {
                if !matches!(spec.target, Some(Target::Tcpmss(_))) {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it goes after -j TCPMSS"
                    )));
                }
                if spec.tcpmss.is_some() {
                    return Err(bad(
                        "TCPMSS target: Only one of --set-mss or --clamp-mss-to-pmtu allowed",
                    ));
                }
                let mss = if opt == "--set-mss" {
                    let text = args.value(opt, inline)?;
                    Some(text.parse::<u16>().map_err(|_| {
                        bad(format!(
                            "TCPMSS: bad value for --set-mss `{text}': 0 to 65535"
                        ))
                    })?)
                } else {
                    None
                };
                spec.tcpmss = Some(Tcpmss { mss });
            }
            "--checksum-fill" => {
                if spec.target != Some(Target::Checksum) {
                    return Err(bad(
                        "unknown option \"--checksum-fill\": it goes after -j CHECKSUM",
                    ));
                }
                if spec.checksum_fill {
                    return Err(bad(
                        "CHECKSUM: option \"--checksum-fill\" can only be used once.",
                    ));
                }
                spec.checksum_fill = true;
            }
            "--notrack" => {
                if !matches!(spec.target, Some(Target::Notrack { legacy: false })) {
                    return Err(bad("unknown option \"--notrack\": it goes after -j CT"));
                }
                spec.notrack = true;
            }
            "--add-set" | "--del-set" => {
                let Some(Target::Set(st)) = &mut spec.target else {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it goes after -j SET"
                    )));
                };
                let slot = if opt == "--add-set" {
                    &mut st.add
                } else {
                    &mut st.del
                };
                if slot.is_some() {
                    return Err(bad(format!("{opt} can be specified only once")));
                }
                let name = args.value(opt, inline)?;
                let flags = args
                    .operand()
                    .ok_or_else(|| bad(format!("{opt} requires two args.")))?;
                *slot = Some(parse_set_match(name, flags)?);
            }
            "--exist" | "--timeout" if matches!(spec.target, Some(Target::Set(_))) => {
                let Some(Target::Set(st)) = &mut spec.target else {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it goes after -j SET"
                    )));
                };
                if opt == "--exist" {
                    st.exist = true;
                } else {
                    let text = args.value(opt, inline)?;
                    st.timeout = Some(text.parse().map_err(|_| {
                        bad(format!("SET: bad --timeout `{text}': seconds, 32 bits"))
                    })?);
                }
            }
            "--map-set" | "--map-mark" | "--map-prio" | "--map-queue" => {
                return Err(bad(format!(
                    "SET {opt} is not supported by this version of fwctl"
                )))
            }
            "--zone" | "--zone-orig" | "--zone-reply"
                if matches!(spec.target, Some(Target::Notrack { legacy: false })) =>
            {
                if spec.ct_zone.is_some() {
                    return Err(bad("CT: only one --zone, --zone-orig or --zone-reply"));
                }
                let text = args.value(opt, inline)?;
                let zone = mark::parse_u32(text)
                    .and_then(|z| u16::try_from(z).ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "CT {opt} `{text}': a zone number (0-65535); `mark' is not supported by this version of fwctl"
                        ))
                    })?;
                let dir = match opt {
                    "--zone-orig" => Some(ZoneDir::Original),
                    "--zone-reply" => Some(ZoneDir::Reply),
                    _ => None,
                };
                spec.ct_zone = Some(CtZone { zone, dir });
            }
            // `-m helper --helper` is the match's unless `-j CT` came first.
            "--helper" | "--ctevents" | "--expevents" | "--zone" | "--zone-orig"
            | "--zone-reply" | "--timeout"
                if opt != "--helper"
                    || matches!(
                        spec.target,
                        Some(Target::Notrack { legacy: false } | Target::CtZone(_))
                    )
                    || !modules.nf.iter().any(|(m, _)| m.name == "helper") =>
            {
                return Err(bad(format!(
                    "CT {opt} is not supported by this version of fwctl (only --notrack and --zone)"
                )))
            }
            "--to-ports" => {
                let ports = match &mut spec.target {
                    Some(Target::Masquerade(p) | Target::Redirect(p)) => p,
                    _ => return Err(bad(
                        "unknown option \"--to-ports\": it goes after -j MASQUERADE or -j REDIRECT",
                    )),
                };
                *ports = Some(parse_nat_ports(args.value(opt, inline)?)?);
            }
            "--random" | "--random-fully" | "--persistent" => {
                let bit = NatFlags::ALL
                    .iter()
                    .find(|(_, option, _)| *option == opt)
                    .map_or(0, |(bit, _, _)| *bit);
                let takes = spec
                    .target
                    .as_ref()
                    .and_then(target_options)
                    .is_some_and(|o| o.iter().any(|(name, _)| *name == opt));
                if !takes {
                    return Err(bad(format!(
                        "unknown option \"{opt}\": it goes after a NAT target that takes it (MASQUERADE, SNAT, DNAT, REDIRECT)"
                    )));
                }
                if spec.nat_flags & bit != 0 {
                    return Err(bad(format!("option \"{opt}\" can only be used once.")));
                }
                spec.nat_flags |= bit;
            }
            // The last loaded netfilter-only match that knows the option takes it.
            _ if modules
                .nf
                .iter()
                .any(|(m, _)| m.options.iter().any(|(n, _)| *n == opt)) =>
            {
                let Some((module, current)) = modules
                    .nf
                    .iter_mut()
                    .rev()
                    .find(|(m, _)| m.options.iter().any(|(n, _)| *n == opt))
                else {
                    return Err(bad(format!("unknown option \"{raw}\"")));
                };
                let (value, negated) = (module.take)(
                    current.take().map(|n| n.value),
                    opt,
                    neg,
                    &mut || {
                        args.value(opt, inline)
                            .map(str::to_string)
                            .map_err(|e| e.message)
                    },
                    family,
                )
                .map_err(bad)?;
                *current = Some(Neg { value, negated });
                spec.any = true;
            }
            _ if opt.starts_with('-') => {
                return Err(bad(format!("unknown option \"{raw}\"")));
            }
            _ => return Err(bad(format!("Bad argument `{raw}'"))),
        }
    }
    if negate {
        return Err(bad("`!' at the end of the command: negate what?"));
    }
    // Checked once the line is read: a `-6` may come after the `-f`.
    if family == Family::V6 && spec.nf.iter().any(|m| m.value == NfMatch::Fragment) {
        return Err(bad("-f is IPv4's: ip6tables has no fragment option"));
    }
    modules.check_proto(&spec)?;
    modules.check_required(&spec)?;
    let loads = modules.marked_order()?;
    spec.order = given_order(&listed_order(&loads));
    let mut first_conntrack = true;
    for (module, taken) in std::mem::take(&mut modules.nf) {
        let taken = match (taken, module.defaults) {
            (Some(taken), _) => taken,
            (None, Some(defaults)) => Neg {
                value: defaults(),
                negated: false,
            },
            (None, None) => return Err(bad(module.required)),
        };
        taken.value.check().map_err(bad)?;
        if let NfMatch::Conntrack(ct) = &taken.value {
            // The first `-m conntrack --ctstate S` alone is the rule's state, which XDP
            // judges; later ones keep their place among the rule's other matches.
            if let (true, true, None, Some(s)) = (
                std::mem::take(&mut first_conntrack),
                ct.only_state(),
                &spec.ctstate,
                &ct.state,
            ) {
                spec.ctstate = Some(Neg {
                    value: CtState {
                        states: s.value,
                        legacy: false,
                    },
                    negated: s.negated,
                });
                continue;
            }
        }
        spec.nf.push(taken);
    }
    let changes: Vec<bool> = spec
        .nf
        .iter()
        .filter_map(|m| match &m.value {
            NfMatch::Recent(r) => Some(r.changes()),
            _ => None,
        })
        .collect();
    matches::recent::check_place(&loads, &changes).map_err(bad)?;
    ratelimit::check(&spec.rate, modules.rate).map_err(bad)?;
    if modules.rate[0] && spec.rate.limit.is_none() {
        spec.rate.limit = Some(ratelimit::Limit::default_rate());
        spec.any = true;
    }

    let (verb, chain, extra) = verb.ok_or_else(|| bad("no command specified"))?;
    // `-o` is an output interface in a rule, the output format (json) of a listing.
    if let Some((value, negated)) = spec.out.take() {
        if verb.takes_rule() {
            spec.out_iface = Some(Neg {
                value: parse_iface(&value)?,
                negated,
            });
            spec.any = true;
        } else if matches!(verb, Verb::List | Verb::ListRules) && value == "json" && !negated {
            list.json = true;
        } else {
            return Err(bad(format!(
                "-o {value}: an output interface goes with -A, -I, -D, -R or -C; `-o json' formats -L"
            )));
        }
    }
    if spec.any && !verb.takes_rule() {
        return Err(bad(format!(
            "Illegal option with {}: rule options go with -A, -I, -D or -C",
            verb.letter()
        )));
    }
    if let Some(c) = chain {
        check_chain_name(c)?;
    }
    let chain = chain.map(str::to_string);
    let needs_chain = |chain: Option<String>| {
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
        Verb::Replace => {
            let n = parse_rule_number(
                extra.ok_or_else(|| bad("-R requires a chain and a rule number"))?,
            )?;
            let mut specs = spec.build(family)?;
            if specs.len() != 1 {
                return Err(bad(
                    "-R takes one source and one destination address, not lists",
                ));
            }
            Command::Replace(needs_chain(chain)?, n, Box::new(specs.remove(0)))
        }
        Verb::Delete => match extra {
            Some(n) if !spec.any => Command::DeleteNum(needs_chain(chain)?, parse_rule_number(n)?),
            Some(_) => return Err(bad("-D takes a rule number or a rule, not both")),
            None => Command::DeleteSpec(needs_chain(chain)?, spec.build(family)?),
        },
        Verb::Policy => {
            let name = needs_chain(chain)?;
            let builtin = Chain::from_name(&name).ok_or_else(|| ParseError {
                message: format!("Bad built-in chain name `{name}': policies belong to INPUT, FORWARD and OUTPUT"),
                status: 1,
            })?;
            let target = extra.unwrap_or_default();
            let verdict = Verdict::from_name(target)
                .ok_or_else(|| bad(format!("Bad policy name `{target}': use ACCEPT or DROP")))?;
            Command::Policy(builtin, verdict)
        }
        Verb::Flush => Command::Flush(chain),
        Verb::Zero | Verb::List | Verb::ListRules => {
            let n = extra.map(parse_rule_number).transpose()?;
            if n.is_some() && chain.is_none() {
                return Err(bad(format!(
                    "{} with a rule number needs a chain",
                    verb.letter()
                )));
            }
            match verb {
                Verb::Zero => Command::Zero(chain, n),
                Verb::List => Command::List(chain, n),
                _ => Command::ListRules(chain, n),
            }
        }
        Verb::NewChain => Command::NewChain(needs_chain(chain)?),
        Verb::DeleteChain => Command::DeleteChain(chain),
        Verb::RenameChain => {
            let new = extra.unwrap_or_default();
            check_chain_name(new)?;
            Command::RenameChain(needs_chain(chain)?, new.to_string())
        }
    };
    Ok(Invocation {
        family,
        table,
        command,
        list,
    })
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;

/// TCP flag names in the order iptables lists them.
pub const TCP_FLAG_NAMES: [(u8, &str); 6] = [
    (FIN, "FIN"),
    (SYN, "SYN"),
    (RST, "RST"),
    (PSH, "PSH"),
    (ACK, "ACK"),
    (URG, "URG"),
];

fn parse_tcp_flags(text: &str) -> Result<u8, ParseError> {
    text.split(',').try_fold(0u8, |acc, name| {
        let bits = match name.to_ascii_uppercase().as_str() {
            "ALL" => 0x3f,
            "NONE" => 0,
            upper => TCP_FLAG_NAMES
                .iter()
                .find(|(_, n)| *n == upper)
                .map(|(b, _)| *b)
                .ok_or_else(|| bad(format!("Unknown TCP flag `{name}'")))?,
        };
        Ok(acc | bits)
    })
}

pub(crate) fn parse_ctstates(text: &str) -> Result<u8, ParseError> {
    text.split(',').try_fold(0u8, |acc, name| {
        let bit = CT_STATES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(b, _)| *b)
            .ok_or_else(|| bad(format!("Bad ctstate \"{name}\"")))?;
        Ok(acc | bit)
    })
}

/// `--log-level`: 0 to 7 or a syslog name, as iptables takes it.
fn parse_log_level(text: &str) -> Result<u8, ParseError> {
    let named = match text {
        "emerg" | "panic" => Some(0),
        "alert" => Some(1),
        "crit" => Some(2),
        "err" | "error" => Some(3),
        "warn" | "warning" => Some(4),
        "notice" => Some(5),
        "info" => Some(6),
        "debug" => Some(7),
        _ => text.parse::<u8>().ok().filter(|l| *l <= 7),
    };
    named.ok_or_else(|| {
        bad(format!(
            "log-level `{text}' unknown: use 0 to 7 or a syslog name"
        ))
    })
}

const NAT_UNSET: NatTo = NatTo {
    addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    ports: None,
};

/// NAT ports: `PORT` or `MIN-MAX`, numbers from 1.
fn parse_nat_ports(text: &str) -> Result<PortRange, ParseError> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(format!("Port `{p}' not valid")))
    };
    let range = match text.split_once('-') {
        Some((lo, hi)) => PortRange {
            min: port(lo)?,
            max: port(hi)?,
        },
        None => {
            let p = port(text)?;
            PortRange { min: p, max: p }
        }
    };
    if range.min > range.max {
        return Err(bad(format!(
            "invalid port range `{text}': the first port is above the second"
        )));
    }
    Ok(range)
}

/// `ADDR[:PORTS]`, IPv6 as `[ADDR]:PORTS`; address ranges are refused, not half-applied.
pub fn parse_nat_to(text: &str, family: Family) -> Result<NatTo, ParseError> {
    let unsupported = || {
        bad(format!(
            "`{text}': address ranges are not supported by this version of fwctl: give one address"
        ))
    };
    let (addr, port) = match family {
        Family::V4 => match text.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        },
        Family::V6 => match text.strip_prefix('[') {
            Some(rest) => {
                let (a, tail) = rest
                    .split_once(']')
                    .ok_or_else(|| bad(format!("Bad IP address `{text}'")))?;
                match tail.strip_prefix(':') {
                    Some(p) => (a, Some(p)),
                    None if tail.is_empty() => (a, None),
                    None => return Err(bad(format!("Bad IP address `{text}'"))),
                }
            }
            None => (text, None),
        },
    };
    if addr.contains('-') {
        return Err(unsupported());
    }
    let addr = parse_cidr(addr, family)
        .ok()
        .filter(|c| c.prefix == family.max_prefix())
        .map(|c| c.addr)
        .ok_or_else(|| bad(format!("Bad IP address `{addr}'")))?;
    let ports = port.map(parse_nat_ports).transpose()?;
    Ok(NatTo { addr, ports })
}

fn parse_target(name: &str) -> Result<Target, ParseError> {
    Ok(match name {
        "ACCEPT" => Target::Accept,
        "DROP" => Target::Drop,
        "RETURN" => Target::Return,
        "MASQUERADE" => Target::Masquerade(None),
        "REDIRECT" => Target::Redirect(None),
        // The address comes with --to-source/--to-destination; build() fills it in.
        "SNAT" => Target::Snat(NAT_UNSET),
        "DNAT" => Target::Dnat(NAT_UNSET),
        // The default answer; --reject-with (applied in build()) may change it.
        "REJECT" => Target::Reject(RejectWith::PortUnreachable, Family::V4),
        "LOG" => Target::Log(LogOpts {
            prefix: None,
            level: DEFAULT_LOG_LEVEL,
            flags: 0,
        }),
        // The mark comes with the target's options; build() checks one was given.
        "MARK" => Target::Mark(Mark { value: 0, mask: 0 }),
        // `-j CT` does something only with --notrack here; build() checks.
        "CT" => Target::Notrack { legacy: false },
        "NOTRACK" => Target::Notrack { legacy: true },
        // build() checks --checksum-fill was given.
        "CHECKSUM" => Target::Checksum,
        // build() checks --add-set or --del-set was given.
        "SET" => Target::Set(set_target::SetTarget::empty()),
        // Filled in by their options; build() checks one was given.
        "CONNMARK" => Target::Connmark(Connmark::Save),
        "TCPMSS" => Target::Tcpmss(Tcpmss { mss: None }),
        "NFLOG" => Target::Nflog {
            group: 0,
            prefix: None,
        },
        "NFQUEUE" => Target::Nfqueue(Default::default()),
        "SYNPROXY" => Target::Synproxy(Default::default()),
        _ => {
            check_chain_name(name)?;
            Target::Jump(name.to_string())
        }
    })
}

/// The long options a target takes.
fn target_options(target: &Target) -> Option<options::Options> {
    Some(match target {
        Target::Snat(_) => options::SNAT,
        Target::Dnat(_) => options::DNAT,
        Target::Masquerade(_) => options::MASQUERADE,
        Target::Redirect(_) => options::REDIRECT,
        Target::Reject(..) => options::REJECT,
        Target::Log(_) => options::LOG,
        Target::Nflog { .. } => options::NFLOG,
        Target::Mark(_) => mark::MARK_OPTIONS,
        Target::Connmark(_) => mark::CONNMARK_OPTIONS,
        Target::Tcpmss(_) => mark::TCPMSS_OPTIONS,
        Target::Notrack { legacy: false } => mark::CT_OPTIONS,
        Target::Checksum => mark::CHECKSUM_OPTIONS,
        Target::Set(_) => set_target::OPTIONS,
        Target::Nfqueue(_) => nfqueue::OPTIONS,
        Target::Synproxy(_) => synproxy::OPTIONS,
        _ => return None,
    })
}

/// iptables' limits on chain names.
fn check_chain_name(name: &str) -> Result<(), ParseError> {
    if name.is_empty() || name.len() > 28 {
        return Err(bad(format!(
            "chain name `{name}' must be 1 to 28 characters"
        )));
    }
    if name.starts_with('-') || name.starts_with('!') || name.contains(char::is_whitespace) {
        return Err(bad(format!("Invalid chain name `{name}'")));
    }
    Ok(())
}

/// The protocol a port option belongs to: `-p tcp` or `-p udp` must come first.
fn port_proto(spec: &SpecBuilder, opt: &str) -> Result<&'static str, ParseError> {
    match spec.proto.as_ref().filter(|p| !p.negated).map(|p| p.value) {
        Some(IPPROTO_TCP) => Ok("tcp"),
        Some(IPPROTO_UDP) => Ok("udp"),
        _ => Err(port_needs_proto(opt)),
    }
}

fn port_needs_proto(opt: &str) -> ParseError {
    bad(format!(
        "unknown option \"{opt}\": port matches need -p tcp or -p udp (or -m tcp, -m udp) before them"
    ))
}

impl SpecBuilder {
    /// One spec per (source, destination) of the comma lists, sources outermost, as
    /// iptables expands them.
    fn build(&self, family: Family) -> Result<Vec<RuleSpec>, ParseError> {
        let mut target = self.target.clone().unwrap_or(Target::Count);
        match (&mut target, &self.nat_to) {
            (Target::Snat(to) | Target::Dnat(to), Some(text)) => *to = parse_nat_to(text, family)?,
            (Target::Snat(_), None) => return Err(bad("SNAT needs --to-source ADDR[:PORT]")),
            (Target::Dnat(_), None) => return Err(bad("DNAT needs --to-destination ADDR[:PORT]")),
            _ => {}
        }
        match (&mut target, self.mark) {
            (Target::Mark(m), Some(given)) => *m = given,
            (Target::Mark(_), None) => {
                return Err(bad(
                    "MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required",
                ))
            }
            _ => {}
        }
        match (&mut target, self.connmark, self.tcpmss) {
            (Target::Connmark(c), Some(given), _) => {
                *c = match self.connmark_masks {
                    Some((nf, ct)) => given.with_masks(nf, ct),
                    None => given,
                }
            }
            (Target::Connmark(_), None, _) => {
                return Err(bad(
                    "CONNMARK target: One of --set-xmark, --save-mark, --restore-mark (or --{and,or,xor,set}-mark) is required",
                ))
            }
            (Target::Tcpmss(t), _, Some(given)) => *t = given,
            (Target::Tcpmss(_), _, None) => {
                return Err(bad(
                    "TCPMSS target: At least one parameter is required: --set-mss or --clamp-mss-to-pmtu",
                ))
            }
            _ => {}
        }
        let tcp = self.proto.as_ref().map(|p| (p.value, p.negated)) == Some((IPPROTO_TCP, false));
        if !tcp
            && self
                .nf
                .iter()
                .any(|m| matches!(m.value, NfMatch::TcpMss(_)))
        {
            return Err(bad("tcpmss match: only valid for -p tcp"));
        }
        // The kernel's TCPMSS rewrites TCP options only (xt_TCPMSS refuses other rules).
        if matches!(target, Target::Tcpmss(_))
            && self.proto.as_ref().map(|p| (p.value, p.negated)) != Some((IPPROTO_TCP, false))
        {
            return Err(bad("TCPMSS target: only valid for -p tcp"));
        }
        if let Target::Set(st) = &target {
            st.check().map_err(bad)?;
        }
        if target == Target::Checksum && !self.checksum_fill {
            return Err(bad(
                "CHECKSUM: option \"--checksum-fill\" must be specified",
            ));
        }
        if target == (Target::Notrack { legacy: false }) {
            match (self.notrack, self.ct_zone) {
                (true, None) => {}
                (false, Some(zone)) => target = Target::CtZone(zone),
                (true, Some(_)) => {
                    return Err(bad(
                        "CT: --notrack with --zone is not supported by this version of fwctl",
                    ))
                }
                (false, None) => return Err(bad(
                    "-j CT does nothing without --notrack or --zone, the CT options fwctl supports",
                )),
            }
        }
        if let Target::Reject(with, fam) = &mut target {
            *fam = family;
            if let Some(text) = &self.reject_with {
                *with = RejectWith::from_name(text, family).ok_or_else(|| {
                    let known: Vec<&str> =
                        RejectWith::all(family).map(|w| w.name(family)).collect();
                    bad(format!(
                        "unknown reject type \"{text}\" ({} knows {})",
                        family.tool(),
                        known.join(", ")
                    ))
                })?;
            }
        }
        if matches!(target, Target::Reject(RejectWith::TcpReset, _))
            && self.proto.as_ref().map(|p| (p.value, p.negated)) != Some((IPPROTO_TCP, false))
        {
            return Err(bad("--reject-with tcp-reset needs -p tcp"));
        }
        if let Some(ports) = match &target {
            Target::Snat(to) | Target::Dnat(to) => to.ports,
            Target::Masquerade(p) | Target::Redirect(p) => *p,
            _ => None,
        } {
            // A port is only rewritten in a protocol that has ports.
            if port_proto(self, "--to-source/--to-destination with a port").is_err() {
                return Err(bad(format!("NAT ports ({ports}) need -p tcp or -p udp")));
            }
        }
        let addrs = |field: &Option<(String, bool)>| -> Result<Vec<Option<Neg<Cidr>>>, ParseError> {
            match field {
                None => Ok(vec![None]),
                Some((text, negated)) => {
                    let list = text
                        .split(',')
                        .map(|s| parse_cidr(s, family))
                        .collect::<Result<Vec<_>, _>>()?;
                    if *negated && list.len() > 1 {
                        return Err(bad(
                            "! not allowed with multiple source or destination IP addresses",
                        ));
                    }
                    // `-s 0.0.0.0/0` is no match at all, and iptables lists it as such.
                    Ok(list
                        .into_iter()
                        .map(|c| {
                            (c.prefix != 0).then_some(Neg {
                                value: c,
                                negated: *negated,
                            })
                        })
                        .collect())
                }
            }
        };
        let (srcs, dsts) = (addrs(&self.src)?, addrs(&self.dst)?);
        let mut specs = Vec::with_capacity(srcs.len() * dsts.len());
        for src in &srcs {
            for dst in &dsts {
                specs.push(RuleSpec {
                    in_iface: self.in_iface.clone(),
                    out_iface: self.out_iface.clone(),
                    src: src.clone(),
                    dst: dst.clone(),
                    proto: self.proto.clone(),
                    sport: self.sport.clone(),
                    dport: self.dport.clone(),
                    multiport: self.multiport.clone(),
                    icmp: self.icmp.clone(),
                    tcp_flags: self.tcp_flags.clone(),
                    ctstate: self.ctstate.clone(),
                    sets: self.sets.clone(),
                    rate: self.rate.clone(),
                    nf: self.nf.clone(),
                    order: self.order.clone(),
                    comment: self.comment.clone(),
                    target: target.clone(),
                    nat_flags: NatFlags(self.nat_flags),
                });
            }
        }
        Ok(specs)
    }
}

/// `--match-set NAME FLAGS`: the flags are `src` or `dst` per dimension of the set, as
/// iptables takes them (whether their number fits the set is checked against the set).
fn parse_set_match(name: &str, flags: &str) -> Result<SetMatch, ParseError> {
    if name.is_empty() || name.len() > crate::sets::model::MAX_NAME_LEN {
        return Err(bad(format!("setname `{name}' too long, max 31 characters")));
    }
    let dst = flags
        .split(',')
        .map(|f| match f {
            "src" => Ok(false),
            "dst" => Ok(true),
            _ => Err(bad(format!(
                "You must specify (the comma separated list of) 'src' or 'dst', not `{flags}'"
            ))),
        })
        .collect::<Result<Vec<bool>, _>>()?;
    if dst.len() > 6 {
        return Err(bad(format!(
            "Can't be more src/dst options than 6: `{flags}'"
        )));
    }
    Ok(SetMatch {
        name: name.to_string(),
        dst,
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

/// `-p`: a name iptables knows, one from /etc/protocols, `all`, or a number 0-255.
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
    // Protocol number 0 is `all` however it is written (`00`, `+0`), as in iptables.
    Ok(Some(number).filter(|&n| n != 0))
}

/// `--dport`: a port, a service name, or `a:b` with either side optional (`:1024`, `1024:`).
pub(crate) fn parse_ports(text: &str, proto: &str) -> Result<PortRange, ParseError> {
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
    let addr: IpAddr = match addr.parse() {
        Ok(a) => a,
        Err(_) if family == Family::V4 => IpAddr::V4(short_ipv4(addr).ok_or_else(not_found)?),
        Err(_) => return Err(not_found()),
    };
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

/// IPv4 as xtables reads it numerically: one to four parts, each 0-255 in C's notation
/// (`010` is octal), the missing ones zero: `172.16.0/24` is 172.16.0.0/24, `10/8` 10.0.0.0/8.
fn short_ipv4(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (octet, part) in octets.iter_mut().zip(&parts) {
        *octet = u8::try_from(super::mark::parse_u32(part)?).ok()?;
    }
    Some(Ipv4Addr::from(octets))
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
mod tests;
