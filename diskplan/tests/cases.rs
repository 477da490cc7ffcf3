//! The machines donated PCs are, one test each.

mod common;

use common::*;
use diskplan::{plan, DiskAction, Layout, PlanError, Role, UntouchedReason};
use lazare_proto::{
    DiskPolicy, Firmware, HomePolicy, PartitionTable, SwapPolicy, TablePreference, GIB, MIB,
};

const RAM: u64 = 256 * MIB;

fn run(inv: &lazare_proto::Inventory, policy: &DiskPolicy) -> Layout {
    let l = plan(inv, policy).unwrap_or_else(|e| panic!("plan failed: {e}"));
    check(inv, policy, &l);
    l
}

fn roles(l: &Layout, disk: &str) -> Vec<Role> {
    l.disk(disk).unwrap().partitions.iter().map(|p| p.role).collect()
}

fn on(l: &Layout, target: &str) -> String {
    l.mounted(target).map(|(d, p)| format!("{}{}", d.name, p.number)).unwrap_or_default()
}

#[test]
fn one_8g_disk_bios_gets_mbr_root_swap_home() {
    let i = inv(Firmware::Bios, RAM, vec![cdrom(), disk("sda", 8 * GIB)]);
    let l = run(&i, &DiskPolicy::default());
    let sda = l.disk("sda").unwrap();
    assert_eq!(sda.action, DiskAction::NewTable { table: PartitionTable::Mbr });
    assert_eq!(roles(&l, "sda"), [Role::Root, Role::Swap, Role::Home]);
    assert_eq!(sda.partitions[0].start, MIB);
    assert_eq!(sda.partitions[1].size, 512 * MIB, "swap = 2 x 256 MiB RAM");
    assert!(sda.partitions[0].size >= 4 * GIB, "root has slack beyond root_min");
    assert!(sda.partitions[2].size >= GIB);
    assert_eq!(
        (on(&l, "/"), on(&l, "swap"), on(&l, "/home")),
        ("sda1".into(), "sda2".into(), "sda3".into())
    );
    assert_eq!(
        l.disk("sr0").unwrap().action,
        DiskAction::Untouched { reason: UntouchedReason::BootDevice }
    );
    assert_eq!(l.boot_disks, ["sda"]);
}

#[test]
fn one_4g_disk_has_root_and_swap_but_no_separate_home() {
    let i = inv(Firmware::Bios, RAM, vec![disk("sda", 4_000_000_000)]);
    let l = run(&i, &DiskPolicy::default());
    assert_eq!(roles(&l, "sda"), [Role::Root, Role::Swap]);
    assert!(l.notes.iter().any(|n| n.contains("no room for a separate /home")));
}

#[test]
fn tight_disk_drops_swap_before_refusing() {
    let i = inv(Firmware::Bios, RAM, vec![disk("sda", 4_000_000_000)]);
    let policy = DiskPolicy { root_min: 3584 * MIB, ..DiskPolicy::default() };
    let l = run(&i, &policy);
    assert_eq!(roles(&l, "sda"), [Role::Root]);
    assert!(l.notes.iter().any(|n| n.contains("no room for swap")));
}

#[test]
fn three_4g_disks_spread_root_home_swap() {
    let disks = vec![disk("sda", 4 * GIB), disk("sdb", 4 * GIB), disk("sdc", 4 * GIB)];
    let l = run(&inv(Firmware::Bios, RAM, disks), &DiskPolicy::default());
    assert_eq!(roles(&l, "sda"), [Role::Root]);
    assert_eq!(roles(&l, "sdb"), [Role::Home]);
    assert_eq!(roles(&l, "sdc"), [Role::Swap, Role::Data]);
    assert_eq!(on(&l, "/data"), "sdc2");
    assert_eq!(l.boot_disks, ["sda", "sdb", "sdc"], "GRUB on every disk a BIOS may boot");
}

#[test]
fn small_ssd_takes_root_large_hdd_takes_home() {
    let disks = vec![disk("sda", 80 * GIB), ssd("sdb", 8 * GIB)];
    let l = run(&inv(Firmware::Bios, 2 * GIB, disks), &DiskPolicy::default());
    assert_eq!(roles(&l, "sdb"), [Role::Root]);
    assert_eq!(roles(&l, "sda"), [Role::Swap, Role::Home]);
    assert_eq!(l.disk("sda").unwrap().partitions[0].size, 2 * GIB, "swap = RAM above 1 GiB");
    assert_eq!(l.boot_disks[0], "sdb");
}

