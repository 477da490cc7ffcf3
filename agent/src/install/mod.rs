//! The install pipeline the agent runs after a verified plan: partition,
//! make filesystems, mount, stream the image (every chunk checked against
//! the signed index before it is unpacked), mount the kept filesystems,
//! configure the target (see [`crate::target`]), unmount; and [`finish`]:
//! report, eject, reboot. Order matters for safety: a kept /home is mounted
//! only after the whole image matched, the bootloader is installed last,
//! and any failure after the first write leaves the disks unbootable
//! ([`disarm`]) and says why.

mod configure;
pub mod format;
mod ioctl;
mod memory;
pub mod probe;
pub mod room;
pub mod show;
pub mod stream;
pub mod table;
pub mod tools;
pub mod untar;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diskplan::{partition_name, DiskAction, Fs, Layout, Role};
use lazare_proto::{Phase, Plan, MIB};
use nix::mount::MsFlags;

pub use configure::configure;
pub use stream::{Fetch, Retry, StreamError, UreqFetch};

/// Where the install tells what it does: the agent plugs in its screen and
/// its HTTP client (events to `POST /api/v1/machines/{id}/events`).
pub trait Reporter {
    /// A progress event (also worth a line on screen).
    fn event(&self, phase: Phase, percent: Option<u8>, message: &str);
    /// A line for the log only.
    fn log(&self, line: &str);
    /// What the room gave: `line` for the log, and the bytes that came
    /// from the room's other PCs for the server's dashboard.
    fn room(&self, line: &str, _from_peers: u64) {
        self.log(line);
    }
}

/// Everything the pipeline needs.
pub struct InstallCtx<'a> {
    /// The verified plan (signature checked, `validate_for` passed).
    pub plan: &'a Plan,
    /// `diskplan::plan(inventory, &plan.setup.disks)`, already shown to the user.
    pub layout: &'a Layout,
    /// The plan's image URL made absolute against the server base URL.
    pub image_url: &'a str,
    /// Directory of the disks' device nodes: `/dev`.
    pub dev: &'a Path,
    /// Where the new system is mounted: `/target`.
    pub target: &'a Path,
    pub fetch: &'a dyn Fetch,
    pub reporter: &'a dyn Reporter,
    pub retry: Retry,
    /// The "Reinstall from server" entry (CD kernel, initrd, cmdline, server).
    pub reinstall: Option<&'a crate::target::Reinstall>,
    /// The room, when the plan has one and the server's address is known.
    pub room: Option<&'a room::RoomSetup<'a>>,
}

