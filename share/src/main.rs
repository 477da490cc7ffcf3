//! lazare-share: the room's sharing engine (issue 15), BitTorrent through
//! librqbit. Not in the agent (the CD has no room for it): the agent fetches
//! this static binary from the server, pinned by sha256 in the signed plan,
//! and `lazare serve` runs it to seed.
//!
//! - `fetch`: joins the swarm, stores pieces on disk (`--store`, the target
//!   disk on a PC: the image never sits in RAM) and serves the torrent's one
//!   file in order on loopback HTTP (`GET /image`, `GET /stats`), then seeds
//!   until SIGTERM; with `--engine-file` it also gives the room's other PCs
//!   the engine itself.
//! - `seed`: checks a file against its torrent, then seeds until SIGTERM,
//!   printing `uploaded BYTES` when that grows (at most every second).
//! - `create`: writes a torrent for one file (1 MiB pieces, as the chunk
//!   index); the tests use it, `lazare image add` writes its own.
//!
//! Peers come only from the tracker and `--peer`: no DHT, no UPnP, no local
//! service discovery, and IP literals only (the agent has no NSS, no DNS).

mod http;
mod prefetch;
mod roots;
mod swarm;
mod trace;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "lazare-share", version, about = "BitTorrent sharing of lazare images")]
struct Cli {
    /// Tokio worker threads; 0 (the default) runs everything on one thread:
    /// a current_thread runtime kept `fetch` at 8 MB peak RSS and 1.2 MB of
    /// heap streaming 200 MiB, where 2 workers took 21 MB and 15 MB
    /// (bench/share_rss.sh), for the same speed.
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Join the swarm, store pieces in --store, serve the file in order on --http.
    Fetch {
        #[arg(long)]
        torrent: PathBuf,
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        peer_port: u16,
        /// Loopback address of the in-order HTTP stream (e.g. 127.0.0.1:8471).
        #[arg(long)]
        http: SocketAddr,
        /// A file to give the room's other PCs at GET /<its name> (the
        /// agent passes this engine's own compressed binary).
        #[arg(long, requires = "engine_listen")]
        engine_file: Option<PathBuf>,
        /// Where --engine-file is served (e.g. 0.0.0.0:6882).
        #[arg(long, requires = "engine_file")]
        engine_listen: Option<SocketAddr>,
        #[command(flatten)]
        peers: swarm::PeerSources,
    },
    /// Check --file against --torrent, then seed it until SIGTERM.
    Seed {
        #[arg(long)]
        torrent: PathBuf,
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        peer_port: u16,
        #[command(flatten)]
        peers: swarm::PeerSources,
    },
    /// Write a one-file torrent with 1 MiB pieces.
    Create {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Announce URL written in the torrent.
        #[arg(long)]
        tracker: Option<String>,
    },
}

/// SIGTERM/SIGINT to exit: librqbit's stop (pause the torrent, cancel its
/// tasks, then a fixed 1 s sleep) is given this long, then the process goes
/// anyway (the agent waits ~2 s before it reboots).
const STOP_GRACE: Duration = Duration::from_millis(1200);

fn main() {
    let cli = Cli::parse();
    // Before any thread exists: it sets an environment variable.
    let roots = match &cli.cmd {
        Cmd::Fetch { store, .. } => roots::Roots::install(store),
        Cmd::Seed { .. } => roots::Roots::install(&std::env::temp_dir()),
        Cmd::Create { .. } => Ok(roots::Roots::none()),
    };
    let roots = match roots {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lazare-share: {e:#}");
            std::process::exit(1);
        }
    };
    let mut rt = if cli.threads == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(cli.threads);
        b
    };
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lazare-share: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let res = rt.block_on(run(cli.cmd, roots));
    if let Err(e) = res {
        eprintln!("lazare-share: {e:#}");
        std::process::exit(1);
    }
    // Not dropping the runtime: librqbit's tasks and blocking reads would
    // hold its shutdown; the kernel closes the sockets and files.
    std::process::exit(0);
}

async fn run(cmd: Cmd, roots: roots::Roots) -> anyhow::Result<()> {
    match cmd {
        Cmd::Fetch { torrent, store, peer_port, http, engine_file, engine_listen, peers } => {
            let listener = tokio::net::TcpListener::bind(http)
                .await
                .with_context(|| format!("listening on {http}"))?;
            // Before the swarm's first announce: a PC the tracker names as
            // the engine's source must answer.
            if let (Some(file), Some(addr)) = (engine_file, engine_listen) {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr}"))?;
                tokio::spawn(http::serve_file(l, file));
            }
            let swarm = swarm::Swarm::start(&torrent, &store, peer_port, &peers, false).await;
            roots.remove();
            let swarm = swarm?;
            // The server's seed runs on the tracker's host.
            let seed_host = peers.tracker_ip();
            if std::env::var_os("LAZARE_SHARE_TRACE").is_some() {
                tokio::spawn(trace::run(swarm.handle.clone(), seed_host));
            }
            let addr = listener.local_addr().context("http local address")?;
            let server = tokio::spawn(http::serve(listener, swarm.handle.clone(), seed_host));
            tokio::spawn(prefetch::run(swarm.handle.clone()));
            tokio::spawn(prefetch::reconnect(swarm.handle.clone()));
            println!("ready http://{addr}");
            wait_for_signal().await?;
            server.abort();
            swarm.stop(STOP_GRACE).await;
            Ok(())
        }
        Cmd::Seed { torrent, file, peer_port, peers } => {
            let store = file.parent().context("--file has no parent directory")?.to_path_buf();
            let swarm = swarm::Swarm::start(&torrent, &store, peer_port, &peers, true).await;
            roots.remove();
            let swarm = swarm?;
            swarm.check_name(&file)?;
            swarm.check_complete().await?;
            println!("ready");
            // What peers took from this seed, for the server's /metrics.
            let handle = swarm.handle.clone();
            tokio::spawn(async move {
                let mut told = 0;
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let now = handle.stats().uploaded_bytes;
                    if now != told {
                        // Not println!: it panics once nobody reads the
                        // figures (the pipe closed), and the seed would
                        // end with it; the seeding matters, the figure not.
                        use std::io::Write;
                        let _ = writeln!(std::io::stdout(), "uploaded {now}");
                        told = now;
                    }
                }
            });
            wait_for_signal().await?;
            swarm.stop(STOP_GRACE).await;
            Ok(())
        }
        Cmd::Create { file, out, tracker } => swarm::create(&file, &out, tracker).await,
    }
}

/// Until SIGTERM or SIGINT, or until the process that started this one
/// (the agent, `lazare serve`) is gone: a server killed with SIGKILL must
/// not leave its seeds running for ever.
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let parent = std::os::unix::process::parent_id();
    let orphaned = async move {
        while std::os::unix::process::parent_id() == parent {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = orphaned => {}
    }
    Ok(())
}
