//! What the benchmark binaries share: the machine they ran on, tables printed row by row as
//! they are measured and kept for the Markdown report, the reports and their SVG charts
//! written into target/bench/, and timing a command as an operator would see it.

pub mod svg;

use std::{
    fmt::Write as _,
    io::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context, Result};

/// target/bench/ of the workspace, created if needed.
pub fn out_dir() -> Result<PathBuf> {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = manifest.parent().unwrap_or(manifest).join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The machine a report was measured on, as far as the benchmark can see it.
pub struct Machine {
    pub kernel: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_gib: f64,
    /// /proc/loadavg's 1-minute figure: other work on a shared machine moves the numbers.
    pub load: String,
}

impl Machine {
    /// Reads /proc; what cannot be read stays empty or zero rather than failing a run.
    pub fn probe() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|m| m.trim().to_string())
            .unwrap_or_default();
        let mem_kib: f64 = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        Machine {
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            mem_gib: mem_kib / (1024.0 * 1024.0),
            load: read("/proc/loadavg")
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// "Linux 6.18.44, 2 CPUs (Intel(R) Xeon(R) Processor), 23.5 GiB, load 0.52".
    pub fn describe(&self) -> String {
        format!(
            "Linux {}, {} CPUs ({}), {:.1} GiB, load average {}",
            self.kernel, self.cpus, self.cpu_model, self.mem_gib, self.load
        )
    }
}

/// A Markdown table. The first column is left-aligned (labels), the others right-aligned
/// (numbers).
pub struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Prints the header at once, so a long run shows what its rows mean.
    pub fn new(columns: &[&str]) -> Table {
        let table = Table {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        };
        print!("{}", table.header());
        table
    }

    fn header(&self) -> String {
        let mut s = format!("| {} |\n|", self.columns.join(" | "));
        for i in 0..self.columns.len() {
            s.push_str(if i == 0 { "---|" } else { "---:|" });
        }
        s.push('\n');
        s
    }

    /// Adds a row and prints it: rows show up as they are measured.
    pub fn row(&mut self, cells: Vec<String>) {
        let line = format!("| {} |\n", cells.join(" | "));
        print!("{line}");
        let _ = std::io::stdout().flush();
        self.rows.push(cells);
    }

    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    pub fn markdown(&self) -> String {
        let mut s = self.header();
        for row in &self.rows {
            let _ = writeln!(s, "| {} |", row.join(" | "));
        }
        s
    }
}

/// Writes target/bench/NAME.md: a title, what was measured, the machine (with the load at
/// the end of the run), then the tables with their captions. Returns the path.
pub fn write_markdown(
    name: &str,
    title: &str,
    intro: &str,
    tables: &[(&str, &Table)],
) -> Result<PathBuf> {
    let mut doc = format!(
        "# {title}\n\n{intro}\n\nMachine: {}.\n",
        Machine::probe().describe()
    );
    for (caption, table) in tables {
        if !caption.is_empty() {
            let _ = write!(doc, "\n{caption}\n");
        }
        let _ = write!(doc, "\n{}", table.markdown());
    }
    let path = out_dir()?.join(format!("{name}.md"));
    std::fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Writes target/bench/NAME.svg and says so on stderr. Returns the path.
pub fn write_svg(name: &str, svg: &str) -> Result<PathBuf> {
    let path = out_dir()?.join(format!("{name}.svg"));
    std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("chart: {}", path.display());
    Ok(path)
}

/// Runs `cmd` to completion with `input` on its standard input (if any) and returns the
/// wall time in seconds, or an error with its exit status and standard error.
pub fn timed(cmd: &mut Command, input: Option<&str>) -> Result<f64> {
    let start = Instant::now();
    run_with_input(cmd, input)?;
    Ok(start.elapsed().as_secs_f64())
}

/// Runs `cmd` with `input` on its standard input; fails with its standard error unless it
/// exits 0.
pub fn run_with_input(cmd: &mut Command, input: Option<&str>) -> Result<()> {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    // The pipe is dropped at the end of the statement, so the child sees end of file. A
    // child that fails early breaks the pipe: its own error says more than EPIPE.
    let written = match (input, child.stdin.take()) {
        (Some(input), Some(mut stdin)) => stdin.write_all(input.as_bytes()),
        _ => Ok(()),
    };
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    written.with_context(|| format!("writing to {cmd:?}"))
}

/// A file that is removed when dropped, also when a benchmark fails half-way.
pub struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    /// Writes `contents` to `NAME-PID` in the temporary directory.
    pub fn new(name: &str, contents: &str) -> Result<TempFile> {
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        Ok(TempFile { path })
    }

    pub fn path_str(&self) -> Result<&str> {
        self.path.to_str().context("non-UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A number parsed from a table cell, for charts ("204.0", "1375.3 ms", "2.995").
pub fn number(cell: &str) -> Option<f64> {
    cell.split_whitespace().next()?.parse().ok()
}
