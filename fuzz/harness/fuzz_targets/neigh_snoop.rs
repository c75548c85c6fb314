//! cargo-fuzz entry point of `xvs_fuzz_targets::neigh_snoop` (the body lives
//! there so the stable test suite can replay crashes without libFuzzer).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xvs_fuzz_targets::neigh_snoop(data));
