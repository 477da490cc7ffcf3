//! The room's `.torrent` beside each served image (`<file>.torrent`): the
//! PCs of a room share the image with BitTorrent (issue 15, the
//! `lazare-share` engine), and this file is what they share it by.
//!
//! One file, pieces of the image's chunk size
//! ([`lazare_proto::chunk_size_for`]) — the chunk index's chunks, so a piece
//! and a chunk are the same bytes: the engine checks a piece's SHA-1, the
//! agent then checks the same bytes' sha256 against the signed index. The
//! torrent is private (BEP 27: no DHT, no peer exchange; peers come from
//! `lazare serve`'s tracker only) and names no tracker: the agent gives the
//! engine its server's. Its info hash goes in the manifest and so in the
//! signed plan.
//!
//! The file is exactly `d4:info<info>e`, written only here; [`check`]
//! relies on that layout instead of parsing bencode.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::Result;
use lazare_proto::{hex, TORRENT_SUFFIX};
use sha1::{Digest, Sha1};

use crate::bencode::Value;

/// Beside the tarball: `<file>.torrent`.
pub fn torrent_path(tarball: &Path) -> PathBuf {
    super::beside(tarball, TORRENT_SUFFIX)
}

/// A reader that SHA-1s what passes through it in pieces of the image's
/// chunk size, so the torrent is made on the pass that copies or indexes
/// the image.
pub struct PieceHasher<R> {
    inner: R,
    piece_len: u32,
    piece: Sha1,
    in_piece: u64,
    pieces: Vec<u8>,
}

impl<R: Read> PieceHasher<R> {
    pub fn new(inner: R, piece_len: u32) -> Self {
        PieceHasher { inner, piece_len, piece: Sha1::new(), in_piece: 0, pieces: Vec::new() }
    }

    /// The concatenated piece hashes, the last (short) piece included.
    pub fn finish(mut self) -> Vec<u8> {
        if self.in_piece > 0 {
            self.pieces.extend_from_slice(&self.piece.finalize_reset());
        }
        self.pieces
    }
}

impl<R: Read> Read for PieceHasher<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let room = (u64::from(self.piece_len) - self.in_piece) as usize;
            let take = room.min(rest.len());
            self.piece.update(&rest[..take]);
            self.in_piece += take as u64;
            rest = &rest[take..];
            if self.in_piece == u64::from(self.piece_len) {
                self.pieces.extend_from_slice(&self.piece.finalize_reset());
                self.in_piece = 0;
            }
        }
        Ok(n)
    }
}

/// The info dictionary's bytes for a file `name` of `length` bytes.
fn info(name: &str, length: u64, piece_len: u32, pieces: Vec<u8>) -> Vec<u8> {
    Value::dict([
        ("length", Value::Int(length as i64)),
        ("name", Value::bytes(name)),
        ("piece length", Value::Int(i64::from(piece_len))),
        ("pieces", Value::Bytes(pieces)),
        ("private", Value::Int(1)),
    ])
    .encode()
}

/// Writes `path` atomically (readable by all) and returns the info hash,
/// lowercase hex.
pub fn write(
    path: &Path,
    name: &str,
    length: u64,
    piece_len: u32,
    pieces: Vec<u8>,
) -> Result<String> {
    let info = info(name, length, piece_len, pieces);
    let mut bytes = b"d4:info".to_vec();
    bytes.extend_from_slice(&info);
    bytes.push(b'e');
    super::build::write_readable(path, &bytes, "the torrent")?;
    Ok(hex(&Sha1::digest(&info)))
}

/// Whether `path` is a torrent this module wrote whose info hash is `want`.
pub fn check(path: &Path, want: &str) -> bool {
    let Ok(bytes) = std::fs::read(path) else { return false };
    let Some(info) = bytes.strip_prefix(b"d4:info").and_then(|b| b.strip_suffix(b"e")) else {
        return false;
    };
    hex(&Sha1::digest(info)).eq_ignore_ascii_case(want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lazare_proto::CHUNK_SIZE;

    #[test]
    fn pieces_are_the_chunks_and_the_hash_is_the_info_dicts() {
        let len = (2 * CHUNK_SIZE + 7) as usize;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        // Odd read sizes cross piece boundaries.
        let mut h = PieceHasher::new(&data[..], CHUNK_SIZE);
        let mut buf = vec![0; 333_333];
        while h.read(&mut buf).unwrap() > 0 {}
        let pieces = h.finish();
        assert_eq!(pieces.len(), 3 * 20);
        let c = CHUNK_SIZE as usize;
        assert_eq!(&pieces[..20], &Sha1::digest(&data[..c])[..]);
        assert_eq!(&pieces[40..], &Sha1::digest(&data[2 * c..])[..]);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tar.zst.torrent");
        let ih = write(&path, "t.tar.zst", len as u64, CHUNK_SIZE, pieces.clone()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let info = info("t.tar.zst", len as u64, CHUNK_SIZE, pieces);
        assert_eq!(bytes, [&b"d4:info"[..], &info, b"e"].concat());
        assert!(info.starts_with(
            b"d6:lengthi2097159e4:name9:t.tar.zst12:piece lengthi1048576e6:pieces60:"
        ));
        assert!(info.ends_with(b"7:privatei1ee"));
        assert_eq!(ih, hex(&Sha1::digest(&info)));
        assert!(check(&path, &ih));
        assert!(!check(&path, &"0".repeat(40)));
        std::fs::write(&path, [&bytes[..bytes.len() - 1], b"x"].concat()).unwrap();
        assert!(!check(&path, &ih));
    }
}
