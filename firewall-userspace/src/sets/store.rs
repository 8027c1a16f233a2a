//! The members of each storage on disk, beside the state file: `sets/<storage id>`, one
//! member a line (address in hex, prefix, protocol, port, expiry), written through a
//! temporary file and a rename like the state. The state file names the storages; a file
//! here outlives fwctl's run so that `list`, `save` and later changes know the members
//! without reading them back from the kernel.

use std::{
    fmt::Write,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use super::model::{Member, Members};

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("sets")
}

fn path(state_dir: &Path, storage: u32) -> PathBuf {
    dir(state_dir).join(storage.to_string())
}

pub fn write(state_dir: &Path, storage: u32, members: &Members) -> Result<()> {
    let d = dir(state_dir);
    fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    let mut text = String::with_capacity(members.len() * 24);
    for (m, expiry) in members {
        let _ = writeln!(
            text,
            "{:x} {} {} {} {}",
            m.addr, m.prefix, m.proto, m.port, expiry
        );
    }
    crate::state::write_run_text(&path(state_dir, storage), &text)
}

/// The members of a storage; none if it has no file (a storage whose load never began).
pub fn read(state_dir: &Path, storage: u32) -> Result<Members> {
    let p = path(state_dir, storage);
    let text = match fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Members::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    let mut out = Members::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split(' ').collect();
        let parsed = (f.len() == 5)
            .then(|| {
                Some((
                    Member {
                        addr: u128::from_str_radix(f[0], 16).ok()?,
                        prefix: f[1].parse().ok()?,
                        proto: f[2].parse().ok()?,
                        port: f[3].parse().ok()?,
                    },
                    f[4].parse::<u64>().ok()?,
                ))
            })
            .flatten();
        let Some((m, expiry)) = parsed else {
            bail!("{} is corrupt at line {}", p.display(), i + 1);
        };
        out.insert(m, expiry);
    }
    Ok(out)
}

pub fn remove(state_dir: &Path, storage: u32) -> Result<()> {
    let p = path(state_dir, storage);
    match fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
    }
}

/// Removes every storage file and the directory (`fwctl down`).
pub fn remove_all(state_dir: &Path) -> Result<()> {
    let d = dir(state_dir);
    match fs::remove_dir_all(&d) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", d.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_survive_the_round_trip() {
        let dir = std::env::temp_dir().join(format!("fwctl-store-test-{}", std::process::id()));
        let mut members = Members::new();
        members.insert(
            Member {
                addr: 0x0a00_0000,
                prefix: 8,
                proto: 0,
                port: 0,
            },
            0,
        );
        members.insert(
            Member {
                addr: u128::MAX,
                prefix: 128,
                proto: 6,
                port: 443,
            },
            12_345,
        );
        write(&dir, 7, &members).unwrap();
        assert_eq!(read(&dir, 7).unwrap(), members);
        assert!(read(&dir, 8).unwrap().is_empty());
        fs::write(path(&dir, 9), "zz 1 2\n").unwrap();
        assert!(read(&dir, 9).unwrap_err().to_string().contains("line 1"));
        remove_all(&dir).unwrap();
        let _ = fs::remove_dir(&dir);
    }
}
