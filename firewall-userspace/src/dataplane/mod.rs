//! Everything fwctl does to the kernel's BPF side: find this network namespace's pinned
//! state, load and pin the program and its maps, attach it to interfaces, write a ruleset
//! generation and flip to it, read counters.

pub mod attach;
pub mod batch;
pub mod capacity;
pub mod ct_seen;
pub mod forwarding;
pub mod gc;
pub mod guards;
pub mod install;
pub mod keyed;
pub mod kfunc;
pub mod maps;
pub mod mmap;
pub mod namespace;
pub mod resize;
pub mod upgrade;

pub use install::Dataplane;
