//! `-m limit`, `-m hashlimit` and `-m connlimit`: their options as iptables 1.8.9 takes
//! them, and their text as it lists (`-L`) and saves (`-S`) them, byte for byte.
//!
//! Rates are kept as iptables keeps them, the average time between packets in fractions of
//! a second (1/10,000 for limit, 1/1,000,000 for hashlimit's revision 3), so a rate lists
//! back exactly as iptables would show it.

use serde::{Deserialize, Serialize};

/// `XT_LIMIT_SCALE`: limit's periods are in 1/10,000 s.
pub const LIMIT_SCALE: u64 = 10_000;
/// `XT_HASHLIMIT_SCALE_v2`: hashlimit's periods are in microseconds.
pub const HASHLIMIT_SCALE: u64 = 1_000_000;
/// `XT_LIMIT_BURST`, also hashlimit's default.
pub const DEFAULT_BURST: u32 = 5;
/// The largest burst iptables accepts.
const MAX_BURST: u32 = 10_000;

/// Units a rate may be given in, longest first (the order the listing tries them in).
const UNITS: [(&str, u64); 4] = [("day", 86_400), ("hour", 3_600), ("min", 60), ("sec", 1)];

/// `--limit N/unit`, `--limit-burst B`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// Average period between packets, in 1/[`LIMIT_SCALE`] s.
    pub avg: u64,
    pub burst: u32,
}

impl Limit {
    /// `-m limit` without options: 3/hour, a burst of 5.
    pub fn default_rate() -> Limit {
        Limit {
            avg: LIMIT_SCALE * 3_600 / 3,
            burst: DEFAULT_BURST,
        }
    }
}

/// Hashlimit's key fields (`--hashlimit-mode`), as bits.
pub const HL_SRCIP: u8 = 1;
pub const HL_SRCPORT: u8 = 2;
pub const HL_DSTIP: u8 = 4;
pub const HL_DSTPORT: u8 = 8;
/// In the order iptables prints them.
const HL_MODES: [(u8, &str); 4] = [
    (HL_SRCIP, "srcip"),
    (HL_SRCPORT, "srcport"),
    (HL_DSTIP, "dstip"),
    (HL_DSTPORT, "dstport"),
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashLimit {
    /// Average period between packets, in 1/[`HASHLIMIT_SCALE`] s.
    pub avg: u64,
    pub burst: u32,
    /// `--hashlimit-above` (else `--hashlimit-upto`).
    pub above: bool,
    /// `HL_*` bits; 0 puts every packet in one bucket.
    pub mode: u8,
    pub name: String,
    /// Prefix lengths the key keeps; None is the family's full length (what a full length
    /// given explicitly also becomes, as iptables lists neither).
    pub srcmask: Option<u8>,
    pub dstmask: Option<u8>,
    pub htable_size: Option<u32>,
    pub htable_max: Option<u32>,
    pub htable_gcinterval: Option<u32>,
    /// Milliseconds; by default the rate's unit.
    pub htable_expire: Option<u32>,
}

/// `--connlimit-above N` / `--connlimit-upto N`, `--connlimit-mask M`, `--connlimit-daddr`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnLimit {
    pub count: u32,
    pub above: bool,
    /// The prefix length connections are grouped by (the family's full length by default).
    pub mask: u8,
    pub daddr: bool,
}

/// The three modules' options of one rule, as parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateMatches {
    pub limit: Option<Limit>,
    pub hashlimit: Option<Box<HashLimit>>,
    pub connlimit: Option<ConnLimit>,
}

impl RateMatches {
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.hashlimit.is_none() && self.connlimit.is_none()
    }
}

/// `N/unit`, unit any prefix of second, minute, hour or day (as iptables reads it), into a
/// period in 1/`scale` s.
pub fn parse_rate(text: &str, scale: u64) -> Result<u64, String> {
    let (count, unit) = match text.split_once('/') {
        Some((n, u)) => (n, u),
        None => (text, "second"),
    };
    // iptables' own message, stray quote included.
    let n: u64 = count
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("bad rate \"{text}\"'"))?;
    let seconds = [
        ("second", 1),
        ("minute", 60),
        ("hour", 3_600),
        ("day", 86_400),
    ]
    .iter()
    .find(|(name, _)| !unit.is_empty() && name.starts_with(&unit.to_ascii_lowercase()))
    .map(|(_, s)| *s)
    .ok_or_else(|| format!("bad rate \"{text}\"'"))?;
    let period = scale * seconds / n;
    if period == 0 {
        return Err(format!("Rate too fast \"{text}\""));
    }
    Ok(period)
}

