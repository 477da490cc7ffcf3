//! The UEFI install, end to end: a blank q35 PC with OVMF (Secure Boot
//! enforced, Microsoft keys enrolled, 512 MB: OVMF and GRUB need it) boots
//! the lazare CD (shim + Debian's signed GRUB), the agent partitions the disk
//! GPT with an ESP (FAT32 made by the agent), installs the real `test` image
//! from `lazare serve` on loopback and puts shim + signed GRUB on the ESP.
//! Then the disk alone, under the same firmware with a FRESH copy of the
//! OVMF vars (no boot entry: the agent writes none, old PCs lose theirs),
//! must boot through the removable-media path `EFI/BOOT/BOOTX64.EFI` to the
//! serial login prompt. Secure Boot on implies the plain UEFI path works.
//!
//! Slow (one install under TCG takes minutes): left out of `cargo test` by
//! `test = false` in Cargo.toml, run by `make e2e`.

#[path = "common/e2e.rs"]
mod e2e;

use e2e::{disk, installed_machine, run, wait_install_end};
use e2e::{GIB, MIN};
use lazare::vm::{DiskInterface, DiskSpec, Firmware, Machine, Vm, VmSpec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// GPT partition type of an EFI System Partition.
const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/// A newer PC: q35 (AHCI), OVMF, 512 MB, an e1000, one SATA disk.
/// `Vm::start` gives every run its own copy of the OVMF vars.
/// The serial log goes to `log`, kept after the test for a post-mortem.
fn pc(firmware: Firmware, iso: Option<&Path>, disk: &Path, log: &Path, port: u16) -> VmSpec {
    let mut spec = VmSpec::new(iso.map(Path::to_path_buf), log);
    spec.memory_mb = 512;
    spec.machine = Machine::Q35;
    spec.firmware = firmware;
    // The harness gives the CD and each SATA disk their own AHCI port.
    spec.disks = vec![DiskSpec::new(disk, DiskInterface::Sata)];
    spec.guestfwd_port = Some(port);
    spec.max_runtime = 40 * MIN;
    spec
}

/// The ESP of the installed qcow2 `disk`, copied out to a file in `work`.
fn esp_image(disk: &Path, work: &Path) -> PathBuf {
    let raw = work.join("installed.raw");
    run(Command::new("qemu-img").args(["convert", "-O", "raw"]).arg(disk).arg(&raw));
    let table: Value =
        serde_json::from_str(&run(Command::new("sfdisk").arg("-J").arg(&raw))).unwrap();
    let t = &table["partitiontable"];
    assert_eq!(t["label"], "gpt", "a UEFI install must write a GPT: {table:#}");
    let parts = t["partitions"].as_array().unwrap();
    let esp = parts
        .iter()
        .find(|p| p["type"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(ESP_TYPE)))
        .unwrap_or_else(|| panic!("no EFI System Partition: {table:#}"));
    let (start, size) = (esp["start"].as_u64().unwrap(), esp["size"].as_u64().unwrap());
    let out = work.join("esp.img");
    run(Command::new("dd")
        .arg(format!("if={}", raw.display()))
        .arg(format!("of={}", out.display()))
        .args(["bs=512", &format!("skip={start}"), &format!("count={size}"), "status=none"]));
    std::fs::remove_file(&raw).unwrap();
    out
}

/// dosfstools' fsck.fat, read-only, as the oracle for the agent's FAT32:
/// fails the test on any error it finds; returns the paths it walked.
fn fsck_fat(esp: &Path) -> String {
    let out = run(Command::new("fsck.fat").args(["-n", "-v", "-l"]).arg(esp));
    assert!(out.contains("2 FATs, 32 bit entries"), "the ESP is not FAT32:\n{out}");
    out
}

#[test]
fn secure_boot_pc_installs_and_its_disk_boots_alone_with_secure_boot() {
    let (f, _one, work, _data, server) = e2e::start("e2e-uefi");
    let disk = disk(work.path(), "a.qcow2", 8 * GIB);
    let log = f.dir.join("secure-boot.serial.log");
    let _ = std::fs::remove_file(&log);

    let t = Instant::now();
    let spec = pc(Firmware::UefiSecureBoot, Some(&f.iso), &disk, &log, f.port);
    let mut vm = Vm::start(&spec).expect("starting qemu");
    // The CD's kernel says so when the firmware enforces Secure Boot: the
    // VM is what this test claims it is.
    vm.wait_for("secureboot: Secure boot enabled", 10 * MIN)
        .unwrap_or_else(|e| panic!("the CD did not boot with Secure Boot on: {e}"));
    wait_install_end(&mut vm);
    drop(vm);
    eprintln!("install under OVMF with Secure Boot: {:.0} s", t.elapsed().as_secs_f64());
    let detail = installed_machine(&server);
    assert_eq!(detail["hostname"], "e2e-001");

    let esp = fsck_fat(&esp_image(&disk, work.path()));
    for file in ["/EFI/BOOT/BOOTX64.EFI", "/EFI/BOOT/grubx64.efi", "/EFI/debian/grub.cfg"] {
        assert!(esp.to_lowercase().contains(&file.to_lowercase()), "no {file} on the ESP:\n{esp}");
    }

    let t = Instant::now();
    let spec = pc(Firmware::UefiSecureBoot, None, &disk, &log, f.port);
    let mut vm = Vm::start(&spec).expect("starting qemu");
    let login = vm.wait_for_text("login:", 15 * MIN);
    let boot = vm.output();
    login.unwrap_or_else(|e| panic!("the installed disk did not boot to login: {e}"));
    eprintln!("installed disk to login: under Secure Boot: {:.0} s", t.elapsed().as_secs_f64());
    assert!(boot.contains("e2e-001 login:"), "the host name from the plan is not set:\n{boot}");
}
