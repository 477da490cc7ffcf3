//! Filesystem type, label and UUID read straight from superblocks (what
//! blkid prints), for ext2/3/4, vfat, swap and iso9660; and the partition
//! table kind of a whole disk. Works on any reader so tests feed images.
//! The one superblock and table parser of the agent: the inventory and the
//! install (the kept /home's UUID) both read disks through it.

use std::io::{Read, Seek, SeekFrom};

/// What a superblock says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsInfo {
    pub fs_type: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
}

/// Bytes probed from the start of a device: enough for every format here
/// (iso9660's volume descriptor sits at 32 KiB).
const PROBE: usize = 36 * 1024;

/// Reads the start of a device and identifies its filesystem.
pub fn probe<R: Read + Seek>(dev: &mut R) -> Option<FsInfo> {
    let mut buf = vec![0u8; PROBE];
    dev.seek(SeekFrom::Start(0)).ok()?;
    let mut n = 0;
    while n < buf.len() {
        match dev.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => break,
        }
    }
    buf.truncate(n);
    identify(&buf)
}

/// Identifies a filesystem from the first bytes of a device.
pub fn identify(b: &[u8]) -> Option<FsInfo> {
    ext(b).or_else(|| swap(b)).or_else(|| iso9660(b)).or_else(|| vfat(b))
}

