//! The initramfs compressor: zstd level 19, which the kernels the CD boots
//! unpack (CONFIG_RD_ZSTD) about as fast as gzip (~0.7 s for 25 MB under
//! TCG, measured), for the smallest CD that does not slow the boot: the
//! same archive is 8.4 MB with gzip -6, 7.1 MB with zstd -9 and 6.4 MB with
//! zstd -19. xz would give 5.9 MB, but the kernel takes 3.6 s to unpack it
//! under TCG instead of 0.7 s (issue 17).
//!
//! Level 19 costs ~10 s for the modules on this machine, so the archive is
//! written as parts, each its own cpio archive in its own zstd frame (the
//! kernel unpacks such a concatenation one part after the other, as it does
//! Debian's microcode + main archive): the parts that repeat from build to
//! build (the kernel's modules, the agent) are compressed once and kept in
//! a cache under the hash of their bytes; only the few baked files are
//! compressed on every build.
//!
//! One thread, a fixed level: zstd's output depends on its parameters, so
//! every build of the same bytes gives the same frame, cached or not.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{InitramfsError, Phase, Progress};

pub(crate) const LEVEL: i32 = 19;
/// Input fed per call, for the progress bar.
const STEP: usize = 1 << 20;
/// Names the cache files: a change of level or format makes new ones.
const CACHE_TAG: &[u8] = b"lazare initramfs part, zstd 19, one thread, checksum";

/// Writes `data` zstd-compressed (one frame, with its checksum, which the
/// kernel checks) to `out`; returns the compressed size.
pub(crate) fn compress(
    data: &[u8],
    dict: &[u8],
    out: &mut dyn Write,
    progress: &mut dyn FnMut(Progress),
) -> Result<u64, InitramfsError> {
    let mut counted = Counted { inner: out, bytes: 0 };
    let mut encoder = zstd::stream::Encoder::with_dictionary(&mut counted, LEVEL, dict)
        .map_err(InitramfsError::Write)?;
    encoder.include_checksum(true).map_err(InitramfsError::Write)?;
    encoder.set_pledged_src_size(Some(data.len() as u64)).map_err(InitramfsError::Write)?;
    let mut done = 0u64;
    for piece in data.chunks(STEP) {
        encoder.write_all(piece).map_err(InitramfsError::Write)?;
        done += piece.len() as u64;
        progress(Progress { phase: Phase::Compress, done, total: data.len() as u64 });
    }
    encoder.finish().map_err(InitramfsError::Write)?;
    Ok(counted.bytes)
}

/// [`compress`], through the cache in `cache` when there is one: a cached
/// frame is used only if it decompresses to exactly `data` (a few tens of
/// milliseconds against seconds), so a damaged or foreign cache file costs
/// time, never a wrong CD. A cache that cannot be written is skipped.
pub(crate) fn compress_cached(
    data: &[u8],
    dict: &[u8],
    cache: Option<&Path>,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(Progress),
) -> Result<u64, InitramfsError> {
    let Some(dir) = cache else {
        return compress(data, dict, out, progress);
    };
    let mut key = Sha256::new();
    key.update(CACHE_TAG);
    key.update(data);
    if !dict.is_empty() {
        key.update(b"dictionary");
        key.update(dict);
    }
    let path = dir.join(format!("{}.zst", lazare_proto::hex(&key.finalize())));
    if let Ok(frame) = std::fs::read(&path) {
        if decode(&frame, dict).is_ok_and(|d| d == data) {
            out.write_all(&frame).map_err(InitramfsError::Write)?;
            return Ok(frame.len() as u64);
        }
    }
    let mut frame = Vec::new();
    let size = compress(data, dict, &mut frame, progress)?;
    store(dir, &path, &frame);
    out.write_all(&frame).map_err(InitramfsError::Write)?;
    Ok(size)
}

fn decode(frame: &[u8], dict: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut zstd::stream::read::Decoder::with_dictionary(frame, dict)?,
        &mut out,
    )?;
    Ok(out)
}

/// Writes a cache file whole or not at all (temp file, then rename).
fn store(dir: &Path, path: &Path, frame: &[u8]) {
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(frame)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    // The cache only saves time: the build goes on without it.
    let _ = write();
}

struct Counted<'a> {
    inner: &'a mut dyn Write,
    bytes: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| b"lazare initramfs "[i % 17] ^ ((i / 4099) as u8 & 7)).collect()
    }

    #[test]
    fn round_trips_and_is_reproducible() {
        for len in [0, 1, STEP + 1, 3 * STEP + 12345] {
            let data = sample(len);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let size = compress(&data, &[], &mut a, &mut |_| {}).unwrap();
            compress(&data, &[], &mut b, &mut |_| {}).unwrap();
            assert_eq!(size, a.len() as u64);
            assert_eq!(a, b, "length {len}: two builds differ");
            assert_eq!(zstd::decode_all(&a[..]).unwrap(), data, "length {len}");
        }
    }

    #[test]
    fn progress_reaches_the_total_in_order() {
        let data = sample(3 * STEP + 7);
        let mut seen = Vec::new();
        compress(&data, &[], &mut Vec::new(), &mut |p| seen.push(p.done)).unwrap();
        assert_eq!(seen.len(), 4);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*seen.last().unwrap(), data.len() as u64);
    }

    #[test]
    fn the_cache_gives_the_same_frame_and_a_damaged_entry_is_redone() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(2 * STEP + 99);
        let mut direct = Vec::new();
        compress(&data, &[], &mut direct, &mut |_| {}).unwrap();

        let mut calls = 0;
        let mut first = Vec::new();
        compress_cached(&data, &[], Some(dir.path()), &mut first, &mut |_| calls += 1).unwrap();
        assert_eq!(first, direct);
        assert!(calls > 0, "a miss compresses");
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);

        calls = 0;
        let mut second = Vec::new();
        compress_cached(&data, &[], Some(dir.path()), &mut second, &mut |_| calls += 1).unwrap();
        assert_eq!((second, calls), (direct.clone(), 0), "a hit compresses nothing");

        // A cache file with other content (damaged, or a hash collision)
        // is not trusted: the part is compressed again.
        std::fs::write(files[0].path(), b"not a zstd frame").unwrap();
        let mut third = Vec::new();
        compress_cached(&data, &[], Some(dir.path()), &mut third, &mut |_| calls += 1).unwrap();
        assert_eq!(third, direct);
        assert!(calls > 0);
        assert_eq!(std::fs::read(files[0].path()).unwrap(), direct, "the entry is mended");
    }
}
