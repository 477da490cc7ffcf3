//! The chunk index of an image: the sha256 of every 1 MiB piece of the
//! COMPRESSED file, so the agent can check each piece before a byte of it is
//! decompressed, and resume or fetch a piece from anywhere (the server, a
//! mirror, a peer, a USB stick) and check it the same way.
//!
//! The signed plan carries the sha256 of the index's canonical bytes
//! ([`ChunkIndex::hash`]): the index may come from an untrusted place too.
//!
//! Canonical bytes (all integers little-endian), one form only:
//!
//! ```text
//! b"LZCHUNK1"            8 bytes, format and version
//! chunk_size: u32        a power of two, 4 KiB ..= 64 MiB
//! size: u64              bytes in the whole compressed file
//! sha256 * count         32 bytes per chunk, count = ceil(size / chunk_size)
//! ```
//!
//! Binary rather than JSON: a 2 GB image has 2048 chunks, 64 KiB of hashes,
//! and there is exactly one byte form to hash (no key order, no spacing).

use std::io::{self, Read};
use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::hex;

/// Chunk size of the indexes lazare makes for images of 128 MiB and more
/// (see [`chunk_size_for`]).
pub const CHUNK_SIZE: u32 = 1 << 20;
/// The fewest chunks [`chunk_size_for`] aims at.
const MIN_CHUNKS: u64 = 128;
/// The smallest chunk [`chunk_size_for`] picks.
const SMALLEST: u32 = 64 << 10;

/// The chunk size (and the room torrent's piece length) for an image of
/// `size` bytes: [`CHUNK_SIZE`], halved until the image has at least
/// [`MIN_CHUNKS`] of them, down to 64 KiB. In a room the PCs can only give
/// each other whole, checked pieces: 40 PCs on a 16 MiB image of 16
/// pieces all waited on the few the leader had (`make bench-room`, issue
/// 15); the real images (light 353 MiB, standard 665 MiB) keep 1 MiB.
pub fn chunk_size_for(size: u64) -> u32 {
    let mut chunk = CHUNK_SIZE;
    while chunk > SMALLEST && size.div_ceil(u64::from(chunk)) < MIN_CHUNKS {
        chunk /= 2;
    }
    chunk
}
/// The index of `DIR/images/<file>` is `DIR/images/<file>.chunks`, served
/// at the image URL plus this suffix.
pub const INDEX_SUFFIX: &str = ".chunks";

const MAGIC: &[u8; 8] = b"LZCHUNK1";
const HEADER: usize = 8 + 4 + 8;
const MIN_CHUNK: u32 = 4 << 10;
const MAX_CHUNK: u32 = 64 << 20;

/// Why an index or a chunk was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkError {
    #[error("the chunk index does not start with LZCHUNK1")]
    BadMagic,
    #[error("the chunk index's chunk size {0} is not a power of two from 4 KiB to 64 MiB")]
    BadChunkSize(u32),
    #[error("the chunk index is {got} bytes; a {size}-byte file in {chunk_size}-byte chunks needs {want}")]
    BadLength { size: u64, chunk_size: u32, want: u64, got: u64 },
    #[error("the chunk index is for a {got}-byte file, the signed plan says {want} bytes")]
    WrongSize { want: u64, got: u64 },
    #[error("the chunk index's sha256 is {got}, the signed plan says {want}")]
    IndexMismatch { want: String, got: String },
    #[error("chunk {index} (bytes {start}..{end}) has sha256 {got}, the signed index says {want}")]
    ChunkMismatch { index: u64, start: u64, end: u64, want: String, got: String },
    #[error("chunk {index} is {got} bytes, the index says {want}")]
    ChunkLength { index: u64, want: u64, got: u64 },
    #[error("there is no chunk {index}: the file has {count}")]
    NoSuchChunk { index: u64, count: u64 },
}

/// The chunk hashes of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkIndex {
    chunk_size: u32,
    size: u64,
    hashes: Vec<[u8; 32]>,
}

/// A chunk index made from a file, with the sha256 of the whole file
/// (computed on the same pass, so the caller can check it against the
/// image's manifest before trusting the index).
#[derive(Debug, Clone)]
pub struct Indexed {
    pub index: ChunkIndex,
    pub sha256: String,
}

