//! `lazare-agent fetch` (hidden): the install's streaming pipeline alone
//! (chunk index → download → check every chunk → decompress → untar, as
//! `install::run` drives it), so
//! `make bench` can time it against `curl | tar` and read its peak RSS.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use lazare_proto::{ImageFormat, ImageRef};

use crate::install::stream::{stream, Progress, Retry, UreqFetch};

#[derive(Args)]
pub struct FetchArgs {
    /// The image URL (plain HTTP).
    #[arg(long)]
    pub url: String,
    /// sha256 (hex) of the image's chunk index, served at URL.chunks (the
    /// manifest's `chunks`); a mismatch of the index or a chunk is an error.
    #[arg(long)]
    pub chunks: String,
    /// Size of the compressed image in bytes.
    #[arg(long)]
    pub size: u64,
    /// Existing empty directory to unpack into.
    #[arg(long)]
    pub into: PathBuf,
}

struct Quiet;

impl Progress for Quiet {
    fn percent(&self, _pct: u8) {}
    fn warn(&self, line: &str) {
        eprintln!("lazare-agent fetch: {line}");
    }
}

pub fn run(a: &FetchArgs) -> Result<()> {
    let format = if a.url.ends_with(".tar.zst") {
        ImageFormat::TarZst
    } else if a.url.ends_with(".tar.gz") {
        ImageFormat::TarGz
    } else {
        bail!("{}: only .tar.zst and .tar.gz images are supported", a.url);
    };
    if !a.into.is_dir() {
        bail!("{} is not a directory", a.into.display());
    }
    let image = ImageRef {
        name: "bench".into(),
        url: a.url.clone(),
        // Not checked by the stream: the chunk index covers every byte.
        sha256: String::new(),
        size: a.size,
        format,
        chunks: a.chunks.clone(),
        tools: None,
        torrent: None,
    };
    let index = stream(&UreqFetch::default(), &a.url, &image, &a.into, Retry::default(), &Quiet)
        .with_context(|| format!("streaming {} into {}", a.url, a.into.display()))?;
    println!("{} chunks checked against {}", index.count(), a.chunks);
    Ok(())
}
