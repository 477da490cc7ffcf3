//! The initramfs of the boot CD: `/init` = the static agent, the kernel
//! modules an old or new PC needs for its network and disks, and the baked
//! configuration under `/etc/lazare/`. Nothing dynamically linked: the
//! install runs the image's own mke2fs (`lazare_proto::ImageRef::tools`).
//!
//! The archive is three cpio newc parts, each compressed with zstd (the
//! kernel unpacks them one after the other), byte-for-byte reproducible:
//! entries sorted, every parent directory present, uid/gid 0, inode numbers
//! sequential, every mtime set to `spec.mtime` (SOURCE_DATE_EPOCH), and a
//! fixed compressor setup (see `zstd.rs`, which also explains the parts).
//! The modules travel in two compressed packs inside the first part, not
//! as files (`lazare_cd::modpack` says why and how).

mod cpio;
mod firmware;
mod modules;
mod tree;
mod zstd;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use cpio::CpioEntry;
pub use firmware::{debian_package, missing_firmware_warning, MissingFirmware};
pub use modules::{resolve_modules, ModuleSelection};

/// What an old or new PC needs to reach its network and its disks, and to read
/// the CD or USB stick it booted from. Names use the kernel's `-`/`_`
/// equivalence; names that are aliases (e.g. `iso9660`) resolve through
/// `modules.alias`. A trailing `*` selects every module whose name starts with
/// the prefix (`pata_*`). Names absent from a kernel are reported, not fatal.
#[rustfmt::skip]
pub const DEFAULT_MODULES: &[&str] = &[
    // NICs, from the first PCI cards of donated PCs to today's onboard chips.
    "8139too", "8139cp", "e100", "e1000", "e1000e", "igb", "r8169", "tg3", "bnx2",
    "forcedeth", "sis900", "via-rhine", "pcnet32", "ne2k-pci", "virtio_net", "skge",
    "sky2", "atl1", "atl1c", "atl1e", "alx", "b44", "3c59x", "natsemi", "af_packet",
    // Disk and CD controllers.
    "ata_piix", "pata_*", "ata_generic", "ahci", "sd_mod", "sr_mod", "cdrom",
    "virtio_blk", "virtio_scsi", "virtio_pci", "nvme", "mptspi", "mptsas", "sym53c8xx",
    // USB sticks, USB CD drives and USB keyboards (to answer the agent).
    "usb-storage", "uas", "ehci-hcd", "ehci-pci", "ohci-hcd", "ohci-pci", "uhci-hcd",
    "xhci-hcd", "xhci-pci", "usbhid", "hid-generic",
    // Filesystems; ext4 needs crc32c, which qemu's CPU model may lack in hardware.
    // vfat mounts fail (EINVAL, "IO charset ascii not found") without
    // nls_ascii: Debian's kernel has FAT_DEFAULT_IOCHARSET="ascii".
    "ext4", "iso9660", "vfat", "nls_cp437", "nls_iso8859-1", "nls_utf8", "nls_ascii",
    "crc32c_generic", "loop",
];

/// Everything that goes into the initramfs.
#[derive(Debug, Clone)]
pub struct InitramfsSpec {
    /// The static `lazare-agent`; becomes `/init` (mode 0755).
    pub agent: PathBuf,
    /// `/lib/modules/<release>` of the kernel going on the CD.
    pub modules_dir: PathBuf,
    /// Module names wanted ([`DEFAULT_MODULES`] by default).
    pub modules: Vec<String>,
    /// Files written as given, e.g. `/etc/lazare/cmdline`.
    pub files: Vec<ExtraFile>,
    /// SOURCE_DATE_EPOCH: the mtime of every entry.
    pub mtime: u64,
    /// Where compressed parts that repeat from build to build are kept
    /// (`~/.cache/lazare/initramfs` by default); `None` compresses every time.
    pub cache: Option<PathBuf>,
}

impl InitramfsSpec {
    /// A spec with the default modules, no extra files, and the
    /// user's cache.
    pub fn new(agent: impl Into<PathBuf>, modules_dir: impl Into<PathBuf>, mtime: u64) -> Self {
        Self {
            agent: agent.into(),
            modules_dir: modules_dir.into(),
            modules: DEFAULT_MODULES.iter().map(|s| s.to_string()).collect(),
            files: Vec::new(),
            mtime,
            cache: crate::cachedir::cache_dir("initramfs"),
        }
    }
}

