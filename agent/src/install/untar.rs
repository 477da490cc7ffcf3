//! Unpacking the image tar into the target root, entry by entry (streaming:
//! no entry is held in memory). The `tar` crate does files, directories,
//! symlinks and hard links with permissions and ownership; it writes device
//! nodes and FIFOs as empty files, so those are made here with mknod(2).

use std::io::{self, Read};
use std::os::unix::fs::lchown;
use std::path::{Component, Path};

use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use tar::EntryType;

/// Unpacks a tar stream into `root` (which must exist).
pub fn unpack(reader: &mut dyn Read, root: &Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::Char | EntryType::Block | EntryType::Fifo) {
            special(&entry, kind, root)?;
        } else {
            let path = entry.path()?.into_owned();
            entry.unpack_in(root).map_err(|e| {
                io::Error::new(e.kind(), format!("unpacking {}: {}", path.display(), chain(&e)))
            })?;
        }
    }
    Ok(())
}

/// An error and its causes, `a: b: c` (tar's own errors hide the cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Makes a device node or FIFO with its mode and owner.
fn special<R: Read>(entry: &tar::Entry<R>, kind: EntryType, root: &Path) -> io::Result<()> {
    let h = entry.header();
    let rel = entry.path()?.into_owned();
    // Same rule as tar's unpack_in: no absolute paths, no `..`.
    let safe = rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !safe {
        return Err(io::Error::other(format!("refusing tar path {}", rel.display())));
    }
    let dst = root.join(&rel);
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let _ = std::fs::remove_file(&dst);
    let sflag = match kind {
        EntryType::Char => SFlag::S_IFCHR,
        EntryType::Block => SFlag::S_IFBLK,
        _ => SFlag::S_IFIFO,
    };
    let major = h.device_major()?.unwrap_or(0);
    let minor = h.device_minor()?.unwrap_or(0);
    let mode = Mode::from_bits_truncate(h.mode()? & 0o7777);
    mknod(&dst, sflag, mode, makedev(major.into(), minor.into()))
        .map_err(|e| io::Error::other(format!("mknod {}: {e}", dst.display())))?;
    lchown(&dst, Some(h.uid()? as u32), Some(h.gid()? as u32))?;
    // mknod applies the umask: set the exact mode afterwards.
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        &dst,
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(io::Error::from)
}
