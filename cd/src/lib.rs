//! What `lazare build` writes and the agent on the CD reads, kept in one
//! place so the two cannot drift apart. No I/O: the builder and the agent
//! read and write the files; this crate says where they are and what they
//! mean.
//!
//! - [`paths`]: where things are on the CD, in the initramfs and on the
//!   installed system.
//! - [`BakedConfig`]: the command line and server key baked into the
//!   initramfs, written and read through one type.
//! - [`console`]: the kernel `console=` arguments every boot entry and the
//!   installed system's GRUB use.
//! - [`kmod`]: one parser for the kernel's module indexes (modules.dep,
//!   modules.alias, modules.softdep, modules.builtin), used by the builder
//!   to choose modules and by the agent to load them.
//! - [`modpack`]: the two zstd packs the modules travel in, written by the
//!   builder, read by the agent.
//! - [`kernel`]: which installed kernel is the newest (the builder's
//!   default, and the one the tests boot).

mod baked;
pub mod console;
pub mod kernel;
pub mod kmod;
pub mod modpack;
pub mod paths;

pub use baked::{BakedConfig, BakedError};
