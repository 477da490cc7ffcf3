//! A diagnostic: with `LAZARE_SHARE_TRACE` set in its environment, `fetch`
//! writes a line a second on stderr (the agent keeps it in the engine's log
//! on the target; `make bench-room` keeps each PC's beside its own): what
//! the engine has, what came from the server's seed and from the PCs, and
//! every 3 s each peer's figures. It is how the room's stalls were found
//! (share/vendor/librqbit/PATCHED.md).

use std::sync::Arc;

use librqbit::ManagedTorrent;

/// One line a second, for as long as the engine runs; `server` is the
/// tracker's host (the server's seed runs there). Peers as `HOST:PORT`
/// with the last octet only, `state:KiB from/KiB to:st stolen/stolen from`.
pub async fn run(torrent: Arc<ManagedTorrent>, server: Option<std::net::IpAddr>) {
    let start = std::time::Instant::now();
    for tick in 1u64.. {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let s = torrent.stats();
        let Some(live) = torrent.live() else { continue };
        let snap = live.per_peer_stats_snapshot(Default::default());
        let seed = crate::swarm::fetched_from(&torrent, server);
        let (mut seed_peers, mut pcs) = (0, 0);
        for addr in snap.peers.keys() {
            let ip = addr.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
            match ip.is_some() && ip == server {
                true => seed_peers += 1,
                false => pcs += 1,
            }
        }
        let l = live.stats_snapshot();
        eprintln!(
            "trace t={:.0} have={} fetched={} from_seed={} seed_live={} pcs_live={} up={} agg={:?}",
            start.elapsed().as_secs_f64(),
            s.progress_bytes >> 10,
            l.fetched_bytes >> 10,
            seed >> 10,
            seed_peers,
            pcs,
            s.uploaded_bytes >> 10,
            l.peer_stats,
        );
        if tick.is_multiple_of(3) {
            let mut v: Vec<String> = snap
                .peers
                .iter()
                .filter(|(_, p)| {
                    p.counters.fetched_bytes + p.counters.uploaded_bytes > 0 || p.state == "live"
                })
                .map(|(a, p)| {
                    format!(
                        "{}:{}:{}/{}:st{}/{}",
                        a.rsplit_once('.').map_or(a.as_str(), |x| x.1),
                        p.state,
                        p.counters.fetched_bytes >> 10,
                        p.counters.uploaded_bytes >> 10,
                        p.counters.times_i_stole,
                        p.counters.times_stolen_from_me
                    )
                })
                .collect();
            v.sort();
            eprintln!("peers {}", v.join(" "));
        }
    }
}
