//! The superblock and partition-table probe the agent runs on every disk of
//! a donated PC (whatever an old owner left on it).
#![no_main]

use std::io::Cursor;

use lazare_agent::hw::blkid;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = blkid::identify(data);
    let _ = blkid::probe(&mut Cursor::new(data));
    for sector in [512, 4096] {
        let _ = blkid::table(&mut Cursor::new(data), sector);
    }
});