#[test]
fn existing_home_on_the_only_disk_is_kept_and_rest_rebuilt() {
    for table in [PartitionTable::Mbr, PartitionTable::Gpt] {
        let i = inv(Firmware::Bios, RAM, vec![disk_with_home("sda", table)]);
        let l = run(&i, &DiskPolicy::default());
        let sda = l.disk("sda").unwrap();
        assert_eq!(sda.action, DiskAction::KeepTable { table });
        let home = sda.partitions.iter().find(|p| p.role == Role::Home).unwrap();
        assert!(home.preserve);
        assert_eq!((home.number, home.start, home.size), (3, MIB + 4 * GIB + 512 * MIB, 3 * GIB));
        assert_eq!(home.uuid.as_deref(), Some("uuid-3"));
        assert_eq!(on(&l, "/home"), "sda3");
        assert!(sda.partitions.iter().all(|p| p.preserve == (p.role == Role::Home)));
        let want = if table == PartitionTable::Gpt { 4 } else { 3 };
        assert_eq!(sda.partitions.len(), want, "{table:?}: {:?}", sda.partitions);
    }
}

#[test]
fn existing_home_on_uefi_gpt_gets_an_esp_around_it() {
    let i = inv(Firmware::Uefi, RAM, vec![disk_with_home("sda", PartitionTable::Gpt)]);
    let l = run(&i, &DiskPolicy::default());
    assert!(roles(&l, "sda").contains(&Role::Esp));
    assert_eq!(l.mounted("/home").unwrap().1.number, 3);
}

#[test]
fn bios_home_on_the_first_disk_gets_root_around_it_so_the_bios_finds_grub() {
    let disks = vec![disk_with_home("sda", PartitionTable::Mbr), disk("sdb", 4 * GIB)];
    let l = run(&inv(Firmware::Bios, RAM, disks), &DiskPolicy::default());
    assert_eq!(l.disk("sda").unwrap().action, DiskAction::KeepTable { table: PartitionTable::Mbr });
    assert_eq!(on(&l, "/"), "sda1");
    assert_eq!(on(&l, "/home"), "sda3");
    assert_eq!(roles(&l, "sdb"), [Role::Swap, Role::Data]);
    assert_eq!(l.boot_disks[0], "sda");
}

#[test]
fn uefi_home_on_the_first_disk_is_left_alone() {
    let disks = vec![disk_with_home("sda", PartitionTable::Gpt), disk("sdb", 4 * GIB)];
    let l = run(&inv(Firmware::Uefi, RAM, disks), &DiskPolicy::default());
    assert_eq!(
        l.disk("sda").unwrap().action,
        DiskAction::Untouched { reason: UntouchedReason::HoldsHome }
    );
    assert_eq!(on(&l, "/"), "sdb2");
}

#[test]
fn home_on_a_second_disk_leaves_that_disk_alone() {
    let disks = vec![disk("sda", 6 * GIB), disk_with_home("sdb", PartitionTable::Mbr)];
    let l = run(&inv(Firmware::Bios, RAM, disks), &DiskPolicy::default());
    assert_eq!(
        l.disk("sdb").unwrap().action,
        DiskAction::Untouched { reason: UntouchedReason::HoldsHome }
    );
    assert_eq!(on(&l, "/home"), "sdb3");
    assert_eq!(roles(&l, "sda"), [Role::Root, Role::Swap]);
}

#[test]
fn fresh_policy_wipes_the_home() {
    let i = inv(Firmware::Bios, RAM, vec![disk_with_home("sda", PartitionTable::Mbr)]);
    let policy = DiskPolicy { home: HomePolicy::Fresh, ..DiskPolicy::default() };
    let l = run(&i, &policy);
    assert_eq!(l.disk("sda").unwrap().action, DiskAction::NewTable { table: PartitionTable::Mbr });
    assert!(l.disk("sda").unwrap().partitions.iter().all(|p| !p.preserve));
}

#[test]
fn home_in_a_logical_partition_on_the_only_disk_is_refused() {
    let mut d = disk_with_home("sda", PartitionTable::Mbr);
    d.partitions[2].number = 5;
    let e = plan(&inv(Firmware::Bios, RAM, vec![d]), &DiskPolicy::default()).unwrap_err();
    assert!(matches!(e, PlanError::HomeNotKeepable { number: 5, .. }), "{e}");
    assert!(e.to_string().contains("fresh"), "{e}");
}

#[test]
fn too_little_disk_is_a_clear_error() {
    let disks = vec![disk("sda", 2 * GIB), disk("sdb", 2 * GIB)];
    let e = plan(&inv(Firmware::Bios, RAM, disks), &DiskPolicy::default()).unwrap_err();
    assert!(matches!(e, PlanError::TooLittleSpace { needed, .. } if needed == 3 * GIB), "{e:?}");
    assert!(e.to_string().starts_with("not enough disk space: the system needs 3072 MiB"), "{e}");
}

#[test]
fn only_removable_media_is_refused() {
    let usb = lazare_proto::Disk { removable: true, ..disk("sdb", 16 * GIB) };
    let e =
        plan(&inv(Firmware::Bios, RAM, vec![cdrom(), usb]), &DiskPolicy::default()).unwrap_err();
    assert!(matches!(e, PlanError::NoDisk(_)));
    assert!(e.to_string().contains("sdb: Removable"), "{e}");
}