/// A filesystem of the new system as made (or kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub disk: String,
    pub number: u32,
    pub role: Role,
    pub fs: Fs,
    /// Filesystem UUID as fstab writes it.
    pub uuid: String,
    pub device: PathBuf,
    /// `/`, `/home`, `/boot/efi`, `/data`..., or `swap`.
    pub mount: String,
    /// An existing filesystem kept with its files (a user's /home): mounted
    /// only once the image is verified, never with setuid or devices.
    pub kept: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    #[error("opening {0}: {1}")]
    Open(PathBuf, #[source] io::Error),
    #[error(transparent)]
    Table(#[from] table::TableError),
    #[error("the kernel did not take the new partition table of {disk}: {source}")]
    Reread { disk: String, source: io::Error },
    #[error("{0} did not appear after partitioning")]
    NoNode(PathBuf),
    #[error("erasing old signatures on {0}: {1}")]
    Wipe(PathBuf, #[source] io::Error),
    #[error(transparent)]
    Tools(#[from] tools::ToolsError),
    #[error(transparent)]
    Format(#[from] format::FormatError),
    #[error("mounting {dev} on {target}: {source}")]
    Mount { dev: PathBuf, target: PathBuf, source: io::Error },
    #[error("the plan has no root filesystem")]
    NoRoot,
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("configuring the installed system: {0}")]
    Configure(#[from] crate::target::TargetError),
    #[error("planning the disks: {0}")]
    Plan(#[from] diskplan::PlanError),
}

/// Runs the pipeline. On error the disks were left unbootable and the
/// error says what failed; nothing has been written if it failed before
/// the partition tables (size checks, missing disks).
pub fn run(ctx: &InstallCtx) -> Result<Vec<Made>, InstallError> {
    let r = ctx.reporter;
    // Before the first write: without a mke2fs nothing can be installed.
    let progress = DownloadProgress { r };
    let dir = Path::new(tools::TOOLS_DIR);
    let tools = ctx.plan.setup.image.tools.as_ref();
    let mke2fs = tools::prepare(ctx.fetch, ctx.image_url, tools, dir, ctx.retry, &progress)?;
    r.event(Phase::Partition, None, "writing partition tables");
    partition(ctx)?;
    let result = (|| {
        r.event(Phase::Format, None, "making filesystems");
        let made = make_filesystems(ctx, &mke2fs);
        if let Err(e) = mke2fs.remove() {
            r.log(&format!("removing the install tools from RAM: {e}"));
        }
        let made = made?;
        mount_all(ctx, &made)?;
        let swaps = memory::swap_on(&made, r);
        let filled = fill(ctx, &made);
        r.log(&memory::report(Path::new("/proc/self/status"), Path::new("/proc/meminfo")));
        memory::swap_off(&swaps, r);
        filled.map(|()| made)
    })();
    let unmounted = unmount_all(ctx.target);
    if let Err(e) = &result {
        r.log(&format!("install failed: {e}; making the disks unbootable"));
        if let Err(d) = disarm(ctx.dev, ctx.layout) {
            r.log(&format!("could not fully disarm the disks: {d}"));
        }
    }
    if let Err(e) = unmounted {
        r.log(&format!("unmounting {}: {e}", ctx.target.display()));
    }
    result
}

/// Streams the image into the mounted target, then mounts the kept
/// filesystems and configures it.
fn fill(ctx: &InstallCtx, made: &[Made]) -> Result<(), InstallError> {
    let r = ctx.reporter;
    r.event(Phase::Download, Some(0), &format!("downloading {}", ctx.plan.setup.image.name));
    let progress = DownloadProgress { r };
    let image = &ctx.plan.setup.image;
    let log = |line: &str| r.log(line);
    let download = room::Download {
        image,
        image_url: ctx.image_url,
        fetch: ctx.fetch,
        target: ctx.target,
        retry: ctx.retry,
        progress: &progress,
    };
    let engine = ctx.room.and_then(|setup| room::start_or_say(setup, &download, &log));
    let room_fetch = engine.as_ref().map(|e| e.fetch(ctx.fetch, ctx.image_url));
    let fetch: &dyn Fetch = match &room_fetch {
        Some(f) => f,
        None => ctx.fetch,
    };
    let streamed = stream::stream(fetch, ctx.image_url, image, ctx.target, ctx.retry, &progress);
    let configured = streamed.map_err(InstallError::from).and_then(|index| {
        r.log(&format!(
            "all {} chunks of the image matched the signed index {}",
            index.count(),
            image.chunks
        ));
        mount_verified(ctx, made)?;
        // The engine goes on serving the room while this PC configures.
        r.event(Phase::Configure, None, "configuring the installed system");
        Ok(configure(ctx, made)?)
    });
    if let Some(engine) = engine {
        if let Some(s) = engine.finish(&log) {
            r.room(&room::stats_line(&s, image.size), s.from_peers);
        }
    }
    configured
}

struct DownloadProgress<'a> {
    r: &'a dyn Reporter,
}

impl stream::Progress for DownloadProgress<'_> {
    fn percent(&self, pct: u8) {
        self.r.event(Phase::Download, Some(pct), "downloading and unpacking the system");
    }
    fn warn(&self, line: &str) {
        self.r.event(Phase::Download, None, line);
    }
}

/// Writes every planned table, makes the kernel re-read it, waits for the
/// partition device nodes.
pub fn partition(ctx: &InstallCtx) -> Result<(), InstallError> {
    for d in ctx.layout.disks.iter().filter(|d| !matches!(d.action, DiskAction::Untouched { .. })) {
        let path = ctx.dev.join(&d.name);
        let mut f = open_rw(&path)?;
        table::write(&mut f, d, ctx.layout.firmware)?;
        ctx.reporter.log(&format!("wrote the {:?} partition table of {}", d.action, d.name));
        if f.metadata().is_ok_and(|m| m.file_type().is_block_device()) {
            reread(&f, &d.name)?;
            for p in &d.partitions {
                wait_for(&ctx.dev.join(partition_name(&d.name, p.number)))?;
            }
        }
    }
    Ok(())
}

fn open_rw(path: &Path) -> Result<File, InstallError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| InstallError::Open(path.into(), e))
}

/// BLKRRPART, retried while udev-less probing still holds the disk (EBUSY).
fn reread(f: &File, disk: &str) -> Result<(), InstallError> {
    let mut tries = 0;
    loop {
        match ioctl::reread_partitions(f) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 10 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(source) => return Err(InstallError::Reread { disk: disk.into(), source }),
        }
    }
}

