//! pigz-style parallel gzip: the input is cut into fixed-size chunks, each
//! deflated on its own thread with the previous 32 KiB as dictionary and
//! ended with a sync flush (an empty stored block that byte-aligns the
//! stream), so the chunks join into ONE valid deflate stream inside one gzip
//! member. The output depends only on the input, the level and CHUNK, never
//! on the number of threads: builds stay byte-for-byte reproducible.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

use super::{InitramfsError, Phase, Progress};

/// zlib's default level: level 9 costs about twice the time for ~2 % less.
pub(crate) const DEFAULT_LEVEL: u32 = 6;
/// Large enough that the per-chunk flush and dictionary priming cost < 0.1 %.
const CHUNK: usize = 1 << 20;
const WINDOW: usize = 32 * 1024;

/// Writes `data` gzip-compressed to `out`; returns the compressed size.
pub(crate) fn compress(
    data: &[u8],
    level: u32,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(Progress),
) -> Result<u64, InitramfsError> {
    let chunks: Vec<&[u8]> =
        if data.is_empty() { vec![data] } else { data.chunks(CHUNK).collect() };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(chunks.len());
    // Header: no file name, mtime 0 (reproducible), OS = Unix.
    let mut written: u64 = 10;
    out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]).map_err(InitramfsError::Write)?;
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    let mut crc = Crc::new();
    std::thread::scope(|scope| -> Result<(), InitramfsError> {
        for _ in 0..threads {
            let tx = tx.clone();
            let (chunks, next) = (&chunks, &next);
            scope.spawn(move || loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= chunks.len() {
                    break;
                }
                let dict = if index == 0 { &[][..] } else { window(chunks[index - 1]) };
                let last = index + 1 == chunks.len();
                let result = deflate_chunk(level, dict, chunks[index], last);
                if tx.send((index, result)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Chunks finish out of order; write them in order as they become ready.
        let mut ready: Vec<Option<(Vec<u8>, Crc)>> = (0..chunks.len()).map(|_| None).collect();
        let (mut emitted, mut done_bytes) = (0, 0u64);
        for (index, result) in rx {
            ready[index] = Some(result?);
            while let Some(Some((deflated, chunk_crc))) = ready.get_mut(emitted).map(Option::take) {
                out.write_all(&deflated).map_err(InitramfsError::Write)?;
                written += deflated.len() as u64;
                crc.combine(&chunk_crc);
                done_bytes += chunks[emitted].len() as u64;
                emitted += 1;
                progress(Progress {
                    phase: Phase::Compress,
                    done: done_bytes,
                    total: data.len() as u64,
                });
            }
        }
        Ok(())
    })?;
    let mut trailer = [0u8; 8];
    trailer[..4].copy_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the input length modulo 2^32 (RFC 1952).
    trailer[4..].copy_from_slice(&(data.len() as u32).to_le_bytes());
    out.write_all(&trailer).map_err(InitramfsError::Write)?;
    Ok(written + 8)
}

fn window(previous: &[u8]) -> &[u8] {
    &previous[previous.len().saturating_sub(WINDOW)..]
}

fn deflate_chunk(
    level: u32,
    dict: &[u8],
    chunk: &[u8],
    last: bool,
) -> Result<(Vec<u8>, Crc), InitramfsError> {
    let fail =
        |what: &str| InitramfsError::Write(std::io::Error::other(format!("deflate {what} failed")));
    let mut deflate = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        deflate.set_dictionary(dict).map_err(|_| fail("set_dictionary"))?;
    }
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(chunk.len() / 2 + 4096);
    loop {
        let consumed = deflate.total_in() as usize;
        let status = deflate
            .compress_vec(&chunk[consumed..], &mut out, flush)
            .map_err(|_| fail("compress"))?;
        let all_in = deflate.total_in() as usize == chunk.len();
        // zlib: a flush is complete when it returns with output space left.
        let finished =
            if last { status == Status::StreamEnd } else { all_in && out.len() < out.capacity() };
        if finished {
            break;
        }
        out.reserve(64 * 1024);
    }
    let mut crc = Crc::new();
    crc.update(chunk);
    Ok((out, crc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: text-like with a slow-changing pattern.
        (0..len).map(|i| b"lazare initramfs "[i % 17] ^ ((i / 4099) as u8 & 7)).collect()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut decoder = flate2::read::GzDecoder::new(data);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        // A single member: the single-member decoder consumed everything.
        assert_eq!(decoder.into_inner().len(), 0, "trailing data after the member");
        out
    }

    #[test]
    fn round_trips_through_a_standard_decoder() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            let data = sample(len);
            let mut out = Vec::new();
            let size = compress(&data, DEFAULT_LEVEL, &mut out, &mut |_| {}).unwrap();
            assert_eq!(size, out.len() as u64);
            assert_eq!(gunzip(&out), data, "length {len}");
        }
    }

    #[test]
    fn progress_reaches_the_total_in_order() {
        let data = sample(3 * CHUNK + 7);
        let mut seen = Vec::new();
        compress(&data, 1, &mut Vec::new(), &mut |p| seen.push(p.done)).unwrap();
        assert_eq!(seen.len(), 4);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*seen.last().unwrap(), data.len() as u64);
    }

    #[test]
    fn each_chunk_is_primed_with_the_previous_window() {
        // A random 16 KiB block: incompressible alone, nearly free when the
        // previous chunk's window (holding it) primes the compressor.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let block: Vec<u8> = (0..16 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let (alone, _) = deflate_chunk(DEFAULT_LEVEL, &[], &block, false).unwrap();
        let (primed, _) = deflate_chunk(DEFAULT_LEVEL, window(&block), &block, false).unwrap();
        assert!(alone.len() > block.len(), "{}", alone.len());
        assert!(primed.len() < 1024, "{}", primed.len());
        // And the joined stream decodes to the input.
        let data = block.repeat(3 * CHUNK / block.len());
        let mut out = Vec::new();
        compress(&data, DEFAULT_LEVEL, &mut out, &mut |_| {}).unwrap();
        assert_eq!(gunzip(&out), data);
    }
}
