//! Finding the hardware: kernel modules for the devices present.

pub mod blkid;
pub mod coldplug;
pub mod modules;
pub mod uevent;
