//! cpio newc through the `cpio` crate, and a reader for whole initramfs
//! images: the kernel accepts several archives one after the other, each raw
//! or compressed, with zero padding between them (Debian prepends an
//! uncompressed microcode archive to a zstd one, for instance).

use std::io::{Cursor, Read, Write};

use super::InitramfsError;

/// One entry read back from an initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioEntry {
    /// Absolute path (`/init`), whatever spelling the archive used
    /// (`init`, `./init`).
    pub path: String,
    /// Full st_mode (file type and permissions).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
    /// Device number of a character or block special file.
    pub rdev: (u32, u32),
    /// File contents, or the target of a symlink.
    pub data: Vec<u8>,
}

pub(crate) fn write_entry(
    out: &mut Vec<u8>,
    header: ::cpio::newc::Builder,
    data: &[u8],
) -> Result<(), InitramfsError> {
    // Writing into a Vec: the crate's flush() per entry costs nothing here
    // (on a gzip stream it would force a sync flush per file).
    let mut writer = header.write(out, data.len() as u32);
    writer.write_all(data).map_err(InitramfsError::Write)?;
    writer.finish().map_err(InitramfsError::Write)?;
    Ok(())
}

const NEWC_MAGIC: &[u8] = b"07070";

/// Reads every segment of an initramfs image.
pub(crate) fn read_segments(data: &[u8]) -> Result<Vec<CpioEntry>, InitramfsError> {
    let mut entries = Vec::new();
    let mut offset = 0usize;
    loop {
        // Segments are padded with zeros (to 4 or 512 bytes) between them.
        while data.get(offset) == Some(&0) {
            offset += 1;
        }
        let rest = &data[offset..];
        if rest.is_empty() {
            return Ok(entries);
        }
        if let Some(raw) =
            decompress(rest, MAX_UNCOMPRESSED).map_err(|e| archive_error(offset, e))?
        {
            // A compressed segment runs to the end of the image here; it may
            // itself hold several archives.
            let mut nested = 0;
            while nested < raw.len() {
                nested = read_archive(&raw, nested, &mut entries)?;
                while raw.get(nested) == Some(&0) {
                    nested += 1;
                }
            }
            return Ok(entries);
        }
        if rest.starts_with(NEWC_MAGIC) {
            offset = read_archive(data, offset, &mut entries)?;
            continue;
        }
        return Err(archive_error(offset, unknown_format(rest)));
    }
}

/// No initramfs is larger than the RAM of the PCs it boots: a segment that
/// inflates past this is refused rather than exhausting the host's memory.
const MAX_UNCOMPRESSED: u64 = 1 << 30;

/// Decompresses a gzip (all members), zstd (all frames) or xz segment;
/// `None` when `rest` is not compressed in one of those formats.
fn decompress(rest: &[u8], max: u64) -> Result<Option<Vec<u8>>, String> {
    let mut raw = Vec::new();
    let limit = max + 1;
    match rest {
        [0x1f, 0x8b, ..] => {
            flate2::read::MultiGzDecoder::new(rest)
                .take(limit)
                .read_to_end(&mut raw)
                .map_err(|e| format!("gzip: {e}"))?;
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            let mut input = rest;
            while input.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) && (raw.len() as u64) < limit {
                ruzstd::decoding::StreamingDecoder::new(&mut input)
                    .map_err(|e| format!("zstd: {e}"))?
                    .take(limit - raw.len() as u64)
                    .read_to_end(&mut raw)
                    .map_err(|e| format!("zstd: {e}"))?;
            }
        }
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            let mut out = LimitedWriter { out: &mut raw, left: limit };
            lzma_rs::xz_decompress(&mut &rest[..], &mut out).map_err(|e| format!("xz: {e}"))?;
        }
        _ => return Ok(None),
    }
    if raw.len() as u64 > max {
        return Err(format!("decompresses to more than {} MiB", max >> 20));
    }
    Ok(Some(raw))
}

/// A writer that fails once `left` bytes are exceeded.
struct LimitedWriter<'a> {
    out: &'a mut Vec<u8>,
    left: u64,
}

