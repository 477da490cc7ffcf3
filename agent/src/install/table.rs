//! Writing partition tables (gptman, mbrman) to a disk or a disk image file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use diskplan::{DiskAction, DiskLayout, Role};
use gptman::{GPTPartitionEntry, GPT};
use lazare_proto::{Firmware, PartitionTable, MIB};
use mbrman::{MBRPartitionEntry, CHS, MBR};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    #[error("{disk} is {got} bytes, the plan was made for {want}: not writing")]
    SizeChanged { disk: String, want: u64, got: u64 },
    #[error("{disk} partition {number} is not where the plan keeps it: not writing")]
    KeptMoved { disk: String, number: u32 },
    #[error("reading the partition table of {disk}: {why}")]
    Read { disk: String, why: String },
    #[error("writing the partition table of {disk}: {why}")]
    Write { disk: String, why: String },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Writes the table `disk` plans into `f` (a block device or an image file
/// of exactly the disk's size). Untouched disks are left alone.
pub fn write(f: &mut File, disk: &DiskLayout, firmware: Firmware) -> Result<(), TableError> {
    let table = match disk.action {
        DiskAction::Untouched { .. } => return Ok(()),
        DiskAction::NewTable { table } | DiskAction::KeepTable { table } => table,
    };
    let got = f.seek(SeekFrom::End(0))?;
    if got != disk.size_bytes {
        let (disk, want) = (disk.name.clone(), disk.size_bytes);
        return Err(TableError::SizeChanged { disk, want, got });
    }
    let keep = matches!(disk.action, DiskAction::KeepTable { .. });
    if !keep {
        // Old tables and boot code of any kind go: first and last MiB.
        zero(f, 0, MIB)?;
        zero(f, disk.size_bytes.saturating_sub(MIB), MIB.min(disk.size_bytes))?;
    }
    match table {
        PartitionTable::Gpt => gpt(f, disk, keep, firmware),
        PartitionTable::Mbr => mbr(f, disk, keep),
    }?;
    f.sync_all()?;
    Ok(())
}

fn gpt(f: &mut File, disk: &DiskLayout, keep: bool, firmware: Firmware) -> Result<(), TableError> {
    let ss = u64::from(disk.sector_size);
    let werr = |e: gptman::Error| TableError::Write { disk: disk.name.clone(), why: e.to_string() };
    let mut g = if keep {
        let mut g = GPT::read_from(f, ss)
            .map_err(|e| TableError::Read { disk: disk.name.clone(), why: e.to_string() })?;
        for p in disk.partitions.iter().filter(|p| p.preserve) {
            let e = g.iter().find(|(i, _)| *i == p.number).map(|(_, e)| e);
            let same = e.is_some_and(|e| {
                e.is_used()
                    && e.starting_lba * ss == p.start
                    && (e.ending_lba + 1 - e.starting_lba) * ss == p.size
            });
            if !same {
                return Err(TableError::KeptMoved { disk: disk.name.clone(), number: p.number });
            }
        }
        for (i, e) in g.iter_mut() {
            if !disk.partitions.iter().any(|p| p.preserve && p.number == i) {
                *e = GPTPartitionEntry::empty();
            }
        }
        g
    } else {
        GPT::new_from(f, ss, random_guid()?).map_err(werr)?
    };
    for p in disk.partitions.iter().filter(|p| !p.preserve) {
        g[p.number] = GPTPartitionEntry {
            partition_type_guid: guid(gpt_type(p.role)),
            unique_partition_guid: random_guid()?,
            starting_lba: p.start / ss,
            ending_lba: p.end() / ss - 1,
            attribute_bits: 0,
            partition_name: p.label.as_deref().unwrap_or("").into(),
        };
    }
    g.write_into(f).map_err(werr)?;
    // Some BIOSes only boot a disk whose MBR has an active partition.
    if firmware == Firmware::Bios {
        GPT::write_bootable_protective_mbr_into(f, ss).map_err(werr)?;
    } else {
        GPT::write_protective_mbr_into(f, ss).map_err(werr)?;
    }
    Ok(())
}

fn mbr(f: &mut File, disk: &DiskLayout, keep: bool) -> Result<(), TableError> {
    let ss = disk.sector_size;
    let werr = |e: mbrman::Error| TableError::Write { disk: disk.name.clone(), why: e.to_string() };
    let mut m = if keep {
        let mut m = MBR::read_from(f, ss)
            .map_err(|e| TableError::Read { disk: disk.name.clone(), why: e.to_string() })?;
        for p in disk.partitions.iter().filter(|p| p.preserve) {
            let e = m.get(p.number as usize);
            let same = e.is_some_and(|e| {
                e.is_used()
                    && u64::from(e.starting_lba) * u64::from(ss) == p.start
                    && u64::from(e.sectors) * u64::from(ss) == p.size
            });
            if !same {
                return Err(TableError::KeptMoved { disk: disk.name.clone(), number: p.number });
            }
        }
        for i in 1..=4usize {
            if !disk.partitions.iter().any(|p| p.preserve && p.number as usize == i) {
                m[i] = MBRPartitionEntry::empty();
            }
        }
        m.logical_partitions.clear();
        m
    } else {
        MBR::new_from(f, ss, random_bytes::<4>()?).map_err(werr)?
    };
    for p in disk.partitions.iter().filter(|p| !p.preserve) {
        let lba =
            |b: u64| u32::try_from(b / u64::from(ss)).map_err(|_| io::Error::other("beyond MBR"));
        let (start, sectors) = (lba(p.start)?, lba(p.size)?);
        // CHS in the usual 255-head, 63-sector translation; past cylinder
        // 1023 the conventional "use LBA" maximum.
        let chs = |l: u32| {
            CHS::from_lba_exact(l, 1024, 255, 63).unwrap_or(CHS {
                cylinder: 1023,
                head: 254,
                sector: 63,
            })
        };
        m[p.number as usize] = MBRPartitionEntry {
            // Old BIOSes want an active partition; GRUB's boot code ignores it.
            boot: if p.role == Role::Root { mbrman::BOOT_ACTIVE } else { mbrman::BOOT_INACTIVE },
            first_chs: chs(start),
            sys: mbr_type(p.role),
            last_chs: chs(start + sectors - 1),
            starting_lba: start,
            sectors,
        };
    }
    m.write_into(f).map_err(werr)
}

/// Partition type GUIDs: the Discoverable Partitions Specification's.
fn gpt_type(role: Role) -> &'static str {
    match role {
        Role::BiosGrub => "21686148-6449-6E6F-744E-656564454649",
        Role::Esp => "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        Role::Root => "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
        Role::Home => "933AC7E1-2EB4-4F13-B844-0E14E2AEF915",
        Role::Swap => "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
        Role::Data => "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    }
}

fn mbr_type(role: Role) -> u8 {
    match role {
        Role::Esp => 0xef,
        Role::Swap => 0x82,
        _ => 0x83,
    }
}

/// A GUID string in GPT's on-disk byte order (first three fields little-endian).
pub fn guid(s: &str) -> [u8; 16] {
    let hex: Vec<u8> = s
        .bytes()
        .filter(|b| *b != b'-')
        .collect::<Vec<u8>>()
        .chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap_or("00"), 16).unwrap_or(0))
        .collect();
    let mut out = [0u8; 16];
    out.copy_from_slice(&hex[..16]);
    out[0..4].reverse();
    out[4..6].reverse();
    out[6..8].reverse();
    out
}

/// Bytes from /dev/urandom (never blocks; the agent credits entropy early).
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}

/// A random (version 4) GUID.
pub fn random_guid() -> io::Result<[u8; 16]> {
    let mut g = random_bytes::<16>()?;
    g[7] = (g[7] & 0x0f) | 0x40;
    g[8] = (g[8] & 0x3f) | 0x80;
    Ok(g)
}

/// Writes `len` zero bytes at `at`.
pub fn zero(f: &mut File, at: u64, len: u64) -> io::Result<()> {
    f.seek(SeekFrom::Start(at))?;
    let block = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    Ok(())
}
