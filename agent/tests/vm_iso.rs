//! VM tests that boot the real ISO (`lazare build`, ISOLINUX or GRUB) and
//! check what only a real boot shows: the agent finds the CD or USB stick it
//! came from (`boot_device`, never a target) and still powers off by itself
//! after reporting with `lazare.action=inventory`.

mod support;

use std::path::Path;
use std::time::Duration;

use lazare::build::{build, resolve, BuildArgs};
use lazare::vm::{BootFrom, DiskInterface, DiskSpec, Firmware, Machine, Vm, VmSpec};
use lazare_proto::{Inventory, MIB};
use support::{agent_binary, disk_image, inventory_after_power_off, Recorder};

fn iso(dir: &Path, port: u16) -> std::path::PathBuf {
    let out = dir.join("lazare.iso");
    let args = BuildArgs {
        server: Some(format!("http://10.0.2.100:{port}").parse().unwrap()),
        output: Some(out.clone()),
        cmdline: Some("lazare.action=inventory".into()),
        timeout: Some(1),
        agent: Some(agent_binary()),
        // Its Recorder signs nothing: a lab CD.
        insecure: true,
        ..Default::default()
    };
    build(&resolve(&args).unwrap()).unwrap();
    out
}

fn boot(
    from: BootFrom,
    firmware: Firmware,
    machine: Machine,
    memory_mb: u32,
) -> (Inventory, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Recorder::start(b"{}".to_vec(), None);
    let mut spec = VmSpec::new(Some(iso(dir.path(), server.port)), dir.path().join("serial.log"));
    spec.boot_from = from;
    spec.firmware = firmware;
    spec.machine = machine;
    spec.memory_mb = memory_mb;
    spec.guestfwd_port = Some(server.port);
    spec.max_runtime = Duration::from_secs(400);
    let iface = if machine == Machine::Pc { DiskInterface::Ide } else { DiskInterface::Sata };
    spec.disks.push(DiskSpec::new(disk_image(dir.path(), "d0.img", 3 * 1024 * MIB), iface));
    let mut vm = Vm::start(&spec).unwrap();
    vm.wait_for_text("lazare-agent ", Duration::from_secs(240)).unwrap();
    let (inv, out) = inventory_after_power_off(&mut vm, &server, Duration::from_secs(300));
    assert_eq!(inv.memory_bytes, memory_mb as u64 * MIB);
    (inv, out)
}

#[test]
fn iso_as_cd_under_seabios_reports_sr0_as_boot_device() {
    let (inv, out) = boot(BootFrom::Cdrom, Firmware::Bios, Machine::Pc, 256);
    assert_eq!(inv.boot_device.as_deref(), Some("sr0"), "{out}");
    let sizes: Vec<(&str, u64)> =
        inv.disks.iter().map(|d| (d.name.as_str(), d.size_bytes)).collect();
    assert_eq!(sizes, vec![("sda", 3 * 1024 * MIB)], "the CD is not a disk");
    assert_eq!(inv.firmware, lazare_proto::Firmware::Bios);
}

#[test]
fn iso_as_usb_stick_under_ovmf_reports_the_stick() {
    let (inv, out) = boot(BootFrom::Usb, Firmware::Uefi, Machine::Q35, 512);
    let stick = inv.boot_device.clone().expect("a boot device");
    let d = inv
        .disks
        .iter()
        .find(|d| d.name == stick)
        .unwrap_or_else(|| panic!("{stick} in disks: {out}"));
    assert!(d.removable, "a USB stick is removable");
    assert!(inv.disks.iter().any(|d| d.name != stick && d.size_bytes == 3 * 1024 * MIB));
    assert_eq!(inv.firmware, lazare_proto::Firmware::Uefi);
}
