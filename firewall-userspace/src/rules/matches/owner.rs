//! `-m owner --uid-owner U[-U] --gid-owner G[-G] --socket-exists`: the local socket that
//! sent the packet (libxt_owner.c, revision 1), in OUTPUT and POSTROUTING.
//!
//! Only the positive forms: xt_owner lets a packet without a socket satisfy a negated
//! item, and netfilter's `meta skuid` cannot test for "no socket", so `!` is refused
//! rather than judged differently.

use std::ffi::{CStr, CString};

use serde::{Deserialize, Serialize};

use super::{Module, NfMatch, Value};
use crate::rules::{options::Options, Family};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub min: u32,
    pub max: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub socket: bool,
    pub uid: Option<IdRange>,
    pub gid: Option<IdRange>,
}

pub const MODULE: Module = Module {
    name: "owner",
    options: &[
        ("--uid-owner", "--uid-owner"),
        ("--gid-owner", "--gid-owner"),
        ("--socket-exists", "--socket-exists"),
        ("--suppl-groups", "--suppl-groups"),
    ] as Options,
    take,
    required: "owner: at least one of --uid-owner, --gid-owner or --socket-exists is required",
    defaults: None,
};

fn take(
    current: Option<NfMatch>,
    opt: &str,
    negated: bool,
    value: Value,
    _family: Family,
) -> Result<(NfMatch, bool), String> {
    let mut m = match current {
        Some(NfMatch::Owner(m)) => m,
        _ => Owner::default(),
    };
    if negated {
        return Err(format!(
            "owner: `! {opt}' is not supported by this version of fwctl (netfilter cannot match packets without a socket)"
        ));
    }
    match opt {
        "--socket-exists" => m.socket = true,
        "--suppl-groups" => {
            return Err("owner: --suppl-groups is not supported by this version of fwctl".into())
        }
        _ => {
            let uid = opt == "--uid-owner";
            let text = value()?;
            let range = parse_ids(&text, uid).ok_or_else(|| {
                let what = if uid { "user" } else { "group" };
                format!(
                    "owner: Bad value for \"{opt}\" option: \"{text}\" is no {what} or id range"
                )
            })?;
            *(if uid { &mut m.uid } else { &mut m.gid }) = Some(range);
        }
    }
    Ok((NfMatch::Owner(m), false))
}

/// `N`, `N-M` or a user (group) name, as libxt_owner reads them.
fn parse_ids(text: &str, uid: bool) -> Option<IdRange> {
    if let Some((lo, hi)) = text.split_once('-') {
        let (min, max) = (lo.parse().ok()?, hi.parse().ok()?);
        return (min <= max).then_some(IdRange { min, max });
    }
    let id = text.parse().ok().or_else(|| id_of_name(text, uid))?;
    Some(IdRange { min: id, max: id })
}

fn id_of_name(name: &str, uid: bool) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: getpwnam/getgrnam with a NUL-terminated name; the result is read at once,
    // before any other call could reuse its static storage (fwctl is single-threaded here).
    unsafe {
        if uid {
            let p = libc::getpwnam(c.as_ptr());
            (!p.is_null()).then(|| (*p).pw_uid)
        } else {
            let g = libc::getgrnam(c.as_ptr());
            (!g.is_null()).then(|| (*g).gr_gid)
        }
    }
}

fn name_of_id(id: u32, uid: bool) -> Option<String> {
    // SAFETY: as in id_of_name; the name is copied out at once.
    unsafe {
        let name = if uid {
            let p = libc::getpwuid(id);
            (!p.is_null()).then(|| (*p).pw_name)?
        } else {
            let g = libc::getgrgid(id);
            (!g.is_null()).then(|| (*g).gr_name)?
        };
        Some(CStr::from_ptr(name).to_string_lossy().into_owned())
    }
}

impl IdRange {
    fn text(self, uid: bool, numeric: bool) -> String {
        if self.min != self.max {
            return format!("{}-{}", self.min, self.max);
        }
        (!numeric)
            .then(|| name_of_id(self.min, uid))
            .flatten()
            .unwrap_or_else(|| self.min.to_string())
    }
}

impl Owner {
    pub fn list_text(self, numeric: bool) -> String {
        let mut out = String::new();
        if self.socket {
            out.push_str(" owner socket exists");
        }
        if let Some(u) = self.uid {
            out.push_str(&format!(" owner UID match {}", u.text(true, numeric)));
        }
        if let Some(g) = self.gid {
            out.push_str(&format!(" owner GID match {}", g.text(false, numeric)));
        }
        out
    }

    pub fn save_text(self) -> String {
        let mut out = vec!["-m owner".to_string()];
        if self.socket {
            out.push("--socket-exists".into());
        }
        if let Some(u) = self.uid {
            out.push(format!("--uid-owner {}", u.text(true, true)));
        }
        if let Some(g) = self.gid {
            out.push(format!("--gid-owner {}", g.text(false, true)));
        }
        out.join(" ")
    }
}