impl ChunkIndex {
    /// Reads `r` to its end and indexes it in `chunk_size` pieces.
    pub fn build(mut r: impl Read, chunk_size: u32) -> io::Result<Indexed> {
        if !valid_chunk_size(chunk_size) {
            return Err(io::Error::other(ChunkError::BadChunkSize(chunk_size)));
        }
        let mut whole = Sha256::new();
        let mut hashes = Vec::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; chunk_size as usize];
        loop {
            let n = read_full(&mut r, &mut buf)?;
            if n == 0 {
                break;
            }
            whole.update(&buf[..n]);
            hashes.push(Sha256::digest(&buf[..n]).into());
            size += n as u64;
            if n < buf.len() {
                break;
            }
        }
        Ok(Indexed {
            index: ChunkIndex { chunk_size, size, hashes },
            sha256: hex(&whole.finalize()),
        })
    }

    /// The canonical bytes (see the module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 32 * self.hashes.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        for h in &self.hashes {
            out.extend_from_slice(h);
        }
        out
    }

    /// Parses canonical bytes; anything else (trailing bytes, a count that
    /// does not match the size) is refused, so one index has one form.
    pub fn parse(bytes: &[u8]) -> Result<Self, ChunkError> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err(ChunkError::BadMagic);
        }
        let chunk_size = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        let size = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        if !valid_chunk_size(chunk_size) {
            return Err(ChunkError::BadChunkSize(chunk_size));
        }
        let want = encoded_len(size, chunk_size);
        let got = bytes.len() as u64;
        if want != got {
            return Err(ChunkError::BadLength { size, chunk_size, want, got });
        }
        let hashes =
            bytes[HEADER..].chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect();
        Ok(ChunkIndex { chunk_size, size, hashes })
    }

    /// Parses `bytes` only if their sha256 is `want_hash` (the signed
    /// plan's) and they index a file of `want_size` bytes.
    pub fn parse_signed(bytes: &[u8], want_hash: &str, want_size: u64) -> Result<Self, ChunkError> {
        let got = hex(&Sha256::digest(bytes));
        if !got.eq_ignore_ascii_case(want_hash) {
            return Err(ChunkError::IndexMismatch { want: want_hash.into(), got });
        }
        let index = Self::parse(bytes)?;
        if index.size != want_size {
            return Err(ChunkError::WrongSize { want: want_size, got: index.size });
        }
        Ok(index)
    }

    /// Lowercase hex sha256 of [`Self::to_bytes`]: what the plan carries.
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.to_bytes()))
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Bytes in the whole file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of chunks.
    pub fn count(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// The bytes of the file chunk `index` covers.
    pub fn range(&self, index: u64) -> Result<Range<u64>, ChunkError> {
        if index >= self.count() {
            return Err(ChunkError::NoSuchChunk { index, count: self.count() });
        }
        let start = index * u64::from(self.chunk_size);
        Ok(start..(start + u64::from(self.chunk_size)).min(self.size))
    }

    /// Checks the bytes of chunk `index`, wherever they came from.
    pub fn check(&self, index: u64, bytes: &[u8]) -> Result<(), ChunkError> {
        let mut c = self.checker(index)?;
        c.update(bytes);
        c.finish()
    }

    /// An incremental check of chunk `index`: feed its bytes as they
    /// arrive, then [`ChunkCheck::finish`].
    pub fn checker(&self, index: u64) -> Result<ChunkCheck<'_>, ChunkError> {
        let range = self.range(index)?;
        Ok(ChunkCheck { index: self, n: index, range, hash: Sha256::new(), len: 0 })
    }
}

/// One chunk being checked as its bytes arrive.
pub struct ChunkCheck<'a> {
    index: &'a ChunkIndex,
    n: u64,
    range: Range<u64>,
    hash: Sha256,
    len: u64,
}

impl ChunkCheck<'_> {
    pub fn update(&mut self, bytes: &[u8]) {
        self.hash.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes the chunk still needs.
    pub fn missing(&self) -> u64 {
        (self.range.end - self.range.start).saturating_sub(self.len)
    }

    /// The chunk's place in the file.
    pub fn range(&self) -> Range<u64> {
        self.range.clone()
    }

    pub fn finish(self) -> Result<(), ChunkError> {
        let want_len = self.range.end - self.range.start;
        if self.len != want_len {
            return Err(ChunkError::ChunkLength { index: self.n, want: want_len, got: self.len });
        }
        let got: [u8; 32] = self.hash.finalize().into();
        let want = &self.index.hashes[self.n as usize];
        if &got != want {
            return Err(ChunkError::ChunkMismatch {
                index: self.n,
                start: self.range.start,
                end: self.range.end,
                want: hex(want),
                got: hex(&got),
            });
        }
        Ok(())
    }
}

