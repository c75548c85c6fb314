//! cargo-fuzz entry point of `xvs_fuzz_targets::vhost_queue` (the body lives
//! there so the stable test suite can replay crashes without libFuzzer).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xvs_fuzz_targets::vhost_queue(data));
