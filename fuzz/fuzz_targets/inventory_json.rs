//! An inventory as the server receives it from any PC on the LAN (no
//! signature): parse, validate, round trip, then plan its disks with a
//! policy, as both the server (dashboard) and the agent do.
#![no_main]

use lazare_proto::{DiskPolicy, Inventory};

#[derive(serde::Deserialize)]
struct Input {
    inventory: Inventory,
    #[serde(default)]
    policy: DiskPolicy,
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(inv) = serde_json::from_slice::<Inventory>(data) {
        let _ = inv.validate();
        let back = serde_json::to_vec(&inv).expect("a parsed inventory serialises");
        assert_eq!(serde_json::from_slice::<Inventory>(&back).expect("and parses back"), inv);
        let _ = diskplan::plan(&inv, &DiskPolicy::default());
    }
    if let Ok(i) = serde_json::from_slice::<Input>(data) {
        if i.inventory.validate().is_ok() {
            let _ = diskplan::plan(&i.inventory, &i.policy);
        }
    }
});
