//! cargo-fuzz target: see fwctl_fuzz::iptables_save.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        fwctl_fuzz::iptables_save(text);
    }
});
