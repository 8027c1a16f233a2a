//! The rule model (what the operator wrote), the iptables-syntax parser that builds it, and
//! the chain commands that edit it. Pure: nothing here touches the kernel.

pub mod edit;
pub mod eval;
pub mod icmp;
pub mod mark;
pub mod matches;
pub mod model;
pub mod nfqueue;
pub mod options;
pub mod parse;
pub mod ratelimit;
pub mod reject;
pub mod restore;
pub mod services;
pub mod set_target;
pub mod synproxy;

pub use model::*;

/// iptables-save quotes a string that would not survive the shell as one word.
/// Like xtables_save_string: letters, digits, `_` and `-` go bare, anything else is quoted
/// with `"`, `\` and `'` escaped.
pub fn save_string(s: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !s.is_empty() && s.chars().all(bare) {
        return s.to_string();
    }
    let escaped: String = s
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' | '\'' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}
