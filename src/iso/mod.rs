//! The boot ISO: ISO 9660 level 3 with Rock Ridge and Joliet, El Torito
//! entries for BIOS (ISOLINUX) and UEFI (a FAT image with Debian's signed
//! shim + GRUB), and a GPT with a hybrid MBR so the same file boots from a
//! USB stick. Written with hadris-iso (see `/work/shared/FINDINGS.md` for
//! why each piece is needed).

mod esp;
mod sources;

pub use esp::{esp_image, EfiLoader};
pub use sources::{BiosLoader, SYSLINUX_MODULES};

use hadris_fs::{Content, DateTime, Node, Tree};
use hadris_iso::{BootEntry, BootInfo, ElTorito, Hybrid, IsoId, IsoLevel, IsoOptions};
use std::fs::File;

/// Paths on the ISO.
pub const ISOLINUX_DIR: &str = "isolinux";
pub const ISOLINUX_BIN: &str = "isolinux/isolinux.bin";
pub const ISOLINUX_CFG: &str = "isolinux/isolinux.cfg";
pub const GRUB_CFG: &str = "boot/grub/grub.cfg";
pub const EFI_IMAGE: &str = "boot/grub/efi.img";
pub const CATALOG: &str = "boot/boot.cat";
/// The build description `lazare inspect` reads back.
pub const BUILD_JSON: &str = "lazare/build.json";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IsoError {
    #[error("reading {path}: {source} (install the {package} package)")]
    Source {
        path: String,
        package: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("ISO path {path}: {message}")]
    Tree { path: String, message: String },
    #[error("writing the ISO: {0}")]
    Write(String),
    #[error("making the EFI system partition image: {0}")]
    Esp(String),
    #[error("volume label {0:?}: use 1 to 32 characters A-Z, 0-9 and _")]
    Label(String),
    #[error("SOURCE_DATE_EPOCH {0} is out of range")]
    Time(i64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Everything that goes on the ISO besides the loaders.
#[derive(Debug, Clone)]
pub struct IsoContent {
    /// ISO 9660 volume id, also the FAT label's source.
    pub label: String,
    pub kernel: Vec<u8>,
    pub initrd: Vec<u8>,
    pub isolinux_cfg: String,
    pub grub_cfg: String,
    /// Absolute path of the file only this build carries (the ESP's GRUB
    /// searches for it).
    pub marker: String,
    /// Further files, e.g. `lazare/build.json`.
    pub files: Vec<(String, Vec<u8>)>,
    /// Big files read from the host while the ISO is written (the offline
    /// image: never held in memory), `(path on the ISO, host path)`.
    pub host_files: Vec<(String, std::path::PathBuf)>,
    /// SOURCE_DATE_EPOCH: every date on the ISO and the ESP.
    pub epoch: i64,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct IsoReport {
    pub size: u64,
    pub esp_size: u64,
    pub warnings: Vec<String>,
}

/// Check a volume label the way every tool that reads it will accept it.
pub fn check_label(label: &str) -> Result<(), IsoError> {
    let ok = (1..=32).contains(&label.len())
        && label.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(IsoError::Label(label.into()))
    }
}

fn insert(tree: &mut Tree, path: &str, data: Vec<u8>) -> Result<(), IsoError> {
    tree.insert(path, Node::file(Content::bytes(data)))
        .map_err(|e| IsoError::Tree { path: path.into(), message: e.to_string() })
}

/// The file tree of the ISO.
fn iso_tree(c: &IsoContent, bios: &BiosLoader, esp: Vec<u8>) -> Result<Tree, IsoError> {
    let mut t = Tree::new();
    insert(&mut t, ISOLINUX_BIN, bios.isolinux_bin.clone())?;
    for (name, data) in &bios.modules {
        insert(&mut t, &format!("{ISOLINUX_DIR}/{name}"), data.clone())?;
    }
    insert(&mut t, ISOLINUX_CFG, c.isolinux_cfg.clone().into_bytes())?;
    insert(&mut t, lazare_cd::paths::CD_KERNEL.trim_start_matches('/'), c.kernel.clone())?;
    insert(&mut t, lazare_cd::paths::CD_INITRD.trim_start_matches('/'), c.initrd.clone())?;
    insert(&mut t, GRUB_CFG, c.grub_cfg.clone().into_bytes())?;
    insert(&mut t, EFI_IMAGE, esp)?;
    insert(&mut t, c.marker.trim_start_matches('/'), b"lazare boot medium\n".to_vec())?;
    for (path, data) in &c.files {
        insert(&mut t, path.trim_start_matches('/'), data.clone())?;
    }
    for (path, host) in &c.host_files {
        let content = hadris_fs::host::file(host)
            .map_err(|e| IsoError::Tree { path: path.clone(), message: e.to_string() })?;
        t.insert(path.trim_start_matches('/'), Node::file(content))
            .map_err(|e| IsoError::Tree { path: path.clone(), message: e.to_string() })?;
    }
    Ok(t)
}

fn options(c: &IsoContent, bios: &BiosLoader) -> Result<IsoOptions, IsoError> {
    let time = DateTime::from_unix_seconds(c.epoch).map_err(|_| IsoError::Time(c.epoch))?;
    let el_torito = ElTorito::new()
        // ISOLINUX: no emulation, 4 sectors loaded, patched with the boot info table.
        .with_entry(BootEntry::bios(ISOLINUX_BIN).with_load_size(4).with_boot_info(BootInfo::Table))
        .with_entry(BootEntry::uefi(EFI_IMAGE))
        .with_catalog_path(CATALOG);
    Ok(IsoOptions::new()
        .with_id(IsoId::Volume, &c.label)
        .with_id(IsoId::Application, "LAZARE")
        .with_level(IsoLevel::L3)
        .with_joliet()
        .with_rock_ridge()
        .with_el_torito(el_torito)
        // GPT + hybrid MBR; isohdpfx.bin finds ISOLINUX when booted as a disk.
        .with_hybrid(Hybrid::gpt_hybrid_mbr().with_bootstrap(&bios.isohdpfx))
        .with_time(time))
}

/// Write the ISO to `out` (a fresh file, opened read-write).
pub fn write_iso(
    c: &IsoContent,
    bios: &BiosLoader,
    efi: &EfiLoader,
    out: File,
) -> Result<IsoReport, IsoError> {
    check_label(&c.label)?;
    let esp = esp_image(efi, &c.marker, c.epoch)?;
    let esp_size = esp.len() as u64;
    let tree = iso_tree(c, bios, esp)?;
    let opts = options(c, bios)?;
    let dev = hadris_storage::host::FileDevice::new(out)?;
    let report =
        hadris_iso::sync::write(dev, &tree, &opts).map_err(|e| IsoError::Write(e.to_string()))?;
    Ok(IsoReport {
        size: report.size(),
        esp_size,
        warnings: report.warnings().iter().map(|w| w.to_string()).collect(),
    })
}
