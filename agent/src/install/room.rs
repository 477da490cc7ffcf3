//! The room (issue 15): the PCs installing at the same time share the
//! image with BitTorrent instead of each pulling it whole from the server.
//!
//! The engine, `lazare-share` (librqbit), is not on the CD: it does not fit
//! in its 20 MB. It is fetched once the target is mounted, from a PC of the
//! room that runs it (the tracker names one, so the server's link carries
//! it about once) or from the server, checked against the sha256 the
//! signed plan pins, and run from the target
//! disk, where it also keeps the pieces (nothing of the image sits in RAM).
//! It serves the image in order on loopback HTTP, so the agent's pipeline
//! is unchanged: [`RoomFetch`] hands the stream the engine's body instead of
//! the server's, and every chunk is still checked against the signed index
//! before a byte of it is unpacked. The engine checks each piece's SHA-1 as
//! it comes from a peer; a chunk that still fails the index (a forged
//! torrent) or an engine that stalls or dies sends the PC back to the
//! server's HTTP alone, from the last good chunk.
//!
//! The engine keeps serving pieces to the others while this PC unpacks and
//! configures; [`Engine::stop`] ends it before the target is unmounted.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use lazare_proto::{
    engine_port, hex, EngineSource, ImageRef, Room, ENGINE_FILE, ENGINE_SOURCE_PATH,
};
use sha2::{Digest, Sha256};

use super::stream::{fetch_small, Fetch, Progress, Retry};

/// Where on the mounted target the engine and its pieces live; removed
/// before the target is unmounted.
const ROOM_DIR: &str = "var/tmp/lazare-room";
/// The engine's peer port (each PC has its own address).
const PEER_PORT: u16 = 6881;
/// The engine's first line must come within this.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// Engine failures (a refused connection, a stalled or cut body) before
/// the PC goes on from the server alone.
const MAX_STRIKES: u32 = 2;
/// The engine serves the next piece within this, or the stream asks again;
/// it counts as a strike only if the engine got no piece at all meanwhile
/// (a room of 40 waits on the leader for a piece now and then; an engine
/// that reaches nobody gets nothing): a PC that cannot reach the tracker or
/// any peer loses about `MAX_STRIKES` times this before it goes on from the
/// server. 10 s was tried: at 40 PCs, 24 gave up on the room and their
/// HTTP downloads filled the server's link (`make bench-room`).
const STALL: Duration = Duration::from_secs(30);
/// How long a PC waits for another PC of the room to have the engine
/// before it takes it from the server anyway.
const ENGINE_WAIT: Duration = Duration::from_secs(60);
/// Between two questions to the tracker while it says to wait.
const ENGINE_POLL: Duration = Duration::from_millis(500);
/// Below this much RAM (MemTotal) the PC does not share: the engine's
/// ~12.5 MB would be taken from the unpacking. A 192 MB PC shows ~135 MiB
/// with the CD's kernel and had 84 MiB free at its lowest in an install
/// (`make bench`); a 256 MB PC, ~64 MiB more, shares (`make e2e-room`).
pub const MIN_MEM_KIB: u64 = 160 * 1024;

/// What the agent knows of the room before the install: the plan's part,
/// and where the engine and the tracker are.
pub struct RoomSetup<'a> {
    pub room: &'a Room,
    /// The engine's URL on the server ([`lazare_proto::ENGINE_PATH`]).
    pub engine_url: String,
    /// `http://IP:PORT/announce`: an address, not a name.
    pub tracker: String,
}

/// Why the room could not start (the install goes on from the server).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    #[error("the image has no torrent")]
    NoTorrent,
    #[error("{have} KiB of RAM, fewer than the {need} KiB sharing needs")]
    TooLittleRam { have: u64, need: u64 },
    #[error("fetching {what} failed after {tries} tries: {last}")]
    Fetch { what: &'static str, tries: u32, last: String },
    #[error("the engine does not match the signed plan (sha256 {got}, size {size})")]
    EngineMismatch { got: String, size: u64 },
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
    #[error("the engine did not start: {0}")]
    NotReady(String),
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> RoomError {
    move |e| RoomError::Io(what.to_string(), e)
}

/// A running engine.
pub struct Engine {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    dir: PathBuf,
    strikes: Arc<AtomicU32>,
    /// The engine's `have` when a stream last stalled.
    have: Arc<AtomicU64>,
    /// The PC of the room the engine came from (`None`: the server).
    pub from_peer: Option<SocketAddr>,
}

/// What the engine says of the sharing (its `GET /stats`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct Stats {
    /// From the room's other PCs.
    #[serde(default)]
    pub from_peers: u64,
    /// From the server's seed.
    #[serde(default)]
    pub from_server: u64,
    #[serde(default)]
    pub uploaded: u64,
    /// Bytes in good pieces on disk.
    #[serde(default)]
    pub have: u64,
    /// Set by the agent: the stream gave up on the engine.
    #[serde(skip)]
    pub dropped: bool,
}

