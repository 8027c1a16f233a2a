//! Builds that a late step of a run needs, started early at the lowest CPU priority so they
//! use what the foreground leaves of the CPUs (the kernel tests mostly wait on the network)
//! instead of adding their minutes to the run's.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread::JoinHandle,
};

use anyhow::{bail, Context, Result};

/// Commands running one after the other in a thread, their output in a log file.
pub struct Background {
    what: &'static str,
    log: PathBuf,
    thread: JoinHandle<Result<()>>,
}

impl Background {
    /// Starts `commands` (each run under `nice -n 19`) in order; the first that fails stops
    /// the rest. Output goes to `log`, which an error names.
    pub fn start(what: &'static str, log: &Path, commands: Vec<Command>) -> Result<Background> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        eprintln!("[background] {what} (log: {})", log.display());
        let thread = std::thread::spawn(move || -> Result<()> {
            for cmd in commands {
                let mut niced = Command::new("nice");
                niced.args(["-n", "19"]).arg(cmd.get_program());
                niced.args(cmd.get_args());
                if let Some(dir) = cmd.get_current_dir() {
                    niced.current_dir(dir);
                }
                for (key, value) in cmd.get_envs() {
                    match value {
                        Some(v) => niced.env(key, v),
                        None => niced.env_remove(key),
                    };
                }
                let status = niced
                    .stdin(Stdio::null())
                    .stdout(file.try_clone()?)
                    .stderr(file.try_clone()?)
                    .status()
                    .with_context(|| format!("could not start {cmd:?}"))?;
                if !status.success() {
                    bail!("{cmd:?} failed: {status}");
                }
            }
            Ok(())
        });
        Ok(Background {
            what,
            log: log.to_path_buf(),
            thread,
        })
    }

    /// Waits for the commands; on failure shows the end of their log.
    pub fn finish(self) -> Result<()> {
        eprintln!("[background] waiting for {}", self.what);
        let result = match self.thread.join() {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!("the thread running {} panicked", self.what)),
        };
        if let Err(e) = result {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
            return Err(e.context(format!("{} (whole log: {})", self.what, self.log.display())));
        }
        eprintln!("[background] {} done", self.what);
        Ok(())
    }
}