/// The unit iptables shows a period in: the largest one the rate is a whole number in (its
/// `print_rate`, for both modules), as (name, seconds).
fn unit_of(period: u64, scale: u64) -> (&'static str, u64) {
    let mut best = UNITS[0];
    for unit in &UNITS[1..] {
        let mult = scale * unit.1;
        if period > mult || mult / period < mult % period {
            break;
        }
        best = *unit;
    }
    best
}

/// A period as iptables prints it: `N/unit`.
pub fn rate_text(period: u64, scale: u64) -> String {
    if period == 0 {
        return "inf".to_string();
    }
    let (name, seconds) = unit_of(period, scale);
    format!("{}/{name}", scale * seconds / period)
}

/// The same rate as (packets, seconds per unit): nftables' `limit rate N/unit`.
pub fn rate_per_unit(period: u64, scale: u64) -> (u64, u64) {
    let period = period.max(1);
    let (_, seconds) = unit_of(period, scale);
    ((scale * seconds / period).max(1), seconds)
}

/// Nanoseconds between tokens.
pub fn interval_ns(period: u64, scale: u64) -> u64 {
    period.saturating_mul(1_000_000_000 / scale)
}

fn parse_burst(text: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|b| (1..=MAX_BURST).contains(b))
        .ok_or_else(|| format!("bad --limit-burst \"{text}\" (1 to {MAX_BURST})"))
}

fn parse_mask(text: &str, v6: bool) -> Result<u8, String> {
    let max = if v6 { 128 } else { 32 };
    text.parse::<u8>()
        .ok()
        .filter(|m| *m <= max)
        .ok_or_else(|| format!("bad mask \"{text}\" (0 to {max})"))
}

fn parse_u32(opt: &str, text: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .map_err(|_| format!("bad value \"{text}\" for {opt}"))
}

/// Which module an option belongs to, if it is one of theirs.
pub fn module_of(opt: &str) -> Option<&'static str> {
    // Not every `--limit...`: addrtype has `--limit-iface-in`.
    if opt == "--limit" || opt == "--limit-burst" {
        Some("limit")
    } else if opt.starts_with("--hashlimit") {
        Some("hashlimit")
    } else if opt.starts_with("--connlimit") {
        Some("connlimit")
    } else {
        None
    }
}

