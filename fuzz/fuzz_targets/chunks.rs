//! The chunk index, which may come from an untrusted mirror or peer before
//! its hash is checked: parse; what parses must be canonical (its bytes
//! are the input) and checking chunks against it must not panic.
#![no_main]

use lazare_proto::ChunkIndex;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ChunkIndex::parse_signed(data, "00", 0);
    let Ok(index) = ChunkIndex::parse(data) else { return };
    assert_eq!(index.to_bytes(), data, "one index, one byte form");
    for n in [0, 1, index.count().saturating_sub(1), index.count(), u64::MAX] {
        let _ = index.range(n);
        let _ = index.check(n, &data[..data.len().min(64)]);
    }
});
