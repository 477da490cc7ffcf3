//! lazare-share: the room's sharing engine (issue 15), BitTorrent through
//! librqbit. Not in the agent (the CD has no room for it): the agent fetches
//! this static binary from the server, pinned by sha256 in the signed plan,
//! and `lazare serve` runs it to seed.
//!
//! - `fetch`: joins the swarm, stores pieces on disk (`--store`, the target
//!   disk on a PC: the image never sits in RAM) and serves the torrent's one
//!   file in order on loopback HTTP (`GET /image`, `GET /stats`), then seeds
//!   until SIGTERM.
//! - `seed`: checks a file against its torrent, then seeds until SIGTERM.
//! - `create`: writes a torrent for one file (1 MiB pieces, as the chunk
//!   index); the tests use it, `lazare image add` writes its own.
//!
//! Peers come only from the tracker and `--peer`: no DHT, no UPnP, no local
//! service discovery, and IP literals only (the agent has no NSS, no DNS).

mod http;
mod swarm;

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
    if let Cmd::Fetch { store, .. } = &cli.cmd {
        // Before the runtime: no other thread reads the environment yet.
        if let Err(e) = trust_no_tls_server(store) {
            eprintln!("lazare-share: {e:#}");
            std::process::exit(1);
        }
    }
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
    let res = rt.block_on(run(cli.cmd));
    if let Err(e) = res {
        eprintln!("lazare-share: {e:#}");
        std::process::exit(1);
    }
    // Not dropping the runtime: librqbit's tasks and blocking reads would
    // hold its shutdown; the kernel closes the sockets and files.
    std::process::exit(0);
}

/// A root whose private key was thrown away when it was made: no server
/// can show a chain to it.
const TRUST_NOTHING: &str = include_str!("trust-nothing.pem");

/// librqbit builds a reqwest client (rustls and the platform verifier) for
/// trackers, and that build fails when the system has no CA certificate,
/// as on the PC's CD: the engine then never starts. It announces only to
/// http:// trackers (swarm.rs `check_tracker`), so its TLS client is
/// given [`TRUST_NOTHING`] as the system's only root (`SSL_CERT_FILE`,
/// written in the store).
fn trust_no_tls_server(store: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(store).with_context(|| format!("creating {}", store.display()))?;
    let pem = store.join(".trust-nothing.pem");
    std::fs::write(&pem, TRUST_NOTHING).with_context(|| format!("writing {}", pem.display()))?;
    std::env::set_var("SSL_CERT_FILE", &pem);
    std::env::remove_var("SSL_CERT_DIR");
    Ok(())
}

async fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Fetch { torrent, store, peer_port, http, peers } => {
            let listener = tokio::net::TcpListener::bind(http)
                .await
                .with_context(|| format!("listening on {http}"))?;
            let swarm = swarm::Swarm::start(&torrent, &store, peer_port, &peers, false).await?;
            let addr = listener.local_addr().context("http local address")?;
            let server = tokio::spawn(http::serve(listener, swarm.handle.clone()));
            println!("ready http://{addr}");
            wait_for_signal().await?;
            server.abort();
            swarm.stop(STOP_GRACE).await;
            Ok(())
        }
        Cmd::Seed { torrent, file, peer_port, peers } => {
            let store = file.parent().context("--file has no parent directory")?.to_path_buf();
            let swarm = swarm::Swarm::start(&torrent, &store, peer_port, &peers, true).await?;
            swarm.check_name(&file)?;
            swarm.check_complete().await?;
            println!("ready");
            wait_for_signal().await?;
            swarm.stop(STOP_GRACE).await;
            Ok(())
        }
        Cmd::Create { file, out, tracker } => swarm::create(&file, &out, tracker).await,
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
