//! Builders for inventories in the planning tests.
#![allow(dead_code)]

use diskplan::testing::{self, partition};
use lazare_proto::{Disk, Firmware, Inventory, PartitionTable, GIB, MIB};

pub use diskplan::testing::disk;

pub fn ssd(name: &str, size: u64) -> Disk {
    Disk { rotational: false, ..disk(name, size) }
}

/// A machine booted from its CD drive `sr0`.
pub fn inv(firmware: Firmware, memory: u64, disks: Vec<Disk>) -> Inventory {
    Inventory { boot_device: Some("sr0".into()), ..testing::inventory(firmware, memory, disks) }
}

pub fn cdrom() -> Disk {
    Disk { removable: true, ..disk("sr0", 700 * MIB) }
}

/// An 8 GiB disk laid out like a previous install: root, swap, /home.
pub fn disk_with_home(name: &str, table: PartitionTable) -> Disk {
    let p = |number, start, size, fs: &str, label: &str| lazare_proto::Partition {
        uuid: Some(format!("uuid-{number}")),
        ..partition(number, start, size, fs, label)
    };
    Disk {
        partitions: vec![
            p(1, MIB, 4 * GIB, "ext4", "root"),
            p(2, MIB + 4 * GIB, 512 * MIB, "swap", "swap"),
            p(3, MIB + 4 * GIB + 512 * MIB, 3 * GIB, "ext4", "home"),
        ],
        table: Some(table),
        ..disk(name, 8 * GIB)
    }
}

use diskplan::{DiskAction, Layout};
use lazare_proto::DiskPolicy;

/// The properties every layout must have; panics naming the broken one.
pub fn check(inv: &Inventory, policy: &DiskPolicy, l: &Layout) {
    assert_eq!(l.disks.len(), inv.disks.len(), "every disk is listed once");
    for d in &l.disks {
        let src = inv.disks.iter().find(|x| x.name == d.name).expect("disk from the inventory");
        let never = inv.boot_device.as_deref() == Some(&d.name)
            || src.removable
            || policy.exclude.contains(&d.name);
        if never {
            assert!(
                matches!(d.action, DiskAction::Untouched { .. }),
                "{} must be untouched",
                d.name
            );
            assert!(d.partitions.is_empty(), "{} must have no planned partition", d.name);
        }
        if let DiskAction::Untouched { .. } = d.action {
            // A kept /home may be listed (to be mounted), never changed.
            assert!(d.partitions.iter().all(|p| p.preserve), "{} untouched", d.name);
        } else {
            assert!(!d.partitions.is_empty(), "a written disk is used: {}", d.name);
        }
        let mut parts = d.partitions.clone();
        parts.sort_by_key(|p| p.start);
        for p in &parts {
            assert!(p.size > 0);
            assert!(p.end() <= d.size_bytes, "{}{} fits", d.name, p.number);
            if p.preserve {
                let o = src.partitions.iter().find(|o| o.number == p.number).expect("kept exists");
                assert_eq!(
                    (o.start, o.size),
                    (p.start, p.size),
                    "kept {}{} unchanged",
                    d.name,
                    p.number
                );
            } else {
                assert_eq!(p.start % MIB, 0, "{}{} start aligned", d.name, p.number);
                assert_eq!(p.size % MIB, 0, "{}{} size aligned", d.name, p.number);
                assert!(p.start >= MIB, "first MiB is the table's");
                // GPT's backup header lives in the last 33 sectors.
                assert!(
                    p.end() + 33 * 512 <= d.size_bytes,
                    "{}{} leaves the GPT tail",
                    d.name,
                    p.number
                );
            }
        }
        for w in parts.windows(2) {
            assert!(
                w[0].end() <= w[1].start,
                "{}: {} and {} overlap",
                d.name,
                w[0].number,
                w[1].number
            );
        }
        let mut nums: Vec<u32> = parts.iter().map(|p| p.number).collect();
        nums.sort();
        nums.dedup();
        assert_eq!(nums.len(), parts.len(), "{}: partition numbers unique", d.name);
        if let DiskAction::NewTable { table: PartitionTable::Mbr }
        | DiskAction::KeepTable { table: PartitionTable::Mbr } = d.action
        {
            assert!(
                nums.iter().all(|n| (1..=4).contains(n))
                    || parts.iter().any(|p| p.preserve && p.number > 4)
            );
        }
    }
    // Every preserved-looking home from the inventory survives when the policy says so.
    let roots = l.mounts.iter().filter(|m| m.target == "/").count();
    assert_eq!(roots, 1, "exactly one root");
    assert!(l.mounted("/").is_some());
    if inv.firmware == Firmware::Uefi {
        assert!(l.mounted("/boot/efi").is_some(), "UEFI has an ESP");
    }
}