/// A file given by the caller, e.g. `/etc/lazare/server.pub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// Absolute path inside the initramfs.
    pub path: String,
    pub data: Vec<u8>,
    /// Permission bits, e.g. 0o644.
    pub mode: u32,
}

/// One entry of the written archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// Absolute path inside the initramfs, e.g. `/init`.
    pub path: String,
    /// Data size in bytes (the target length for a symlink).
    pub size: u64,
    /// Full st_mode (file type and permissions).
    pub mode: u32,
}

/// What [`write_initramfs`] wrote.
#[derive(Debug, Clone, Default)]
pub struct InitramfsReport {
    pub entries: Vec<EntryInfo>,
    /// Module names carried as `.ko` files, sorted, `_` spelling.
    pub modules: Vec<String>,
    /// Requested names that are built into the kernel (nothing to carry).
    pub builtin_modules: Vec<String>,
    /// Requested names neither found as a module, an alias nor a builtin.
    pub missing_modules: Vec<String>,
    /// Firmware files carried for the modules, relative to /lib/firmware.
    pub firmware: Vec<String>,
    /// Firmware the carried modules name that the host lacks (many are
    /// optional; Debian ships them in non-free firmware-* packages).
    pub missing_firmware: Vec<MissingFirmware>,
    pub uncompressed_bytes: u64,
    pub compressed_bytes: u64,
}

impl InitramfsReport {
    /// For callers that want every requested module: an error naming the
    /// ones the kernel has neither as a module nor built in.
    pub fn ensure_modules(&self) -> Result<(), InitramfsError> {
        if self.missing_modules.is_empty() {
            return Ok(());
        }
        Err(InitramfsError::MissingModules { names: self.missing_modules.join(", ") })
    }
}

/// The long steps, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Reading module files: `done`/`total` modules.
    Modules,
    /// Compressing: `done`/`total` uncompressed bytes.
    Compress,
}

/// A progress report: `done` of `total` units of `phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub done: u64,
    pub total: u64,
}

