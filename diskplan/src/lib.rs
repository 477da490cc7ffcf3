//! Disk planning: a pure function from what the agent found (inventory) and
//! what the server allows (policy) to partition tables, filesystems and
//! mounts. No I/O: the agent's installer carries the [`Layout`] out, and
//! `lazare-agent plan` prints it on any host.

mod layout;
mod pack;
mod plan;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use layout::{
    partition_name, DiskAction, DiskLayout, Fs, Layout, Mount, PlannedPartition, Role,
    UntouchedReason,
};
pub use plan::plan;

use lazare_proto::{GIB, MIB};

/// Disks smaller than this are not worth a partition (an old 256 MB drive).
pub const MIN_USEFUL_DISK: u64 = 512 * MIB;
/// GPT on BIOS: where GRUB embeds core.img (GRUB asks for at least 31 KiB;
/// 1 MiB keeps the next partition aligned).
pub const BIOS_GRUB_SIZE: u64 = MIB;
/// ESP with 512-byte sectors. GRUB + shim take ~6 MiB; FAT32 needs 65,525
/// clusters, which at 1 KiB clusters is ~64 MiB, and some firmware refuses
/// FAT16 ESPs. 128 MiB is FAT32 with room and costs little on a 4 GB disk.
pub const ESP_SIZE: u64 = 128 * MIB;
/// ESP with 4 KiB sectors: FAT32 then needs ≥ 260 MiB (65,525 × 4 KiB).
pub const ESP_SIZE_4K: u64 = 260 * MIB;
/// Smallest /home worth making on a disk that also holds root.
pub const HOME_MIN: u64 = GIB;
/// Headroom root gets beyond the image before /home may share its disk
/// (updates, apt cache, logs).
pub const ROOT_SLACK: u64 = GIB;
/// Root does not grow past `root_min + ROOT_GROW_CAP` when /home shares the
/// disk: the rest is for the user's files.
pub const ROOT_GROW_CAP: u64 = 20 * GIB;
/// Largest swap the `auto` policy makes.
pub const SWAP_CAP: u64 = 2 * GIB;
/// Smallest partition made for `data` on an extra disk.
pub const DATA_MIN: u64 = 64 * MIB;

/// Why no layout could be made. Nothing has been written when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("no disk can be installed to ({0})")]
    NoDisk(String),
    #[error(
        "not enough disk space: the system needs {} MiB on one disk, the largest usable space is {} MiB",
        .needed / MIB, .largest / MIB
    )]
    TooLittleSpace { needed: u64, largest: u64 },
    #[error("cannot keep /home on {disk} partition {number}: {why}; use the `fresh` home policy to erase it")]
    HomeNotKeepable { disk: String, number: u32, why: String },
}

pub(crate) fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

pub(crate) fn align_down(x: u64, a: u64) -> u64 {
    x / a * a
}

/// Swap for `memory` bytes of RAM under the `auto` policy: twice the RAM on
/// the small machines that need it most (≤ 1 GiB; hibernation is not a
/// goal), the RAM itself above, never more than [`SWAP_CAP`].
pub fn auto_swap(memory: u64) -> u64 {
    let want = if memory <= GIB { 2 * memory } else { memory };
    align_up(want.min(SWAP_CAP), MIB)
}
