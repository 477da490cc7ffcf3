//! Firmware the carried modules ask for (`firmware=` entries of their
//! `.modinfo` section, what `modinfo -F firmware` prints), taken from the
//! firmware directory beside the modules tree (`/lib/firmware` for
//! `/lib/modules/<release>`). Debian ships most NIC firmware in non-free
//! packages (firmware-bnx2, firmware-realtek...): a volunteer who installed
//! them gets them on the CD; the others see the names in the report.

use std::path::{Path, PathBuf};

use object::elf::FileHeader64;
use object::read::elf::{FileHeader, SectionHeader};
use object::Endianness;

use super::tree::Tree;
use super::{read_file, InitramfsError};

/// `<root>/lib/firmware` for `<root>/lib/modules/<release>`.
pub(crate) fn firmware_dir(modules_dir: &Path) -> Option<PathBuf> {
    let parent = modules_dir.parent()?;
    if parent.file_name()? != "modules" {
        return None;
    }
    Some(parent.parent()?.join("firmware"))
}

/// The `firmware=` names of a module's `.modinfo`. A file that is not a
/// 64-bit ELF object yields none: the kernel would refuse to load it anyway.
pub(crate) fn modinfo_firmware(module: &[u8]) -> Vec<String> {
    let Ok(header) = FileHeader64::<Endianness>::parse(module) else { return Vec::new() };
    let Ok(endian) = header.endian() else { return Vec::new() };
    let Ok(sections) = header.sections(endian, module) else { return Vec::new() };
    let Some((_, section)) = sections.section_by_name(endian, b".modinfo") else {
        return Vec::new();
    };
    let Ok(data) = section.data(endian, module) else { return Vec::new() };
    data.split(|&b| b == 0)
        .filter_map(|field| field.strip_prefix(b"firmware="))
        .filter_map(|name| std::str::from_utf8(name).ok())
        .map(str::to_string)
        .collect()
}

/// What [`add_firmware`] found.
#[derive(Debug, Default)]
pub(crate) struct FirmwareFound {
    /// Carried, as paths under /lib/firmware (with a compression suffix if
    /// that is how the host has them; the kernel decompresses those).
    pub carried: Vec<String>,
    /// Asked for by a carried module, absent on the host.
    pub missing: Vec<MissingFirmware>,
}

/// A firmware file a carried module names that the host does not have.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MissingFirmware {
    /// The module asking for it (`_` spelling).
    pub module: String,
    /// Its path under /lib/firmware.
    pub file: String,
}

/// The Debian 12 package (component non-free-firmware) that ships a
/// firmware file, for the NIC drivers the CD carries; None when unknown.
pub fn debian_package(file: &str) -> Option<&'static str> {
    const BY_PREFIX: &[(&str, &str)] = &[
        ("rtl_nic/", "firmware-realtek"),
        ("bnx2x/", "firmware-bnx2x"),
        ("bnx2/", "firmware-bnx2"),
        ("tigon/", "firmware-misc-nonfree"),
        ("e100/", "firmware-misc-nonfree"),
        ("qlogic/", "firmware-qlogic"),
        ("myri10ge", "firmware-myricom"),
        ("phanfw", "firmware-netxen"),
    ];
    BY_PREFIX.iter().find(|(prefix, _)| file.starts_with(prefix)).map(|(_, pkg)| *pkg)
}

/// The sentence `lazare build` prints when firmware is missing: which
/// drivers are affected and what to install, or None when nothing is missing.
pub fn missing_firmware_warning(missing: &[MissingFirmware]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let mut modules: Vec<&str> = missing.iter().map(|m| m.module.as_str()).collect();
    modules.sort();
    modules.dedup();
    let mut packages: Vec<&str> = missing.iter().filter_map(|m| debian_package(&m.file)).collect();
    packages.sort();
    packages.dedup();
    let unknown = missing.iter().filter(|m| debian_package(&m.file).is_none()).count();
    let install = match (packages.is_empty(), unknown) {
        (true, _) => "find the packages with `apt-file search` (Debian's non-free-firmware component)".to_string(),
        (false, 0) => format!("apt install {} (Debian's non-free-firmware component)", packages.join(" ")),
        (false, n) => format!(
            "apt install {} (Debian's non-free-firmware component; {n} more with `apt-file search`)",
            packages.join(" ")
        ),
    };
    Some(format!(
        "this machine lacks {} firmware file(s) that drivers on the CD can ask for ({}). \
         Most such network cards work without them, some do not come up. To carry them: \
         {install} on this machine, then run lazare build again.",
        missing.len(),
        modules.join(", "),
    ))
}