/// What the engine is started for: the image, where it comes from, and
/// where the pieces go.
pub struct Download<'a> {
    pub image: &'a ImageRef,
    pub image_url: &'a str,
    /// The server's fetcher (the engine and the torrent come from it).
    pub fetch: &'a dyn Fetch,
    /// The mounted target: the engine and its pieces live there.
    pub target: &'a Path,
    pub retry: Retry,
    pub progress: &'a dyn Progress,
}

/// [`start`], or the line saying why not (the install goes on from the
/// server alone).
pub fn start_or_say(setup: &RoomSetup, d: &Download, log: &dyn Fn(&str)) -> Option<Engine> {
    match start(setup, d) {
        Ok(engine) => {
            log(&format!("sharing the image with the room ({})", engine.base));
            Some(engine)
        }
        Err(e) => {
            log(&format!("not sharing the image: {e}; downloading from the server alone"));
            None
        }
    }
}

/// Fetches and starts the engine for the image in the target.
fn start(setup: &RoomSetup, d: &Download) -> Result<Engine, RoomError> {
    let Download { image, image_url, fetch, target, retry, progress } = *d;
    let info_hash = image.torrent.as_deref().ok_or(RoomError::NoTorrent)?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let have = crate::procfs::kib(&meminfo, "MemTotal").unwrap_or(0);
    if have < MIN_MEM_KIB {
        return Err(RoomError::TooLittleRam { have, need: MIN_MEM_KIB });
    }
    let dir = target.join(ROOM_DIR);
    std::fs::create_dir_all(dir.join("store")).map_err(io_err(dir.display()))?;
    let (bytes, from_peer) = fetch_engine(setup, fetch, retry, progress)?;
    // Kept for the room's other PCs: this engine gives it to them.
    let served = dir.join(ENGINE_FILE);
    std::fs::write(&served, &bytes).map_err(io_err(served.display()))?;
    let exe = dir.join("lazare-share");
    let plain = zstd::decode_all(&bytes[..]).map_err(io_err("decompressing the engine"))?;
    drop(bytes);
    write_executable(&exe, &plain)?;
    drop(plain);
    // The torrent is checked by the engine (its info hash against the
    // plan's); its pieces by the index after that.
    let torrent_url = format!("{image_url}{}", lazare_proto::TORRENT_SUFFIX);
    let cap = 64 * 1024 + image.size.div_ceil(1 << 20) * 20;
    let torrent = fetch_small(fetch, &torrent_url, cap, "the image's torrent", retry, progress)
        .map_err(|(tries, last)| RoomError::Fetch { what: "the image's torrent", tries, last })?;
    let torrent_path = dir.join("image.torrent");
    std::fs::write(&torrent_path, torrent).map_err(io_err(torrent_path.display()))?;
    let log = std::fs::File::create(dir.join("engine.log")).map_err(io_err("engine.log"))?;
    let mut child = Command::new(&exe)
        .arg("fetch")
        .arg("--torrent")
        .arg(&torrent_path)
        .arg("--info-hash")
        .arg(info_hash)
        .arg("--store")
        .arg(dir.join("store"))
        .args(["--peer-port", &PEER_PORT.to_string(), "--http", "127.0.0.1:0"])
        .arg("--engine-file")
        .arg(&served)
        .args(["--engine-listen", &format!("0.0.0.0:{}", engine_port(PEER_PORT))])
        .args(["--tracker", &setup.tracker])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(io_err(exe.display()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (strikes, have) = (Arc::default(), Arc::default());
    let mut engine = Engine { child, base: String::new(), dir, strikes, have, from_peer };
    match ready_line(stdout) {
        Ok(base) => engine.base = base,
        Err(why) => {
            let tail = engine.log_tail();
            engine.stop();
            return Err(RoomError::NotReady(format!("{why}; {tail}")));
        }
    }
    Ok(engine)
}

/// The engine as the plan pins it: from the PC of the room the tracker
/// names ([`EngineSource`]), or from the server when the tracker says so,
/// when that PC fails or sends something else, or after [`ENGINE_WAIT`].
fn fetch_engine(
    setup: &RoomSetup,
    fetch: &dyn Fetch,
    retry: Retry,
    progress: &dyn Progress,
) -> Result<(Vec<u8>, Option<SocketAddr>), RoomError> {
    const WHAT: &str = "the room's engine";
    let pin = &setup.room.engine;
    let check = |bytes: &[u8]| {
        let got = hex(&Sha256::digest(bytes));
        match got == pin.sha256 && bytes.len() as u64 == pin.size {
            true => Ok(()),
            false => Err(RoomError::EngineMismatch { got, size: bytes.len() as u64 }),
        }
    };
    let ask = setup.tracker.strip_suffix("/announce").map(|b| format!("{b}{ENGINE_SOURCE_PATH}"));
    let asked = Instant::now();
    while let Some(url) = &ask {
        let once = Retry { tries: 1, ..retry };
        let answer = fetch_small(fetch, url, 256, "the tracker's answer", once, progress)
            .ok()
            .and_then(|b| EngineSource::parse(&String::from_utf8_lossy(&b)));
        match answer {
            Some(EngineSource::Peer(addr)) => {
                let url = EngineSource::peer_url(addr);
                let got = fetch_small(fetch, &url, pin.size, WHAT, once, progress)
                    .map_err(|(_, last)| last)
                    .and_then(|b| check(&b).map(|()| b).map_err(|e| e.to_string()));
                match got {
                    Ok(bytes) => return Ok((bytes, Some(addr))),
                    Err(e) => {
                        progress.warn(&format!(
                            "the room's engine from {addr}: {e}; taking it from the server"
                        ));
                        break;
                    }
                }
            }
            Some(EngineSource::Wait) if asked.elapsed() < ENGINE_WAIT => {
                std::thread::sleep(ENGINE_POLL)
            }
            _ => break,
        }
    }
    let bytes = fetch_small(fetch, &setup.engine_url, pin.size, WHAT, retry, progress)
        .map_err(|(tries, last)| RoomError::Fetch { what: WHAT, tries, last })?;
    check(&bytes)?;
    Ok((bytes, None))
}

fn write_executable(path: &Path, bytes: &[u8]) -> Result<(), RoomError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o700)
        .open(path)
        .map_err(io_err(path.display()))?;
    f.write_all(bytes).map_err(io_err(path.display()))
}