fn valid_chunk_size(c: u32) -> bool {
    c.is_power_of_two() && (MIN_CHUNK..=MAX_CHUNK).contains(&c)
}

/// Length of the canonical bytes of an index of a `size`-byte file.
pub fn encoded_len(size: u64, chunk_size: u32) -> u64 {
    HEADER as u64 + 32 * size.div_ceil(u64::from(chunk_size.max(1)))
}

/// Fills `buf` unless the reader ends first; returns the bytes read (fewer
/// than `buf.len()` only at the end). The index and the agent's chunk
/// stream both read whole chunks with it.
pub fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_images_get_smaller_chunks_down_to_64_kib() {
        assert_eq!(chunk_size_for(665 << 20), CHUNK_SIZE);
        assert_eq!(chunk_size_for(128 << 20), CHUNK_SIZE);
        assert_eq!(chunk_size_for(127 << 20), CHUNK_SIZE / 2);
        assert_eq!(chunk_size_for(16 << 20), 128 << 10);
        assert_eq!(chunk_size_for(1 << 20), 64 << 10);
        assert_eq!(chunk_size_for(0), 64 << 10);
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn round_trip_and_hash_are_canonical() {
        let d = data(3 * 4096 + 17);
        let made = ChunkIndex::build(&d[..], 4096).unwrap();
        assert_eq!(made.sha256, hex(&Sha256::digest(&d)));
        let idx = made.index;
        assert_eq!((idx.count(), idx.size()), (4, d.len() as u64));
        let bytes = idx.to_bytes();
        assert_eq!(bytes.len() as u64, encoded_len(d.len() as u64, 4096));
        assert_eq!(ChunkIndex::parse(&bytes).unwrap(), idx);
        let signed = ChunkIndex::parse_signed(&bytes, &idx.hash(), d.len() as u64).unwrap();
        assert_eq!(signed, idx);
        assert_eq!(idx.range(3).unwrap(), 3 * 4096..d.len() as u64);
    }

    #[test]
    fn every_chunk_checks_and_one_altered_byte_is_named() {
        let mut d = data(5 * 4096);
        let idx = ChunkIndex::build(&d[..], 4096).unwrap().index;
        for n in 0..idx.count() {
            let r = idx.range(n).unwrap();
            idx.check(n, &d[r.start as usize..r.end as usize]).unwrap();
        }
        d[2 * 4096 + 5] ^= 1;
        let e = idx.check(2, &d[2 * 4096..3 * 4096]).unwrap_err();
        assert!(matches!(e, ChunkError::ChunkMismatch { index: 2, start: 8192, end: 12288, .. }));
        let e = idx.check(2, &d[2 * 4096..3 * 4096 - 1]).unwrap_err();
        assert!(matches!(e, ChunkError::ChunkLength { index: 2, want: 4096, got: 4095 }), "{e}");
        assert!(matches!(idx.check(5, b""), Err(ChunkError::NoSuchChunk { index: 5, count: 5 })));
    }

    #[test]
    fn malformed_or_unsigned_indexes_are_refused() {
        let idx = ChunkIndex::build(&data(10_000)[..], 4096).unwrap().index;
        let bytes = idx.to_bytes();
        assert_eq!(ChunkIndex::parse(&bytes[..19]), Err(ChunkError::BadMagic));
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(matches!(ChunkIndex::parse(&extra), Err(ChunkError::BadLength { .. })));
        let mut odd = bytes.clone();
        odd[8..12].copy_from_slice(&5000u32.to_le_bytes());
        assert_eq!(ChunkIndex::parse(&odd), Err(ChunkError::BadChunkSize(5000)));
        let mut other = bytes.clone();
        other[30] ^= 1;
        let e = ChunkIndex::parse_signed(&other, &idx.hash(), 10_000).unwrap_err();
        assert!(matches!(e, ChunkError::IndexMismatch { .. }));
        let e = ChunkIndex::parse_signed(&bytes, &idx.hash(), 9_999).unwrap_err();
        assert_eq!(e, ChunkError::WrongSize { want: 9_999, got: 10_000 });
    }

    #[test]
    fn an_empty_file_has_no_chunks() {
        let idx = ChunkIndex::build(&b""[..], CHUNK_SIZE).unwrap().index;
        assert_eq!(idx.count(), 0);
        assert_eq!(ChunkIndex::parse(&idx.to_bytes()).unwrap(), idx);
    }
}
