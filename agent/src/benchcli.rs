//! `lazare-agent fetch` (hidden): the install's streaming pipeline alone
//! (chunk index → download → check every chunk → decompress → untar, as
//! `install::run` drives it), so
//! `make bench` can time it against `curl | tar` and read its peak RSS.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use lazare_proto::{ImageFormat, ImageRef};

use std::time::{Duration, Instant};

use lazare_proto::{Pinned, Room, ENGINE_PATH};

use crate::install::room::{self, RoomSetup};
use crate::install::stream::{stream, Fetch, Progress, Retry, UreqFetch};

#[derive(Args)]
pub struct FetchArgs {
    /// The image URL (plain HTTP).
    #[arg(long)]
    pub url: String,
    /// sha256 (hex) of the image's chunk index, served at URL.chunks (the
    /// manifest's `chunks`); a mismatch of the index or a chunk is an error.
    #[arg(long)]
    pub chunks: String,
    /// Size of the compressed image in bytes.
    #[arg(long)]
    pub size: u64,
    /// Existing empty directory to unpack into.
    #[arg(long)]
    pub into: PathBuf,
    /// Share the image with the room: the torrent's info hash (the image's
    /// `.torrent` is fetched from URL.torrent, the engine from the same
    /// server's /images/lazare-share), as an install with a room does.
    #[arg(long, requires_all = ["tracker", "engine_sha256", "engine_size"])]
    pub torrent: Option<String>,
    /// The tracker's announce URL (an address, not a name).
    #[arg(long)]
    pub tracker: Option<String>,
    /// The engine's sha256 (hex) and size, as a plan pins them.
    #[arg(long)]
    pub engine_sha256: Option<String>,
    #[arg(long)]
    pub engine_size: Option<u64>,
    /// Seconds the engine goes on serving the room after the image is in
    /// (an install's configure step).
    #[arg(long, default_value_t = 0)]
    pub hold: u64,
    /// Copy the engine's own log here before it stops (its pieces and
    /// log are removed with it).
    #[arg(long, requires = "torrent")]
    pub engine_log: Option<PathBuf>,
}

/// Warnings only, each with the seconds since the process started (a
/// room's logs are read side by side).
struct Quiet;

impl Progress for Quiet {
    fn percent(&self, _pct: u8) {}
    fn warn(&self, line: &str) {
        say(line);
    }
}

fn say(line: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("lazare-agent fetch: [{t:6.2}] {line}");
}

pub fn run(a: &FetchArgs) -> Result<()> {
    let format = if a.url.ends_with(".tar.zst") {
        ImageFormat::TarZst
    } else if a.url.ends_with(".tar.gz") {
        ImageFormat::TarGz
    } else {
        bail!("{}: only .tar.zst and .tar.gz images are supported", a.url);
    };
    if !a.into.is_dir() {
        bail!("{} is not a directory", a.into.display());
    }
    let image = ImageRef {
        name: "bench".into(),
        url: a.url.clone(),
        // Not checked by the stream: the chunk index covers every byte.
        sha256: String::new(),
        size: a.size,
        format,
        chunks: a.chunks.clone(),
        tools: None,
        torrent: a.torrent.clone(),
    };
    let server = UreqFetch::default();
    let log = say;
    // A PC's time counts from here: the engine's fetch is part of it.
    let start = Instant::now();
    say("start");
    let engine = match (&a.tracker, &a.engine_sha256, a.engine_size) {
        (Some(tracker), Some(sha256), Some(size)) => {
            let room = Room { tracker_port: 0, engine: Pinned { sha256: sha256.clone(), size } };
            let origin = a.url.split("/images/").next().unwrap_or_default();
            let setup = RoomSetup {
                room: &room,
                engine_url: format!("{origin}{ENGINE_PATH}"),
                tracker: tracker.clone(),
            };
            let download = room::Download {
                image: &image,
                image_url: &a.url,
                fetch: &server,
                target: &a.into,
                retry: Retry::default(),
                progress: &Quiet,
            };
            room::start_or_say(&setup, &download, &log)
        }
        _ => None,
    };
    let room_fetch = engine.as_ref().map(|e| e.fetch(&server, &a.url));
    let fetch: &dyn Fetch = match &room_fetch {
        Some(f) => f,
        None => &server,
    };
    let index = stream(fetch, &a.url, &image, &a.into, Retry::default(), &Quiet)
        .with_context(|| format!("streaming {} into {}", a.url, a.into.display()))?;
    let secs = start.elapsed().as_secs_f64();
    say(&format!("the image is in ({secs:.2} s)"));
    println!("{} chunks checked against {}", index.count(), a.chunks);
    if let Some(engine) = engine {
        let from_peer = engine.from_peer.is_some();
        std::thread::sleep(Duration::from_secs(a.hold));
        if let Some(to) = &a.engine_log {
            if let Err(e) = engine.keep_log(to) {
                say(&format!("keeping the engine's log in {}: {e}", to.display()));
            }
        }
        let s = engine.finish(&log).unwrap_or_default();
        log(&room::stats_line(&s, a.size));
        // One line for bench/room.
        println!(
            "room {{\"secs\":{secs:.2},\"from_peers\":{},\"from_server\":{},\"uploaded\":{},\"dropped\":{},\"engine_from_peer\":{}}}",
            s.from_peers, s.from_server, s.uploaded, s.dropped, from_peer
        );
    }
    Ok(())
}
