//! `fwctl top`: rates per rule and per policy, busiest first, refreshed in place. Plain
//! ANSI through crossterm, so it works on any terminal, over SSH too; `--once` and
//! `--iterations` print frames as lines, for scripts.

use std::{
    collections::HashMap,
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

use anyhow::Result;
use crossterm::{
    cursor,
    event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
    queue,
    style::Print,
    terminal::{self, ClearType},
};
use firewall_common::Counter;

use super::Snapshot;
use crate::rules::{Family, Table};

pub struct Options {
    pub interval: Duration,
    /// Print this many frames as plain text and stop; None: until `q`.
    pub iterations: Option<u32>,
}

pub fn run(opts: Options) -> Result<()> {
    let interactive = opts.iterations.is_none() && std::io::stdout().is_terminal();
    if interactive {
        interactive_loop(opts.interval)
    } else {
        plain(opts.interval, opts.iterations)
    }
}

/// Frames one after another, no cursor movement: what a pipe or a test wants.
fn plain(interval: Duration, iterations: Option<u32>) -> Result<()> {
    let mut prev = Snapshot::sample()?;
    let mut out = std::io::stdout().lock();
    let mut n = 0;
    while iterations.is_none_or(|max| n < max) {
        std::thread::sleep(interval);
        let cur = Snapshot::sample()?;
        if n > 0 {
            writeln!(out)?;
        }
        for line in frame(&prev, &cur, None, None) {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        prev = cur;
        n += 1;
    }
    Ok(())
}

/// Raw mode and the alternate screen, restored on every way out, errors and panics'
/// unwinding included, so the operator's terminal is never left broken.
struct Screen;

impl Screen {
    fn enter() -> Result<Screen> {
        terminal::enable_raw_mode()?;
        let screen = Screen;
        crossterm::execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = crossterm::execute!(
            std::io::stdout(),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }
}

fn interactive_loop(interval: Duration) -> Result<()> {
    let mut prev = Snapshot::sample()?;
    let mut cur = prev.clone();
    let _screen = Screen::enter()?;
    let mut next = Instant::now() + interval;
    loop {
        draw(&prev, &cur)?;
        // Keys are answered at once; the counters are read on the tick.
        loop {
            let now = Instant::now();
            if now >= next {
                break;
            }
            if !event::poll(next - now)? {
                continue;
            }
            match event::read()? {
                Event::Key(k) if k.kind != KeyEventKind::Release => match k.code {
                    KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => return Ok(()),
                    // Raw mode turns Ctrl-C into a key instead of SIGINT.
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(())
                    }
                    _ => {}
                },
                Event::Resize(..) => draw(&prev, &cur)?,
                _ => {}
            }
        }
        next += interval;
        // A slow read (the lock held by a long change) must not make the ticks pile up.
        next = next.max(Instant::now());
        prev = std::mem::replace(&mut cur, Snapshot::sample()?);
    }
}

fn draw(prev: &Snapshot, cur: &Snapshot) -> Result<()> {
    // A terminal that reports no size (a serial console, some SSH clients) gets every line,
    // uncut, rather than none.
    let (cols, rows) = terminal::size().unwrap_or((0, 0));
    let known = |n: u16| (n > 0).then_some(n as usize);
    let lines = frame(prev, cur, known(cols), known(rows));
    let mut out = std::io::stdout().lock();
    for (row, line) in lines.iter().enumerate() {
        queue!(
            out,
            cursor::MoveTo(0, row as u16),
            Print(line),
            terminal::Clear(ClearType::UntilNewLine)
        )?;
    }
    queue!(
        out,
        cursor::MoveTo(0, lines.len() as u16),
        terminal::Clear(ClearType::FromCursorDown)
    )?;
    out.flush()?;
    Ok(())
}

/// One line of the table: a rule or a policy, with what it counted between two snapshots.
struct Row {
    text: String,
    delta: Counter,
    delta_netfilter: Counter,
    total: Counter,
}

/// Per second, from a count over `seconds`.
fn rate(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// Compact rates: `0`, `12.5`, `1.3K`, `4.0M`... (decimal multiples, as iptables -L does).
fn human(v: f64) -> String {
    if v < 0.05 {
        return "0".to_string();
    }
    let mut v = v;
    for suffix in ["", "K", "M", "G"] {
        if v < 999.95 {
            return format!("{v:.1}{suffix}");
        }
        v /= 1000.0;
    }
    format!("{v:.1}T")
}

fn sub(a: Counter, b: Counter) -> Counter {
    Counter {
        packets: a.packets.saturating_sub(b.packets),
        bytes: a.bytes.saturating_sub(b.bytes),
    }
}

/// The rule as the command that adds it, with the options that name its table and family.
fn command(family: Family, table: Table, body: &str) -> String {
    let mut text = String::new();
    if family == Family::V6 {
        text.push_str("-6 ");
    }
    if table != Table::Filter {
        text.push_str(&format!("-t {} ", table.name()));
    }
    text.push_str(body);
    text
}

fn rows(prev: &Snapshot, cur: &Snapshot) -> Vec<Row> {
    // A rule keeps its slot when rules around it move; a new one starts from nothing.
    let before: HashMap<(Table, Family, u32), (Counter, Counter)> = prev
        .rules
        .iter()
        .map(|r| ((r.table, r.family, r.slot), (r.total, r.netfilter)))
        .collect();
    let policies_before: HashMap<(Table, Family, &str), (Counter, Counter)> = prev
        .policies
        .iter()
        .map(|p| {
            (
                (p.table, p.family, p.chain.as_str()),
                (p.total, p.netfilter),
            )
        })
        .collect();
    // What was counted since `before` ((total, netfilter) then); a line new since then
    // counts from now.
    let row =
        |text: String, total: Counter, netfilter: Counter, before: Option<&(Counter, Counter)>| {
            let (total_then, netfilter_then) = before.copied().unwrap_or((total, netfilter));
            Row {
                text,
                delta: sub(total, total_then),
                delta_netfilter: sub(netfilter, netfilter_then),
                total,
            }
        };
    let mut rows: Vec<Row> = cur
        .rules
        .iter()
        .map(|r| {
            row(
                command(
                    r.family,
                    r.table,
                    format!("-A {} {}", r.chain, r.args).trim_end(),
                ),
                r.total,
                r.netfilter,
                before.get(&(r.table, r.family, r.slot)),
            )
        })
        .collect();
    rows.extend(cur.policies.iter().map(|p| {
        row(
            command(p.family, p.table, &format!("-P {} {}", p.chain, p.policy)),
            p.total,
            p.netfilter,
            policies_before.get(&(p.table, p.family, p.chain.as_str())),
        )
    }));
    // Busiest first; a stable sort keeps listing order among equals.
    rows.sort_by(|a, b| {
        b.delta
            .packets
            .cmp(&a.delta.packets)
            .then(b.delta.bytes.cmp(&a.delta.bytes))
    });
    rows
}

/// The screen's lines, cut to `width` columns and `height` lines when given.
pub fn frame(
    prev: &Snapshot,
    cur: &Snapshot,
    width: Option<usize>,
    height: Option<usize>,
) -> Vec<String> {
    let seconds = cur.taken.duration_since(prev.taken).as_secs_f64();
    let mut lines = Vec::new();
    let generation = cur
        .generation
        .map_or("none (nothing installed)".to_string(), |g| g.to_string());
    let changed = match cur.last_apply_ms {
        Some(ms) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            format!("{} ago", ago(now.saturating_sub(ms) / 1000))
        }
        None => "never".to_string(),
    };
    lines.push(format!(
        "fwctl top - generation {generation}, last change {changed}, over {seconds:.1}s - q quits"
    ));
    if cur.interfaces.is_empty() {
        lines.push("no interface attached: only netfilter judges (fwctl attach IFACE)".into());
    } else {
        lines.push(format!(
            "{:<16} {:<8} {:>9} {:>9} {:>8} {:>9} {:>9}",
            "IFACE", "XDP", "RX PKT/S", "RX B/S", "DROP/S", "TX PKT/S", "TX B/S"
        ));
        for i in &cur.interfaces {
            let p = prev
                .interfaces
                .iter()
                .find(|p| p.name == i.name)
                .unwrap_or(i);
            let r = |a: u64, b: u64| human(rate(a.saturating_sub(b), seconds));
            lines.push(format!(
                "{:<16} {:<8} {:>9} {:>9} {:>8} {:>9} {:>9}",
                i.name,
                i.mode,
                r(i.rx_packets, p.rx_packets),
                r(i.rx_bytes, p.rx_bytes),
                r(i.rx_dropped, p.rx_dropped),
                r(i.tx_packets, p.tx_packets),
                r(i.tx_bytes, p.tx_bytes),
            ));
        }
    }
    if !cur.talkers.is_empty() {
        let list: Vec<String> = cur
            .talkers
            .iter()
            .map(|(prefix, share)| format!("{prefix} {:.0}%", share * 100.0))
            .collect();
        lines.push(format!(
            "TOP DROPPED SOURCES (1 in {} XDP drops sampled): {}",
            firewall_common::TALKER_SAMPLE,
            list.join("  ")
        ));
    }
    lines.push(String::new());
    lines.push(format!(
        "{:>8} {:>8} {:>5} {:>12} {:>14}  RULE",
        "PKT/S", "BYTES/S", "XDP%", "PACKETS", "BYTES"
    ));
    let all = rows(prev, cur);
    let room = height.map_or(usize::MAX, |h| h.saturating_sub(lines.len()));
    let shown = if all.len() > room {
        room.saturating_sub(1)
    } else {
        all.len()
    };
    for row in &all[..shown] {
        // The share XDP decided, of what the row counted in this interval.
        let xdp = if row.delta.packets == 0 {
            "-".to_string()
        } else {
            let at_xdp = row
                .delta
                .packets
                .saturating_sub(row.delta_netfilter.packets);
            format!("{}%", at_xdp * 100 / row.delta.packets)
        };
        lines.push(format!(
            "{:>8} {:>8} {:>5} {:>12} {:>14}  {}",
            human(rate(row.delta.packets, seconds)),
            human(rate(row.delta.bytes, seconds)),
            xdp,
            row.total.packets,
            row.total.bytes,
            row.text
        ));
    }
    if shown < all.len() {
        lines.push(format!("... {} more", all.len() - shown));
    }
    if let Some(w) = width {
        for line in &mut lines {
            if let Some((cut, _)) = line.char_indices().nth(w) {
                line.truncate(cut);
            }
        }
    }
    lines
}

fn ago(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{InterfaceSample, PolicySample, RuleSample};

    fn rule(slot: u32, packets: u64, nft: u64) -> RuleSample {
        RuleSample {
            family: Family::V4,
            table: Table::Filter,
            chain: "INPUT".into(),
            number: slot as usize,
            slot,
            comment: None,
            args: format!("-p udp -m udp --dport {slot} -j ACCEPT"),
            total: Counter {
                packets,
                bytes: packets * 100,
            },
            netfilter: Counter {
                packets: nft,
                bytes: nft * 100,
            },
        }
    }

    fn snap(at: Instant, rules: Vec<RuleSample>, policy: u64, rx: u64) -> Snapshot {
        Snapshot {
            taken: at,
            generation: Some(0),
            last_apply_ms: None,
            reasons: Vec::new(),
            rules,
            policies: vec![PolicySample {
                family: Family::V6,
                table: Table::Filter,
                chain: "INPUT".into(),
                policy: "DROP",
                total: Counter {
                    packets: policy,
                    bytes: policy * 60,
                },
                netfilter: Counter::default(),
            }],
            interfaces: vec![InterfaceSample {
                name: "eth0".into(),
                mode: "native",
                rx_packets: rx,
                ..Default::default()
            }],
            talkers: vec![("10.0.0.0/24".into(), 0.75)],
        }
    }

    #[test]
    fn rows_are_sorted_by_rate_with_the_xdp_share() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let prev = snap(t0, vec![rule(1, 10, 0), rule(2, 0, 0), rule(3, 5, 0)], 0, 0);
        let cur = snap(
            t1,
            vec![rule(1, 10, 0), rule(2, 40, 10), rule(3, 9, 0)],
            2,
            50,
        );
        let lines = frame(&prev, &cur, None, None);
        let body: Vec<&String> = lines.iter().skip_while(|l| !l.contains("RULE")).collect();
        assert!(body[1].ends_with("-A INPUT -p udp -m udp --dport 2 -j ACCEPT"));
        assert!(body[1].trim_start().starts_with("20.0 "), "{}", body[1]);
        assert!(body[1].contains(" 75% "), "{}", body[1]);
        assert!(body[2].ends_with("--dport 3 -j ACCEPT"), "{}", body[2]);
        assert!(body[3].ends_with("-6 -P INPUT DROP"), "{}", body[3]);
        assert!(body[4].trim_start().starts_with("0 "), "{}", body[4]);
        assert!(lines
            .iter()
            .any(|l| l.starts_with("eth0") && l.contains(" 25.0 ")));
    }

    #[test]
    fn frames_fit_the_terminal() {
        let t0 = Instant::now();
        let many: Vec<RuleSample> = (1..=50).map(|s| rule(s, 0, 0)).collect();
        let s = snap(t0, many, 0, 0);
        let lines = frame(&s, &s, Some(40), Some(20));
        assert_eq!(lines.len(), 20);
        assert!(lines.iter().all(|l| l.chars().count() <= 40));
        assert!(lines[19].starts_with("... "), "{}", lines[19]);
    }

    #[test]
    fn rates_are_compact() {
        assert_eq!(human(0.0), "0");
        assert_eq!(human(12.46), "12.5");
        assert_eq!(human(1_260.0), "1.3K");
        assert_eq!(human(4_000_000.0), "4.0M");
    }
}
