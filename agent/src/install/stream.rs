//! Image streaming: chunk index → download → check each chunk → decompress →
//! untar, concurrently and in constant memory.
//!
//! First the image's chunk index (`<url>.chunks`) is fetched and checked
//! against the hash in the signed plan. A download thread then reads the
//! image one index chunk (1 MiB) at a time and hands a chunk on only once
//! its sha256 matched: a tampered chunk stops the install before a byte of
//! it is decompressed, so nothing of it reaches a disk. The bounded channel
//! holds [`CHUNKS_IN_FLIGHT`] chunks (a few MiB, whatever the image size, so
//! it runs in 256 MB of RAM); the calling thread decompresses into a second
//! channel of 64 KiB pieces and an untar thread unpacks.
//!
//! A network cut drops the partial chunk and resumes with `Range: bytes=N-`
//! from the last good chunk boundary; a server that ignores Range is read
//! again from the start, skipping what was already unpacked. Chunks are
//! checked by index, whatever sent them: the same check serves a mirror, a
//! peer or a USB stick later.

use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Duration;

use lazare_proto::{
    encoded_len, read_full, ChunkError, ChunkIndex, ImageFormat, ImageRef, INDEX_SUFFIX,
};

use super::untar;

/// Piece size of the decompressed channel.
const CHUNK: usize = 64 * 1024;
const DEPTH: usize = 16;
/// Checked index chunks queued for the decompressor.
const CHUNKS_IN_FLIGHT: usize = 2;
/// Smallest chunk size an index may use: caps what is read as an index.
const MIN_INDEX_CHUNK: u32 = 4096;

/// Where bytes come from: HTTP in the agent (see [`UreqFetch`]); anything
/// that can start a body at an offset.
pub trait Fetch: Send + Sync {
    /// GETs `url` starting at byte `offset`. Returns the offset the body
    /// really starts at: `offset` when the server honoured the Range, 0 when
    /// it sent the whole file.
    fn get(&self, url: &str, offset: u64) -> io::Result<(u64, Box<dyn Read + Send>)>;

    /// The last body sent a chunk that failed the signed index. True if
    /// this fetcher has another source to go on from (the room's engine
    /// drops itself for the server, see room.rs); false (the default) ends
    /// the install: the server itself sent it.
    fn distrust(&self) -> bool {
        false
    }
}

/// Plain-HTTP fetcher on ureq with timeouts, so a dead link is noticed.
pub struct UreqFetch {
    agent: ureq::Agent,
}

impl Default for UreqFetch {
    fn default() -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(30))
            .build();
        UreqFetch { agent }
    }
}

impl UreqFetch {
    /// Uses the agent's own ureq agent (its resolver, TLS roots, timeouts).
    pub fn new(agent: ureq::Agent) -> Self {
        UreqFetch { agent }
    }
}

impl Fetch for UreqFetch {
    fn get(&self, url: &str, offset: u64) -> io::Result<(u64, Box<dyn Read + Send>)> {
        let mut req = self.agent.get(url);
        if offset > 0 {
            req = req.set("Range", &format!("bytes={offset}-"));
        }
        let resp = req.call().map_err(|e| io::Error::other(format!("GET {url}: {e}")))?;
        let start = if resp.status() == 206 { offset } else { 0 };
        Ok((start, Box::new(resp.into_reader())))
    }
}

/// What the pipeline tells its caller as it goes.
pub trait Progress {
    /// Percent of the compressed image received and unpacked.
    fn percent(&self, pct: u8);
    /// A recoverable problem (network cut, retry).
    fn warn(&self, line: &str);
}

