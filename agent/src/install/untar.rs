//! Unpacking the image tar into the target root, entry by entry (streaming:
//! no entry is held in memory). The `tar` crate only parses; every entry is
//! made here relative to a directory descriptor of the target, and no
//! symlink is ever followed: each parent directory is opened from the one
//! before with `O_NOFOLLOW | O_DIRECTORY` (made when missing), and the entry
//! itself is created with `*at` calls that do not follow either (`O_EXCL`
//! files, `mknodat`, `symlinkat`, `linkat` without `AT_SYMLINK_FOLLOW`).
//! So an entry `e -> /` followed by `e/dev/sda` is refused instead of
//! landing on the agent's own `/dev`. Absolute paths and `..` are refused.
//! The target is mounted `nosuid,nodev` meanwhile (see `mount_all`).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{self, FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

/// Unpacks a tar stream into `root` (which must exist).
pub fn unpack(reader: &mut dyn Read, root: &Path) -> io::Result<()> {
    let root_fd =
        nix::fcntl::open(root, dir_flags() & !OFlag::O_NOFOLLOW, Mode::empty()).map_err(|e| {
            io::Error::new(io::Error::from(e).kind(), format!("opening {}: {e}", root.display()))
        })?;
    let mut dirs = Dirs { root: root_fd, stack: Vec::new() };
    let mut buf = vec![0u8; 128 << 10];
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        one(&mut dirs, &mut entry, &path, &mut buf)
            .map_err(|e| io::Error::new(e.kind(), format!("unpacking {}: {e}", path.display())))?;
    }
    Ok(())
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// The parts of a tar path, or an error for absolute paths and `..`.
fn parts(path: &Path) -> io::Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return Err(io::Error::other(format!("refusing tar path {}", path.display()))),
        }
    }
    Ok(out)
}

