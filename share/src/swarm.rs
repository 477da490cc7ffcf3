//! The librqbit session: one torrent, peers from the tracker and `--peer`
//! only, pieces stored on disk.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use librqbit::{
    AddTorrent, AddTorrentOptions, ByteBufOwned, ConnectionOptions, ListenerMode, ListenerOptions,
    ManagedTorrent, PeerConnectionOptions, Session, SessionOptions,
};

/// Piece length of the torrents `create` writes: the chunk index's chunk, so
/// a piece the agent checks against the signed index is one torrent piece.
pub const PIECE_LEN: u32 = 1024 * 1024;

/// A keep-alive on every connection quiet for this long (see `start`).
const KEEP_ALIVE: Duration = Duration::from_secs(3);

#[derive(clap::Args)]
pub struct PeerSources {
    /// Tracker announce URL (http://IP:PORT/announce); replaces the torrent's own.
    #[arg(long)]
    tracker: Option<String>,
    /// A peer to connect to from the start (IP:PORT); repeatable.
    #[arg(long = "peer")]
    peers: Vec<SocketAddr>,
    /// The info hash the torrent must have (hex; the signed plan's).
    #[arg(long)]
    info_hash: Option<String>,
}

impl PeerSources {
    /// The tracker's host (the server, where its seed runs).
    pub fn tracker_ip(&self) -> Option<IpAddr> {
        self.tracker.as_deref().and_then(tracker_host)
    }
}

pub struct Swarm {
    session: Arc<Session>,
    pub handle: Arc<ManagedTorrent>,
}

