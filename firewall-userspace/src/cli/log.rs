//! `fwctl log`: prints the XDP program's aya-log records as they arrive.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::firewall::Firewall;

pub fn follow(verdicts: bool, duration: Option<u64>) -> Result<()> {
    let id = {
        let fw = Firewall::lock()?;
        fw.program_id()?
            .context("fwctl is not installed in this namespace: nothing to log")?
    };
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Info)
        .format_target(false)
        .format_timestamp_millis()
        .init();
    let mut logger = aya_log::EbpfLogger::init_from_id(id)
        .context("attaching to the program's log ring buffer")?;
    // The flag is flipped under the lock: install_ruleset also rewrites FW_CONFIG.
    if verdicts {
        Firewall::lock()?.set_verdict_logging(true)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let stop = async {
            match duration {
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
                _ = tick.tick() => logger.flush(),
            }
        }
        logger.flush();
    });
    if verdicts {
        Firewall::lock()?.set_verdict_logging(false)?;
    }
    Ok(())
}
