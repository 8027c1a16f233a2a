//! cargo-fuzz target: see fwctl_fuzz::rule_grammar.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        fwctl_fuzz::rule_grammar(text);
    }
});