impl Swarm {
    /// Adds the torrent to a fresh session listening on `peer_port`.
    /// `seed`: the file already exists and must be complete.
    pub async fn start(
        torrent: &Path,
        store: &Path,
        peer_port: u16,
        peers: &PeerSources,
        seed: bool,
    ) -> anyhow::Result<Swarm> {
        let bytes = std::fs::read(torrent)
            .with_context(|| format!("reading torrent {}", torrent.display()))?;
        let tracker = match &peers.tracker {
            Some(url) => Some(check_tracker(url)?),
            None => None,
        };
        let bytes = with_announce(&bytes, tracker.as_deref(), peers.info_hash.as_deref())?;
        if !seed {
            std::fs::create_dir_all(store)
                .with_context(|| format!("creating store {}", store.display()))?;
        }
        let opts = SessionOptions {
            dht: None,
            disable_local_service_discovery: true,
            fastresume: false,
            persistence: None,
            ipv4_only: true,
            listen: Some(ListenerOptions {
                mode: ListenerMode::TcpOnly,
                listen_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), peer_port),
                enable_upnp_port_forwarding: false,
                ipv4_only: true,
                ..Default::default()
            }),
            // librqbit drops a connection on which nothing came for 10 s
            // but sends its keep-alive only after 120 s idle, and calls a
            // dropped peer back after 10 s, then 60 s, then 6 minutes. In
            // a room a PC often has nothing new for the PCs it is told of
            // for 10 s (they wait on the same piece): at 40 PCs most lost
            // their few peers this way and sat for a minute with pieces
            // next door (`make bench-room`). A keep-alive every 3 s keeps
            // them; a peer that really went away still fails within 30 s.
            connect: Some(ConnectionOptions {
                peer_opts: Some(PeerConnectionOptions {
                    keep_alive_interval: Some(KEEP_ALIVE),
                    read_write_timeout: Some(Duration::from_secs(30)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            client_name_and_version: Some(
                concat!("lazare-share/", env!("CARGO_PKG_VERSION")).into(),
            ),
            ..Default::default()
        };
        let session = Session::new_with_opts(store.to_path_buf(), opts)
            .await
            .context("starting the BitTorrent session")?;
        let add = AddTorrentOptions {
            // The store is ours: resume over what a previous run left, and
            // seed a file that already exists.
            overwrite: true,
            output_folder: Some(store.to_string_lossy().into_owned()),
            initial_peers: (!peers.peers.is_empty()).then(|| peers.peers.clone()),
            ..Default::default()
        };
        let handle = session
            .add_torrent(AddTorrent::from_bytes(bytes), Some(add))
            .await
            .context("adding the torrent")?
            .into_handle()
            .context("librqbit returned no torrent handle")?;
        Ok(Swarm { session, handle })
    }

    /// The seeded file must be the one the torrent names (its one file, in
    /// the directory given as the store).
    pub fn check_name(&self, file: &Path) -> anyhow::Result<()> {
        let name = self.handle.name().unwrap_or_default();
        let file_name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        if file_name.as_deref() != Some(name.as_str()) {
            bail!("the torrent names its file {name:?}, not {}", file.display());
        }
        Ok(())
    }

    /// Waits for librqbit's hash check of the existing file; every piece must match.
    pub async fn check_complete(&self) -> anyhow::Result<()> {
        self.handle
            .wait_until_initialized()
            .await
            .context("checking the file against the torrent")?;
        let stats = self.handle.stats();
        if !stats.finished {
            bail!(
                "the file does not match the torrent: {} of {} bytes in good pieces",
                stats.progress_bytes,
                stats.total_bytes
            );
        }
        Ok(())
    }

    /// Stops the session (peer connections, a last tracker announce),
    /// waiting at most `grace`.
    pub async fn stop(self, grace: Duration) {
        let _ = tokio::time::timeout(grace, self.session.stop()).await;
    }
}

/// Bytes fetched from the peers at `host` (the server's seed), counted
/// over every peer librqbit knows, connected or not.
pub fn fetched_from(torrent: &ManagedTorrent, host: Option<IpAddr>) -> u64 {
    let (Some(host), Some(live)) = (host, torrent.live()) else { return 0 };
    // librqbit's filter type is not exported; "all" is its JSON form.
    let all = serde_json::from_value(serde_json::json!({ "state": "all" })).unwrap_or_default();
    let snap = live.per_peer_stats_snapshot(all);
    snap.peers
        .iter()
        .filter(|(addr, _)| addr.parse::<SocketAddr>().is_ok_and(|a| a.ip() == host))
        .map(|(_, p)| p.counters.fetched_bytes)
        .sum()
}

/// No DNS on the PC: the tracker must be an http:// URL with an IP literal.
fn check_tracker(url: &str) -> anyhow::Result<String> {
    if !url.starts_with("http://") {
        bail!("tracker {url}: only http:// trackers");
    }
    if tracker_host(url).is_none() {
        bail!("tracker {url}: the host must be an IP address (no DNS on the PC)");
    }
    Ok(url.to_string())
}

/// The host of an `http://HOST[:PORT]/...` tracker URL when it is an IP
/// literal (`[...]` for IPv6).
fn tracker_host(url: &str) -> Option<IpAddr> {
    let authority = url.strip_prefix("http://")?.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.parse().ok()
}

/// The torrent, checked against `info_hash`, with `tracker` as its only
/// announce URL (librqbit adds custom trackers to the torrent's own, which
/// may name a host this PC cannot resolve). The info dictionary, so the
/// info hash, is kept byte for byte.
fn with_announce(
    bytes: &[u8],
    tracker: Option<&str>,
    info_hash: Option<&str>,
) -> anyhow::Result<Vec<u8>> {
    let meta = librqbit::torrent_from_bytes(bytes).context("parsing the torrent")?;
    if let Some(want) = info_hash {
        let got = meta.info_hash.as_string();
        if !got.eq_ignore_ascii_case(want.trim()) {
            bail!("the torrent's info hash is {got}, not {want}");
        }
    }
    let Some(tracker) = tracker else {
        return Ok(bytes.to_vec());
    };
    let mut meta: librqbit::TorrentMetaV1Owned =
        librqbit::CloneToOwned::clone_to_owned(&meta, None);
    meta.announce = Some(ByteBufOwned::from(tracker.as_bytes()));
    meta.announce_list = vec![vec![ByteBufOwned::from(tracker.as_bytes())]];
    let mut out = Vec::new();
    bencode::bencode_serialize_to_writer(&meta, &mut out).context("writing the torrent")?;
    Ok(out)
}

/// Writes a torrent for `file` with [`PIECE_LEN`] pieces.
pub async fn create(file: &Path, out: &Path, tracker: Option<String>) -> anyhow::Result<()> {
    let name = file.file_name().context("--file has no file name")?.to_string_lossy().into_owned();
    let trackers = match tracker {
        Some(t) => vec![check_tracker(&t)?],
        None => Vec::new(),
    };
    let opts = librqbit::CreateTorrentOptions {
        name: Some(&name),
        trackers,
        piece_length: Some(PIECE_LEN),
    };
    let spawner = librqbit::spawn_utils::BlockingSpawner::new(1);
    let res = librqbit::create_torrent(file, opts, &spawner)
        .await
        .with_context(|| format!("hashing {}", file.display()))?;
    let bytes = res.as_bytes().context("encoding the torrent")?;
    let tmp: PathBuf = out.with_extension("tmp");
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("renaming to {}", out.display()))?;
    println!("{}", res.info_hash().as_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_urls_name_an_ip_or_are_refused() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(tracker_host("http://10.0.0.1:8471/announce"), ip("10.0.0.1"));
        assert_eq!(tracker_host("http://10.0.0.1/announce"), ip("10.0.0.1"));
        assert_eq!(tracker_host("http://[fd00::1]:8471/announce"), ip("fd00::1"));
        assert_eq!(tracker_host("http://server.lan:8471/announce"), None);
        assert_eq!(tracker_host("https://10.0.0.1:8471/announce"), None);
        assert!(check_tracker("https://10.0.0.1/announce").is_err());
        assert!(check_tracker("http://server.lan/announce").is_err());
        assert!(check_tracker("http://10.0.0.1:8471/announce").is_ok());
    }
}
