//! Chunk indexes beside the tarballs (`<file>.chunks`, see
//! [`lazare_proto::ChunkIndex`]): made by `image build` and `image add`, and
//! by `lazare serve` at start for images an older lazare added. An index is
//! only ever made from a file whose whole sha256 matched its manifest, so
//! the hash the plan signs describes the image that was built.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lazare_proto::{chunk_size_for, ChunkIndex, ImageManifest, INDEX_SUFFIX};

use super::build::{write_manifest, write_readable};
use super::torrent::{self, torrent_path, PieceHasher};

/// `<tarball>.chunks`.
pub fn index_path(tarball: &Path) -> PathBuf {
    super::beside(tarball, INDEX_SUFFIX)
}

/// Indexes `tarball`, refusing it unless its sha256 and size are the
/// manifest's.
pub fn index_file(tarball: &Path, m: &ImageManifest) -> Result<ChunkIndex> {
    Ok(index_and_pieces(tarball, m)?.0)
}

/// [`index_file`], and the torrent's piece hashes made on the same pass
/// (pieces and chunks of [`chunk_size_for`] the image's size).
fn index_and_pieces(tarball: &Path, m: &ImageManifest) -> Result<(ChunkIndex, Vec<u8>)> {
    let f = File::open(tarball).with_context(|| format!("opening {}", tarball.display()))?;
    let chunk = chunk_size_for(m.size);
    let mut pieces = PieceHasher::new(BufReader::with_capacity(1 << 20, f), chunk);
    let made = ChunkIndex::build(&mut pieces, chunk)
        .with_context(|| format!("reading {}", tarball.display()))?;
    if !made.sha256.eq_ignore_ascii_case(&m.sha256) || made.index.size() != m.size {
        bail!(
            "{}: sha256 {} ({} bytes), but its manifest says {} ({} bytes): not indexing a file \
             that is not the one the manifest describes",
            tarball.display(),
            made.sha256,
            made.index.size(),
            m.sha256,
            m.size
        );
    }
    Ok((made.index, pieces.finish()))
}

/// Writes the index's canonical bytes to `path` atomically, readable by all.
pub fn write_index(index: &ChunkIndex, path: &Path) -> Result<()> {
    write_readable(path, &index.to_bytes(), "the chunk index")
}

/// Makes sure the image of `manifest_path` has its chunk index and its
/// room torrent, and the manifest names both hashes; makes them (in one
/// read of the image) when missing or stale. Returns the manifest as it now
/// is.
pub fn ensure(manifest_path: &Path) -> Result<ImageManifest> {
    let mut m: ImageManifest = serde_json::from_slice(
        &std::fs::read(manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?,
    )
    .with_context(|| format!("parsing {}", manifest_path.display()))?;
    let tarball = manifest_path.with_file_name(&m.file);
    let path = index_path(&tarball);
    let index_ok = match (&m.chunks, std::fs::read(&path)) {
        (Some(want), Ok(bytes)) => ChunkIndex::parse_signed(&bytes, want, m.size).is_ok(),
        _ => false,
    };
    let torrent_ok =
        m.torrent.as_deref().is_some_and(|t| torrent::check(&torrent_path(&tarball), t));
    if index_ok && torrent_ok {
        return Ok(m);
    }
    let (index, pieces) = index_and_pieces(&tarball, &m)?;
    write_index(&index, &path)?;
    m.chunks = Some(index.hash());
    let chunk = index.chunk_size();
    m.torrent = Some(torrent::write(&torrent_path(&tarball), &m.file, m.size, chunk, pieces)?);
    write_manifest(&m, manifest_path)?;
    Ok(m)
}

/// [`ensure`] for every manifest in a server's images folder; returns one
/// warning line per image that could not be indexed (it is then not
/// offered: a plan needs the index hash) or has no install tools.
pub fn ensure_all(images: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(images) else { return Vec::new() };
    let mut warnings = Vec::new();
    let mut manifests: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    manifests.sort();
    for p in manifests {
        match ensure(&p) {
            Err(e) => warnings.push(format!("{}: no chunk index: {e:#}", p.display())),
            // Offered still: a CD that carries a mke2fs installs it.
            Ok(m) if m.tools.is_none() => warnings.push(format!(
                "{}: no install tools (built by an older lazare): CDs from this lazare carry \
                 no mke2fs and cannot install it; rebuild it with `lazare image build`",
                p.display()
            )),
            Ok(_) => {}
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    fn put(dir: &Path, bytes: &[u8]) -> PathBuf {
        std::fs::write(dir.join("t.tar.zst"), bytes).unwrap();
        let m = lazare_proto::testing::manifest("t", "t.tar.zst", bytes);
        let path = dir.join("t.tar.zst.json");
        write_manifest(&m, &path).unwrap();
        path
    }

    #[test]
    fn an_old_manifest_gets_its_index_once() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..(3 << 20) + 5).map(|i| (i % 253) as u8).collect();
        let manifest = put(dir.path(), &bytes);
        // Indexed; its one warning is the tools an older lazare did not make.
        let warnings = ensure_all(dir.path());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("no install tools"), "{warnings:?}");
        let m: ImageManifest = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        let index_bytes = std::fs::read(dir.path().join("t.tar.zst.chunks")).unwrap();
        let index =
            ChunkIndex::parse_signed(&index_bytes, m.chunks.as_ref().unwrap(), m.size).unwrap();
        // A 3 MiB image: 64 KiB chunks (lazare_proto::chunk_size_for), 49.
        assert_eq!(index.chunk_size(), 64 << 10);
        assert_eq!(index.count(), 49);
        index.check(48, &bytes[48 << 16..]).unwrap();
        // A second start finds it and leaves the file alone.
        let before = std::fs::metadata(dir.path().join("t.tar.zst.chunks")).unwrap().modified();
        assert_eq!(ensure(&manifest).unwrap(), m);
        let after = std::fs::metadata(dir.path().join("t.tar.zst.chunks")).unwrap().modified();
        assert_eq!(before.unwrap(), after.unwrap());
        // An image with its tools starts without a word.
        let mut m: ImageManifest =
            serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        m.tools = Some(lazare_proto::Pinned { sha256: "0".repeat(64), size: 1 });
        write_manifest(&m, &manifest).unwrap();
        assert_eq!(ensure_all(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_swapped_tarball_gets_no_index() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), b"the image that was added");
        std::fs::write(dir.path().join("t.tar.zst"), b"another file, same name").unwrap();
        let warnings = ensure_all(dir.path());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("not the one the manifest describes"), "{warnings:?}");
        assert!(!dir.path().join("t.tar.zst.chunks").exists());
    }
}
