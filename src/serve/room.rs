//! The server's side of the room (issue 15): the sharing engine the agents
//! fetch (`lazare-share`, served at [`ENGINE_PATH`] and pinned in every
//! plan), and the server's own seeds, one engine process per image with a
//! torrent, so that the server is one source among the peers of the room.
//!
//! The engine is not embedded in `lazare` (yet): it is found like the
//! agent on disk (`--engine`, `$LAZARE_SHARE`, beside this executable,
//! /usr/lib/lazare, the checkout's `make share`). Without it the server
//! still runs: plans carry no room and every PC downloads over HTTP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use lazare_proto::{hex, Pinned, Room, ENGINE_PATH};
use sha2::{Digest, Sha256};

use super::tracker::Tracker;
use crate::build::agent::{check_agent, disk_candidates};
use crate::image::torrent::torrent_path;

/// The engine's file name, on disk and in the images folder.
pub const ENGINE: &str = "lazare-share";

/// The engine found for this server, or why there is none.
pub fn find_engine(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("LAZARE_SHARE") {
        return Ok(PathBuf::from(p));
    }
    let candidates = disk_candidates(ENGINE);
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    bail!(
        "{ENGINE} not found in {} (build it with `make share`, or pass --engine)",
        looked.join(", ")
    )
}

/// Compresses the engine where the agents fetch it
/// (`DATA/images/lazare-share.zst`, atomically) and returns its pin.
pub fn publish_engine(engine: &Path, images: &Path) -> Result<Pinned> {
    let bytes = std::fs::read(engine).with_context(|| format!("reading {}", engine.display()))?;
    check_agent(&bytes, &engine.display().to_string())?;
    let dst = images.join(format!("{ENGINE}.zst"));
    debug_assert_eq!(format!("/images/{ENGINE}.zst"), ENGINE_PATH);
    // Level 12: ~1 s at each start for 8 MB; -19 saves a few % more.
    let bytes = zstd::encode_all(&bytes[..], 12).context("compressing the engine")?;
    crate::image::build::write_readable(&dst, &bytes, "the engine's copy")?;
    Ok(Pinned { sha256: hex(&Sha256::digest(&bytes)), size: bytes.len() as u64 })
}

/// The server's seeds: one engine per image, each on its own peer port.
pub struct Seeds {
    /// Info hash → the seed's peer port (the tracker lists it).
    pub ports: HashMap<[u8; 20], u16>,
    /// Bytes each seed sent to the PCs (its `uploaded` lines).
    pub sent: Vec<Arc<AtomicU64>>,
    /// Killed when the server stops (kill_on_drop).
    _children: Vec<tokio::process::Child>,
}

/// Starts a seed for every image in `images` that has a torrent, on the
/// ports from `first_port` up (the tracker's port + 1, so a firewall in
/// front of the server opens one range), or each on a free port when
/// `first_port` is 0 (tests). An image whose seed does not start is only
/// warned about: PCs then share it among themselves and get the rest over
/// HTTP.
pub async fn start_seeds(engine: &Path, images: &Path, first_port: u16) -> Seeds {
    let mut seeds = Seeds { ports: HashMap::new(), sent: Vec::new(), _children: Vec::new() };
    let mut next = first_port;
    for m in super::plan::usable_manifests(images) {
        let Some(hash) = m.torrent.as_deref().and_then(super::tracker::unhex20) else {
            continue;
        };
        let file = images.join(&m.file);
        let port = match next {
            0 => 0,
            p => {
                next = p.saturating_add(1);
                p
            }
        };
        match seed(engine, &file, port).await {
            Ok((child, port, sent)) => {
                println!("room: seeding {} on peer port {port}", m.file);
                seeds.ports.insert(hash, port);
                seeds.sent.push(sent);
                seeds._children.push(child);
            }
            Err(e) => eprintln!("lazare: warning: room: not seeding {}: {e:#}", m.file),
        }
    }
    seeds
}

/// One seed, once it said `ready` (it checked the whole file first).
async fn seed(
    engine: &Path,
    file: &Path,
    port: u16,
) -> Result<(tokio::process::Child, u16, Arc<AtomicU64>)> {
    use tokio::io::AsyncBufReadExt;
    let port = match port {
        // A free port now; the engine binds it a moment later.
        0 => std::net::TcpListener::bind("0.0.0.0:0")
            .and_then(|l| l.local_addr())
            .context("finding a free peer port")?
            .port(),
        p => p,
    };
    let mut child = tokio::process::Command::new(engine)
        .arg("seed")
        .arg("--torrent")
        .arg(torrent_path(file))
        .arg("--file")
        .arg(file)
        .args(["--peer-port", &port.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", engine.display()))?;
    let stdout = child.stdout.take().context("the seed's stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    // It checks every piece first: seconds for a 700 MiB image.
    let first = tokio::time::timeout(SEED_READY_WITHIN, lines.next_line()).await;
    match first {
        Ok(Ok(Some(l))) if l.trim() == "ready" => {
            // Keep draining its stdout so it never blocks, keeping its count.
            let sent = Arc::new(AtomicU64::new(0));
            let count = sent.clone();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(n) = line.strip_prefix("uploaded ").and_then(|n| n.parse().ok()) {
                        count.store(n, Ordering::Relaxed);
                    }
                }
            });
            Ok((child, port, sent))
        }
        Ok(Ok(other)) => bail!("the engine said {other:?} instead of ready"),
        Ok(Err(e)) => bail!("reading the engine's output: {e}"),
        Err(_) => bail!("the engine was not ready within {} s", SEED_READY_WITHIN.as_secs()),
    }
}

const SEED_READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

/// The room as `lazare serve` runs it.
pub struct Running {
    pub tracker: Arc<Tracker>,
    pub listener: tokio::net::TcpListener,
    /// Where the tracker listens.
    pub addr: SocketAddr,
    /// What every plan carries; `None` without an engine.
    pub room: Option<Room>,
    /// The server's seeds; `None` without an engine.
    pub seeds: Option<Seeds>,
}

/// Binds the tracker at `requested`, publishes the engine and starts the
/// seeds. Without an engine (a warning) the tracker still runs but plans
/// carry no room.
pub async fn start(requested: SocketAddr, engine: Option<&Path>, images: &Path) -> Result<Running> {
    let listener = tokio::net::TcpListener::bind(requested).await.with_context(|| {
        format!("listening on {requested} for the room's tracker (--tracker-port, --no-tracker)")
    })?;
    let addr = listener.local_addr().context("reading the tracker's address")?;
    let engine = find_engine(engine).and_then(|e| Ok((publish_engine(&e, images)?, e)));
    let (room, seeds) = match engine {
        Ok((pin, path)) => {
            println!("room: engine {} (sha256 {})", path.display(), &pin.sha256[..16]);
            // Seeds on the ports after the tracker's, or free ones in tests.
            let first = match requested.port() {
                0 => 0,
                p => p.saturating_add(1),
            };
            let seeds = start_seeds(&path, images, first).await;
            (Some(Room { tracker_port: addr.port(), engine: pin }), Some(seeds))
        }
        Err(e) => {
            eprintln!(
                "lazare: warning: room: {e:#}: each PC downloads the image from this server alone"
            );
            (None, None)
        }
    };
    let ports = seeds.as_ref().map(|s| s.ports.clone()).unwrap_or_default();
    let tracker = Arc::new(Tracker::new(images.to_path_buf(), ports));
    Ok(Running { tracker, listener, addr, room, seeds })
}