impl Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(std::io::Error::other("too large"));
        }
        self.left -= buf.len() as u64;
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn unknown_format(rest: &[u8]) -> String {
    let name = match rest {
        [0x5d, 0x00, 0x00, ..] => "lzma",
        [0x02, 0x21, 0x4c, 0x18, ..] => "lz4",
        [b'B', b'Z', b'h', ..] => "bzip2",
        [0x89, b'L', b'Z', b'O', ..] => "lzo",
        _ => return "neither cpio newc nor gzip, zstd or xz".into(),
    };
    format!("{name}-compressed segment: only gzip, zstd, xz and raw cpio are read")
}

fn archive_error(offset: usize, message: String) -> InitramfsError {
    InitramfsError::Archive { offset: offset as u64, message }
}

/// Reads one cpio archive starting at `start` up to and including its
/// trailer; returns the offset after it.
fn read_archive(
    data: &[u8],
    start: usize,
    entries: &mut Vec<CpioEntry>,
) -> Result<usize, InitramfsError> {
    let mut cursor = Cursor::new(data);
    cursor.set_position(start as u64);
    loop {
        let at = cursor.position() as usize;
        let mut reader = ::cpio::NewcReader::new(cursor)
            .map_err(|e| archive_error(at, format!("cpio header: {e}")))?;
        let entry = reader.entry();
        if entry.is_trailer() {
            let cursor = reader.finish().map_err(|e| archive_error(at, e.to_string()))?;
            return Ok(cursor.position() as usize);
        }
        let mut item = CpioEntry {
            path: absolute(entry.name()),
            mode: entry.mode(),
            uid: entry.uid(),
            gid: entry.gid(),
            mtime: entry.mtime(),
            rdev: (entry.rdev_major(), entry.rdev_minor()),
            data: Vec::new(),
        };
        reader
            .read_to_end(&mut item.data)
            .map_err(|e| archive_error(at, format!("{}: {e}", item.path)))?;
        cursor = reader.finish().map_err(|e| archive_error(at, format!("{}: {e}", item.path)))?;
        if item.path != "/" {
            entries.push(item);
        }
    }
}

fn absolute(name: &str) -> String {
    let trimmed = name.trim_start_matches("./").trim_start_matches('/');
    if trimmed == "." {
        return "/".into();
    }
    format!("/{trimmed}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(names: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for name in names {
            let header = ::cpio::newc::Builder::new(name).mode(0o100644);
            write_entry(&mut out, header, name.as_bytes()).unwrap();
        }
        ::cpio::newc::trailer(&mut out).unwrap();
        out
    }

    #[test]
    fn reads_raw_then_gzip_segments_like_the_kernel() {
        let mut image = archive(&["./kernel/x86/microcode/a.bin", "."]);
        image.resize(image.len().div_ceil(512) * 512, 0);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&archive(&["init"])).unwrap();
        image.extend(gz.finish().unwrap());
        let entries = read_segments(&image).unwrap();
        let paths: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/kernel/x86/microcode/a.bin", "/init"]);
        assert_eq!(entries[1].data, b"init");
    }

    #[test]
    fn a_segment_inflating_past_the_cap_is_refused() {
        let zeros = vec![0u8; 3 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&zeros).unwrap();
        let gzip = gz.finish().unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &zeros[..], &mut xz).unwrap();
        for bomb in [gzip, xz] {
            let err = decompress(&bomb, 2 << 20).unwrap_err();
            assert!(err.contains("more than 2 MiB") || err.contains("too large"), "{err}");
            assert_eq!(decompress(&bomb, 3 << 20).unwrap().unwrap().len(), 3 << 20);
        }
    }

    #[test]
    fn truncated_and_foreign_data_are_errors() {
        let image = archive(&["init"]);
        let err = read_segments(&image[..image.len() - 20]).unwrap_err();
        assert!(matches!(err, InitramfsError::Archive { .. }), "{err}");
        let err = read_segments(&[0x28, 0xb5, 0x2f, 0xfd, 1, 2]).unwrap_err();
        assert!(err.to_string().contains("zstd"), "{err}");
        let err = read_segments(b"BZh91AY&SY").unwrap_err();
        assert!(err.to_string().contains("bzip2"), "{err}");
    }
}
