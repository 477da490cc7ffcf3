//! VM tests: the agent boots as PID 1 (kernel + our initramfs, qemu TCG),
//! loads the drivers of the virtual hardware, gets on the network (qemu's
//! DHCP, or a static ip=), sends its inventory to a recording server on
//! 127.0.0.1 and, with lazare.action=inventory, powers off by itself. The
//! recorded inventory must match the virtual hardware exactly.

mod support;

use std::time::Duration;

use lazare::vm::{DiskInterface, DiskSpec, Firmware, Machine, Vm};
use lazare_proto::{Firmware as Fw, Inventory, MIB};
use support::{direct_boot, disk_image, initramfs, inventory_after_power_off, poll, Recorder};

/// qemu's default MAC for the first NIC.
const QEMU_MAC: &str = "52:54:00:12:34:56";

struct Case {
    machine: Machine,
    firmware: Firmware,
    nic: &'static str,
    memory_mb: u32,
    disks: Vec<(DiskInterface, u64)>,
    ip: Option<&'static str>,
    /// Kernel names the disks must get, in the order of `disks`.
    names: Vec<&'static str>,
}

fn run(case: Case) -> Inventory {
    let dir = tempfile::tempdir().unwrap();
    let server = Recorder::start(b"{}".to_vec(), None);
    let baked = format!("lazare.server=http://10.0.2.100:{}", server.port);
    let initrd = initramfs(dir.path(), &baked, None);
    let mut append = "console=tty1 console=ttyS0,115200 lazare.action=inventory".to_string();
    if let Some(ip) = case.ip {
        append.push_str(&format!(" ip={ip}"));
    }
    let mut spec = direct_boot(dir.path(), &initrd, &append);
    spec.machine = case.machine;
    spec.firmware = case.firmware;
    spec.nic_model = case.nic.into();
    spec.memory_mb = case.memory_mb;
    spec.guestfwd_port = Some(server.port);
    spec.max_runtime = Duration::from_secs(400);
    for (i, (iface, size)) in case.disks.iter().enumerate() {
        spec.disks.push(DiskSpec::new(disk_image(dir.path(), &format!("d{i}.img"), *size), *iface));
    }
    let mut vm = Vm::start(&spec).unwrap();
    vm.wait_for_text("lazare-agent ", Duration::from_secs(120)).unwrap();
    vm.wait_for_text(format!("cmdline: {append}"), Duration::from_secs(10)).unwrap();
    let (inv, out) = inventory_after_power_off(&mut vm, &server, Duration::from_secs(360));
    assert!(out.contains("Powering off"), "{out}");
    inv.validate().unwrap();
    assert!(!server.bodies("/log").is_empty(), "the log was uploaded");
    assert_eq!(inv.memory_bytes, case.memory_mb as u64 * MIB, "RAM");
    // The same names and the same sizes, not necessarily paired as given:
    // sd probes asynchronously, so two disks on one controller can swap
    // names on a loaded host (seen once in CI: sda 6.5 GiB, sdb 4 GiB).
    let mut names: Vec<&str> = inv.disks.iter().map(|d| d.name.as_str()).collect();
    let mut sizes: Vec<u64> = inv.disks.iter().map(|d| d.size_bytes).collect();
    let mut want_names = case.names.clone();
    let mut want_sizes: Vec<u64> = case.disks.iter().map(|(_, s)| *s).collect();
    for v in [&mut names, &mut want_names] {
        v.sort();
    }
    for v in [&mut sizes, &mut want_sizes] {
        v.sort();
    }
    assert_eq!((names, sizes), (want_names, want_sizes), "disks: {:?}", inv.disks);
    assert_eq!(inv.nics.len(), 1, "{:?}", inv.nics);
    assert_eq!(inv.nics[0].mac, QEMU_MAC);
    assert!(inv.nics[0].carrier);
    let fw = if case.firmware == Firmware::Bios { Fw::Bios } else { Fw::Uefi };
    assert_eq!(inv.firmware, fw);
    inv
}

#[test]
fn old_pc_ide_rtl8139_dhcp_256mb() {
    let inv = run(Case {
        machine: Machine::Pc,
        firmware: Firmware::Bios,
        nic: "rtl8139",
        memory_mb: 256,
        disks: vec![
            (DiskInterface::Ide, 4 * 1024 * MIB),
            (DiskInterface::Ide, 6 * 1024 * MIB + 512 * MIB),
        ],
        ip: None,
        names: vec!["sda", "sdb"],
    });
    // Both Realtek drivers claim qemu's rtl8139 in their alias tables; the
    // first loaded takes it, as with udev.
    let driver = inv.nics[0].driver.clone().unwrap_or_default();
    assert!(["8139too", "8139cp"].contains(&driver.as_str()), "{driver}");
}

#[test]
fn newer_pc_q35_uefi_e1000e_ahci_virtio_static_ip() {
    let inv = run(Case {
        machine: Machine::Q35,
        firmware: Firmware::Uefi,
        nic: "e1000e",
        memory_mb: 512,
        disks: vec![(DiskInterface::Sata, 3 * 1024 * MIB), (DiskInterface::Virtio, 5 * 1024 * MIB)],
        ip: Some("10.0.2.15::10.0.2.2:255.255.255.0::eth0:off"),
        names: vec!["sda", "vda"],
    });
    assert_eq!(inv.nics[0].driver.as_deref(), Some("e1000e"));
}