/// Waits for `ready http://127.0.0.1:PORT` on the engine's stdout; the
/// rest of its stdout is drained so it never blocks on a full pipe.
fn ready_line(stdout: impl Read + Send + 'static) -> Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = tx.send(first);
        for _ in lines {}
    });
    match rx.recv_timeout(READY_WITHIN) {
        Ok(Some(Ok(line))) => line
            .strip_prefix("ready ")
            .filter(|u| u.starts_with("http://127.0.0.1:"))
            .map(str::to_string)
            .ok_or_else(|| format!("unexpected first line {line:?}")),
        Ok(_) => Err("it exited".into()),
        Err(_) => Err(format!("no answer within {}s", READY_WITHIN.as_secs())),
    }
}

impl Engine {
    /// The last lines of the engine's own log, for the install log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("engine.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        let tail: Vec<&str> = lines.into_iter().rev().collect();
        format!("engine log: {}", tail.join(" | "))
    }

    /// Copies the engine's own log to `to` (`lazare-agent fetch
    /// --engine-log`: bench-room keeps it beside the PC's).
    pub fn keep_log(&self, to: &Path) -> io::Result<u64> {
        std::fs::copy(self.dir.join("engine.log"), to)
    }

    /// The engine's figures now (`None` if it does not answer).
    pub fn stats(&self) -> Option<Stats> {
        engine_stats(&self.base)
    }

    /// Ends the engine (SIGTERM, then SIGKILL after 3 s) and removes it and
    /// its pieces from the target. Returns a line for the install log.
    pub fn stop(mut self) -> String {
        // Its peak memory, read before it ends: the room's cost on the PC.
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()));
        let peak = status.ok().and_then(|s| crate::procfs::kib(&s, "VmHWM"));
        let peak = peak.map_or(String::new(), |k| format!(", peak RSS {} MiB", k.div_ceil(1024)));
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        let exited = loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break true,
                Ok(None) if start.elapsed() > Duration::from_secs(3) => break false,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => format!("room engine stopped{}{peak}", if exited { "" } else { " (killed)" }),
            Err(e) => format!("room engine stopped{peak}; removing {}: {e}", self.dir.display()),
        }
    }

    /// Stops the engine ([`Engine::stop`], logged) and returns its last
    /// figures, `dropped` set if the stream gave up on it.
    pub fn finish(self, log: &dyn Fn(&str)) -> Option<Stats> {
        let stats = self.stats().map(|s| Stats { dropped: self.dropped(), ..s });
        log(&self.stop());
        stats
    }

    /// The fetcher the image stream uses while this engine runs.
    pub fn fetch<'a>(&'a self, server: &'a dyn Fetch, image_url: &'a str) -> RoomFetch<'a> {
        RoomFetch { server, image_url, engine: self, agent: loopback_agent(STALL) }
    }

    /// Whether the stream has given up on the engine.
    pub fn dropped(&self) -> bool {
        self.strikes.load(Ordering::Relaxed) >= MAX_STRIKES
    }
}