fn one<R: Read>(
    dirs: &mut Dirs,
    entry: &mut tar::Entry<R>,
    path: &Path,
    buf: &mut [u8],
) -> io::Result<()> {
    let h = entry.header();
    let kind = h.entry_type();
    let owner = (Uid::from_raw(h.uid()? as u32), Gid::from_raw(h.gid()? as u32));
    let mode = Mode::from_bits_truncate(h.mode()? & 0o7777);
    let mtime = TimeSpec::new(h.mtime()? as i64, 0);
    let comps = parts(path)?;
    let Some((name, parent)) = comps.split_last() else {
        // `./`: the target root itself.
        if kind == EntryType::Directory {
            return set_fd_meta(dirs.root.as_fd(), owner, mode, mtime);
        }
        return Err(io::Error::other("an entry with an empty path that is not a directory"));
    };
    let name: &OsStr = name;
    // A hard link's source, resolved before `dirs` lends out the parent.
    let link_src = match kind {
        EntryType::Link => {
            let link =
                entry.link_name()?.ok_or_else(|| io::Error::other("hard link without target"))?;
            let src = parts(&link)?;
            let (src_name, src_parent) =
                src.split_last().ok_or_else(|| io::Error::other("hard link to the root"))?;
            Some((dirs.lookup(src_parent)?, src_name.to_os_string()))
        }
        _ => None,
    };
    let symlink_target = match kind {
        EntryType::Symlink => Some(
            entry
                .link_name()?
                .ok_or_else(|| io::Error::other("symlink without target"))?
                .into_owned(),
        ),
        _ => None,
    };
    let dir = dirs.open(parent)?;
    match kind {
        EntryType::Directory => {
            let fd = open_dir(dir, name)?;
            set_fd_meta(fd.as_fd(), owner, mode, mtime)
        }
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            remove(dir, name)?;
            let flags = OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            let mut f =
                File::from(nix::fcntl::openat(dir, name, flags, Mode::from_bits_truncate(0o600))?);
            loop {
                let n = match entry.read(buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                f.write_all(&buf[..n])?;
            }
            set_fd_meta(f.as_fd(), owner, mode, mtime)
        }
        EntryType::Symlink => {
            let target = symlink_target.expect("set for symlinks");
            remove(dir, name)?;
            unistd::symlinkat(target.as_os_str(), dir, name)?;
            set_name_meta(dir, name, owner, mtime)
        }
        EntryType::Link => {
            let (src_dir, src_name) = link_src.expect("set for hard links");
            remove(dir, name)?;
            // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
            unistd::linkat(&src_dir, src_name.as_os_str(), dir, name, AtFlags::empty())?;
            Ok(())
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            let sflag = match kind {
                EntryType::Char => SFlag::S_IFCHR,
                EntryType::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            let major = h.device_major()?.unwrap_or(0);
            let minor = h.device_minor()?.unwrap_or(0);
            remove(dir, name)?;
            stat::mknodat(dir, name, sflag, mode, stat::makedev(major.into(), minor.into()))?;
            set_name_meta(dir, name, owner, mtime)?;
            // mknod applied the umask. The name was just made in this
            // directory, which nothing else writes to: following is safe
            // (Linux has no fchmodat without following before 6.6).
            stat::fchmodat(dir, name, mode, FchmodatFlags::FollowSymlink)?;
            Ok(())
        }
        // PAX/GNU headers the parser already applied, volume labels...
        _ => Ok(()),
    }
}

/// Owner first: chown clears the setuid bits the mode then sets.
fn set_fd_meta(fd: BorrowedFd, owner: (Uid, Gid), mode: Mode, mtime: TimeSpec) -> io::Result<()> {
    unistd::fchown(fd, Some(owner.0), Some(owner.1))?;
    stat::fchmod(fd, mode)?;
    stat::futimens(fd, &mtime, &mtime)?;
    Ok(())
}

/// Owner and times of `name` itself (a symlink or a node), not followed.
fn set_name_meta(
    dir: BorrowedFd,
    name: &OsStr,
    owner: (Uid, Gid),
    mtime: TimeSpec,
) -> io::Result<()> {
    unistd::fchownat(dir, name, Some(owner.0), Some(owner.1), AtFlags::AT_SYMLINK_NOFOLLOW)?;
    stat::utimensat(dir, name, &mtime, &mtime, UtimensatFlags::NoFollowSymlink)?;
    Ok(())
}

/// Makes room for a new non-directory entry; a directory in the way is an
/// error (as with tar), never removed.
fn remove(dir: BorrowedFd, name: &OsStr) -> io::Result<()> {
    match unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Opens directory `name` in `at`, making it (0755 until its own entry
/// sets the mode) when missing. A symlink or a file there is refused.
fn open_dir(at: BorrowedFd, name: &OsStr) -> io::Result<OwnedFd> {
    match nix::fcntl::openat(at, name, dir_flags(), Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOENT) => {
            match stat::mkdirat(at, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
            nix::fcntl::openat(at, name, dir_flags(), Mode::empty()).map_err(not_a_dir(name))
        }
        Err(e) => Err(not_a_dir(name)(e)),
    }
}

fn not_a_dir(name: &OsStr) -> impl FnOnce(Errno) -> io::Error + '_ {
    move |e| match e {
        Errno::ELOOP | Errno::ENOTDIR => io::Error::other(format!(
            "{} is a symlink or a file, not a directory: refusing to go through it",
            name.to_string_lossy()
        )),
        e => e.into(),
    }
}

/// Directory descriptors from the target root: the parents of the last
/// entry stay open, so the next entry in the same directory (most of them,
/// in tar order) costs no lookups.
struct Dirs {
    root: OwnedFd,
    stack: Vec<(OsString, OwnedFd)>,
}

impl Dirs {
    /// The directory `parent` below the root, made when missing, reached
    /// without following a symlink. Directories are never removed or
    /// replaced while unpacking, so the kept descriptors stay right.
    fn open(&mut self, parent: &[&OsStr]) -> io::Result<BorrowedFd<'_>> {
        let common = self
            .stack
            .iter()
            .zip(parent)
            .take_while(|((have, _), want)| have.as_os_str() == **want)
            .count();
        self.stack.truncate(common);
        for name in &parent[common..] {
            let at = self.stack.last().map_or(self.root.as_fd(), |(_, fd)| fd.as_fd());
            let fd = open_dir(at, name)?;
            self.stack.push((name.to_os_string(), fd));
        }
        Ok(self.stack.last().map_or(self.root.as_fd(), |(_, fd)| fd.as_fd()))
    }

    /// An existing directory below the root (a hard link's source), not
    /// made when missing, reached without following a symlink.
    fn lookup(&self, parent: &[&OsStr]) -> io::Result<OwnedFd> {
        let mut fd = self.root.try_clone()?;
        for name in parent {
            fd = nix::fcntl::openat(&fd, *name, dir_flags(), Mode::empty())
                .map_err(not_a_dir(name))?;
        }
        Ok(fd)
    }
}
