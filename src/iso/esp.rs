//! The EFI system partition image (FAT, made with hadris-fat): El Torito's
//! UEFI entry and the GPT's ESP point at it.

use super::sources::read;
use super::IsoError;
use hadris_fat::{FatOptions, VolumeLabel};
use hadris_fs::{Content, DateTime, Node, Tree};
use std::path::{Path, PathBuf};

const SHIM: &str = "/usr/lib/shim/shimx64.efi.signed";
const MOKMANAGER: &str = "/usr/lib/shim/mmx64.efi.signed";
/// The CD build of Debian's signed GRUB (prefix /boot/grub, finds the ISO itself).
const GRUB_CD: &str = "/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed";

/// What the unsigned GRUB needs for lazare's menus, all built in.
const UNSIGNED_MODULES: &str = "part_gpt part_msdos iso9660 fat search search_fs_file configfile \
normal linux serial terminal test echo gzio all_video efi_gop efi_uga";

/// What boots under UEFI.
#[derive(Debug, Clone)]
pub enum EfiLoader {
    /// Debian's signed chain: shim (Microsoft-signed) → GRUB (Debian-signed);
    /// boots with Secure Boot on.
    Signed { shim: Vec<u8>, grub: Vec<u8>, mokmanager: Vec<u8> },
    /// One unsigned GRUB image (grub-mkstandalone); Secure Boot must be off.
    Unsigned { grub: Vec<u8> },
}

impl EfiLoader {
    /// From the shim-signed and grub-efi-amd64-signed packages.
    pub fn signed_from_system() -> Result<Self, IsoError> {
        Ok(EfiLoader::Signed {
            shim: read(Path::new(SHIM), "shim-signed")?,
            grub: read(Path::new(GRUB_CD), "grub-efi-amd64-signed")?,
            mokmanager: read(Path::new(MOKMANAGER), "shim-signed")?,
        })
    }

    /// An unsigned GRUB with the modules the menu uses, from grub-efi-amd64-bin.
    /// Its prefix points at the ISO's /boot/grub after the marker search.
    pub fn unsigned_from_system(marker: &str, epoch: i64) -> Result<Self, IsoError> {
        let dir = tempfile::tempdir()?;
        let cfg = dir.path().join("grub.cfg");
        std::fs::write(
            &cfg,
            crate::templates::grub_esp_cfg(marker).map_err(|e| IsoError::Esp(e.to_string()))?,
        )?;
        let out: PathBuf = dir.path().join("BOOTX64.EFI");
        let status = std::process::Command::new("grub-mkstandalone")
            .env("SOURCE_DATE_EPOCH", epoch.to_string())
            .args(["-O", "x86_64-efi", "--locales=", "--fonts=", "--themes="])
            // Built into the core image: after the marker search the prefix
            // points at the ISO, which carries no GRUB modules.
            .arg(format!("--modules={UNSIGNED_MODULES}"))
            .arg(format!("--install-modules={UNSIGNED_MODULES}"))
            .arg("-o")
            .arg(&out)
            .arg(format!("boot/grub/grub.cfg={}", cfg.display()))
            .status()
            .map_err(|e| {
                IsoError::Esp(format!(
                    "running grub-mkstandalone (install grub-efi-amd64-bin): {e}"
                ))
            })?;
        if !status.success() {
            return Err(IsoError::Esp(format!("grub-mkstandalone failed ({status})")));
        }
        Ok(EfiLoader::Unsigned { grub: read(&out, "grub-efi-amd64-bin")? })
    }
}

/// The FAT image bytes: `EFI/BOOT/BOOTX64.EFI` (+ GRUB and MokManager for the
/// signed chain) and `boot/grub/grub.cfg`, which finds the ISO by `marker`
/// when GRUB starts from a USB stick's ESP and cannot see the ISO by itself.
pub fn esp_image(loader: &EfiLoader, marker: &str, epoch: i64) -> Result<Vec<u8>, IsoError> {
    let esp_err = |e: &dyn std::fmt::Display| IsoError::Esp(e.to_string());
    let mut tree = Tree::new();
    let mut add = |path: &str, data: Vec<u8>| {
        tree.insert(path, Node::file(Content::bytes(data))).map_err(|e| esp_err(&e))
    };
    let cfg = crate::templates::grub_esp_cfg(marker).map_err(|e| esp_err(&e))?;
    let payload = match loader {
        EfiLoader::Signed { shim, grub, mokmanager } => {
            add("EFI/BOOT/BOOTX64.EFI", shim.clone())?;
            add("EFI/BOOT/grubx64.efi", grub.clone())?;
            add("EFI/BOOT/mmx64.efi", mokmanager.clone())?;
            shim.len() + grub.len() + mokmanager.len()
        }
        EfiLoader::Unsigned { grub } => {
            add("EFI/BOOT/BOOTX64.EFI", grub.clone())?;
            grub.len()
        }
    };
    add("boot/grub/grub.cfg", cfg.into_bytes())?;
    let time = DateTime::from_unix_seconds(epoch).map_err(|_| IsoError::Time(epoch))?;
    let label = VolumeLabel::new("LAZARE_EFI").map_err(|e| esp_err(&format!("{e:?}")))?;
    // Every KiB here is on every CD, so the image is the smallest that holds
    // the files: from the payload plus room for the boot sector, FATs and
    // directories, up in ISO-sector steps until the writer fits it. (A fixed
    // 3% + 128 KiB margin left ~0.3 MB free on the signed chain's image.)
    // The ceiling is that old margin: past it the error is not about space.
    let ceiling = (payload as u64 * 103 / 100 + 128 * 1024).div_ceil(64 * 1024) * 64 * 1024;
    let mut size = (payload as u64 + 32 * 1024).div_ceil(ESP_STEP) * ESP_STEP;
    loop {
        let opts = FatOptions::new().with_size(size).with_time(time).with_label(label);
        let mut image = Vec::new();
        match hadris_fat::sync::write(&mut image, &tree, &opts) {
            Ok(_) => return Ok(image),
            Err(e) if size >= ceiling => return Err(esp_err(&e)),
            Err(_) => size += ESP_STEP,
        }
    }
}

/// The ESP grows in ISO sectors: the image is a file on the ISO as well.
const ESP_STEP: u64 = 2048;