/// The figures of the engine at `base` (`None` if it does not answer).
fn engine_stats(base: &str) -> Option<Stats> {
    let agent = loopback_agent(Duration::from_secs(5));
    let resp = agent.get(&format!("{base}/stats")).call().ok()?;
    let mut body = Vec::new();
    resp.into_reader().take(64 * 1024).read_to_end(&mut body).ok()?;
    // from_slice: the agent's one serde_json reader (from_reader would
    // add a second copy of the parser to the CD).
    serde_json::from_slice(&body).ok()
}

/// The install log's line on what the room gave and took.
pub fn stats_line(s: &Stats, image_size: u64) -> String {
    let mib = |b: u64| b >> 20;
    format!(
        "room: of the {} MiB image {} MiB came from the other PCs and {} MiB from the server's \
         seed, {} MiB sent to the others{}",
        mib(image_size),
        mib(s.from_peers),
        mib(s.from_server),
        mib(s.uploaded),
        if s.dropped { "; the engine was dropped and the rest came from the server" } else { "" }
    )
}

/// A plain HTTP client for the engine on loopback: no proxy, no name.
fn loopback_agent(read: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(2)).timeout_read(read).build()
}

/// The image from the engine while it serves, from the server otherwise;
/// everything else (the index, the tools) from the server.
pub struct RoomFetch<'a> {
    server: &'a dyn Fetch,
    image_url: &'a str,
    engine: &'a Engine,
    agent: ureq::Agent,
}

impl Fetch for RoomFetch<'_> {
    fn get(&self, url: &str, offset: u64) -> io::Result<(u64, Box<dyn Read + Send>)> {
        if url == self.image_url && !self.engine.dropped() {
            let mut req = self.agent.get(&format!("{}/image", self.engine.base));
            if offset > 0 {
                req = req.set("Range", &format!("bytes={offset}-"));
            }
            match req.call() {
                Ok(resp) => {
                    let start = if resp.status() == 206 { offset } else { 0 };
                    let strikes = self.engine.strikes.clone();
                    let (base, have) = (self.engine.base.clone(), self.engine.have.clone());
                    let body = resp.into_reader();
                    return Ok((start, Box::new(Striking { inner: body, strikes, base, have })));
                }
                Err(_) => {
                    self.engine.strikes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.server.get(url, offset)
    }

    fn distrust(&self) -> bool {
        // A chunk from the engine failed the signed index: the rest comes
        // from the server (a second bad chunk from there stops the install).
        let was = self.engine.strikes.swap(MAX_STRIKES, Ordering::Relaxed);
        was < MAX_STRIKES
    }
}

/// The engine's body: a read error (a stall past the read timeout, the
/// engine gone) is a strike against it, unless the engine got pieces since
/// the last look (its `have` grew): then it only waits on this one.
struct Striking<R> {
    inner: R,
    strikes: Arc<AtomicU32>,
    base: String,
    have: Arc<AtomicU64>,
}

impl<R: Read> Read for Striking<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| {
            let now = engine_stats(&self.base).map_or(0, |s| s.have);
            if now <= self.have.fetch_max(now, Ordering::Relaxed) {
                self.strikes.fetch_add(1, Ordering::Relaxed);
            }
        })
    }
}
