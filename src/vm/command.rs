//! `lazare vm`: the command around the harness.

use super::{BootFrom, DiskInterface, DiskSpec, Firmware, Machine, ScreenRecorder, Vm, VmSpec};
use std::path::PathBuf;
use std::time::Duration;

/// `lazare vm`: boot an ISO in qemu and stream its serial console here.
#[derive(clap::Args)]
pub struct VmArgs {
    /// The ISO to boot.
    #[arg(long)]
    pub iso: Option<PathBuf>,
    /// A target disk (qcow2 or raw image; repeatable). Create one with `qemu-img create -f qcow2 d.qcow2 8G`.
    #[arg(long)]
    pub disk: Vec<PathBuf>,
    /// How target disks are attached.
    #[arg(long, value_enum, default_value = "sata")]
    pub disk_interface: DiskIfArg,
    /// Guest RAM in MB (GRUB under UEFI needs at least 512).
    #[arg(long, default_value_t = 512)]
    pub memory: u32,
    /// Boot with UEFI (OVMF) instead of BIOS (SeaBIOS).
    #[arg(long)]
    pub uefi: bool,
    /// UEFI with Secure Boot enforced (Microsoft keys enrolled).
    #[arg(long)]
    pub secure_boot: bool,
    /// Boot the ISO as a USB stick / raw disk instead of a CD.
    #[arg(long)]
    pub usb: bool,
    /// Forward guest 10.0.2.100:PORT to the install server on 127.0.0.1:PORT.
    #[arg(long)]
    pub server_port: Option<u16>,
    /// NIC model: e1000, rtl8139, virtio-net-pci, pcnet, ne2k_pci, none.
    #[arg(long, default_value = "e1000")]
    pub nic: String,
    /// Emulate a newer PC (Q35, AHCI) instead of i440FX.
    #[arg(long)]
    pub q35: bool,
    /// Keep the serial log here (default: a temp file).
    #[arg(long)]
    pub serial_log: Option<PathBuf>,
    /// Save a PNG of the VM's screen here each time it changes (checked every
    /// 5 s): the screens the staff will see, for your own instructions.
    #[arg(long, value_name = "DIR")]
    pub screenshots: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DiskIfArg {
    Ide,
    Sata,
    Virtio,
    Scsi,
}

pub fn run(args: &VmArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let tmp_log;
    let log = match &args.serial_log {
        Some(p) => p.clone(),
        None => {
            tmp_log = tempfile::NamedTempFile::new().context("creating a serial log")?;
            tmp_log.path().to_path_buf()
        }
    };
    let iface = match args.disk_interface {
        DiskIfArg::Ide => DiskInterface::Ide,
        DiskIfArg::Sata => DiskInterface::Sata,
        DiskIfArg::Virtio => DiskInterface::Virtio,
        DiskIfArg::Scsi => DiskInterface::Scsi,
    };
    let mut spec = VmSpec::new(args.iso.clone(), log);
    spec.boot_from = if args.usb { BootFrom::Disk } else { BootFrom::Cdrom };
    spec.disks = args.disk.iter().map(|d| DiskSpec::new(d, iface)).collect();
    spec.memory_mb = args.memory;
    spec.machine = if args.q35 { Machine::Q35 } else { Machine::Pc };
    spec.firmware = match (args.uefi, args.secure_boot) {
        (_, true) => Firmware::UefiSecureBoot,
        (true, false) => Firmware::Uefi,
        _ => Firmware::Bios,
    };
    spec.nic_model = args.nic.clone();
    spec.guestfwd_port = args.server_port;
    spec.max_runtime = Duration::from_secs(24 * 3600);
    eprintln!("lazare vm: booting (TCG, no KVM: expect ~10 s to the kernel); Ctrl-C stops the VM");
    let mut recorder = match &args.screenshots {
        Some(dir) => Some(
            ScreenRecorder::new(dir, Duration::from_secs(5))
                .with_context(|| format!("preparing {}", dir.display()))?,
        ),
        None => None,
    };
    let mut vm = Vm::start(&spec).context("starting the VM")?;
    let status = vm.follow(&mut std::io::stdout(), recorder.as_mut()).context("running the VM")?;
    eprintln!("lazare vm: qemu exited ({status})");
    if let (Some(rec), Some(dir)) = (&recorder, &args.screenshots) {
        eprintln!("lazare vm: {} distinct screens saved in {}", rec.kept(), dir.display());
    }
    Ok(())
}