/// Errors of the initramfs writer and reader; each names the file involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitramfsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the initramfs: {0}")]
    Write(#[source] std::io::Error),
    #[error("{path} line {line}: {message}")]
    ModulesFile { path: PathBuf, line: usize, message: String },
    #[error("decompressing module {path}: {message}")]
    Decompress { path: PathBuf, message: String },
    #[error("initramfs path {path:?}: {reason}")]
    BadPath { path: String, reason: String },
    #[error("{path}: {size} bytes is too large for a cpio newc entry (4 GiB max)")]
    TooLarge { path: String, size: u64 },
    #[error("malformed initramfs at byte {offset}: {message}")]
    Archive { offset: u64, message: String },
    #[error("kernel modules not found (neither a module, an alias nor built in): {names}")]
    MissingModules { names: String },
    #[error("kernel {path}: {message}")]
    Kernel { path: PathBuf, message: String },
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, InitramfsError> {
    std::fs::read(path).map_err(|source| InitramfsError::Read { path: path.to_path_buf(), source })
}

/// Writes the zstd-compressed initramfs described by `spec` to `out`.
///
/// Missing module names are listed in the report, not an error: the caller
/// decides whether to refuse them.
pub fn write_initramfs(
    spec: &InitramfsSpec,
    mut out: impl Write,
    progress: &mut dyn FnMut(Progress),
) -> Result<InitramfsReport, InitramfsError> {
    // Three parts, each its own cpio archive and zstd frame, in the order
    // the kernel unpacks them: what comes from the kernel and the host
    // (skeleton, modules, firmware), the agent, then this build's
    // own files. The first two repeat from build to build and come from
    // the cache (see zstd.rs).
    let mut system = tree::Tree::new();
    tree::add_skeleton(&mut system)?;
    let selection = modules::resolve_modules(&spec.modules_dir, &spec.modules)?;
    let (mtime, cache) = (spec.mtime, spec.cache.as_deref());
    let firmware =
        modules::add_to_tree(&mut system, &spec.modules_dir, &selection, mtime, cache, progress)?;
    let mut agent = tree::Tree::new();
    agent.add_file("/init", read_file(&spec.agent)?, 0o755)?;
    let mut own = tree::Tree::new();
    for file in &spec.files {
        own.add_file(&file.path, file.data.clone(), file.mode & 0o7777)?;
    }
    let mut entries = Vec::new();
    let (mut uncompressed_bytes, mut compressed_bytes) = (0u64, 0u64);
    let parts: [(&tree::Tree, &[&tree::Tree], bool); 3] =
        [(&system, &[], true), (&agent, &[&system], true), (&own, &[&system, &agent], false)];
    for (part, before, cached) in parts {
        let (archive, listed) = part.to_cpio(spec.mtime, entries.len() as u32 + 1, before)?;
        let cache = if cached { spec.cache.as_deref() } else { None };
        compressed_bytes += zstd::compress_cached(&archive, &[], cache, &mut out, progress)?;
        uncompressed_bytes += archive.len() as u64;
        entries.extend(listed);
    }
    out.flush().map_err(InitramfsError::Write)?;
    Ok(InitramfsReport {
        entries,
        modules: selection.modules.keys().cloned().collect(),
        builtin_modules: selection.builtin,
        missing_modules: selection.missing,
        firmware: firmware.carried,
        missing_firmware: firmware.missing,
        uncompressed_bytes,
        compressed_bytes,
    })
}

/// Reads an initramfs (raw newc segments one after the other as the kernel
/// accepts them, the last one possibly gzip, zstd or xz compressed, as
/// Debian's are) into its entries, paths made absolute.
pub fn read_initramfs(data: &[u8]) -> Result<Vec<CpioEntry>, InitramfsError> {
    cpio::read_segments(data)
}

/// The release (`uname -r`) of a kernel image: from the bzImage header's
/// version string, else from a `vmlinuz-<release>` file name.
pub fn kernel_release_of(kernel: &Path) -> Result<String, InitramfsError> {
    let data = read_file(kernel)?;
    if let Some(release) = bzimage_release(&data) {
        return Ok(release);
    }
    let name = kernel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let release = lazare_cd::kernel::release(name).filter(|r| !r.is_empty());
    release.map(str::to_string).ok_or_else(|| InitramfsError::Kernel {
        path: kernel.to_path_buf(),
        message: "no version string in the bzImage header and no vmlinuz-<release> name".into(),
    })
}

/// The x86 boot protocol: "HdrS" at 0x202, and from version 2.00 a pointer at
/// 0x20e to a NUL-terminated version string, relative to 0x200.
fn bzimage_release(data: &[u8]) -> Option<String> {
    if data.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let ptr = u16::from_le_bytes([*data.get(0x20e)?, *data.get(0x20f)?]) as usize;
    if ptr == 0 {
        return None;
    }
    let text = data.get(0x200 + ptr..)?;
    let end = text.iter().position(|&b| b == 0)?;
    let version = std::str::from_utf8(&text[..end]).ok()?;
    version.split_whitespace().next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_modules_are_an_error_only_on_request() {
        let mut report = InitramfsReport::default();
        assert!(report.ensure_modules().is_ok());
        report.missing_modules = vec!["skge".into(), "atl1".into()];
        let err = report.ensure_modules().unwrap_err();
        assert!(err.to_string().ends_with(": skge, atl1"), "{err}");
    }

    #[test]
    fn release_from_bzimage_header() {
        let mut data = vec![0u8; 0x400];
        data[0x202..0x206].copy_from_slice(b"HdrS");
        data[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        let version = b"6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        data[0x300..0x300 + version.len()].copy_from_slice(version);
        assert_eq!(bzimage_release(&data).as_deref(), Some("6.1.0-56-amd64"));
    }

    #[test]
    fn release_from_file_name_when_header_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinuz-5.10.0-9-686");
        std::fs::write(&path, b"not a bzImage").unwrap();
        assert_eq!(kernel_release_of(&path).unwrap(), "5.10.0-9-686");
        let bad = dir.path().join("kernel");
        std::fs::write(&bad, b"x").unwrap();
        assert!(matches!(kernel_release_of(&bad), Err(InitramfsError::Kernel { .. })));
    }
}
