//! The initramfs reader (`lazare inspect`, the build's own checks): gzip /
//! zstd / xz / plain cpio archives, concatenated, from arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lazare::initramfs::read_initramfs(data);
});
