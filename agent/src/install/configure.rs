//! Hands the mounted, verified system to [`crate::target`]: fstab entries
//! from what was made, GRUB on the planned boot disks.

use super::{InstallCtx, Made};
use crate::target::{self, Boot, MountEntry, Mounts, TargetError};
use diskplan::Fs;
use std::path::Path;

/// fstab entries for the made filesystems, in mount order.
pub fn mounts(made: &[Made]) -> Mounts {
    let entries = made
        .iter()
        .map(|m| MountEntry {
            uuid: m.uuid.clone(),
            fstype: m.fs.name().to_string(),
            mountpoint: if m.fs == Fs::Swap { "none".into() } else { m.mount.clone() },
            options: String::new(),
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