/// Why streaming failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    #[error("downloading the image failed after {tries} tries: {last}")]
    Download { tries: u32, last: String },
    #[error("the server sent more than the {0} bytes the plan announced")]
    TooLong(u64),
    #[error("downloading the image's chunk index failed after {tries} tries: {last}")]
    IndexDownload { tries: u32, last: String },
    #[error("the image's chunk index does not match the signed plan: {0}: refusing it")]
    Index(#[source] ChunkError),
    #[error("the image does not match the signed plan: {0}: refusing it")]
    Chunk(#[source] ChunkError),
    #[error("unpacking the image failed: {0}")]
    Unpack(#[source] io::Error),
}

/// Retry policy for network cuts.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub tries: u32,
    pub first_wait: Duration,
}

impl Default for Retry {
    /// ~10 minutes of backoff in all: a switch rebooting or a cable
    /// re-plugged is survived, a server gone for the day is reported.
    fn default() -> Self {
        Retry { tries: 20, first_wait: Duration::from_secs(1) }
    }
}

enum Msg {
    /// One whole chunk whose sha256 matched the index.
    Data(Vec<u8>),
    Warn(String),
    /// Download finished (every chunk checked), or why it failed.
    Done(Result<(), StreamError>),
}

/// Streams `image` from `url` into the directory `root`, every chunk checked
/// against the index the plan signs. Returns that index. On an error the
/// tree in `root` holds only what checked chunks before the failure made,
/// but is incomplete: the caller makes the target unbootable.
pub fn stream(
    fetch: &dyn Fetch,
    url: &str,
    image: &ImageRef,
    root: &Path,
    retry: Retry,
    progress: &dyn Progress,
) -> Result<ChunkIndex, StreamError> {
    let index = fetch_index(fetch, &format!("{url}{INDEX_SUFFIX}"), image, retry, progress)?;
    let (tx, rx) = sync_channel::<Msg>(CHUNKS_IN_FLIGHT);
    std::thread::scope(|s| {
        let index = &index;
        s.spawn(move || {
            let done = download(fetch, url, index, retry, &tx);
            let _ = tx.send(Msg::Done(done));
        });
        let mut reader = ChannelReader::new(rx, image.size, progress);
        let unpacked = unpack(&mut reader, image.format, root);
        // Check every chunk, even past the tar's end-of-archive blocks.
        let drained = unpacked.and_then(|()| io::copy(&mut reader, &mut io::sink()).map(drop));
        let outcome = reader.outcome.take();
        // Dropping the reader drops the receiver: the download thread stops.
        drop(reader);
        match (outcome, drained) {
            (Some(Err(e)), _) => Err(e),
            (_, Err(e)) => Err(StreamError::Unpack(e)),
            (Some(Ok(())), Ok(())) => Ok(()),
            (None, Ok(())) => Err(StreamError::Unpack(io::Error::other("download ended silently"))),
        }
    })?;
    Ok(index)
}

/// Fetches the chunk index and checks it against the signed plan (its
/// hash and the image size), with the same retries as the image.
fn fetch_index(
    fetch: &dyn Fetch,
    url: &str,
    image: &ImageRef,
    retry: Retry,
    progress: &dyn Progress,
) -> Result<ChunkIndex, StreamError> {
    // No honest index is longer than one of 4 KiB chunks.
    let cap = encoded_len(image.size, MIN_INDEX_CHUNK);
    let bytes = fetch_small(fetch, url, cap, "the image's chunk index", retry, progress)
        .map_err(|(tries, last)| StreamError::IndexDownload { tries, last })?;
    ChunkIndex::parse_signed(&bytes, &image.chunks, image.size).map_err(StreamError::Index)
}

/// GETs a small file whole (at most `cap + 1` bytes are read, so a longer
/// one shows as too long to its checker), with the image's retries: on
/// failure, the tries made and the last error.
pub(crate) fn fetch_small(
    fetch: &dyn Fetch,
    url: &str,
    cap: u64,
    what: &str,
    retry: Retry,
    progress: &dyn Progress,
) -> Result<Vec<u8>, (u32, String)> {
    let mut wait = retry.first_wait;
    let mut tries = 0;
    loop {
        let got = fetch.get(url, 0).and_then(|(_, body)| {
            let mut bytes = Vec::new();
            body.take(cap + 1).read_to_end(&mut bytes)?;
            Ok(bytes)
        });
        match got {
            Ok(bytes) => return Ok(bytes),
            Err(e) => {
                tries += 1;
                if tries >= retry.tries {
                    return Err((tries, e.to_string()));
                }
                progress.warn(&format!(
                    "network problem fetching {what} ({e}); retrying in {}s",
                    wait.as_secs()
                ));
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// Decompresses on this thread and untars on another, joined by a bounded
/// channel: on an old CPU both are busy, and one thread doing both ran at
/// half the speed of `curl | tar --zstd` (bench/run.sh).
fn unpack(reader: &mut dyn Read, format: ImageFormat, root: &Path) -> io::Result<()> {
    let reader = io::BufReader::with_capacity(CHUNK, reader);
    let mut dec: Box<dyn Read + '_> = match format {
        ImageFormat::TarZst => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(reader)?;
            // The window is the decoder's big allocation: 32 MiB at most, so
            // a 256 MB PC cannot be pushed out of memory (zstd -19 uses 8 MiB;
            // `--long`/`--ultra` images are refused with a clear error).
            dec.window_log_max(25)?;
            Box::new(dec)
        }
        ImageFormat::TarGz => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
    };
    let (tx, rx) = sync_channel::<Vec<u8>>(DEPTH);
    std::thread::scope(|s| {
        let untar = s.spawn(move || {
            let mut tar = PipeReader { rx, buf: Vec::new(), at: 0 };
            untar::unpack(&mut tar, root)?;
            // Past the end-of-archive blocks: keep the decompressor flowing.
            io::copy(&mut tar, &mut io::sink()).map(drop)
        });
        let pumped = pump(&mut dec, &tx);
        drop(tx);
        let untarred = untar.join().unwrap_or_else(|_| Err(io::Error::other("unpacking panicked")));
        match (pumped, untarred) {
            // The untar thread stopped first: its error is the cause.
            (Err(p), Err(u)) if p.kind() == io::ErrorKind::BrokenPipe => Err(u),
            // Decompression (or the download) failed: the untar side only
            // saw a truncated archive.
            (Err(p), _) => Err(p),
            (Ok(()), u) => u,
        }
    })
}

/// Reads `dec` to its end in 64 KiB chunks into the channel.
fn pump(dec: &mut dyn Read, tx: &SyncSender<Vec<u8>>) -> io::Result<()> {
    loop {
        let mut chunk = vec![0; CHUNK];
        let n = dec.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        chunk.truncate(n);
        tx.send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "unpacking stopped"))?;
    }
}

/// The untar side of the decompressed channel.
struct PipeReader {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    at: usize,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buf.len() {
            match self.rx.recv() {
                Ok(d) => (self.buf, self.at) = (d, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Downloads the image chunk by chunk, resuming after cuts from the last
/// good chunk boundary; sends each chunk once it matched the index.
fn download(
    fetch: &dyn Fetch,
    url: &str,
    index: &ChunkIndex,
    retry: Retry,
    tx: &SyncSender<Msg>,
) -> Result<(), StreamError> {
    let size = index.size();
    let mut have = 0u64;
    let mut failures = 0u32;
    let mut wait = retry.first_wait;
    // Failures in a row count, not all of them: a long install over a
    // link cut now and then (or a room's engine waiting on a piece) that
    // moves on between cuts is not given up.
    let mut at_failure = 0u64;
    loop {
        let err = match fetch.get(url, have) {
            Ok((start, body)) => match copy_body(body, start, &mut have, index, tx) {
                Ok(true) => return Ok(()),
                Ok(false) => format!("connection closed at byte {have} of {size}"),
                Err(Stop::Receiver) => {
                    return Err(StreamError::Unpack(io::Error::other("unpacking stopped")))
                }
                Err(Stop::TooLong) => return Err(StreamError::TooLong(size)),
                Err(Stop::Bad(e)) if !fetch.distrust() => return Err(StreamError::Chunk(e)),
                Err(Stop::Bad(e)) => format!("{e}: going on from the server alone"),
                Err(Stop::Io(e)) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if have > at_failure {
            (failures, wait, at_failure) = (0, retry.first_wait, have);
        }
        failures += 1;
        if failures >= retry.tries {
            return Err(StreamError::Download { tries: failures, last: err });
        }
        let line =
            format!("network problem ({err}); retrying in {}s from byte {have}", wait.as_secs());
        if tx.send(Msg::Warn(line)).is_err() {
            return Err(StreamError::Unpack(io::Error::other("unpacking stopped")));
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

enum Stop {
    Receiver,
    TooLong,
    Bad(ChunkError),
    Io(io::Error),
}

/// Copies one response body. `start` is where the body begins in the file:
/// bytes before `have` (a chunk boundary) were already sent and are
/// skipped. Each chunk is read whole into its own buffer, checked, and
/// moved into the channel: the hash is the only extra pass over the bytes.
/// Ok(true) when the whole file is in, Ok(false) when the body ended early
/// (the partial chunk is dropped).
fn copy_body(
    mut body: Box<dyn Read + Send>,
    start: u64,
    have: &mut u64,
    index: &ChunkIndex,
    tx: &SyncSender<Msg>,
) -> Result<bool, Stop> {
    let skip = have.saturating_sub(start);
    let skipped = io::copy(&mut (&mut body).take(skip), &mut io::sink()).map_err(Stop::Io)?;
    if skipped < skip {
        return Ok(false);
    }
    let size = u64::from(index.chunk_size());
    loop {
        if *have == index.size() {
            // Everything the index covers is in: the body must end here.
            let mut extra = [0u8; 1];
            return match read_full(&mut body, &mut extra).map_err(Stop::Io)? {
                0 => Ok(true),
                _ => Err(Stop::TooLong),
            };
        }
        let n = *have / size;
        let range = index.range(n).map_err(Stop::Bad)?;
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        if read_full(&mut body, &mut buf).map_err(Stop::Io)? < buf.len() {
            return Ok(false);
        }
        index.check(n, &buf).map_err(Stop::Bad)?;
        *have = range.end;
        tx.send(Msg::Data(buf)).map_err(|_| Stop::Receiver)?;
    }
}

/// The unpack side of the channel as a `Read`.
struct ChannelReader<'a> {
    rx: Receiver<Msg>,
    buf: Vec<u8>,
    at: usize,
    got: u64,
    size: u64,
    last_pct: Option<u8>,
    progress: &'a dyn Progress,
    outcome: Option<Result<(), StreamError>>,
}

impl<'a> ChannelReader<'a> {
    fn new(rx: Receiver<Msg>, size: u64, progress: &'a dyn Progress) -> Self {
        ChannelReader {
            rx,
            buf: Vec::new(),
            at: 0,
            got: 0,
            size,
            last_pct: None,
            progress,
            outcome: None,
        }
    }
}

impl Read for ChannelReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buf.len() {
            if self.outcome.is_some() {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Msg::Data(d)) => {
                    self.got += d.len() as u64;
                    self.buf = d;
                    self.at = 0;
                    let pct = (self.got * 100).checked_div(self.size).unwrap_or(100).min(100) as u8;
                    if self.last_pct != Some(pct) {
                        self.last_pct = Some(pct);
                        self.progress.percent(pct);
                    }
                }
                Ok(Msg::Warn(w)) => self.progress.warn(&w),
                Ok(Msg::Done(r)) => {
                    let failed = r.is_err();
                    self.outcome = Some(r);
                    if failed {
                        return Err(io::Error::other("the download failed"));
                    }
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
