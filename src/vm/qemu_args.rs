//! The qemu command line for a `VmSpec`.

use super::{io_err, BootFrom, DiskInterface, DiskSpec, Firmware, Machine, VmError, VmSpec};
use std::path::Path;

const OVMF_DIR: &str = "/usr/share/OVMF";

/// The qemu command line for `spec`; `dir` holds the sockets and scratch files.
pub(super) fn qemu_args(spec: &VmSpec, dir: &Path) -> Result<Vec<String>, VmError> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    let secure = spec.firmware == Firmware::UefiSecureBoot;
    let machine = match (spec.machine, secure) {
        (_, true) => "q35,smm=on",
        (Machine::Q35, false) => "q35",
        (Machine::Pc, false) => "pc",
    };
    // TCG only: -enable-kvm hangs on the machines this runs on.
    push(&["-machine", &format!("{machine},accel=tcg"), "-m", &spec.memory_mb.to_string()]);
    push(&["-display", "none", "-nodefaults", "-vga", "std", "-boot", "menu=off"]);
    let mon = dir.join("monitor.sock");
    let pipe = dir.join("serial");
    push(&["-chardev", &format!("pipe,id=ser0,path={}", pipe.display())]);
    push(&["-serial", "chardev:ser0"]);
    push(&["-monitor", &format!("unix:{},server=on,wait=off", mon.display())]);
    push(&["-pidfile", &dir.join("qemu.pid").display().to_string()]);
    if spec.no_reboot {
        push(&["-no-reboot"]);
    }
    a.extend(firmware_args(spec.firmware, dir)?);
    // Every IDE/SATA device gets its place: an i440FX PC has two IDE buses
    // of two units (the boot CD on the secondary master, as on a real PC of
    // that era); a Q35's AHCI has six ports of one unit. Left to qemu, two
    // IDE disks and a CD collide on one unit, and on a Q35 the CD and a
    // SATA disk do ("bus supports only 1 units").
    let pc = spec.machine == Machine::Pc && !secure;
    let mut ide = IdeSlots::new(pc, spec.iso.is_some());
    if let Some(iso) = &spec.iso {
        a.extend(iso_args(iso, spec.boot_from, &mut ide)?);
    }
    a.extend(disk_args(&spec.disks, spec.machine, secure, &mut ide)?);
    a.extend(net_args(spec, dir)?);
    a.extend(spec.extra_args.iter().cloned());
    Ok(a)
}

fn firmware_args(fw: Firmware, dir: &Path) -> Result<Vec<String>, VmError> {
    let (code, vars) = match fw {
        Firmware::Bios => return Ok(Vec::new()),
        Firmware::Uefi => ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"),
        Firmware::UefiSecureBoot => ("OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd"),
    };
    let code = Path::new(OVMF_DIR).join(code);
    let vars_src = Path::new(OVMF_DIR).join(vars);
    for f in [&code, &vars_src] {
        if !f.exists() {
            return Err(VmError::MissingFirmware(f.clone()));
        }
    }
    // The guest writes its NVRAM: give it a private copy.
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::copy(&vars_src, &vars).map_err(io_err(format!("copying {}", vars_src.display())))?;
    let mut a = vec![
        "-drive".to_string(),
        format!("if=pflash,format=raw,unit=0,readonly=on,file={}", code.display()),
        "-drive".into(),
        format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
    ];
    if fw == Firmware::UefiSecureBoot {
        a.extend(["-global".into(), "driver=cfi.pflash01,property=secure,value=on".into()]);
    }
    Ok(a)
}

/// Where the next IDE device goes: an i440FX PC's two IDE buses of two
/// units, or a Q35's six single-unit AHCI ports.
struct IdeSlots {
    boot: &'static str,
    free: Vec<&'static str>,
    full: &'static str,
}

