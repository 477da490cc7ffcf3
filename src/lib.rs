//! The `lazare` CLI as a library: build, serve, image, inspect, vm.

pub mod bencode;
pub mod build;
pub mod cachedir;
pub mod cli;
pub mod epoch;
pub mod gendocs;
pub mod image;
pub mod initramfs;
pub mod inspect;
pub mod iso;
pub mod key;
pub mod serve;
pub mod templates;
pub mod vm;
