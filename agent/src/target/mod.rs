//! Configure an installed system: the image is already unpacked at `root`
//! with its filesystems mounted under it. Each step is a function of the root
//! path (tests run them on a temp dir); [`configure`] runs them all in order.
//!
//! Nothing here needs the network: users are written into the passwd files,
//! GRUB and locale-gen run from the target itself in a chroot.

mod chroot;
mod desktop;
mod grub;
mod system;
mod users;

pub use chroot::{run_in_chroot, BindMounts, LIB_DIRS, LOADERS};
pub use desktop::{configure_desktop, LIGHTDM_CONF, SAFE_GRAPHICS_ENTRY_ID};
pub use grub::{
    install_bootloader, install_next_service, install_reinstall_entry, regenerate_initramfs,
    write_grub_defaults, write_machine_secret, write_server_pin, REINSTALL_ENTRY_ID,
};
/// BIOS or UEFI: the inventory's word for it is the one type.
pub use lazare_proto::Firmware;
pub use system::{
    write_fstab, write_hostname, write_keymap, write_locale, write_machine_ids, write_timezone,
};
pub use users::add_users;

use kernel_cmdline::ServerUrl;
use lazare_proto::Plan;
use std::path::{Path, PathBuf};

/// One filesystem of the new system, for fstab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Filesystem UUID as blkid prints it (`UUID=` in fstab).
    pub uuid: String,
    /// `ext4`, `vfat`, `swap`...
    pub fstype: String,
    /// `/`, `/home`, `/boot/efi`; `none` (or empty) for swap.
    pub mountpoint: String,
    /// Mount options; empty means a sensible default for the fstype.
    pub options: String,
}

/// The partition layout as made by the installer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mounts {
    pub entries: Vec<MountEntry>,
}

/// Where and how to install GRUB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub firmware: Firmware,
    /// BIOS: the disk(s) whose MBR gets GRUB (`/dev/sda`...), as seen from
    /// the agent. UEFI: unused (GRUB goes to `root/boot/efi`, which must be
    /// the mounted ESP).
    pub disks: Vec<PathBuf>,
}

/// The "Reinstall from server" entry: the CD's kernel and initramfs copied
/// to the disk, booted with the CD's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reinstall {
    /// The CD's kernel and initramfs, as the agent sees them.
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The kernel command line baked into the CD (without `BOOT_IMAGE=`).
    pub cmdline: String,
    /// Server base URL the installed system asks `GET
    /// /api/v1/machines/{id}/next` at boot, e.g. `http://10.0.2.100:8470`.
    pub server: ServerUrl,
    /// The pin of the server key baked into the CD (`sha256//BASE64`), for
    /// `lazare-next`'s pinned https channel; `None` on a CD without a key.
    pub pin: Option<String>,
    /// The machine's enrolment secret, kept in `/etc/lazare/machine-secret`
    /// (mode 0600) so `lazare-next` can prove the machine.
    pub secret: Option<String>,
}

/// Everything [`configure`] needs besides the plan.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub root: &'a Path,
    pub plan: &'a Plan,
    pub mounts: &'a Mounts,
    pub boot: &'a Boot,
    /// `None` (or `plan.setup.reinstall_entry == false`): no entry, no service.
    pub reinstall: Option<&'a Reinstall>,
    /// The PC's /proc/meminfo (its RAM decides [`regenerate_initramfs`]).
    pub meminfo: &'a Path,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("`{cmd}` failed ({status}): {output}")]
    Command { cmd: String, status: String, output: String },
    #[error("{0}")]
    Invalid(String),
    #[error("the image at {root} has no {what}: is it a lazare image?")]
    MissingInImage { root: PathBuf, what: String },
}

pub type Result<T> = std::result::Result<T, TargetError>;

/// Builds the `Io` error for `path`.
pub(crate) fn io_err(
    what: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> TargetError {
    let path = path.to_path_buf();
    move |source| TargetError::Io { what, path, source }
}

/// `root` joined with an absolute path inside the target.
pub(crate) fn at(root: &Path, inside: &str) -> PathBuf {
    root.join(inside.trim_start_matches('/'))
}

/// Below this much RAM, [`configure`] runs [`regenerate_initramfs`].
pub const SMALL_RAM: u64 = 512 << 20;

/// MemTotal from a /proc/meminfo-format file.
pub fn ram_bytes(meminfo: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(meminfo).ok()?;
    crate::procfs::kib(&text, "MemTotal").map(|kib| kib * 1024)
}

/// Runs every step, in order: files first (cheap, no chroot), then users,
/// the reinstall entry, the initramfs on small PCs, and GRUB last since
/// update-grub reads all the above.
pub fn configure(t: &Target) -> Result<()> {
    let root = t.root;
    let plan = t.plan;
    write_fstab(root, t.mounts)?;
    write_hostname(root, &plan.hostname)?;
    write_locale(root, &plan.setup.locale)?;
    write_keymap(root, &plan.setup.keymap)?;
    write_timezone(root, &plan.setup.timezone)?;
    write_machine_ids(root, &plan.machine_id)?;
    add_users(root, &plan.setup.users)?;
    configure_desktop(root, &plan.setup.users)?;
    write_grub_defaults(root)?;
    if let Some(r) = t.reinstall.filter(|_| plan.setup.reinstall_entry) {
        install_reinstall_entry(root, r)?;
        install_next_service(root, &r.server, &plan.machine_id, plan.setup.orders_every_secs)?;
        if let Some(pin) = &r.pin {
            write_server_pin(root, pin)?;
        }
        if let Some(secret) = &r.secret {
            write_machine_secret(root, secret)?;
        }
    }
    // Debian's generic initramfs needs ~384 MB of RAM to boot: on smaller
    // PCs rebuild it with this PC's drivers only.
    if ram_bytes(t.meminfo).is_some_and(|r| r < SMALL_RAM) {
        regenerate_initramfs(root)?;
    }
    install_bootloader(root, t.boot, t.mounts)
}
