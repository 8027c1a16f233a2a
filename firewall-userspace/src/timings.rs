//! `FWCTL_TIMINGS=1`: prints to stderr how long each phase of a command took, so that the
//! cost of a change can be attributed (process start, lock, state, compile, each map, the
//! netfilter batches, the flip, the state file) without a profiler. Off, it costs one
//! relaxed load per phase.

use std::{
    sync::{
        atomic::{AtomicU8, Ordering},
        Mutex, OnceLock,
    },
    time::Instant,
};

/// 0: not read yet, 1: off, 2: on.
static ENABLED: AtomicU8 = AtomicU8::new(0);
static START: OnceLock<Instant> = OnceLock::new();
static LAST: Mutex<Option<Instant>> = Mutex::new(None);

fn enabled() -> bool {
    match ENABLED.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var_os("FWCTL_TIMINGS").is_some_and(|v| v != "0" && !v.is_empty());
            ENABLED.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        v => v == 2,
    }
}

/// Milliseconds from the process's start (as the kernel recorded it, in clock ticks) to
/// now: what the dynamic loader and Rust's runtime cost before `main`.
fn since_exec_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let after = stat.rsplit_once(')')?.1;
    let start_ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf and clock_gettime have no preconditions; `ts` outlives the call.
    let (hz, now) = unsafe {
        let hz = libc::sysconf(libc::_SC_CLK_TCK);
        let mut ts: libc::timespec = std::mem::zeroed();
        if hz <= 0 || libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) != 0 {
            return None;
        }
        (hz as f64, ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
    };
    Some((now - start_ticks / hz) * 1e3)
}

/// Marks the start of `main`.
pub fn start() {
    if !enabled() {
        return;
    }
    let now = Instant::now();
    let _ = START.set(now);
    if let Ok(mut last) = LAST.lock() {
        *last = Some(now);
    }
    if let Some(ms) = since_exec_ms() {
        eprintln!(
            "fwctl: timing {:<28} {ms:8.2} ms (clock-tick resolution)",
            "exec to main"
        );
    }
}

/// As [`phase`], with a name made only when timings are on (it may count something).
pub fn phase_with(name: impl FnOnce() -> String) {
    if enabled() {
        phase(&name());
    }
}

/// Ends the phase `name`: prints the time since the previous mark and since `main`.
pub fn phase(name: &str) {
    if !enabled() {
        return;
    }
    let now = Instant::now();
    let start = *START.get_or_init(|| now);
    let Ok(mut last) = LAST.lock() else {
        return;
    };
    let took = now - last.unwrap_or(start);
    *last = Some(now);
    eprintln!(
        "fwctl: timing {name:<28} {:8.2} ms (at {:8.2})",
        took.as_secs_f64() * 1e3,
        (now - start).as_secs_f64() * 1e3
    );
}