/// Takes one option of the three modules (`module_of(opt)` is loaded): `value` gives its
/// argument on demand (options without one never ask). `v6` for the masks' bounds.
pub fn take_option<'a>(
    m: &mut RateMatches,
    opt: &str,
    negated: bool,
    v6: bool,
    mut value: impl FnMut() -> Result<&'a str, String>,
) -> Result<(), String> {
    if negated {
        let module = module_of(opt).unwrap_or("this match");
        return Err(format!("{module}: option \"{opt}\" cannot be inverted."));
    }
    let full = if v6 { 128 } else { 32 };
    let hl = || HashLimit {
        avg: 0,
        burst: DEFAULT_BURST,
        above: false,
        mode: 0,
        name: String::new(),
        srcmask: None,
        dstmask: None,
        htable_size: None,
        htable_max: None,
        htable_gcinterval: None,
        htable_expire: None,
    };
    match opt {
        "--limit" => {
            let avg = parse_rate(value()?, LIMIT_SCALE)?;
            let l = m.limit.get_or_insert(Limit {
                avg,
                burst: DEFAULT_BURST,
            });
            l.avg = avg;
        }
        "--limit-burst" => {
            let burst = parse_burst(value()?)?;
            m.limit.get_or_insert_with(Limit::default_rate).burst = burst;
        }
        "--hashlimit-upto" | "--hashlimit" | "--hashlimit-above" => {
            let text = value()?;
            // Byte rates (`--hashlimit-upto 5kb/s`): a count ending in b.
            let count = text.split('/').next().unwrap_or_default();
            if count.ends_with(['b', 'B']) {
                return Err(format!(
                    "hashlimit: byte rates (\"{text}\") are not supported"
                ));
            }
            let avg = parse_rate(text, HASHLIMIT_SCALE)?;
            let h = m.hashlimit.get_or_insert_with(|| Box::new(hl()));
            h.avg = avg;
            h.above = opt == "--hashlimit-above";
        }
        "--hashlimit-burst" => {
            m.hashlimit.get_or_insert_with(|| Box::new(hl())).burst = parse_burst(value()?)?
        }
        "--hashlimit-mode" => {
            let text = value()?;
            let mut mode = 0;
            for part in text.split(',') {
                let bit = HL_MODES
                    .iter()
                    .find(|(_, name)| *name == part)
                    .map(|(bit, _)| *bit)
                    .ok_or_else(|| format!("hashlimit: bad mode \"{part}\""))?;
                mode |= bit;
            }
            m.hashlimit.get_or_insert_with(|| Box::new(hl())).mode = mode;
        }
        "--hashlimit-name" => {
            let name = value()?;
            if name.is_empty() || name.len() > 31 {
                return Err("hashlimit: --hashlimit-name takes 1 to 31 characters".into());
            }
            m.hashlimit.get_or_insert_with(|| Box::new(hl())).name = name.to_string();
        }
        "--hashlimit-srcmask" => {
            m.hashlimit.get_or_insert_with(|| Box::new(hl())).srcmask =
                Some(parse_mask(value()?, v6)?).filter(|m| *m != full)
        }
        "--hashlimit-dstmask" => {
            m.hashlimit.get_or_insert_with(|| Box::new(hl())).dstmask =
                Some(parse_mask(value()?, v6)?).filter(|m| *m != full)
        }
        "--hashlimit-htable-size" => {
            m.hashlimit
                .get_or_insert_with(|| Box::new(hl()))
                .htable_size = Some(parse_u32(opt, value()?)?)
        }
        "--hashlimit-htable-max" => {
            m.hashlimit.get_or_insert_with(|| Box::new(hl())).htable_max =
                Some(parse_u32(opt, value()?)?)
        }
        "--hashlimit-htable-gcinterval" => {
            m.hashlimit
                .get_or_insert_with(|| Box::new(hl()))
                .htable_gcinterval = Some(parse_u32(opt, value()?)?)
        }
        "--hashlimit-htable-expire" => {
            m.hashlimit
                .get_or_insert_with(|| Box::new(hl()))
                .htable_expire = Some(parse_u32(opt, value()?)?)
        }
        "--connlimit-above" | "--connlimit-upto" => {
            let count = Some(parse_u32(opt, value()?)?)
                .filter(|n| *n != COUNT_UNSET)
                .ok_or_else(|| format!("connlimit: {opt} takes 0 to {}", COUNT_UNSET - 1))?;
            let c = connlimit(m, full);
            c.count = count;
            c.above = opt == "--connlimit-above";
        }
        "--connlimit-mask" => connlimit(m, full).mask = parse_mask(value()?, v6)?,
        "--connlimit-saddr" => connlimit(m, full).daddr = false,
        "--connlimit-daddr" => connlimit(m, full).daddr = true,
        _ => return Err(format!("unknown option \"{opt}\"")),
    }
    Ok(())
}

/// `ConnLimit::count` while neither `--connlimit-above` nor `--connlimit-upto` was given
/// (a mask may come first); `check` refuses a rule left so. 0 is a count iptables takes.
const COUNT_UNSET: u32 = u32::MAX;

fn connlimit(m: &mut RateMatches, full: u8) -> &mut ConnLimit {
    m.connlimit.get_or_insert(ConnLimit {
        count: COUNT_UNSET,
        above: true,
        mask: full,
        daddr: false,
    })
}

/// What the modules need once the whole rule is read (iptables' final checks); `loaded`
/// says which of limit, hashlimit and connlimit were loaded with `-m`.
pub fn check(m: &RateMatches, loaded: [bool; 3]) -> Result<(), String> {
    if loaded[1] {
        match &m.hashlimit {
            Some(h) if h.avg == 0 => {
                return Err("hashlimit: option \"--hashlimit-upto\" must be specified".into())
            }
            Some(h) if h.name.is_empty() => {
                return Err("hashlimit: option \"--hashlimit-name\" must be specified".into())
            }
            Some(_) => {}
            None => return Err("hashlimit: option \"--hashlimit-upto\" must be specified".into()),
        }
    }
    if loaded[2] && m.connlimit.as_ref().is_none_or(|c| c.count == COUNT_UNSET) {
        return Err(
            "connlimit: option \"--connlimit-above\" or \"--connlimit-upto\" must be specified"
                .into(),
        );
    }
    Ok(())
}