fn text(raw: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(raw).trim_end_matches(['\0', ' ']).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn uuid(raw: &[u8]) -> Option<String> {
    if raw.iter().all(|&b| b == 0) {
        return None;
    }
    Some(crate::install::format::uuid_string(raw.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn ext(b: &[u8]) -> Option<FsInfo> {
    let sb = b.get(1024..2048)?;
    if sb[56..58] != [0x53, 0xef] {
        return None;
    }
    let compat = le32(sb, 92);
    let incompat = le32(sb, 96);
    // extents, 64bit, flex_bg or huge files mark ext4; a journal marks ext3.
    let fs_type = if incompat & (0x40 | 0x80 | 0x200) != 0 {
        "ext4"
    } else if compat & 0x4 != 0 {
        "ext3"
    } else {
        "ext2"
    };
    Some(FsInfo { fs_type: fs_type.into(), label: text(&sb[120..136]), uuid: uuid(&sb[104..120]) })
}

fn swap(b: &[u8]) -> Option<FsInfo> {
    // The signature ends the first page; pages of 4 KiB on x86.
    if b.get(4086..4096)? != b"SWAPSPACE2" && b.get(4086..4096)? != b"SWAP-SPACE" {
        return None;
    }
    Some(FsInfo { fs_type: "swap".into(), label: text(&b[1052..1068]), uuid: uuid(&b[1036..1052]) })
}

fn iso9660(b: &[u8]) -> Option<FsInfo> {
    let pvd = b.get(0x8000..0x8800)?;
    if pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        return None;
    }
    // blkid's UUID for iso9660 is the creation time of the volume.
    let t = &pvd[813..829];
    let uuid = t.iter().all(u8::is_ascii_digit).then(|| {
        let s = String::from_utf8_lossy(t);
        format!(
            "{}-{}-{}-{}-{}-{}-{}",
            &s[0..4],
            &s[4..6],
            &s[6..8],
            &s[8..10],
            &s[10..12],
            &s[12..14],
            &s[14..16]
        )
    });
    Some(FsInfo { fs_type: "iso9660".into(), label: text(&pvd[40..72]), uuid })
}

fn vfat(b: &[u8]) -> Option<FsInfo> {
    if b.get(510..512)? != [0x55, 0xaa] {
        return None;
    }
    let (serial_at, label_at) = if &b[82..87] == b"FAT32" {
        (67, 71)
    } else if &b[54..57] == b"FAT" {
        (39, 43)
    } else {
        return None;
    };
    let serial = le32(b, serial_at);
    let label = text(&b[label_at..label_at + 11]).filter(|l| l != "NO NAME");
    Some(FsInfo {
        fs_type: "vfat".into(),
        label,
        uuid: Some(format!("{:04X}-{:04X}", serial >> 16, serial & 0xffff)),
    })
}

/// The partition table of a whole disk from its first two sectors.
pub fn table<R: Read + Seek>(dev: &mut R, sector: u64) -> Option<lazare_proto::PartitionTable> {
    let mut b = vec![0u8; (sector * 2) as usize];
    dev.seek(SeekFrom::Start(0)).ok()?;
    dev.read_exact(&mut b).ok()?;
    if &b[sector as usize..sector as usize + 8] == b"EFI PART" {
        return Some(lazare_proto::PartitionTable::Gpt);
    }
    // An MBR: the signature and at least one partition entry with a type.
    let typed = (0..4).any(|i| b[446 + 16 * i + 4] != 0);
    (b[510..512] == [0x55, 0xaa] && typed && identify(&b).is_none())
        .then_some(lazare_proto::PartitionTable::Mbr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Makes a small filesystem image with the real mkfs tool when present.
    fn mkfs(args: &[&str], size_kib: u64) -> Option<Vec<u8>> {
        let dir = tempfile::tempdir().ok()?;
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img).ok()?.set_len(size_kib * 1024).ok()?;
        let (tool, rest) = args.split_first()?;
        let ok = Command::new(tool).args(rest).arg(&img).output().ok()?.status.success();
        ok.then(|| std::fs::read(&img).ok()).flatten()
    }

    #[test]
    fn ext4_label_and_uuid_from_mke2fs() {
        let Some(img) = mkfs(
            &[
                "mke2fs",
                "-q",
                "-F",
                "-t",
                "ext4",
                "-L",
                "home",
                "-U",
                "0d2c6e2b-6b53-4c43-9d1a-6a4f6a0e2f11",
            ],
            4096,
        ) else {
            panic!("mke2fs is needed for this test (e2fsprogs)");
        };
        let fs = identify(&img).unwrap();
        assert_eq!(
            fs,
            FsInfo {
                fs_type: "ext4".into(),
                label: Some("home".into()),
                uuid: Some("0d2c6e2b-6b53-4c43-9d1a-6a4f6a0e2f11".into())
            }
        );
        let ext2 = mkfs(&["mke2fs", "-q", "-F", "-t", "ext2"], 1024).unwrap();
        assert_eq!(identify(&ext2).unwrap().fs_type, "ext2");
    }

    #[test]
    fn swap_and_fat_signatures() {
        let mut swap = vec![0u8; 8192];
        swap[4086..4096].copy_from_slice(b"SWAPSPACE2");
        swap[1052..1056].copy_from_slice(b"swp\0");
        let fs = identify(&swap).unwrap();
        assert_eq!((fs.fs_type.as_str(), fs.label.as_deref()), ("swap", Some("swp")));
        let mut fat = vec![0u8; 4096];
        fat[510] = 0x55;
        fat[511] = 0xaa;
        fat[82..87].copy_from_slice(b"FAT32");
        fat[67..71].copy_from_slice(&0x1234_abcdu32.to_le_bytes());
        fat[71..82].copy_from_slice(b"EFI        ");
        let fs = identify(&fat).unwrap();
        assert_eq!(
            fs,
            FsInfo {
                fs_type: "vfat".into(),
                label: Some("EFI".into()),
                uuid: Some("1234-ABCD".into())
            }
        );
    }

    #[test]
    fn iso9660_volume_label() {
        let mut iso = vec![0u8; 0x8800];
        iso[0x8000] = 1;
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        iso[0x8000 + 40..0x8000 + 46].copy_from_slice(b"LAZARE");
        iso[0x8000 + 813..0x8000 + 829].copy_from_slice(b"2026112314000000");
        let fs = identify(&iso).unwrap();
        assert_eq!(fs.label.as_deref(), Some("LAZARE"));
        assert_eq!(fs.uuid.as_deref(), Some("2026-11-23-14-00-00-00"));
    }

    #[test]
    fn mbr_gpt_and_a_bare_filesystem_are_told_apart() {
        use lazare_proto::PartitionTable;
        use std::io::Cursor;
        let mut mbr = vec![0u8; 1024];
        mbr[446 + 4] = 0x83;
        mbr[510..512].copy_from_slice(&[0x55, 0xaa]);
        assert_eq!(table(&mut Cursor::new(&mbr), 512), Some(PartitionTable::Mbr));
        // GPT: a protective MBR (type 0xEE) and the header in sector 1,
        // which is 4 KiB on 4Kn disks.
        for sector in [512usize, 4096] {
            let mut gpt = vec![0u8; 2 * sector];
            gpt[446 + 4] = 0xee;
            gpt[510..512].copy_from_slice(&[0x55, 0xaa]);
            gpt[sector..sector + 8].copy_from_slice(b"EFI PART");
            assert_eq!(table(&mut Cursor::new(&gpt), sector as u64), Some(PartitionTable::Gpt));
        }
        // 55AA without a typed entry, a FAT boot sector on a whole disk, a
        // blank disk and a short read: no table.
        let mut empty = vec![0u8; 1024];
        empty[510..512].copy_from_slice(&[0x55, 0xaa]);
        assert_eq!(table(&mut Cursor::new(&empty), 512), None);
        let mut fat = empty.clone();
        fat[446 + 4] = 0x0c;
        fat[82..87].copy_from_slice(b"FAT32");
        assert_eq!(table(&mut Cursor::new(&fat), 512), None);
        assert_eq!(table(&mut Cursor::new(vec![0u8; 1024]), 512), None);
        assert_eq!(table(&mut Cursor::new(vec![0u8; 100]), 512), None);
    }
}