#[test]
fn boot_usb_and_excluded_disks_are_untouched() {
    let mut i = inv(
        Firmware::Bios,
        RAM,
        vec![disk("sda", 8 * GIB), disk("sdb", 8 * GIB), disk("sdc", 8 * GIB)],
    );
    i.boot_device = Some("sdc".into());
    let policy = DiskPolicy { exclude: vec!["sdb".into()], ..DiskPolicy::default() };
    let l = run(&i, &policy);
    assert_eq!(
        l.disk("sdb").unwrap().action,
        DiskAction::Untouched { reason: UntouchedReason::Excluded }
    );
    assert_eq!(
        l.disk("sdc").unwrap().action,
        DiskAction::Untouched { reason: UntouchedReason::BootDevice }
    );
}

#[test]
fn uefi_gets_gpt_with_an_esp_first() {
    let l = run(&inv(Firmware::Uefi, RAM, vec![disk("sda", 8 * GIB)]), &DiskPolicy::default());
    let sda = l.disk("sda").unwrap();
    assert_eq!(sda.action, DiskAction::NewTable { table: PartitionTable::Gpt });
    assert_eq!((sda.partitions[0].role, sda.partitions[0].size), (Role::Esp, 128 * MIB));
    assert_eq!(on(&l, "/boot/efi"), "sda1");
}

#[test]
fn bios_with_gpt_gets_a_bios_grub_partition() {
    let policy = DiskPolicy { table: TablePreference::Gpt, ..DiskPolicy::default() };
    let l = run(&inv(Firmware::Bios, RAM, vec![disk("sda", 8 * GIB)]), &policy);
    let p = &l.disk("sda").unwrap().partitions[0];
    assert_eq!((p.role, p.start, p.size, p.fs), (Role::BiosGrub, MIB, MIB, None));
}

#[test]
fn huge_bios_disk_gets_gpt() {
    let l =
        run(&inv(Firmware::Bios, RAM, vec![disk("sda", 3 * 1024 * GIB)]), &DiskPolicy::default());
    assert_eq!(l.disk("sda").unwrap().action, DiskAction::NewTable { table: PartitionTable::Gpt });
    assert_eq!(roles(&l, "sda")[0], Role::BiosGrub);
}

#[test]
fn swap_sizes() {
    assert_eq!(diskplan::auto_swap(256 * MIB), 512 * MIB);
    assert_eq!(diskplan::auto_swap(GIB), 2 * GIB);
    assert_eq!(diskplan::auto_swap(1536 * MIB), 1536 * MIB);
    assert_eq!(diskplan::auto_swap(16 * GIB), 2 * GIB);
    let policy = DiskPolicy { swap: SwapPolicy::None, ..DiskPolicy::default() };
    let l = run(&inv(Firmware::Bios, RAM, vec![disk("sda", 8 * GIB)]), &policy);
    assert!(!roles(&l, "sda").contains(&Role::Swap));
}

#[test]
fn layout_json_round_trips() {
    let l = run(&inv(Firmware::Uefi, RAM, vec![disk("sda", 8 * GIB)]), &DiskPolicy::default());
    let j = serde_json::to_string(&l).unwrap();
    assert!(j.contains(r#""action":{"kind":"new_table","table":"gpt"}"#), "{j}");
    assert_eq!(serde_json::from_str::<Layout>(&j).unwrap(), l);
}

#[test]
fn home_in_the_first_mib_of_a_bios_mbr_disk_is_refused() {
    let mut d = disk_with_home("sda", PartitionTable::Mbr);
    d.partitions.truncate(2);
    d.partitions.push(lazare_proto::Partition {
        number: 4,
        start: 63 * 512,
        size: 512 * MIB,
        fs_type: Some("ext3".into()),
        label: Some("home".into()),
        uuid: None,
        looks_like_home: true,
    });
    d.partitions[0].start = 513 * MIB;
    d.partitions[1].start = 513 * MIB + 4 * GIB;
    let e = plan(&inv(Firmware::Bios, RAM, vec![d]), &DiskPolicy::default()).unwrap_err();
    assert!(e.to_string().contains("first MiB"), "{e}");
}

#[test]
fn a_big_swap_shrinks_before_it_is_dropped() {
    // 2 GiB of RAM wants 2 GiB of swap; 4 GB minus 3 GiB of root leaves ~700 MiB.
    let l = run(
        &inv(Firmware::Bios, 2 * GIB, vec![disk("sda", 4_000_000_000)]),
        &DiskPolicy::default(),
    );
    let swap = l.mounted("swap").expect("a smaller swap").1.size;
    assert_eq!(swap, GIB / 2);
    assert!(l.notes.iter().any(|n| n.contains("swap is 512 MiB")), "{:?}", l.notes);
}
