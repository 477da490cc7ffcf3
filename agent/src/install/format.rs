//! Making filesystems: ext4 with the image's own `mke2fs` (see `tools.rs`), the ESP's FAT32 with
//! the `fatfs` crate (no dosfstools needed in the initramfs), and swap
//! headers written here (one page, simpler than carrying mkswap).

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use diskplan::Fs;

use super::table::{random_bytes, zero};
use super::tools::Mke2fs;
use lazare_proto::MIB;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error("mke2fs {dev} failed ({status}): {stderr}")]
    Mke2fs { dev: String, status: String, stderr: String },
    #[error("making {fs} on {dev}: {source}")]
    Io { fs: &'static str, dev: String, source: io::Error },
}

/// Erases old filesystem signatures at both ends of a partition (ext and
/// swap at the start, md/ZFS labels near the end) so no stale UUID shows.
pub fn wipe(dev: &Path) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(dev)?;
    let size = f.seek(SeekFrom::End(0))?;
    zero(&mut f, 0, MIB.min(size))?;
    let tail = MIB.min(size);
    zero(&mut f, size - tail, tail)?;
    f.sync_all()
}

/// Makes `fs` on `dev` with `label`; returns the filesystem UUID as fstab
/// writes it (`UUID=...`).
pub fn make(dev: &Path, fs: Fs, label: &str, mke2fs: &Mke2fs) -> Result<String, FormatError> {
    let io_err = |source| FormatError::Io { fs: fs.name(), dev: dev.display().to_string(), source };
    match fs {
        Fs::Ext4 | Fs::Ext3 | Fs::Ext2 => {
            let uuid = uuid_string(&v4(random_bytes::<16>().map_err(io_err)?));
            run_mke2fs(mke2fs, dev, fs.name(), label, &uuid)?;
            Ok(uuid)
        }
        Fs::Vfat => {
            let id = u32::from_le_bytes(random_bytes::<4>().map_err(io_err)?);
            fat32(dev, label, id).map_err(io_err)?;
            Ok(format!("{:04X}-{:04X}", id >> 16, id & 0xffff))
        }
        Fs::Swap => {
            let uuid = v4(random_bytes::<16>().map_err(io_err)?);
            let mut f = OpenOptions::new().write(true).open(dev).map_err(io_err)?;
            swap_header(&mut f, label, uuid).map_err(io_err)?;
            Ok(uuid_string(&uuid))
        }
    }
}

fn run_mke2fs(
    mke2fs: &Mke2fs,
    dev: &Path,
    fs: &str,
    label: &str,
    uuid: &str,
) -> Result<(), FormatError> {
    let out = mke2fs
        .command()
        .args(["-q", "-F", "-t", fs, "-L", label, "-U", uuid])
        .arg(dev)
        .output()
        .map_err(|source| FormatError::Io { fs: "ext4", dev: dev.display().to_string(), source })?;
    if !out.status.success() {
        return Err(FormatError::Mke2fs {
            dev: dev.display().to_string(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn fat32(dev: &Path, label: &str, id: u32) -> io::Result<()> {
    let mut name = [b' '; 11];
    for (d, s) in name.iter_mut().zip(label.bytes().map(|b| b.to_ascii_uppercase())) {
        *d = s;
    }
    let f = OpenOptions::new().read(true).write(true).open(dev)?;
    let opts = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat32)
        .volume_id(id)
        .volume_label(name);
    fatfs::format_volume(f, opts)
}

/// Linux swap header, version 1 (see mkswap / include/linux/swap.h): in the
/// first 4 KiB page, `version`, `last_page`, `nr_badpages` at byte 1024,
/// then the UUID and a 16-byte label; the magic ends the page.
pub fn swap_header(f: &mut File, label: &str, uuid: [u8; 16]) -> io::Result<()> {
    const PAGE: u64 = 4096;
    let size = f.seek(SeekFrom::End(0))?;
    if size < 10 * PAGE {
        return Err(io::Error::other("partition too small for swap"));
    }
    let last_page = u32::try_from(size / PAGE - 1).map_err(io::Error::other)?;
    let mut page = vec![0u8; PAGE as usize];
    page[1024..1028].copy_from_slice(&1u32.to_le_bytes());
    page[1028..1032].copy_from_slice(&last_page.to_le_bytes());
    // nr_badpages (1032..1036) stays 0.
    page[1036..1052].copy_from_slice(&uuid);
    let l = label.as_bytes();
    let n = l.len().min(15);
    page[1052..1052 + n].copy_from_slice(&l[..n]);
    page[PAGE as usize - 10..].copy_from_slice(b"SWAPSPACE2");
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&page)?;
    f.sync_all()
}

/// Makes 16 random bytes a version 4 UUID.
pub fn v4(mut b: [u8; 16]) -> [u8; 16] {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    b
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn uuid_string(b: &[u8; 16]) -> String {
    let h = lazare_proto::hex(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