/// devtmpfs creates partition nodes asynchronously after BLKRRPART.
fn wait_for(node: &Path) -> Result<(), InstallError> {
    let start = Instant::now();
    while !node.exists() {
        if start.elapsed() > Duration::from_secs(15) {
            return Err(InstallError::NoNode(node.into()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Makes every planned filesystem; lists kept ones with their on-disk UUID.
pub fn make_filesystems(
    ctx: &InstallCtx,
    mke2fs: &tools::Mke2fs,
) -> Result<Vec<Made>, InstallError> {
    let mut made = Vec::new();
    for m in &ctx.layout.mounts {
        let Some(d) = ctx.layout.disk(&m.disk) else { continue };
        let Some(p) = d.partitions.iter().find(|p| p.number == m.number) else { continue };
        let device = ctx.dev.join(partition_name(&d.name, p.number));
        let uuid = if p.preserve {
            ext_uuid(&device).map_err(|e| InstallError::Open(device.clone(), e))?
        } else {
            format::wipe(&device).map_err(|e| InstallError::Wipe(device.clone(), e))?;
            let label = p.label.as_deref().unwrap_or("");
            let uuid = format::make(&device, m.fs, label, mke2fs)?;
            ctx.reporter.log(&format!("made {} on {} ({uuid})", m.fs.name(), device.display()));
            uuid
        };
        let (disk, number, role, fs, mount) =
            (d.name.clone(), p.number, p.role, m.fs, m.target.clone());
        let kept = p.preserve;
        made.push(Made { disk, number, role, fs, uuid, device, mount, kept });
    }
    Ok(made)
}

/// UUID of an ext2/3/4 filesystem, read from its superblock by the one
/// superblock parser ([`crate::hw::blkid`]), so fstab names the kept /home
/// as it really is.
pub fn ext_uuid(dev: &Path) -> io::Result<String> {
    let mut f = File::open(dev)?;
    match crate::hw::blkid::probe(&mut f) {
        Some(crate::hw::blkid::FsInfo { fs_type, uuid: Some(uuid), .. })
            if fs_type.starts_with("ext") =>
        {
            Ok(uuid)
        }
        _ => Err(io::Error::other("no ext2/3/4 superblock with a UUID")),
    }
}

/// Mounts `/` on the target directory, then the others below it, all
/// `nosuid,nodev`: nothing the image holds acts as setuid or as a device
/// while it is unpacked. Kept filesystems are left out: [`mount_verified`]
/// mounts them once the whole image matched.
pub fn mount_all(ctx: &InstallCtx, made: &[Made]) -> Result<(), InstallError> {
    if !made.iter().any(|m| m.mount == "/") {
        return Err(InstallError::NoRoot);
    }
    let safe = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    // `mounts` is sorted "/" first, parents before children.
    for m in made.iter().filter(|m| m.fs != Fs::Swap && !m.kept) {
        mount_one(ctx, m, safe)?;
    }
    Ok(())
}

/// After the whole image matched: the new system's filesystems get their
/// ordinary flags back (configuring runs its tools as the installed system
/// would), and the kept ones are mounted, `nosuid,nodev` as fstab mounts
/// them.
pub fn mount_verified(ctx: &InstallCtx, made: &[Made]) -> Result<(), InstallError> {
    for m in made.iter().filter(|m| m.fs != Fs::Swap) {
        if m.kept {
            mount_one(ctx, m, MsFlags::MS_NOSUID | MsFlags::MS_NODEV)?;
        } else {
            let target = ctx.target.join(m.mount.trim_start_matches('/'));
            nix::mount::mount(
                None::<&str>,
                &target,
                None::<&str>,
                MsFlags::MS_REMOUNT,
                None::<&str>,
            )
            .map_err(|e| InstallError::Mount {
                dev: m.device.clone(),
                target: target.clone(),
                source: e.into(),
            })?;
        }
    }
    Ok(())
}

fn mount_one(ctx: &InstallCtx, m: &Made, flags: MsFlags) -> Result<(), InstallError> {
    let target = ctx.target.join(m.mount.trim_start_matches('/'));
    let err =
        |source| InstallError::Mount { dev: m.device.clone(), target: target.clone(), source };
    std::fs::create_dir_all(&target).map_err(err)?;
    nix::mount::mount(Some(&m.device), &target, Some(m.fs.name()), flags, None::<&str>)
        .map_err(|e| err(e.into()))
}

/// Unmounts everything at or below `target`, deepest first.
pub fn unmount_all(target: &Path) -> io::Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    let mut below: Vec<PathBuf> = crate::procfs::mounts(&mounts)
        .into_iter()
        .map(|m| m.target)
        .filter(|p| p.starts_with(target))
        .collect();
    below.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    nix::unistd::sync();
    for p in below {
        nix::mount::umount2(&p, nix::mount::MntFlags::empty()).map_err(io::Error::from)?;
    }
    Ok(())
}

/// Makes a failed install unbootable without touching kept data: zeroes
/// the boot code of every written disk (bytes 0..440, the partition table
/// stays) and the first MiB of root and the ESP (their superblocks).
pub fn disarm(dev: &Path, layout: &Layout) -> io::Result<()> {
    for d in layout.disks.iter().filter(|d| !matches!(d.action, DiskAction::Untouched { .. })) {
        let mut f = OpenOptions::new().write(true).open(dev.join(&d.name))?;
        table::zero(&mut f, 0, 440)?;
        f.sync_all()?;
        for p in d.partitions.iter().filter(|p| matches!(p.role, Role::Root | Role::Esp)) {
            // The partition node when there is one, else the disk (image files).
            let node = dev.join(partition_name(&d.name, p.number));
            let (mut f, at) = match OpenOptions::new().write(true).open(&node) {
                Ok(f) => (f, 0),
                Err(_) => (OpenOptions::new().write(true).open(dev.join(&d.name))?, p.start),
            };
            table::zero(&mut f, at, MIB.min(p.size))?;
            f.sync_all()?;
        }
    }
    Ok(())
}

/// Mount points whose source is `node`.
fn mounted_from(node: &Path) -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    crate::procfs::mounts(&mounts)
        .into_iter()
        .filter(|m| Path::new(&m.source) == node)
        .map(|m| m.target)
        .collect()
}

/// The end of a successful install: tell the server, upload the log, eject
/// the CD, reboot. `boot_device` is the inventory's (`sr0`); only `sr*`
/// drives are ejected. Returns only if the reboot failed.
pub fn finish(
    reporter: &dyn Reporter,
    upload_log: &dyn Fn(),
    dev: &Path,
    boot_device: Option<&str>,
) -> io::Error {
    reporter.event(Phase::Installed, Some(100), "installed; restarting into the new system");
    upload_log();
    eject_cd(reporter, dev, boot_device);
    crate::sys::restart()
}

/// Opens the tray of the CD drive the agent booted from (`boot_device`
/// `sr*`), so the restart boots the disk; a USB stick cannot be ejected.
pub fn eject_cd(reporter: &dyn Reporter, dev: &Path, boot_device: Option<&str>) {
    if let Some(cd) = boot_device.filter(|d| d.starts_with("sr")) {
        // A mounted CD (the reinstall entry copies its kernel) keeps the
        // tray locked: unmount it first.
        let node = dev.join(cd);
        for m in mounted_from(&node) {
            if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
                reporter.log(&format!("unmounting {}: {e}", m.display()));
            }
        }
        // O_NONBLOCK as eject(1) does: opening a drive must not wait for media.
        let open = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(dev.join(cd));
        match open.and_then(|f| ioctl::eject(&f)) {
            Ok(()) => reporter.log(&format!("ejected {cd}")),
            Err(e) => reporter.log(&format!("could not eject {cd}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_found_by_source() {
        // /proc is mounted from the source "proc" on any Linux.
        assert!(mounted_from(Path::new("proc")).contains(&PathBuf::from("/proc")));
        assert!(mounted_from(Path::new("/dev/no-such-disk")).is_empty());
    }
}
