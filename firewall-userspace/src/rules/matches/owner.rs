//! `-m owner [!] --uid-owner U[-U] [!] --gid-owner G[-G] [--suppl-groups] [!]
//! --socket-exists`: the local socket that sent the packet (libxt_owner.c, revision 1), in
//! OUTPUT and POSTROUTING. Netfilter runs the kernel's xt_owner through the compat
//! expression: a negated item holds for a packet without a socket there, which nftables'
//! `meta skuid` cannot say.

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
    /// `--suppl-groups`: the socket's supplementary groups count for `--gid-owner` too.
    #[serde(default)]
    pub suppl: bool,
    /// The negated items, as XT_OWNER_* bits.
    #[serde(default)]
    pub invert: u8,
}

/// XT_OWNER_*: the items a rule gives, and those negated.
const UID: u8 = 0x01;
const GID: u8 = 0x02;
const SOCKET: u8 = 0x04;
const SUPPL_GROUPS: u8 = 0x08;

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
    let bit = match opt {
        "--socket-exists" => SOCKET,
        "--uid-owner" => UID,
        "--gid-owner" => GID,
        _ => SUPPL_GROUPS,
    };
    if negated {
        if bit == SUPPL_GROUPS {
            return Err("owner: option \"--suppl-groups\" cannot be inverted.".into());
        }
        m.invert |= bit;
    }
    match opt {
        "--socket-exists" => m.socket = true,
        "--suppl-groups" => {
            if m.gid.is_none() {
                return Err(
                    "owner: Bad value for \"--suppl-groups\" option: \"you need to use --gid-owner first\""
                        .into(),
                );
            }
            m.suppl = true;
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

/// One item of the match: its bit, whether given, its `-L` label, its save option and
/// its ids (with whether they are user ids).
type Item = (
    u8,
    bool,
    &'static str,
    &'static str,
    Option<(IdRange, bool)>,
);

impl Owner {
    /// The items in libxt_owner's order.
    fn items(&self) -> [Item; 4] {
        [
            (
                SOCKET,
                self.socket,
                "owner socket exists",
                "--socket-exists",
                None,
            ),
            (
                UID,
                self.uid.is_some(),
                "owner UID match",
                "--uid-owner",
                self.uid.map(|u| (u, true)),
            ),
            (
                GID,
                self.gid.is_some(),
                "owner GID match",
                "--gid-owner",
                self.gid.map(|g| (g, false)),
            ),
            (
                SUPPL_GROUPS,
                self.suppl,
                "incl. suppl. groups",
                "--suppl-groups",
                None,
            ),
        ]
    }

    fn text(&self, save: bool, numeric: bool) -> String {
        let mut out = String::new();
        for (bit, given, label, option, ids) in self.items() {
            if !given {
                continue;
            }
            if self.invert & bit != 0 {
                out.push_str(" !");
            }
            out.push(' ');
            out.push_str(if save { option } else { label });
            if let Some((range, uid)) = ids {
                out.push(' ');
                out.push_str(&range.text(uid, numeric || save));
            }
        }
        out
    }

    pub fn list_text(self, numeric: bool) -> String {
        self.text(false, numeric)
    }

    pub fn save_text(self) -> String {
        format!("-m owner{}", self.text(true, true))
    }

    /// struct xt_owner_match_info: uid_min, uid_max, gid_min, gid_max, match, invert; 24
    /// bytes once aligned.
    pub fn xt_info(&self) -> Vec<u8> {
        let mut info = Vec::with_capacity(24);
        let mut given = 0;
        for (bit, on, _, _, _) in self.items() {
            if on {
                given |= bit;
            }
        }
        for range in [self.uid, self.gid] {
            let r = range.unwrap_or(IdRange { min: 0, max: 0 });
            info.extend(r.min.to_ne_bytes());
            info.extend(r.max.to_ne_bytes());
        }
        info.push(given);
        info.push(self.invert);
        info.resize(24, 0);
        info
    }
}