fn mode_text(mode: u8, sep: char) -> String {
    HL_MODES
        .iter()
        .filter(|(bit, _)| mode & bit != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(&sep.to_string())
}

impl HashLimit {
    /// The default `--hashlimit-htable-expire`: the rate's unit, in milliseconds.
    pub fn unit_ms(&self) -> u64 {
        rate_per_unit(self.avg, HASHLIMIT_SCALE).1 * 1_000
    }

    /// The table options that differ from their defaults, in iptables' order, by the name
    /// both the listing and (after `--hashlimit-`) the save use.
    fn table_options(&self) -> Vec<(&'static str, u32)> {
        [
            ("htable-size", self.htable_size),
            ("htable-max", self.htable_max),
            (
                "htable-gcinterval",
                self.htable_gcinterval.filter(|v| *v != 1_000),
            ),
            (
                "htable-expire",
                self.htable_expire.filter(|v| *v as u64 != self.unit_ms()),
            ),
            ("srcmask", self.srcmask.map(u32::from)),
            ("dstmask", self.dstmask.map(u32::from)),
        ]
        .into_iter()
        .filter_map(|(name, v)| Some((name, v?)))
        .collect()
    }

    pub fn expire_ms(&self) -> u64 {
        self.htable_expire
            .map_or_else(|| self.unit_ms(), |e| e as u64)
    }
}

/// Each module's match alone, by module name (for listing them in the order given).
pub fn each(m: &RateMatches) -> Vec<(&'static str, RateMatches)> {
    let mut out = Vec::new();
    if let Some(l) = &m.limit {
        let one = RateMatches {
            limit: Some(l.clone()),
            ..RateMatches::default()
        };
        out.push(("limit", one));
    }
    if let Some(h) = &m.hashlimit {
        let one = RateMatches {
            hashlimit: Some(h.clone()),
            ..RateMatches::default()
        };
        out.push(("hashlimit", one));
    }
    if let Some(c) = &m.connlimit {
        let one = RateMatches {
            connlimit: Some(c.clone()),
            ..RateMatches::default()
        };
        out.push(("connlimit", one));
    }
    out
}

/// The `-L` text of the modules, each with its leading space.
pub fn list_text(m: &RateMatches) -> String {
    let mut out = String::new();
    if let Some(l) = &m.limit {
        out += &format!(
            " limit: avg {} burst {}",
            rate_text(l.avg, LIMIT_SCALE),
            l.burst
        );
    }
    if let Some(h) = &m.hashlimit {
        let how = if h.above { "above" } else { "up to" };
        out += &format!(
            " limit: {how} {} burst {}",
            rate_text(h.avg, HASHLIMIT_SCALE),
            h.burst
        );
        if h.mode != 0 {
            out += &format!(" mode {}", mode_text(h.mode, '-'));
        }
        for (name, v) in h.table_options() {
            out += &format!(" {name} {v}");
        }
    }
    if let Some(c) = &m.connlimit {
        let dir = if c.daddr { "dst" } else { "src" };
        let op = if c.above { ">" } else { "<=" };
        out += &format!(" #conn {dir}/{} {op} {}", c.mask, c.count);
    }
    out
}

/// The `-S`/save text of the modules, each with its leading space.
pub fn save_text(m: &RateMatches) -> String {
    let mut out = String::new();
    if let Some(l) = &m.limit {
        out += &format!(" -m limit --limit {}", rate_text(l.avg, LIMIT_SCALE));
        if l.burst != DEFAULT_BURST {
            out += &format!(" --limit-burst {}", l.burst);
        }
    }
    if let Some(h) = &m.hashlimit {
        let how = if h.above { "above" } else { "upto" };
        out += &format!(
            " -m hashlimit --hashlimit-{how} {} --hashlimit-burst {}",
            rate_text(h.avg, HASHLIMIT_SCALE),
            h.burst
        );
        if h.mode != 0 {
            out += &format!(" --hashlimit-mode {}", mode_text(h.mode, ','));
        }
        out += &format!(" --hashlimit-name {}", h.name);
        for (name, v) in h.table_options() {
            out += &format!(" --hashlimit-{name} {v}");
        }
    }
    if let Some(c) = &m.connlimit {
        let how = if c.above { "above" } else { "upto" };
        let dir = if c.daddr { "daddr" } else { "saddr" };
        out += &format!(
            " -m connlimit --connlimit-{how} {} --connlimit-mask {} --connlimit-{dir}",
            c.count, c.mask
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_list_as_iptables_prints_them() {
        for (given, shown) in [
            ("10/sec", "10/sec"),
            ("3/min", "3/min"),
            ("3/m", "3/min"),
            ("2/hour", "2/hour"),
            ("90/minute", "90/min"),
            ("1/day", "1/day"),
            ("25", "25/sec"),
        ] {
            let p = parse_rate(given, LIMIT_SCALE).unwrap();
            assert_eq!(rate_text(p, LIMIT_SCALE), shown, "{given}");
            let p = parse_rate(given, HASHLIMIT_SCALE).unwrap();
            assert_eq!(rate_text(p, HASHLIMIT_SCALE), shown, "{given}");
        }
        assert!(parse_rate("0/sec", LIMIT_SCALE).is_err());
        assert!(parse_rate("10/fortnight", LIMIT_SCALE).is_err());
        assert!(parse_rate("20000/sec", LIMIT_SCALE).is_err());
    }

    #[test]
    fn listing_and_saving_match_iptables() {
        let mut m = RateMatches::default();
        let mut take = |opt: &str, v: &'static str| {
            take_option(&mut m, opt, false, false, || Ok(v)).unwrap();
        };
        take("--hashlimit-above", "100/min");
        take("--hashlimit-mode", "srcip,dstport");
        take("--hashlimit-srcmask", "24");
        take("--hashlimit-name", "x2");
        take("--hashlimit-htable-max", "100");
        take("--hashlimit-htable-expire", "5000");
        assert_eq!(
            list_text(&m),
            " limit: above 100/min burst 5 mode srcip-dstport htable-max 100 htable-expire 5000 srcmask 24"
        );
        assert_eq!(
            save_text(&m),
            " -m hashlimit --hashlimit-above 100/min --hashlimit-burst 5 --hashlimit-mode srcip,dstport --hashlimit-name x2 --hashlimit-htable-max 100 --hashlimit-htable-expire 5000 --hashlimit-srcmask 24"
        );
        let mut m = RateMatches::default();
        take_option(&mut m, "--limit", false, false, || Ok("10/sec")).unwrap();
        assert_eq!(list_text(&m), " limit: avg 10/sec burst 5");
        assert_eq!(save_text(&m), " -m limit --limit 10/sec");
        take_option(&mut m, "--limit-burst", false, false, || Ok("7")).unwrap();
        assert_eq!(save_text(&m), " -m limit --limit 10/sec --limit-burst 7");
        let mut m = RateMatches::default();
        take_option(&mut m, "--connlimit-upto", false, false, || Ok("3")).unwrap();
        take_option(&mut m, "--connlimit-mask", false, false, || Ok("24")).unwrap();
        take_option(&mut m, "--connlimit-daddr", false, false, || Ok("")).unwrap();
        assert_eq!(list_text(&m), " #conn dst/24 <= 3");
        assert_eq!(
            save_text(&m),
            " -m connlimit --connlimit-upto 3 --connlimit-mask 24 --connlimit-daddr"
        );
        assert!(take_option(&mut m, "--limit", true, false, || Ok("1/s")).is_err());
        // A mask alone is not a connlimit; a count of 0 is one (any connection is above it).
        let mut m = RateMatches::default();
        take_option(&mut m, "--connlimit-mask", false, false, || Ok("24")).unwrap();
        assert!(check(&m, [false, false, true]).is_err());
        take_option(&mut m, "--connlimit-above", false, false, || Ok("0")).unwrap();
        assert!(check(&m, [false, false, true]).is_ok());
        assert_eq!(
            save_text(&m),
            " -m connlimit --connlimit-above 0 --connlimit-mask 24 --connlimit-saddr"
        );
    }
}
