//! The image's install tools ([`lazare_proto::ImageRef::tools`]): the image's
//! own mke2fs with its loader and libraries, fetched beside the image
//! (`<url>.tools`) before anything is written, checked against the signed
//! plan, unpacked into RAM and run through its own loader. The CD then
//! carries no mke2fs and no C library (1.2 MB less to boot from), and the
//! filesystems are made by the e2fsprogs of the system that will check and
//! mount them. Removed once the filesystems are made: on a 128 MB PC every
//! MB of RAM counts during the download.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use lazare_proto::{Pinned, TOOLS_SUFFIX};
use sha2::{Digest, Sha256};

use super::stream::{fetch_small, Fetch, Progress, Retry};
use crate::target::{LIB_DIRS, LOADERS};

/// Where the tools are unpacked: RAM, the only place there is before the
/// target's filesystems exist.
pub const TOOLS_DIR: &str = "/run/lazare/tools";

/// Where the initramfs of a CD made for images without tools carried
/// mke2fs, then the usual places; PID 1 may run without PATH.
const LOCAL_MKE2FS: &[&str] = &["/usr/sbin/mke2fs", "/sbin/mke2fs", "/usr/bin/mke2fs"];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolsError {
    #[error("downloading the image's install tools failed after {tries} tries: {last}")]
    Download { tries: u32, last: String },
    #[error(
        "the image's install tools do not match the signed plan (sha256 {got}, {len} bytes): \
         refusing them"
    )]
    Mismatch { got: String, len: u64 },
    #[error("unpacking the image's install tools into {dir}: {source}")]
    Unpack { dir: PathBuf, source: io::Error },
    #[error("the image's install tools lack {0}")]
    Missing(String),
    #[error(
        "the image carries no install tools (it was built by an older lazare) and this CD has \
         no mke2fs (looked in {0}): rebuild the image with `lazare image build`"
    )]
    NoMke2fs(String),
}

/// A mke2fs to run, and how.
#[derive(Debug)]
pub enum Mke2fs {
    /// The image's, unpacked in `root`, run through its own `loader` (found
    /// there by [`prepare`]) with its own libraries and mke2fs.conf.
    Image { root: PathBuf, loader: PathBuf },
    /// One the boot medium carries.
    Local(PathBuf),
}

impl Mke2fs {
    /// A command running mke2fs; the caller adds its arguments.
    pub fn command(&self) -> Command {
        match self {
            Mke2fs::Image { root, loader } => {
                let at = |p: &str| root.join(p.trim_start_matches('/'));
                let libs: Vec<String> =
                    LIB_DIRS.iter().map(|d| at(d).display().to_string()).collect();
                let mut c = Command::new(loader);
                c.arg("--library-path")
                    .arg(libs.join(":"))
                    .arg(at("/usr/sbin/mke2fs"))
                    .env("MKE2FS_CONFIG", at("/etc/mke2fs.conf"));
                c
            }
            Mke2fs::Local(path) => Command::new(path),
        }
    }

    /// Frees the RAM the image's tools took (nothing for a local mke2fs).
    pub fn remove(self) -> io::Result<()> {
        match self {
            Mke2fs::Image { root, .. } => std::fs::remove_dir_all(root),
            Mke2fs::Local(_) => Ok(()),
        }
    }
}

/// The mke2fs for this install: the image's tools when the plan names
/// them (fetched from `image_url` + `.tools`, checked, unpacked in `dir`),
/// else one the boot medium carries.
pub fn prepare(
    fetch: &dyn Fetch,
    image_url: &str,
    tools: Option<&Pinned>,
    dir: &Path,
    retry: Retry,
    progress: &dyn Progress,
) -> Result<Mke2fs, ToolsError> {
    let Some(want) = tools else {
        let found = LOCAL_MKE2FS.iter().map(PathBuf::from).find(|p| p.is_file());
        return found
            .map(Mke2fs::Local)
            .ok_or_else(|| ToolsError::NoMke2fs(LOCAL_MKE2FS.join(", ")));
    };
    let url = format!("{image_url}{TOOLS_SUFFIX}");
    let what = "the image's install tools";
    let bytes = fetch_small(fetch, &url, want.size, what, retry, progress)
        .map_err(|(tries, last)| ToolsError::Download { tries, last })?;
    let got = lazare_proto::hex(&Sha256::digest(&bytes));
    if bytes.len() as u64 != want.size || got != want.sha256 {
        return Err(ToolsError::Mismatch { got, len: bytes.len() as u64 });
    }
    let unpack_err = |source| ToolsError::Unpack { dir: dir.to_path_buf(), source };
    // What an earlier try left is not trusted: only these checked bytes.
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(unpack_err)?;
    }
    std::fs::create_dir_all(dir).map_err(unpack_err)?;
    let mut tar = zstd::stream::read::Decoder::new(&bytes[..]).map_err(unpack_err)?;
    super::untar::unpack(&mut tar, dir).map_err(unpack_err)?;
    let root = dir.to_path_buf();
    if !root.join("usr/sbin/mke2fs").is_file() {
        return Err(ToolsError::Missing("/usr/sbin/mke2fs".into()));
    }
    let loader = LOADERS.iter().map(|l| root.join(l.trim_start_matches('/'))).find(|p| p.is_file());
    let loader = loader
        .ok_or_else(|| ToolsError::Missing(format!("a dynamic loader ({})", LOADERS.join(", "))))?;
    Ok(Mke2fs::Image { root, loader })
}