/// Issue 6 item 1: a plan signed by another key (a rogue server on the
/// LAN) is refused before anything touches a disk, and the screen says so.
#[test]
fn plan_signed_by_another_key_is_refused() {
    use lazare_proto::SigningKey;
    let dir = tempfile::tempdir().unwrap();
    let ours = SigningKey::from_bytes(&[11; 32]);
    let rogue = SigningKey::from_bytes(&[12; 32]);
    let plan = br#"{"machine_id":"x","hostname":"evil"}"#.to_vec();
    let server = Recorder::start(plan.clone(), Some(rogue.sign(&plan)));
    let baked = format!("lazare.server=http://10.0.2.100:{}", server.port);
    let initrd = initramfs(dir.path(), &baked, Some(&ours.public().to_string()));
    let append = "console=tty1 console=ttyS0,115200 lazare.action=install";
    let mut spec = direct_boot(dir.path(), &initrd, append);
    spec.guestfwd_port = Some(server.port);
    spec.max_runtime = Duration::from_secs(300);
    spec.disks
        .push(DiskSpec::new(disk_image(dir.path(), "d0.img", 2 * 1024 * MIB), DiskInterface::Ide));
    let mut vm = Vm::start(&spec).unwrap();
    vm.wait_for_text("not signed by the server this CD belongs to", Duration::from_secs(240))
        .unwrap();
    vm.wait_for_text("signature does not match", Duration::from_secs(10)).unwrap();
    assert_eq!(server.bodies("/api/v1/hello").len(), 1);
    // The refusal reaches the dashboard too: a `failed` event and the log.
    vm.wait_for_text("Type a letter", Duration::from_secs(60)).unwrap();
    let logs = poll(|| Some(server.bodies("/log")).filter(|l| !l.is_empty())).expect("a log");
    let log = String::from_utf8_lossy(&logs[0]).into_owned();
    assert!(log.contains("not signed by the server"), "{log}");
    let failed =
        server.bodies("/events").iter().any(|b| String::from_utf8_lossy(b).contains("\"failed\""));
    assert!(failed, "a failed event was sent");
    let disk = std::fs::read(dir.path().join("d0.img")).unwrap();
    assert!(disk.iter().all(|&b| b == 0), "nothing was written to the disk");
}

/// Two NICs, the first uncabled (`set_link off`): DHCP runs on the one with
/// a carrier, the boot does not stall on the other, and both are reported.
#[test]
fn two_nics_first_uncabled_uses_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = Recorder::start(b"{}".to_vec(), None);
    let baked = format!("lazare.server=http://10.0.2.100:{}", server.port);
    let initrd = initramfs(dir.path(), &baked, None);
    let fwd = dir.path().join("fwd1.sh");
    std::fs::write(&fwd, format!("#!/bin/sh\nexec socat - TCP:127.0.0.1:{}\n", server.port))
        .unwrap();
    std::fs::set_permissions(&fwd, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let append = "console=tty1 console=ttyS0,115200 lazare.action=inventory";
    let mut spec = direct_boot(dir.path(), &initrd, append);
    spec.guestfwd_port = Some(server.port);
    spec.max_runtime = Duration::from_secs(400);
    // A second NIC before the first is made, so it comes second.
    let second = [
        "-netdev".into(),
        format!(
            "user,id=n1,restrict=on,guestfwd=tcp:10.0.2.100:{}-cmd:{}",
            server.port,
            fwd.display()
        ),
        "-device".into(),
        "e1000,netdev=n1,mac=52:54:00:12:34:57".into(),
    ];
    spec.extra_args.splice(0..0, second);
    let mut vm = Vm::start(&spec).unwrap();
    // The monitor socket appears once qemu has set up its devices.
    poll(|| vm.monitor("set_link n0 off").ok()).expect("qemu's monitor answers");
    let (inv, _) = inventory_after_power_off(&mut vm, &server, Duration::from_secs(360));
    let nics: Vec<(&str, bool)> = inv.nics.iter().map(|n| (n.mac.as_str(), n.carrier)).collect();
    assert_eq!(nics, vec![(QEMU_MAC, false), ("52:54:00:12:34:57", true)]);
}

/// The kernel's own module requests reach the agent (/sbin/modprobe → /init):
/// in the rescue shell (busybox as /bin/sh), the first `mount -t ext4`
/// works although no ext4 module was loaded before it.
#[test]
fn rescue_shell_and_kernel_module_requests() {
    let busybox = std::path::Path::new("/bin/busybox");
    assert!(busybox.exists(), "busybox-static is needed for this test (Makefile DEB_PACKAGES)");
    let dir = tempfile::tempdir().unwrap();
    let initrd = support::initramfs_with(
        dir.path(),
        "lazare.server=http://10.0.2.100:1",
        None,
        &[("/bin/sh", std::fs::read(busybox).unwrap(), 0o755)],
    );
    let disk = disk_image(dir.path(), "ext4.img", 64 * MIB);
    let made = std::process::Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4"])
        .arg(&disk)
        .status()
        .unwrap();
    assert!(made.success(), "mke2fs");
    let append = "console=tty1 console=ttyS0,115200 lazare.action=rescue";
    let mut spec = direct_boot(dir.path(), &initrd, append);
    spec.max_runtime = Duration::from_secs(300);
    spec.disks.push(DiskSpec::new(disk, DiskInterface::Ide));
    let mut vm = Vm::start(&spec).unwrap();
    vm.wait_for_text("Starting a shell", Duration::from_secs(240)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    vm.send("/bin/sh -c 'mkdir -p /mnt; mount -t ext4 /dev/sda /mnt; echo mount-rc=$?; grep -c ^ext4 /proc/modules'\n").unwrap();
    vm.wait_for_text("mount-rc=0", Duration::from_secs(60)).unwrap();
    vm.send("exit\n").unwrap();
    vm.wait_for_text("Type a letter", Duration::from_secs(30)).unwrap();
}
