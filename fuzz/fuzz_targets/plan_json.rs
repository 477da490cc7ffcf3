//! The plan as the agent parses it (after its signature, which a fuzzer
//! cannot forge; the server side is trusted but the parser is shared):
//! parse, validate, and a serialise/parse round trip that must be exact.
#![no_main]

use lazare_proto::Plan;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(plan) = serde_json::from_slice::<Plan>(data) else { return };
    let id = plan.machine_id.clone();
    let _ = plan.validate_for(&id);
    let back = serde_json::to_vec(&plan).expect("a parsed plan serialises");
    assert_eq!(serde_json::from_slice::<Plan>(&back).expect("and parses back"), plan);
});
