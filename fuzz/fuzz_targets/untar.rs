//! The agent's tar unpack on arbitrary archives, into a fresh directory
//! beside an `outside` one that must stay empty: whatever the entries
//! (symlinks, hard links, devices, `..`, absolute paths), nothing is made
//! outside the target. Files are capped at 16 MiB (RLIMIT_FSIZE) so a
//! sparse entry cannot fill the disk of the fuzzing machine.
#![no_main]

use std::sync::Once;

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{signal, SigHandler, Signal};

static LIMITS: Once = Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    LIMITS.call_once(|| {
        setrlimit(Resource::RLIMIT_FSIZE, 16 << 20, 16 << 20).expect("RLIMIT_FSIZE");
        // Past the limit, write(2) fails with EFBIG instead of a signal.
        unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) }.expect("ignoring SIGXFSZ");
    });
    let work = tempfile::tempdir().expect("a temp dir");
    let (target, outside) = (work.path().join("target"), work.path().join("outside"));
    std::fs::create_dir(&target).unwrap();
    std::fs::create_dir(&outside).unwrap();
    let _ = lazare_agent::install::untar::unpack(&mut &data[..], &target);
    let escaped: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert!(escaped.is_empty(), "made outside the target: {escaped:?}");
    let beside: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
    assert_eq!(beside.len(), 2, "made beside the target: {beside:?}");
});
