//! The two block-device ioctls the installer needs. Kept here rather than in
//! the agent's `sys.rs` so the install module stands alone; nix's macros
//! generate the calls, the only unsafe is invoking them on an open fd.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

// BLKRRPART = _IO(0x12, 95): the kernel re-reads the partition table.
nix::ioctl_none!(blkrrpart, 0x12, 95);
// CDROMEJECT = 0x5309 (a plain number, not an _IO() encoding).
nix::ioctl_none_bad!(cdromeject, 0x5309);

/// Asks the kernel to re-read `disk`'s partition table.
pub fn reread_partitions(disk: &File) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument; the fd is open for the call.
    unsafe { blkrrpart(disk.as_raw_fd()) }.map(drop).map_err(io::Error::from)
}

/// Opens the tray of the CD drive `dev`.
pub fn eject(dev: &File) -> io::Result<()> {
    // SAFETY: CDROMEJECT takes no argument; the fd is open for the call.
    unsafe { cdromeject(dev.as_raw_fd()) }.map(drop).map_err(io::Error::from)
}