/// Carries each wanted firmware file found in `dir` (plain, `.xz` or `.zst`).
pub(crate) fn add_firmware(
    tree: &mut Tree,
    dir: Option<&Path>,
    mut wanted: Vec<(String, String)>,
) -> Result<FirmwareFound, InitramfsError> {
    // (file, module): a file two modules share is carried once, reported once.
    wanted.sort();
    wanted.dedup_by(|a, b| a.0 == b.0);
    let mut found = FirmwareFound::default();
    for (name, module) in wanted {
        // Names come from module files: never let one escape the directory.
        let safe = !name.is_empty()
            && !name.starts_with('/')
            && name.split('/').all(|c| !c.is_empty() && c != "..");
        let hit = dir.filter(|_| safe).and_then(|dir| {
            ["", ".xz", ".zst"]
                .iter()
                .map(|ext| format!("{name}{ext}"))
                .find(|f| dir.join(f).is_file())
        });
        match (hit, dir) {
            (Some(file), Some(dir)) => {
                let dest = format!("/lib/firmware/{file}");
                if !tree.contains(&dest) {
                    tree.add_file(&dest, read_file(&dir.join(&file))?, 0o644)?;
                }
                found.carried.push(file);
            }
            _ => found.missing.push(MissingFirmware { module, file: name }),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_dir_sits_beside_the_modules_tree() {
        assert_eq!(
            firmware_dir(Path::new("/lib/modules/6.1.0-56-amd64")),
            Some(PathBuf::from("/lib/firmware"))
        );
        assert_eq!(firmware_dir(Path::new("/tmp/x/6.1.0")), None);
    }

    #[test]
    fn names_from_a_real_module() {
        // Debian's tg3 asks for tigon/ firmware; e1000 asks for none.
        let dir = std::fs::read_dir("/lib/modules").unwrap().next().unwrap().unwrap().path();
        let tg3 = std::fs::read(dir.join("kernel/drivers/net/ethernet/broadcom/tg3.ko")).unwrap();
        let names = modinfo_firmware(&tg3);
        assert!(names.iter().any(|n| n.starts_with("tigon/tg3")), "{names:?}");
        let e1000 =
            std::fs::read(dir.join("kernel/drivers/net/ethernet/intel/e1000/e1000.ko")).unwrap();
        assert_eq!(modinfo_firmware(&e1000), Vec::<String>::new());
        assert_eq!(modinfo_firmware(b"not elf"), Vec::<String>::new());
    }

    #[test]
    fn found_files_are_carried_others_reported() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("firmware");
        std::fs::create_dir_all(dir.join("rtl_nic")).unwrap();
        std::fs::write(dir.join("rtl_nic/rtl8168d-1.fw"), b"fw").unwrap();
        std::fs::write(dir.join("bnx2.fw.xz"), b"xz").unwrap();
        std::fs::write(root.path().join("secret"), b"no").unwrap();
        let mut tree = Tree::new();
        let wanted = ["rtl_nic/rtl8168d-1.fw", "bnx2.fw", "absent.bin", "../secret", "bnx2.fw"];
        let wanted = wanted.map(|f| (f.to_string(), format!("m_{}", f.len()))).to_vec();
        let found = add_firmware(&mut tree, Some(&dir), wanted).unwrap();
        assert_eq!(found.carried, ["bnx2.fw.xz", "rtl_nic/rtl8168d-1.fw"]);
        let missing: Vec<_> = found.missing.iter().map(|m| (&*m.file, &*m.module)).collect();
        assert_eq!(missing, [("../secret", "m_9"), ("absent.bin", "m_10")]);
        assert!(tree.contains("/lib/firmware/rtl_nic/rtl8168d-1.fw"));
    }

    #[test]
    fn the_warning_names_drivers_and_packages() {
        let m =
            |module: &str, file: &str| MissingFirmware { module: module.into(), file: file.into() };
        assert_eq!(missing_firmware_warning(&[]), None);
        let missing = [
            m("r8169", "rtl_nic/rtl8168d-1.fw"),
            m("tg3", "tigon/tg3.bin"),
            m("bnx2", "bnx2/bnx2-mips-09-6.2.1b.fw"),
            m("e100", "e100/d101m_ucode.bin"),
            m("odd", "vendor/odd.bin"),
        ];
        let text = missing_firmware_warning(&missing).unwrap();
        assert!(text.starts_with("this machine lacks 5 firmware file(s)"), "{text}");
        assert!(text.contains("(bnx2, e100, odd, r8169, tg3)"), "{text}");
        assert!(
            text.contains("apt install firmware-bnx2 firmware-misc-nonfree firmware-realtek (Debian's non-free-firmware component; 1 more with `apt-file search`)"),
            "{text}"
        );
    }
}
