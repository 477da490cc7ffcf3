//! The output of disk planning: what happens to each disk.

use lazare_proto::{Firmware, PartitionTable};
use serde::{Deserialize, Serialize};

/// The whole plan: one entry per disk of the inventory (touched or not), the
/// mounts of the installed system, and notes a human should read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub firmware: Firmware,
    pub disks: Vec<DiskLayout>,
    /// Mount points of the installed system, `/` first, parents before children.
    pub mounts: Vec<Mount>,
    /// Disks to install the bootloader to, the root disk first. On BIOS
    /// every rewritten disk gets GRUB (the firmware may boot any of them);
    /// on UEFI the disk holding the ESP.
    pub boot_disks: Vec<String>,
    /// Choices made that a human may want to know about (swap skipped, ...).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskLayout {
    pub name: String,
    pub size_bytes: u64,
    pub model: Option<String>,
    pub sector_size: u32,
    pub action: DiskAction,
    /// Partitions after the install, in disk order. Empty when untouched.
    pub partitions: Vec<PlannedPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum DiskAction {
    /// Nothing is written to this disk.
    Untouched { reason: UntouchedReason },
    /// A new, empty table replaces whatever was there.
    NewTable { table: PartitionTable },
    /// The table type and the `preserve`d partitions stay; every other
    /// partition is deleted and the planned ones are created around them.
    KeepTable { table: PartitionTable },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UntouchedReason {
    /// The CD or USB stick the agent booted from.
    BootDevice,
    Removable,
    /// Named in the policy's `exclude`.
    Excluded,
    /// Smaller than anything useful (see [`crate::MIN_USEFUL_DISK`]).
    TooSmall,
    /// Holds the kept /home; root lives elsewhere, so the disk is not written.
    HoldsHome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// GPT on BIOS: 1 MiB where GRUB embeds its core image.
    BiosGrub,
    /// EFI system partition, mounted at /boot/efi.
    Esp,
    Root,
    Home,
    Swap,
    /// Rest of an extra disk, so it is not left idle.
    Data,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fs {
    Ext4,
    /// An existing ext2/3 kept as is (a preserved /home).
    Ext3,
    Ext2,
    Vfat,
    Swap,
}

impl Fs {
    /// Name as mount(2), fstab and blkid spell it.
    pub fn name(self) -> &'static str {
        match self {
            Fs::Ext4 => "ext4",
            Fs::Ext3 => "ext3",
            Fs::Ext2 => "ext2",
            Fs::Vfat => "vfat",
            Fs::Swap => "swap",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPartition {
    /// Partition number (`sda2` → 2).
    pub number: u32,
    /// Byte offset from the start of the disk; a multiple of 1 MiB.
    pub start: u64,
    /// Length in bytes; a multiple of 1 MiB.
    pub size: u64,
    pub role: Role,
    /// Filesystem to make (or kept, when `preserve`); `None` for bios_grub.
    pub fs: Option<Fs>,
    pub label: Option<String>,
    /// Kept byte-for-byte: same number, start, size, type and (GPT) unique
    /// GUID; never formatted.
    pub preserve: bool,
    /// Filesystem UUID of a kept partition, as the inventory saw it.
    pub uuid: Option<String>,
}

impl PlannedPartition {
    pub fn end(&self) -> u64 {
        self.start + self.size
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// `/`, `/home`, `/boot/efi`, `/data`, or `swap`.
    pub target: String,
    pub disk: String,
    pub number: u32,
    pub fs: Fs,
}

impl Layout {
    pub fn disk(&self, name: &str) -> Option<&DiskLayout> {
        self.disks.iter().find(|d| d.name == name)
    }

    /// The partition mounted at `target` (`/`, `/home`, `swap`...).
    pub fn mounted(&self, target: &str) -> Option<(&DiskLayout, &PlannedPartition)> {
        let m = self.mounts.iter().find(|m| m.target == target)?;
        let d = self.disk(&m.disk)?;
        Some((d, d.partitions.iter().find(|p| p.number == m.number)?))
    }
}

/// Kernel name of partition `number` of `disk`: `sda` → `sda1`, but
/// `nvme0n1` → `nvme0n1p1` (names ending in a digit take a `p`).
pub fn partition_name(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}
