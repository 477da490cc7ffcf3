//! `lazare inspect` on arbitrary bytes as an ISO file: ISO 9660, El Torito
//! catalog, the boot configs and the initramfs inside.
#![no_main]

use std::io::Write;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::NamedTempFile::new().expect("a temp file");
    f.write_all(data).expect("writing the temp file");
    let _ = lazare::inspect::inspect(f.path());
});
