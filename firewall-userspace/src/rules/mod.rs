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

pub use model::*;
