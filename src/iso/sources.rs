//! The boot loaders lazare puts on the ISO, read from the Debian packages
//! installed on the build machine (never downloaded, never rebuilt).

use super::IsoError;
use std::path::Path;

const ISOLINUX_BIN: &str = "/usr/lib/ISOLINUX/isolinux.bin";
const ISOHDPFX_BIN: &str = "/usr/lib/ISOLINUX/isohdpfx.bin";
const SYSLINUX_BIOS_DIR: &str = "/usr/lib/syslinux/modules/bios";
/// ldlinux.c32 is ISOLINUX's second stage; menu.c32 needs the two libraries.
pub const SYSLINUX_MODULES: [&str; 4] = ["ldlinux.c32", "libcom32.c32", "libutil.c32", "menu.c32"];

/// ISOLINUX and the isohybrid MBR code.
#[derive(Debug, Clone)]
pub struct BiosLoader {
    pub isolinux_bin: Vec<u8>,
    /// MBR boot code (432 bytes) that finds ISOLINUX when the ISO is a disk.
    pub isohdpfx: Vec<u8>,
    /// `(file name, bytes)` copied next to isolinux.bin.
    pub modules: Vec<(String, Vec<u8>)>,
}

pub(super) fn read(path: &Path, package: &'static str) -> Result<Vec<u8>, IsoError> {
    std::fs::read(path).map_err(|source| IsoError::Source {
        path: path.display().to_string(),
        package,
        source,
    })
}

impl BiosLoader {
    /// From the isolinux and syslinux-common packages.
    pub fn from_system() -> Result<Self, IsoError> {
        let modules = SYSLINUX_MODULES
            .iter()
            .map(|m| {
                read(&Path::new(SYSLINUX_BIOS_DIR).join(m), "syslinux-common")
                    .map(|d| (m.to_string(), d))
            })
            .collect::<Result<_, _>>()?;
        Ok(BiosLoader {
            isolinux_bin: read(Path::new(ISOLINUX_BIN), "isolinux")?,
            isohdpfx: read(Path::new(ISOHDPFX_BIN), "isolinux")?,
            modules,
        })
    }
}
