//! Hands the mounted, verified system to [`crate::target`]: fstab entries
//! from what was made, GRUB on the planned boot disks.

use super::{InstallCtx, Made};
use crate::target::{self, Boot, MountEntry, Mounts, TargetError};
use diskplan::{Fs, Role};
use std::path::Path;

/// fstab entries for the made filesystems, in mount order.
pub fn mounts(made: &[Made]) -> Mounts {
    let entries = made
        .iter()
        .map(|m| MountEntry {
            uuid: m.uuid.clone(),
            fstype: m.fs.name().to_string(),
            mountpoint: if m.fs == Fs::Swap { "none".into() } else { m.mount.clone() },
            // Users write there: no setuid files or device nodes honoured,
            // so nothing planted in a kept /home can become root.
            options: if m.kept || m.role == Role::Home {
                "defaults,nosuid,nodev".into()
            } else {
                String::new()
            },
        })
        .collect();
    Mounts { entries }
}

/// Runs every target step: files, users, reinstall entry, GRUB last.
pub fn configure(ctx: &InstallCtx, made: &[Made]) -> Result<(), TargetError> {
    let disks = ctx.layout.boot_disks.iter().map(|d| ctx.dev.join(d)).collect();
    let boot = Boot { firmware: ctx.layout.firmware, disks };
    let mounts = mounts(made);
    let t = target::Target {
        root: ctx.target,
        plan: ctx.plan,
        mounts: &mounts,
        boot: &boot,
        reinstall: ctx.reinstall,
        meminfo: Path::new("/proc/meminfo"),
    };
    target::configure(&t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn made(mount: &str, role: Role, fs: Fs, kept: bool) -> Made {
        Made {
            disk: "sda".into(),
            number: 1,
            role,
            fs,
            uuid: format!("uuid-{}", mount.trim_start_matches('/')),
            device: PathBuf::from("/dev/sda1"),
            mount: mount.into(),
            kept,
        }
    }

    #[test]
    fn home_is_mounted_nosuid_nodev_and_the_rest_as_before() {
        let m = mounts(&[
            made("/", Role::Root, Fs::Ext4, false),
            made("/home", Role::Home, Fs::Ext4, true),
            made("/data", Role::Data, Fs::Ext4, true),
            made("swap", Role::Swap, Fs::Swap, false),
        ]);
        let opts: Vec<(&str, &str)> =
            m.entries.iter().map(|e| (e.mountpoint.as_str(), e.options.as_str())).collect();
        assert_eq!(
            opts,
            [
                ("/", ""),
                ("/home", "defaults,nosuid,nodev"),
                ("/data", "defaults,nosuid,nodev"),
                ("none", "")
            ]
        );
    }
}
