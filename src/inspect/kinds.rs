//! Where the bytes of a CD go, by kind: what `lazare inspect` and
//! `make bench` print so a size change is seen where it lands (issue 17).
//! The initramfs is held unpacked in RAM for the whole install, so its
//! kinds are counted unpacked.

use super::FileLine;
use serde::Serialize;

/// What a file on the CD or in its initramfs is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Kernel,
    /// The initramfs file on the CD (its contents are counted apart).
    Initramfs,
    /// ISOLINUX, GRUB, shim and the EFI system partition image.
    BootLoaders,
    /// Kernel modules and their kmod indexes.
    Modules,
    Firmware,
    /// The install agent (`/init`).
    Agent,
    /// Shared libraries and the dynamic loader (for the tools).
    Libraries,
    /// Programs the agent runs (mke2fs and the like).
    Tools,
    Config,
    Other,
}

impl Kind {
    /// A file's kind on the ISO 9660 tree, by `lazare_cd`'s paths.
    pub fn of_cd_path(path: &str) -> Kind {
        if path == lazare_cd::paths::CD_KERNEL {
            Kind::Kernel
        } else if path == lazare_cd::paths::CD_INITRD {
            Kind::Initramfs
        } else if path.starts_with("/isolinux/")
            || path.starts_with("/boot/grub/")
            || path.starts_with("/EFI/")
            || path.starts_with("/efi/")
            || path == "/boot/boot.cat"
        {
            Kind::BootLoaders
        } else {
            Kind::Other
        }
    }

    /// A file's kind inside the initramfs (paths as the cpio has them,
    /// with or without a leading `/`).
    pub fn of_initramfs_path(path: &str) -> Kind {
        let p = path.trim_start_matches('/');
        let name = p.rsplit('/').next().unwrap_or(p);
        if p == "init" {
            Kind::Agent
        } else if p.starts_with("lib/modules/") || p.starts_with("usr/lib/modules/") {
            Kind::Modules
        } else if p.starts_with("lib/firmware/") || p.starts_with("usr/lib/firmware/") {
            Kind::Firmware
        } else if name.contains(".so") || name.starts_with("ld-linux") {
            Kind::Libraries
        } else if ["bin/", "sbin/", "usr/bin/", "usr/sbin/"].iter().any(|d| p.starts_with(d)) {
            Kind::Tools
        } else if p.starts_with("etc/") {
            Kind::Config
        } else {
            Kind::Other
        }
    }
}

/// The bytes and files of one kind in one place.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct KindSize {
    /// `cd` (the ISO tree) or `initramfs` (unpacked).
    pub place: &'static str,
    pub kind: Kind,
    pub bytes: u64,
    pub files: usize,
}

/// Sums `files` by kind, biggest first; kinds with no file are left out.
pub fn by_kind(place: &'static str, files: &[FileLine], kind: fn(&str) -> Kind) -> Vec<KindSize> {
    let mut sums = std::collections::BTreeMap::<Kind, (u64, usize)>::new();
    for f in files {
        let s = sums.entry(kind(&f.path)).or_default();
        s.0 += f.size;
        s.1 += 1;
    }
    let mut out: Vec<KindSize> = sums
        .into_iter()
        .map(|(kind, (bytes, files))| KindSize { place, kind, bytes, files })
        .collect();
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.kind.cmp(&b.kind)));
    out
}

/// The `n` biggest of `files`, biggest first.
pub fn biggest(files: &[FileLine], n: usize) -> Vec<&FileLine> {
    let mut v: Vec<&FileLine> = files.iter().collect();
    v.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path)));
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, size: u64) -> FileLine {
        FileLine { path: path.into(), size }
    }

    #[test]
    fn initramfs_paths_fall_into_their_kinds() {
        let k = Kind::of_initramfs_path;
        assert_eq!(k("/init"), Kind::Agent);
        assert_eq!(k("/lib/modules/6.1.0-28-amd64/kernel/drivers/ata/pata_via.ko"), Kind::Modules);
        assert_eq!(k("lib/modules/6.1.0-28-amd64/modules.dep"), Kind::Modules);
        assert_eq!(k("/lib/firmware/rtl_nic/rtl8168d-1.fw"), Kind::Firmware);
        assert_eq!(k("/lib/x86_64-linux-gnu/libext2fs.so.2"), Kind::Libraries);
        assert_eq!(k("/lib64/ld-linux-x86-64.so.2"), Kind::Libraries);
        assert_eq!(k("/usr/sbin/mke2fs"), Kind::Tools);
        assert_eq!(k("/etc/mke2fs.conf"), Kind::Config);
        assert_eq!(k("/dev/console"), Kind::Other);
    }

    #[test]
    fn cd_paths_fall_into_their_kinds() {
        let k = Kind::of_cd_path;
        assert_eq!(k(lazare_cd::paths::CD_KERNEL), Kind::Kernel);
        assert_eq!(k(lazare_cd::paths::CD_INITRD), Kind::Initramfs);
        assert_eq!(k("/boot/grub/efi.img"), Kind::BootLoaders);
        assert_eq!(k("/isolinux/ldlinux.c32"), Kind::BootLoaders);
        assert_eq!(k("/lazare/build.json"), Kind::Other);
    }

    #[test]
    fn sums_are_per_kind_and_biggest_first() {
        let files = [f("/init", 6), f("/lib/modules/a.ko", 4), f("/lib/modules/b.ko", 5)];
        let sums = by_kind("initramfs", &files, Kind::of_initramfs_path);
        assert_eq!(
            sums,
            [
                KindSize { place: "initramfs", kind: Kind::Modules, bytes: 9, files: 2 },
                KindSize { place: "initramfs", kind: Kind::Agent, bytes: 6, files: 1 },
            ]
        );
        let top: Vec<&str> = biggest(&files, 2).iter().map(|f| f.path.as_str()).collect();
        assert_eq!(top, ["/init", "/lib/modules/b.ko"]);
    }
}
