//! What the systemd unit runs at boot: restore /etc/fwctl/sets (ipset's save format),
//! rules.v4 and rules.v6, then attach to the interfaces /etc/fwctl/fwctl.conf names. Each ruleset goes in whole or not
//! at all; an interface that cannot be attached is reported and the others still are.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::{
    dataplane::attach::XdpMode,
    firewall::Firewall,
    rules::{restore::restore, Family},
};

pub const CONFIG_DIR: &str = "/etc/fwctl";

/// `fwctl.conf`: `attach IFACE [native|generic]` lines, an optional `mark-bits SHIFT`
/// line, `#` comments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub attach: Vec<(String, XdpMode)>,
    pub mark_shift: Option<u32>,
}

pub fn parse_config(text: &str) -> Result<Config> {
    let mut config = Config::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["mark-bits", shift] = words.as_slice() {
            let shift = shift.parse().ok().filter(|s| *s <= 29).with_context(|| {
                format!(
                    "fwctl.conf line {}: expected `mark-bits SHIFT` with SHIFT 0 to 29, got `{line}'",
                    i + 1
                )
            })?;
            config.mark_shift = Some(shift);
            continue;
        }
        let mode = match words.as_slice() {
            ["attach", _] | ["attach", _, "native"] => XdpMode::Native,
            ["attach", _, "generic"] => XdpMode::Generic,
            _ => bail!(
                "fwctl.conf line {}: expected `attach IFACE [native|generic]` or `mark-bits SHIFT`, got `{line}'",
                i + 1
            ),
        };
        config.attach.push((words[1].to_string(), mode));
    }
    Ok(config)
}

/// Restores and attaches; returns one line per thing done.
pub fn boot(dir: &Path) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let mut fw = Firewall::lock()?;
    // Nobody is logged in through these rules yet.
    fw.force = true;
    let conf = dir.join("fwctl.conf");
    let config = match std::fs::read_to_string(&conf) {
        Ok(t) => parse_config(&t)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", conf.display())),
    };
    // Before the rules: their netfilter side matches on these bits.
    if let Some(shift) = config.mark_shift {
        fw.state.mark_shift = shift;
    }
    // Sets before the rules that name them: DIR/sets, in ipset's save format.
    let sets = dir.join("sets");
    match std::fs::read_to_string(&sets) {
        Ok(text) => {
            let cmds = crate::sets::ipset_format::parse_restore(&text)
                .map_err(|(line, e)| anyhow::anyhow!("{}: line {line}: {e}", sets.display()))?;
            let cmds: Vec<_> = cmds.into_iter().map(|(l, c)| (Some(l), c)).collect();
            fw.set_commands(&cmds)
                .with_context(|| format!("{}", sets.display()))?;
            done.push(format!("restored {}", sets.display()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", sets.display())),
    }
    for (family, name) in [(Family::V4, "rules.v4"), (Family::V6, "rules.v6")] {
        let path: PathBuf = dir.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let restored = restore(&text, family, &fw.state.ruleset, false)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        fw.commit(restored.editor)?;
        done.push(format!("restored {}", path.display()));
    }
    for (iface, mode) in config.attach {
        if fw.state.interfaces.iter().any(|a| a.name == iface) {
            done.push(format!("{iface}: already attached"));
            continue;
        }
        match fw.attach(&iface, mode) {
            Ok(()) => done.push(format!("attached to {iface} ({})", mode.name())),
            Err(e) => failed.push(format!("{iface}: {e:#}")),
        }
    }
    if !failed.is_empty() {
        bail!("{} (done: {})", failed.join("; "), done.join("; "));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines() {
        let c = parse_config("# lab\nattach eth0\nattach eth1 generic # old NIC\n\n").unwrap();
        assert_eq!(
            c.attach,
            [
                ("eth0".to_string(), XdpMode::Native),
                ("eth1".to_string(), XdpMode::Generic)
            ]
        );
        assert_eq!(c.mark_shift, None);
        let e = parse_config("attach\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "fwctl.conf line 1: expected `attach IFACE [native|generic]` or `mark-bits SHIFT`, got `attach'"
        );
        assert_eq!(parse_config("mark-bits 16\n").unwrap().mark_shift, Some(16));
        let e = parse_config("\nmark-bits 30\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "fwctl.conf line 2: expected `mark-bits SHIFT` with SHIFT 0 to 29, got `mark-bits 30'"
        );
    }
}
