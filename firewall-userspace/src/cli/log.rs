//! `fwctl log`: LOG rules' events, written as the kernel's LOG target writes them (or as
//! JSON) under a per-prefix rate limit, and the XDP program's aya-log records.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::{
    firewall::Firewall,
    netfilter::nflog::{Listener, RateLimit},
};

pub struct Options {
    pub verdicts: bool,
    pub duration: Option<u64>,
    pub json: bool,
    /// Lines per second and prefix, after a burst of `burst`.
    pub limit: f64,
    pub burst: u32,
}

/// Writes what the limit held back since the last report, one line per prefix.
fn report_suppressed(limit: &Mutex<RateLimit>, json: bool) {
    let Ok(mut limit) = limit.lock() else { return };
    let mut out = std::io::stdout().lock();
    for (prefix, n) in limit.suppressed.drain() {
        let _ = if json {
            writeln!(
                out,
                "{}",
                serde_json::json!({ "suppressed": n, "prefix": prefix })
            )
        } else {
            writeln!(
                out,
                "fwctl: {n} LOG event(s) with prefix \"{prefix}\" suppressed by the rate limit"
            )
        };
    }
    let _ = out.flush();
}

fn follow_events(mut listener: Listener, limit: Arc<Mutex<RateLimit>>, json: bool) {
    let mut last_report = Instant::now();
    loop {
        let events = match listener.next_events() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("fwctl: {e:#}");
                return;
            }
        };
        for e in events {
            let allowed = limit
                .lock()
                .map(|mut l| l.allow(&e.prefix, Instant::now()))
                .unwrap_or(false);
            if allowed {
                let mut out = std::io::stdout().lock();
                let _ = if json {
                    writeln!(out, "{}", e.json())
                } else {
                    writeln!(out, "{}", e.line())
                };
                let _ = out.flush();
            }
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            report_suppressed(&limit, json);
            last_report = Instant::now();
        }
    }
}

pub fn follow(opts: Options) -> Result<()> {
    let id = Firewall::lock()?.program_id()?;
    let listener = Listener::bind_log()?;
    let limit = Arc::new(Mutex::new(RateLimit::new(opts.limit, opts.burst)));
    {
        let limit = limit.clone();
        let json = opts.json;
        std::thread::spawn(move || follow_events(listener, limit, json));
    }
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Info)
        .format_target(false)
        .format_timestamp_millis()
        .init();
    // The XDP program's own records, when it is installed.
    let mut logger = match id {
        Some(id) => Some(
            aya_log::EbpfLogger::init_from_id(id)
                .context("attaching to the program's log ring buffer")?,
        ),
        None => None,
    };
    // The flag is flipped under the lock: install_ruleset also rewrites FW_CONFIG.
    let verdicts = opts.verdicts && logger.is_some();
    if verdicts {
        Firewall::lock()?.set_verdict_logging(true)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let stop = async {
            match opts.duration {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => if let Some(l) = &mut logger { l.flush() },
            }
        }
        if let Some(l) = &mut logger {
            l.flush();
        }
    });
    report_suppressed(&limit, opts.json);
    if verdicts {
        Firewall::lock()?.set_verdict_logging(false)?;
    }
    Ok(())
}