impl IdeSlots {
    fn new(pc: bool, boot_medium: bool) -> Self {
        let (boot, mut free, full) = if pc {
            (
                ",bus=ide.1,unit=0",
                vec![",bus=ide.0,unit=0", ",bus=ide.0,unit=1", ",bus=ide.1,unit=1"],
                "an i440FX PC has 4 IDE places (3 beside the CD): use sata, virtio or scsi disks",
            )
        } else {
            (
                ",bus=ide.0",
                vec![",bus=ide.1", ",bus=ide.2", ",bus=ide.3", ",bus=ide.4", ",bus=ide.5"],
                "a Q35 PC has 6 SATA places (5 beside the CD): use virtio or scsi disks",
            )
        };
        if !boot_medium {
            free.insert(0, boot);
        }
        IdeSlots { boot, free: free.into_iter().rev().collect(), full }
    }

    /// The place kept free for the boot medium.
    fn boot(&self) -> &'static str {
        self.boot
    }

    fn next_disk(&mut self) -> Result<&'static str, VmError> {
        self.free.pop().ok_or_else(|| VmError::Unsupported(self.full.into()))
    }
}

fn iso_args(iso: &Path, boot: BootFrom, ide: &mut IdeSlots) -> Result<Vec<String>, VmError> {
    if !iso.exists() {
        return Err(VmError::MissingFile(iso.to_path_buf()));
    }
    let file = iso.display();
    let slot = ide.boot();
    Ok(match boot {
        BootFrom::Cdrom => vec![
            "-drive".into(),
            format!("if=none,id=boot0,media=cdrom,readonly=on,format=raw,file={file}"),
            "-device".into(),
            format!("ide-cd,drive=boot0,bootindex=0{slot}"),
        ],
        // snapshot=on: the guest may write to its "stick" but never to our ISO.
        BootFrom::Disk => vec![
            "-drive".into(),
            format!("if=none,id=boot0,snapshot=on,format=raw,file={file}"),
            "-device".into(),
            format!("ide-hd,drive=boot0,bootindex=0{slot}"),
        ],
        BootFrom::Usb => vec![
            "-device".into(),
            "qemu-xhci,id=xhci".into(),
            "-drive".into(),
            format!("if=none,id=boot0,snapshot=on,format=raw,file={file}"),
            "-device".into(),
            "usb-storage,bus=xhci.0,drive=boot0,removable=on,bootindex=0".into(),
        ],
    })
}

fn disk_args(
    disks: &[DiskSpec],
    machine: Machine,
    secure: bool,
    ide: &mut IdeSlots,
) -> Result<Vec<String>, VmError> {
    let mut a = Vec::new();
    let q35 = machine == Machine::Q35 || secure;
    let (mut ahci, mut scsi) = (false, false);
    for (i, d) in disks.iter().enumerate() {
        if !d.path.exists() {
            return Err(VmError::MissingFile(d.path.clone()));
        }
        let id = format!("disk{i}");
        a.push("-drive".into());
        a.push(format!("if=none,id={id},format={},file={}", d.format, d.path.display()));
        let dev = match d.interface {
            DiskInterface::Ide => format!("ide-hd,drive={id}{}", ide.next_disk()?),
            DiskInterface::Sata if q35 => format!("ide-hd,drive={id}{}", ide.next_disk()?),
            DiskInterface::Sata => {
                if !ahci {
                    a.extend(["-device".into(), "ahci,id=ahci0".into()]);
                    ahci = true;
                }
                format!("ide-hd,drive={id},bus=ahci0.{i}")
            }
            DiskInterface::Virtio => format!("virtio-blk-pci,drive={id}"),
            DiskInterface::Scsi => {
                if !scsi {
                    a.extend(["-device".into(), "virtio-scsi-pci,id=scsi0".into()]);
                    scsi = true;
                }
                format!("scsi-hd,drive={id},bus=scsi0.0")
            }
        };
        a.extend(["-device".into(), dev]);
    }
    Ok(a)
}

fn net_args(spec: &VmSpec, dir: &Path) -> Result<Vec<String>, VmError> {
    if spec.nic_model == "none" {
        return Ok(Vec::new());
    }
    let mut netdev = "user,id=n0,restrict=on".to_string();
    if let Some(port) = spec.guestfwd_port {
        // qemu hands the cmd: string to a shell with its own comma parsing: a
        // script keeps the socat arguments intact.
        let script = dir.join(format!("fwd-{port}.sh"));
        std::fs::write(&script, format!("#!/bin/sh\nexec socat - TCP:127.0.0.1:{port}\n"))
            .map_err(io_err("writing the guestfwd script"))?;
        set_executable(&script)?;
        netdev.push_str(&format!(",guestfwd=tcp:10.0.2.100:{port}-cmd:{}", script.display()));
    }
    Ok(vec!["-netdev".into(), netdev, "-device".into(), format!("{},netdev=n0", spec.nic_model)])
}

