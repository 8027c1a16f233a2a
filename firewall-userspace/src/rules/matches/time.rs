//! `-m time [--datestart D] [--datestop D] [--timestart T] [--timestop T] [!] --weekdays
//! DAYS [!] --monthdays DAYS [--kerneltz|--utc] [--contiguous]`: when the packet arrives
//! (libxt_time.c). Dates are `YYYY[-MM[-DD[Thh[:mm[:ss]]]]]` in UTC, times `hh:mm[:ss]`
//! in UTC unless `--kerneltz`; a negated day list is kept as its complement, as iptables
//! keeps it. netfilter runs the kernel's xt_time through the compat expression.

use serde::{Deserialize, Serialize};

use super::{Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

/// The last second of a day, xt_time's default end of the daily window.
const MAX_DAYTIME: u32 = 24 * 60 * 60 - 1;
/// Bits 1..=31 and 1..=7 (Monday is 1): every day.
const ALL_MONTHDAYS: u32 = 0xffff_fffe;
const ALL_WEEKDAYS: u8 = 0xfe;
/// The default end date: the largest 32-bit signed time, 2038-01-19T03:14:07.
const DATE_MAX: u32 = i32::MAX as u32;
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Time {
    pub date_start: u32,
    pub date_stop: u32,
    pub daytime_start: u32,
    pub daytime_stop: u32,
    pub monthdays: u32,
    pub weekdays: u8,
    pub local_tz: bool,
    pub contiguous: bool,
    /// The options given, for iptables' once-only check.
    pub given: u16,
}

impl Default for Time {
    fn default() -> Self {
        Time {
            date_start: 0,
            date_stop: DATE_MAX,
            daytime_start: 0,
            daytime_stop: MAX_DAYTIME,
            monthdays: ALL_MONTHDAYS,
            weekdays: ALL_WEEKDAYS,
            local_tz: false,
            contiguous: false,
            given: 0,
        }
    }
}

const OPTIONS: &[(&str, &str)] = &[
    ("--datestart", "--datestart"),
    ("--datestop", "--datestop"),
    ("--timestart", "--timestart"),
    ("--timestop", "--timestop"),
    ("--weekdays", "--weekdays"),
    ("--monthdays", "--monthdays"),
    ("--localtz", "--kerneltz"),
    ("--kerneltz", "--kerneltz"),
    ("--utc", "--utc"),
    ("--contiguous", "--contiguous"),
];

pub const MODULE: Module = Module {
    name: "time",
    options: OPTIONS as Options,
    take,
    required: "",
    defaults: Some(|| NfMatch::Time(Time::default())),
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    let mut m = match current {
        Some(NfMatch::Time(m)) => m,
        _ => Time::default(),
    };
    if negated && !matches!(opt, "--weekdays" | "--monthdays") {
        return Err(format!("time: option \"{opt}\" cannot be inverted."));
    }
    let index = OPTIONS.iter().position(|(n, _)| *n == opt).unwrap_or(0);
    let bit = 1u16 << index;
    if m.given & bit != 0 {
        return Err(format!("time: option \"{opt}\" can only be used once."));
    }
    m.given |= bit;
    match opt {
        "--localtz" | "--kerneltz" => m.local_tz = true,
        "--utc" => m.local_tz = false,
        "--contiguous" => m.contiguous = true,
        "--datestart" => m.date_start = parse_date(&value()?)?,
        "--datestop" => m.date_stop = parse_date(&value()?)?,
        "--timestart" => m.daytime_start = parse_daytime(&value()?)?,
        "--timestop" => m.daytime_stop = parse_daytime(&value()?)?,
        "--weekdays" => {
            let days = parse_weekdays(&value()?)?;
            m.weekdays = if negated { ALL_WEEKDAYS & !days } else { days };
        }
        _ => {
            let days = parse_monthdays(&value()?)?;
            m.monthdays = if negated { ALL_MONTHDAYS & !days } else { days };
        }
    }
    Ok((NfMatch::Time(m), false))
}

/// `hh:mm[:ss]`, each part one or two digits, within a day.
fn parse_daytime(text: &str) -> Result<u32, String> {
    let bad = || {
        format!("invalid time \"{text}\" specified, should be hh:mm[:ss] format and within the boundaries")
    };
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err(bad());
    }
    let mut fields = [0u32; 3];
    for (f, p) in fields.iter_mut().zip(&parts) {
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        *f = p.parse().map_err(|_| bad())?;
    }
    let [h, m, s] = fields;
    if h > 23 || m > 59 || s > 59 {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (timegm's arithmetic, so that
/// `2024-02-31` is March 2nd as there).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `YYYY[-MM[-DD[Thh[:mm[:ss]]]]]`, UTC, years 1970 to 2037.
fn parse_date(text: &str) -> Result<u32, String> {
    let bad =
        || format!("Invalid date \"{text}\" specified. Should be [YYYY[-MM[-DD[Thh[:mm[:ss]]]]]]");
    let (date, time) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let num = |s: &str| -> Result<i64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let d: Vec<&str> = date.split('-').collect();
    if d.len() > 3 || (time.is_some() && d.len() != 3) {
        return Err(bad());
    }
    let year = num(d[0])?;
    let month = d.get(1).map(|s| num(s)).transpose()?.unwrap_or(1);
    let day = d.get(2).map(|s| num(s)).transpose()?.unwrap_or(1);
    if !(1970..2038).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let mut hms = [0i64; 3];
    if let Some(t) = time {
        let parts: Vec<&str> = t.split(':').collect();
        if parts.len() > 3 {
            return Err(bad());
        }
        for (f, p) in hms.iter_mut().zip(&parts) {
            *f = num(p)?;
        }
    }
    let [h, mi, s] = hms;
    if h > 23 || mi > 59 || s > 59 {
        return Err(bad());
    }
    let secs = days_from_civil(year, month, day) * 86400 + h * 3600 + mi * 60 + s;
    u32::try_from(secs).map_err(|_| bad())
}

fn parse_weekdays(text: &str) -> Result<u8, String> {
    let mut days = 0u8;
    for word in text.split(',') {
        let n = match word.parse::<usize>() {
            Ok(n) if (1..=7).contains(&n) => n,
            _ => WEEKDAYS
                .iter()
                .position(|d| d.eq_ignore_ascii_case(word))
                .map(|i| i + 1)
                .ok_or_else(|| format!("No, {word} is not a valid day."))?,
        };
        days |= 1 << n;
    }
    Ok(days)
}

fn parse_monthdays(text: &str) -> Result<u32, String> {
    let mut days = 0u32;
    for word in text.split(',') {
        let n: u32 = word
            .parse()
            .ok()
            .filter(|n| (1..=31).contains(n))
            .ok_or_else(|| format!("time: `{word}' is not a valid day of the month (1 to 31)"))?;
        days |= 1 << n;
    }
    Ok(days)
}

/// A date as `YYYY-MM-DD{sep}hh:mm:ss`, UTC.
fn date_text(secs: u32, sep: char) -> String {
    let days = i64::from(secs / 86400);
    let rem = secs % 86400;
    // civil_from_days, the inverse of days_from_civil.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!(
        "{year:04}-{month:02}-{day:02}{sep}{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn daytime_text(secs: u32) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

impl Time {
    /// libxt_time's final check.
    pub fn check(&self) -> Result<(), String> {
        if self.contiguous && self.daytime_start < self.daytime_stop {
            return Err(
                "time: --contiguous only makes sense when stoptime is smaller than starttime"
                    .into(),
            );
        }
        Ok(())
    }

    fn daily(&self) -> bool {
        self.daytime_start != 0 || self.daytime_stop != MAX_DAYTIME
    }

    fn weekday_names(&self) -> String {
        (1..=7)
            .filter(|d| self.weekdays & (1 << d) != 0)
            .map(|d| WEEKDAYS[d - 1])
            .collect::<Vec<_>>()
            .join(",")
    }

    fn monthday_list(&self, ordinals: bool) -> String {
        (1..=31u32)
            .filter(|d| self.monthdays & (1 << d) != 0)
            .map(|d| {
                if !ordinals {
                    return d.to_string();
                }
                // libxt_time's suffixes go by the last digit alone: 11st, 12nd, 13rd.
                let suffix = match d % 10 {
                    1 => "st",
                    2 => "nd",
                    3 => "rd",
                    _ => "th",
                };
                format!("{d}{suffix}")
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn list_text(&self) -> String {
        let mut text = String::from(" TIME");
        if self.daily() {
            text += &format!(
                " from {} to {}",
                daytime_text(self.daytime_start),
                daytime_text(self.daytime_stop)
            );
        }
        if self.weekdays != ALL_WEEKDAYS {
            text += &format!(" on {}", self.weekday_names());
        }
        if self.monthdays != ALL_MONTHDAYS {
            text += &format!(" on {}", self.monthday_list(true));
        }
        if self.date_start != 0 {
            text += &format!(" starting from {}", date_text(self.date_start, ' '));
        }
        if self.date_stop != DATE_MAX {
            text += &format!(" until date {}", date_text(self.date_stop, ' '));
        }
        if !self.local_tz {
            text += " UTC";
        }
        if self.contiguous {
            text += " contiguous";
        }
        text
    }

    pub fn save_text(&self) -> String {
        let mut text = String::from("-m time");
        if self.daily() {
            text += &format!(
                " --timestart {} --timestop {}",
                daytime_text(self.daytime_start),
                daytime_text(self.daytime_stop)
            );
        }
        if self.monthdays != ALL_MONTHDAYS {
            text += &format!(" --monthdays {}", self.monthday_list(false));
        }
        if self.weekdays != ALL_WEEKDAYS {
            text += &format!(" --weekdays {}", self.weekday_names());
        }
        if self.date_start != 0 {
            text += &format!(" --datestart {}", date_text(self.date_start, 'T'));
        }
        // Written even at its default, as libxt_time writes it.
        if self.date_stop != 0 {
            text += &format!(" --datestop {}", date_text(self.date_stop, 'T'));
        }
        if self.local_tz {
            text += " --kerneltz";
        }
        if self.contiguous {
            text += " --contiguous";
        }
        text
    }

    /// struct xt_time_info: dates, daily window, monthdays, weekdays, flags; 24 bytes.
    pub fn xt_info(&self) -> Vec<u8> {
        const LOCAL_TZ: u8 = 1;
        const CONTIGUOUS: u8 = 2;
        let mut info = Vec::with_capacity(24);
        for field in [
            self.date_start,
            self.date_stop,
            self.daytime_start,
            self.daytime_stop,
            self.monthdays,
        ] {
            info.extend(field.to_ne_bytes());
        }
        info.push(self.weekdays);
        info.push(
            if self.local_tz { LOCAL_TZ } else { 0 } | if self.contiguous { CONTIGUOUS } else { 0 },
        );
        info.resize(24, 0);
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_read_and_print_as_libxt_time_does() {
        assert_eq!(parse_date("2024-01-01T00:00:00").unwrap(), 1_704_067_200);
        assert_eq!(parse_date("2024").unwrap(), 1_704_067_200);
        assert_eq!(date_text(DATE_MAX, 'T'), "2038-01-19T03:14:07");
        assert_eq!(
            date_text(parse_date("2024-02-31").unwrap(), ' '),
            "2024-03-02 00:00:00"
        );
        assert!(parse_date("2038").is_err() && parse_date("1969").is_err());
        assert_eq!(parse_daytime("9:5:3").unwrap(), 9 * 3600 + 5 * 60 + 3);
        assert!(parse_daytime("25:00").is_err());
        let m = Time {
            monthdays: parse_monthdays("1,11,12,13,22").unwrap(),
            ..Time::default()
        };
        assert_eq!(m.list_text(), " TIME on 1st,11st,12nd,13rd,22nd UTC");
        assert_eq!(
            Time::default().save_text(),
            "-m time --datestop 2038-01-19T03:14:07"
        );
        assert_eq!(Time::default().xt_info().len(), 24);
    }
}
