//! fwctl's kernel side: the XDP program that judges every packet arriving on a managed
//! interface against the ruleset fwctl wrote into its maps. It parses, looks up, decides and
//! counts; every policy decision was made in userspace when the ruleset was compiled.
//!
//! This library holds the pieces that do not touch maps, so they can be read (and reasoned
//! about) apart from the program's entry point in `main.rs`.
#![no_std]

pub mod ct;
pub mod delivered;
pub mod parse;
pub mod seen;
pub mod wire;
