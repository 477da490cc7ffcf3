//! Partition tables written to disk image files, checked with sfdisk (an
//! independent reader) — new MBR, new GPT, and a kept /home on both.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use diskplan::testing::{self, partition};
use diskplan::{plan, DiskAction, Layout};
use lazare_agent::hw::blkid;
use lazare_agent::install::table::{self, TableError};
use lazare_proto::{Disk, DiskPolicy, Firmware, Inventory, PartitionTable, GIB, MIB};
use serde_json::Value;

fn inventory(firmware: Firmware, disk: Disk) -> Inventory {
    testing::one_disk(firmware, disk)
}

fn blank(size: u64) -> Disk {
    testing::disk("img", size)
}

fn image(dir: &Path, size: u64) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("img"))
        .unwrap();
    f.set_len(size).unwrap();
    f
}

/// `sfdisk --json` of an image: the oracle.
fn sfdisk(path: &Path) -> Value {
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(path)
        .output()
        .expect("sfdisk (package fdisk) runs");
    assert!(out.status.success(), "sfdisk: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["partitiontable"].clone()
}

fn parts(t: &Value) -> Vec<Value> {
    t["partitions"].as_array().cloned().unwrap_or_default()
}

/// sfdisk's view vs the layout: same partitions, starts and sizes.
fn same_geometry(t: &Value, l: &Layout) {
    let d = &l.disks[0];
    let p = parts(t);
    assert_eq!(p.len(), d.partitions.len(), "{t}");
    for s in &p {
        let node = s["node"].as_str().unwrap();
        let number: u32 =
            node.rsplit(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap();
        let planned = d.partitions.iter().find(|x| x.number == number).expect("planned");
        assert_eq!(s["start"].as_u64().unwrap() * 512, planned.start, "{s}");
        assert_eq!(s["size"].as_u64().unwrap() * 512, planned.size, "{s}");
    }
}

#[test]
fn new_mbr_on_bios() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = image(dir.path(), 8 * GIB);
    let l = plan(&inventory(Firmware::Bios, blank(8 * GIB)), &DiskPolicy::default()).unwrap();
    table::write(&mut f, &l.disks[0], l.firmware).unwrap();
    let t = sfdisk(&dir.path().join("img"));
    assert_eq!(t["label"], "dos");
    same_geometry(&t, &l);
    let types: Vec<String> =
        parts(&t).iter().map(|p| p["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(types, ["83", "82", "83"]);
    assert_eq!(parts(&t)[0]["bootable"], true, "root is the active partition");
    assert_eq!(blkid::table(&mut f, 512), Some(PartitionTable::Mbr));
}

#[test]
fn new_gpt_on_uefi() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = image(dir.path(), 8 * GIB);
    let l = plan(&inventory(Firmware::Uefi, blank(8 * GIB)), &DiskPolicy::default()).unwrap();
    table::write(&mut f, &l.disks[0], l.firmware).unwrap();
    let t = sfdisk(&dir.path().join("img"));
    assert_eq!(t["label"], "gpt");
    same_geometry(&t, &l);
    let p = parts(&t);
    assert_eq!(p[0]["type"], "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    assert_eq!(p[0]["name"], "EFI");
    assert_eq!(p[1]["type"], "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
    assert_ne!(p[0]["uuid"], p[1]["uuid"], "unique GUIDs");
    assert_eq!(blkid::table(&mut f, 512), Some(PartitionTable::Gpt));
}

/// An old install: root, swap, /home (filled with a pattern) made by sfdisk.
fn old_install(dir: &Path, label: &str) -> (File, Vec<u8>) {
    let mut f = image(dir, 8 * GIB);
    let script = format!(
        "label: {label}\nstart=2048, size=8388608, type={r}\nsize=1048576, type={s}\nsize=6291456, type={h}\n",
        r = if label == "gpt" { "0FC63DAF-8483-4772-8E79-3D69D8477DE4" } else { "83" },
        s = if label == "gpt" { "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" } else { "82" },
        h = if label == "gpt" { "933AC7E1-2EB4-4F13-B844-0E14E2AEF915" } else { "83" },
    );
    let mut c = Command::new("sfdisk")
        .arg("-q")
        .arg(dir.join("img"))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success());
    let pattern: Vec<u8> = (0..4 * MIB as usize).map(|i| (i * 7 % 251) as u8).collect();
    f.seek(SeekFrom::Start(home_start())).unwrap();
    f.write_all(&pattern).unwrap();
    (f, pattern)
}

fn home_start() -> u64 {
    (2048 + 8388608 + 1048576) * 512
}

fn with_home(table: PartitionTable) -> Disk {
    // Sectors, as sfdisk writes them in old_install.
    let p = |number, start: u64, size: u64, fs: &str, label: &str| {
        partition(number, start * 512, size * 512, fs, label)
    };
    Disk {
        partitions: vec![
            p(1, 2048, 8388608, "ext4", "root"),
            p(2, 2048 + 8388608, 1048576, "swap", ""),
            p(3, home_start() / 512, 6291456, "ext4", "home"),
        ],
        table: Some(table),
        ..blank(8 * GIB)
    }
}

fn read_home(f: &mut File, len: usize) -> Vec<u8> {
    let mut b = vec![0; len];
    f.seek(SeekFrom::Start(home_start())).unwrap();
    f.read_exact(&mut b).unwrap();
    b
}

#[test]
fn kept_home_survives_a_new_layout_around_it() {
    for (label, table) in [("gpt", PartitionTable::Gpt), ("dos", PartitionTable::Mbr)] {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, pattern) = old_install(dir.path(), label);
        let before = sfdisk(&dir.path().join("img"));
        let l = plan(&inventory(Firmware::Bios, with_home(table)), &DiskPolicy::default()).unwrap();
        assert_eq!(l.disks[0].action, DiskAction::KeepTable { table });
        table::write(&mut f, &l.disks[0], l.firmware).unwrap();
        let after = sfdisk(&dir.path().join("img"));
        assert_eq!(after["label"], label);
        same_geometry(&after, &l);
        let home = |t: &Value| {
            parts(t).into_iter().find(|p| p["node"].as_str().unwrap().ends_with('3')).unwrap()
        };
        assert_eq!(
            home(&before),
            home(&after),
            "{label}: kept partition entry identical (start, size, type, GUID)"
        );
        assert_eq!(read_home(&mut f, pattern.len()), pattern, "{label}: kept bytes identical");
        if label == "gpt" {
            assert_eq!(before["id"], after["id"], "disk GUID kept with the table");
        }
    }
}

#[test]
fn a_moved_home_is_refused_before_any_write() {
    let dir = tempfile::tempdir().unwrap();
    let (mut f, _) = old_install(dir.path(), "gpt");
    let mut disk = with_home(PartitionTable::Gpt);
    disk.partitions[2].start += MIB; // the inventory no longer matches the disk
    let l = plan(&inventory(Firmware::Bios, disk), &DiskPolicy::default()).unwrap();
    let before = (sfdisk(&dir.path().join("img")), head(&mut f));
    let e = table::write(&mut f, &l.disks[0], l.firmware).unwrap_err();
    assert!(matches!(e, TableError::KeptMoved { number: 3, .. }), "{e}");
    assert_eq!((sfdisk(&dir.path().join("img")), head(&mut f)), before, "nothing written");
}

#[test]
fn a_disk_of_another_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = image(dir.path(), 4 * GIB);
    let l = plan(&inventory(Firmware::Bios, blank(8 * GIB)), &DiskPolicy::default()).unwrap();
    let e = table::write(&mut f, &l.disks[0], l.firmware).unwrap_err();
    assert!(matches!(e, TableError::SizeChanged { .. }), "{e}");
    assert_eq!(blkid::table(&mut f, 512), None, "nothing written");
}

/// The first MiB: MBR, GPT header and entries.
fn head(f: &mut File) -> Vec<u8> {
    let mut b = vec![0; MIB as usize];
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_exact(&mut b).unwrap();
    b
}
