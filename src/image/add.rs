//! `lazare image add --data DIR IMAGE...`: verify an image against its
//! manifest and put both where `lazare serve` serves them:
//! `DIR/images/<file>`, its chunk index `DIR/images/<file>.chunks`, its
//! install tools `DIR/images/<file>.tools`, the room's torrent
//! `DIR/images/<file>.torrent` and `DIR/images/<file>.json`.

use super::build::{set_readable, write_manifest};
use super::chunks::{index_path, write_index};
use super::tools::tools_path;
use super::torrent::{self, torrent_path, PieceHasher};
use anyhow::{Context, Result};
use lazare_proto::{chunk_size_for, ChunkIndex, ImageManifest};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    #[error("{file}: sha256 is {got}, but its manifest says {want}: the file is damaged or not the one the manifest describes")]
    Sha256Mismatch { file: PathBuf, want: String, got: String },
    #[error("{file}: {got} bytes, but its manifest says {want}")]
    SizeMismatch { file: PathBuf, want: u64, got: u64 },
    #[error("manifest {manifest} names {named:?}, which is not a plain file name")]
    BadFileName { manifest: PathBuf, named: String },
}

/// The images folder inside a server data dir.
pub fn images_dir(data: &Path) -> PathBuf {
    data.join("images")
}

/// Verifies `image` (a tarball or its `.json` manifest) and copies both into
/// `DIR/images/`. Returns the manifest as installed.
pub fn add(data: &Path, image: &Path) -> Result<ImageManifest> {
    let (tarball, manifest_path) = pair(image);
    let manifest: ImageManifest = serde_json::from_slice(
        &std::fs::read(&manifest_path)
            .with_context(|| format!("reading manifest {}", manifest_path.display()))?,
    )
    .with_context(|| format!("parsing manifest {}", manifest_path.display()))?;
    let plain = Path::new(&manifest.file).file_name().map(|n| n == manifest.file.as_str());
    if plain != Some(true) || manifest.file.starts_with('.') {
        return Err(AddError::BadFileName { manifest: manifest_path, named: manifest.file }.into());
    }
    let tarball = tarball.unwrap_or_else(|| manifest_path.with_file_name(&manifest.file));
    let dir = images_dir(data);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dst = dir.join(&manifest.file);
    let (index, pieces) = copy_verified(&tarball, &dst, &manifest)?;
    // Tarball, its install tools and its index, then the manifest naming
    // them: a manifest is only ever written once what it names is in place.
    if let Some(tools) = &manifest.tools {
        super::tools::copy_verified(&tools_path(&tarball), &tools_path(&dst), tools)?;
    }
    write_index(&index, &index_path(&dst))?;
    let mut manifest = manifest;
    manifest.chunks = Some(index.hash());
    let (file, size, chunk) = (&manifest.file, manifest.size, index.chunk_size());
    manifest.torrent = Some(torrent::write(&torrent_path(&dst), file, size, chunk, pieces)?);
    write_manifest(&manifest, &dir.join(format!("{}.json", manifest.file)))?;
    Ok(manifest)
}

/// (tarball if given, manifest path).
fn pair(image: &Path) -> (Option<PathBuf>, PathBuf) {
    if image.extension().is_some_and(|e| e == "json") {
        (None, image.to_path_buf())
    } else {
        let mut m = image.as_os_str().to_owned();
        m.push(".json");
        (Some(image.to_path_buf()), PathBuf::from(m))
    }
}

/// Copies `src` to a temp file beside `dst` while hashing and indexing it,
/// and renames it into place only if sha256 and size match the manifest.
/// Returns the chunk index of the copy and its torrent's piece hashes
/// (made on the same pass).
fn copy_verified(src: &Path, dst: &Path, m: &ImageManifest) -> Result<(ChunkIndex, Vec<u8>)> {
    let input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let dir = dst.parent().context("destination has no parent")?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".adding-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    let chunk = chunk_size_for(m.size);
    let mut tee = PieceHasher::new(Tee { inner: input, out: tmp.as_file_mut() }, chunk);
    let made = ChunkIndex::build(&mut tee, chunk)
        .with_context(|| format!("copying {} to {}", src.display(), dir.display()))?;
    let pieces = tee.finish();
    let (got, len) = (made.sha256, made.index.size());
    if !got.eq_ignore_ascii_case(&m.sha256) {
        let e = AddError::Sha256Mismatch { file: src.into(), want: m.sha256.clone(), got };
        return Err(e.into());
    }
    if len != m.size {
        return Err(AddError::SizeMismatch { file: src.into(), want: m.size, got: len }.into());
    }
    tmp.as_file().sync_all().context("syncing the image copy")?;
    set_readable(tmp.as_file())?;
    tmp.persist(dst).with_context(|| format!("writing {}", dst.display()))?;
    Ok((made.index, pieces))
}

/// Writes everything read through it to `out` as well.
struct Tee<'a> {
    inner: File,
    out: &'a mut File,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}
