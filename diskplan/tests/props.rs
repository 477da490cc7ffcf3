//! Properties of every layout over random machines.

mod common;

use common::*;
use diskplan::{plan, DiskAction, Role};
use lazare_proto::{
    Disk, DiskPolicy, Firmware, HomePolicy, Inventory, Partition, PartitionTable, SwapPolicy,
    TablePreference, GIB, MIB,
};
use proptest::prelude::*;

fn arb_home() -> impl Strategy<Value = Option<(u32, u64, u64, bool)>> {
    // (number, start in sectors, size in MiB, looks_like_home)
    proptest::option::of((1u32..7, 63u64..8_000_000, 64u64..4096, any::<bool>()))
}

fn arb_disk(i: usize) -> impl Strategy<Value = Disk> {
    let size = prop_oneof![
        8 => 256 * MIB..64 * GIB,
        1 => Just(3 * 1024 * GIB),
    ];
    (
        size,
        any::<bool>(),
        prop::bool::weighted(0.15),
        arb_home(),
        any::<bool>(),
        prop_oneof![Just(512u32), Just(4096u32)],
    )
        .prop_map(move |(size, rot, removable, home, gpt, sector)| {
            let mut d = disk(&format!("sd{}", (b'a' + i as u8) as char), size);
            d.rotational = rot;
            d.removable = removable;
            d.sector_size = sector;
            if let Some((number, start, mib, looks)) = home {
                let start = start * 512;
                let size = mib * MIB;
                if start + size <= d.size_bytes {
                    d.partitions.push(Partition {
                        number,
                        start,
                        size,
                        fs_type: Some("ext4".into()),
                        label: Some("home".into()),
                        uuid: Some("u".into()),
                        looks_like_home: looks,
                    });
                    d.table = Some(if gpt { PartitionTable::Gpt } else { PartitionTable::Mbr });
                }
            }
            d
        })
}

fn arb_inv() -> impl Strategy<Value = Inventory> {
    let disks = (1usize..5).prop_flat_map(|n| (0..n).map(arb_disk).collect::<Vec<_>>());
    let fw = prop_oneof![Just(Firmware::Bios), Just(Firmware::Uefi)];
    (disks, fw, 64 * MIB..8 * GIB, proptest::option::of(0usize..5)).prop_map(
        |(disks, fw, mem, boot)| {
            let mut i = inv(fw, mem, disks);
            i.boot_device =
                boot.and_then(|b| i.disks.get(b)).map(|d| d.name.clone()).or(Some("sr0".into()));
            i
        },
    )
}

fn arb_policy() -> impl Strategy<Value = DiskPolicy> {
    let home = prop_oneof![Just(HomePolicy::Preserve), Just(HomePolicy::Fresh)];
    let swap = prop_oneof![
        Just(SwapPolicy::Auto),
        Just(SwapPolicy::None),
        (1u64..4096).prop_map(|m| SwapPolicy::Fixed(m * MIB))
    ];
    let table = prop_oneof![
        Just(TablePreference::Auto),
        Just(TablePreference::Gpt),
        Just(TablePreference::Mbr)
    ];
    let exclude = proptest::option::of(0u8..4)
        .prop_map(|x| x.map(|i| format!("sd{}", (b'a' + i) as char)).into_iter().collect());
    (512 * MIB..6 * GIB, home, swap, table, exclude).prop_map(
        |(root_min, home, swap, table, exclude)| DiskPolicy {
            root_min,
            home,
            swap,
            table,
            exclude,
        },
    )
}

fn usable_by_policy(i: &Inventory, p: &DiskPolicy, d: &Disk) -> bool {
    i.boot_device.as_deref() != Some(&d.name) && !d.removable && !p.exclude.contains(&d.name)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_layout_keeps_the_rules(i in arb_inv(), p in arb_policy()) {
        let Ok(l) = plan(&i, &p) else { return Ok(()) };
        check(&i, &p, &l);
        // The kept /home is mounted and unchanged whenever one existed.
        let had_home = i.disks.iter().any(|d| {
            usable_by_policy(&i, &p, d) && d.size_bytes >= diskplan::MIN_USEFUL_DISK && !d.partitions.is_empty()
        });
        if had_home && p.home == HomePolicy::Preserve {
            let (_, home) = l.mounted("/home").expect("kept /home is mounted");
            prop_assert!(home.preserve);
        }
        // No usable disk idle: untouched ones say why; written ones hold something.
        for d in &l.disks {
            match &d.action {
                DiskAction::Untouched { .. } => {}
                _ => prop_assert!(d.partitions.iter().any(|x| x.role != Role::BiosGrub)),
            }
        }
    }

    #[test]
    fn a_big_enough_empty_disk_always_gets_a_layout(i in arb_inv(), p in arb_policy()) {
        let room = |d: &Disk| d.size_bytes.saturating_sub(2 * MIB + 34 * 4096) >= p.root_min + 260 * MIB + 2 * MIB;
        let fits = i.disks.iter().any(|d| usable_by_policy(&i, &p, d) && d.size_bytes >= 512 * MIB
            && d.partitions.is_empty() && room(d));
        let any_home = i.disks.iter().any(|d| !d.partitions.is_empty());
        if fits && !any_home {
            let r = plan(&i, &p);
            prop_assert!(r.is_ok(), "{:?}", r);
        }
    }
}
