//! Packing wanted partitions into the free regions of one disk.

use crate::layout::{Fs, PlannedPartition, Role};
use crate::{align_down, align_up};
use lazare_proto::{Disk, PartitionTable, MIB};

/// A partition the planner wants on a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Want {
    pub role: Role,
    /// Smallest acceptable size (a multiple of 1 MiB).
    pub min: u64,
    /// Takes what is left of its region after the others.
    pub fill: bool,
}

impl Want {
    pub fn fixed(role: Role, size: u64) -> Self {
        Want { role, min: size, fill: false }
    }
    pub fn fill(role: Role, min: u64) -> Self {
        Want { role, min, fill: true }
    }
}

/// Bytes from the first MiB (MBR, GPT header and entries, GRUB's embedding
/// gap on MBR) to the last usable MiB boundary (the GPT backup lives in the
/// last 33 sectors; MBR gets the same margin so either table fits).
pub(crate) fn usable(disk: &Disk) -> (u64, u64) {
    let tail = 34 * u64::from(disk.sector_size.max(512));
    (MIB, align_down(disk.size_bytes.saturating_sub(tail), MIB))
}

/// Free regions of `disk` once `kept` partitions stay where they are.
fn regions(disk: &Disk, kept: &[PlannedPartition]) -> Vec<(u64, u64)> {
    let (mut at, end) = usable(disk);
    let mut kept: Vec<&PlannedPartition> = kept.iter().collect();
    kept.sort_by_key(|p| p.start);
    let mut out = Vec::new();
    for p in kept {
        let gap_end = align_down(p.start, MIB).min(end);
        if gap_end > at {
            out.push((at, gap_end));
        }
        at = at.max(align_up(p.end(), MIB));
    }
    if end > at {
        out.push((at, end));
    }
    out
}

/// Lays `wants` out on `disk` around `kept`; `None` when they do not fit or
/// the table has no free partition numbers left.
pub(crate) fn pack(
    disk: &Disk,
    table: PartitionTable,
    kept: &[PlannedPartition],
    wants: &[Want],
) -> Option<Vec<PlannedPartition>> {
    let regions = regions(disk, kept);
    let assigned = assign(&regions, wants)?;
    let mut parts: Vec<PlannedPartition> = kept.to_vec();
    for (r, &(start, end)) in regions.iter().enumerate() {
        let mine: Vec<&Want> =
            wants.iter().zip(&assigned).filter(|(_, &a)| a == r).map(|(w, _)| w).collect();
        let spare = (end - start) - mine.iter().map(|w| w.min).sum::<u64>();
        // The last fill want of a region takes the spare space.
        let filler = mine.iter().rposition(|w| w.fill);
        let mut at = start;
        for (i, w) in mine.iter().enumerate() {
            let size = if Some(i) == filler { w.min + spare } else { w.min };
            parts.push(new_partition(w.role, at, size));
            at += size;
        }
    }
    parts.sort_by_key(|p| p.start);
    number(&mut parts, table)?;
    Some(parts)
}

/// Region index for each want: biggest wants first, each into the region
/// with the most room left (so root gets the largest gap).
fn assign(regions: &[(u64, u64)], wants: &[Want]) -> Option<Vec<usize>> {
    let mut room: Vec<u64> = regions.iter().map(|(s, e)| e - s).collect();
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(wants[i].min));
    let mut out = vec![usize::MAX; wants.len()];
    for i in order {
        let (r, _) = room.iter().enumerate().max_by_key(|(r, room)| (**room, usize::MAX - r))?;
        if room[r] < wants[i].min {
            return None;
        }
        room[r] -= wants[i].min;
        out[i] = r;
    }
    Some(out)
}

/// Numbers new partitions in disk order with the numbers kept partitions
/// do not use: MBR has 4 primary slots, GPT 128 entries.
fn number(parts: &mut [PlannedPartition], table: PartitionTable) -> Option<()> {
    let max = match table {
        PartitionTable::Mbr => 4,
        PartitionTable::Gpt => 128,
    };
    let used: Vec<u32> = parts.iter().filter(|p| p.preserve).map(|p| p.number).collect();
    let mut free = (1..=max).filter(|n| !used.contains(n));
    for p in parts.iter_mut().filter(|p| !p.preserve) {
        p.number = free.next()?;
    }
    Some(())
}

fn new_partition(role: Role, start: u64, size: u64) -> PlannedPartition {
    let (fs, label) = match role {
        Role::BiosGrub => (None, None),
        Role::Esp => (Some(Fs::Vfat), Some("EFI")),
        Role::Root => (Some(Fs::Ext4), Some("root")),
        Role::Home => (Some(Fs::Ext4), Some("home")),
        Role::Swap => (Some(Fs::Swap), Some("swap")),
        Role::Data => (Some(Fs::Ext4), Some("data")),
    };
    PlannedPartition {
        number: 0,
        start,
        size,
        role,
        fs,
        label: label.map(String::from),
        preserve: false,
        uuid: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lazare_proto::GIB;

    fn disk(size: u64) -> Disk {
        crate::testing::disk("sda", size)
    }

    #[test]
    fn fill_takes_the_rest() {
        let d = disk(4 * GIB);
        let w = [Want::fixed(Role::Swap, 512 * MIB), Want::fill(Role::Root, GIB)];
        let p = pack(&d, PartitionTable::Mbr, &[], &w).unwrap();
        assert_eq!(p[0].role, Role::Swap);
        assert_eq!(p[0].start, MIB);
        assert_eq!(p[1].start, MIB + 512 * MIB);
        assert_eq!(p[1].end(), usable(&d).1);
        assert_eq!((p[0].number, p[1].number), (1, 2));
    }

    #[test]
    fn too_big_is_none() {
        let d = disk(GIB);
        assert!(pack(&d, PartitionTable::Gpt, &[], &[Want::fill(Role::Root, GIB)]).is_none());
    }

    #[test]
    fn kept_partition_splits_regions_and_keeps_its_number() {
        let d = disk(8 * GIB);
        let home = PlannedPartition {
            number: 2,
            start: 2 * GIB,
            size: 2 * GIB,
            role: Role::Home,
            fs: Some(Fs::Ext4),
            label: Some("home".into()),
            preserve: true,
            uuid: None,
        };
        let w = [Want::fixed(Role::Swap, GIB), Want::fill(Role::Root, 3 * GIB)];
        let p = pack(&d, PartitionTable::Mbr, std::slice::from_ref(&home), &w).unwrap();
        assert_eq!(p.len(), 3);
        let root = p.iter().find(|p| p.role == Role::Root).unwrap();
        assert_eq!(root.start, 4 * GIB);
        assert!(p.contains(&home));
        assert_eq!(p.iter().filter(|p| p.number == 2).count(), 1);
    }
}
