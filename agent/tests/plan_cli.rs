//! `lazare-agent plan` as a black box, and the words shown before installing.

use std::cell::RefCell;
use std::process::Command;
use std::time::Duration;

use diskplan::Layout;
use lazare_agent::install::show::{describe, show_and_count_down, Say};
use serde_json::json;

fn inventory(disks: serde_json::Value) -> serde_json::Value {
    json!({
        "machine_id": "0".repeat(64), "memory_bytes": 268435456u64, "cpus": 1, "cpu_model": "x",
        "firmware": "bios", "dmi": {}, "nics": [], "boot_device": "sr0", "disks": disks
    })
}

fn disk(name: &str, size: u64) -> serde_json::Value {
    json!({"name": name, "size_bytes": size, "model": "QEMU HARDDISK", "serial": null,
           "removable": false, "rotational": true, "partitions": []})
}

fn plan_cmd(
    inv: &serde_json::Value,
    policy: Option<&serde_json::Value>,
    extra: &[&str],
) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let ip = dir.path().join("inv.json");
    std::fs::write(&ip, inv.to_string()).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_lazare-agent"));
    c.arg("plan").arg("--inventory").arg(&ip);
    if let Some(p) = policy {
        let pp = dir.path().join("policy.json");
        std::fs::write(&pp, p.to_string()).unwrap();
        c.arg("--policy").arg(pp);
    }
    c.args(extra).output().unwrap()
}

#[test]
fn plan_prints_the_layout_as_json() {
    let inv = inventory(
        json!([disk("sda", 8_589_934_592u64), {"name": "sr0", "size_bytes": 700_000_000u64,
        "model": null, "serial": null, "removable": true, "rotational": true, "partitions": []}]),
    );
    let out = plan_cmd(&inv, Some(&json!({"root_min": 3221225472u64})), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let l: Layout = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(l.mounted("/").unwrap().0.name, "sda");
    assert_eq!(l.boot_disks, ["sda"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["disks"][1]["action"], json!({"kind": "untouched", "reason": "boot_device"}));
}

#[test]
fn too_little_disk_exits_non_zero_with_the_reason() {
    let inv = inventory(json!([disk("sda", 2_147_483_648u64)]));
    let out = plan_cmd(&inv, Some(&json!({"root_min": 3221225472u64})), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not enough disk space"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn text_mode_says_what_happens_to_each_disk() {
    let inv = inventory(json!([disk("sda", 8_589_934_592u64)]));
    let out = plan_cmd(&inv, None, &["--text"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Disk sda (8.6 GB, QEMU HARDDISK): will be ERASED → / ("), "{text}");
    assert!(text.contains("swap (536 MB)"), "{text}");
}

#[derive(Default)]
struct Lines(RefCell<Vec<String>>);

impl Say for Lines {
    fn say(&self, line: &str) {
        self.0.borrow_mut().push(line.to_string());
    }
}

fn layout_with_kept_home() -> Layout {
    let mut inv = inventory(json!([disk("sda", 8_589_934_592u64), disk("sdb", 8_589_934_592u64)]));
    inv["disks"][1]["partitions"] = json!([{"number": 1, "start": 1048576, "size": 4294967296u64,
        "fs_type": "ext4", "label": "home", "uuid": "u", "looks_like_home": true}]);
    inv["disks"][1]["table"] = json!("mbr");
    let inv: lazare_proto::Inventory = serde_json::from_value(inv).unwrap();
    diskplan::plan(&inv, &Default::default()).unwrap()
}

#[test]
fn kept_disks_are_named_as_kept() {
    let lines = describe(&layout_with_kept_home());
    assert!(
        lines[0].starts_with("Disk sda (8.6 GB, QEMU HARDDISK): will be ERASED → / ("),
        "{lines:?}"
    );
    assert_eq!(lines[1], "Disk sdb (8.6 GB, QEMU HARDDISK): kept as is (home with your files)");
}

#[test]
fn countdown_counts_down_then_starts() {
    let (lines, slept) = (Lines::default(), RefCell::new(Duration::ZERO));
    show_and_count_down(&layout_with_kept_home(), 3, &lines, &|d| *slept.borrow_mut() += d);
    let l = lines.0.borrow();
    let counts: Vec<&String> = l.iter().filter(|x| x.starts_with("Starting in")).collect();
    assert_eq!(counts.len(), 3);
    assert!(counts[0].starts_with("Starting in 3 s"));
    assert_eq!(l.last().unwrap(), "Starting.");
    assert_eq!(*slept.borrow(), Duration::from_secs(3));
    let none = Lines::default();
    show_and_count_down(&layout_with_kept_home(), 0, &none, &|_| panic!("no wait at 0"));
    assert!(!none.0.borrow().iter().any(|x| x.starts_with("Starting in")));
}
