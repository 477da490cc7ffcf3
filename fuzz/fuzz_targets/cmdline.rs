//! Parse arbitrary bytes (lossy UTF-8) as a kernel command line; check that
//! formatting reads back the same, for the line and each `ip=`, and that
//! resolving never panics. The body is `kernel_cmdline::fuzz_check`, which
//! `cargo test -p kernel-cmdline` also runs on random input (proptest).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kernel_cmdline::fuzz_check(data);
});