fn set_executable(path: &Path) -> Result<(), VmError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(io_err(format!("chmod {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_are_tcg_restricted_and_forward_only_to_localhost() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = VmSpec::new(None, dir.path().join("log"));
        spec.guestfwd_port = Some(8470);
        spec.firmware = Firmware::UefiSecureBoot;
        let a = qemu_args(&spec, dir.path()).unwrap().join(" ");
        assert!(a.contains("q35,smm=on,accel=tcg"), "{a}");
        assert!(!a.contains("kvm"), "{a}");
        assert!(a.contains("user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8470-cmd:"), "{a}");
        assert!(
            a.contains("OVMF_CODE_4M.secboot.fd") && a.contains("property=secure,value=on"),
            "{a}"
        );
        let script = std::fs::read_to_string(dir.path().join("fwd-8470.sh")).unwrap();
        assert!(script.contains("socat - TCP:127.0.0.1:8470"), "{script}");
    }

    /// A spec booting an (empty) ISO from CD with one empty qcow2 per
    /// interface, files in `dir`.
    fn cd_and_disks(dir: &Path, machine: Machine, interfaces: &[DiskInterface]) -> VmSpec {
        let iso = dir.join("x.iso");
        std::fs::write(&iso, b"").unwrap();
        let mut spec = VmSpec::new(Some(iso), dir.join("log"));
        spec.machine = machine;
        for (i, &interface) in interfaces.iter().enumerate() {
            let path = dir.join(format!("d{i}.qcow2"));
            std::fs::write(&path, b"").unwrap();
            spec.disks.push(DiskSpec { path, interface, format: "qcow2".into() });
        }
        spec
    }

    /// Regression: two IDE disks beside the CD made qemu refuse to start
    /// ("IDE unit 1 is in use").
    #[test]
    fn old_pc_places_cd_and_three_ide_disks_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = cd_and_disks(dir.path(), Machine::Pc, &[DiskInterface::Ide; 3]);
        let a = qemu_args(&spec, dir.path()).unwrap().join(" ");
        for place in ["ide.1,unit=0", "ide.0,unit=0", "ide.0,unit=1", "ide.1,unit=1"] {
            assert_eq!(a.matches(place).count(), 1, "{place} in {a}");
        }
        spec.disks.push(spec.disks[0].clone());
        assert!(matches!(qemu_args(&spec, dir.path()), Err(VmError::Unsupported(_))));
    }

    /// Regression: on a Q35 the CD and a SATA disk both went to the first
    /// AHCI port ("Can't create IDE unit 1, bus supports only 1 units").
    #[test]
    fn q35_places_cd_and_sata_disks_on_their_own_ports() {
        let dir = tempfile::tempdir().unwrap();
        let (sata, ide) = (DiskInterface::Sata, DiskInterface::Ide);
        let mut spec = cd_and_disks(dir.path(), Machine::Q35, &[sata, ide, sata, ide, sata]);
        let a = qemu_args(&spec, dir.path()).unwrap().join(" ");
        for port in 0..6 {
            assert_eq!(a.matches(&format!(",bus=ide.{port}")).count(), 1, "port {port} in {a}");
        }
        assert!(a.contains("ide-cd,drive=boot0,bootindex=0,bus=ide.0"), "{a}");
        spec.disks.push(spec.disks[0].clone());
        assert!(matches!(qemu_args(&spec, dir.path()), Err(VmError::Unsupported(_))));
    }

    #[test]
    fn missing_iso_is_named() {
        let mut ide = IdeSlots::new(true, true);
        let err = iso_args(Path::new("/nonexistent/x.iso"), BootFrom::Cdrom, &mut ide).unwrap_err();
        assert_eq!(err.to_string(), "/nonexistent/x.iso does not exist");
    }
}
