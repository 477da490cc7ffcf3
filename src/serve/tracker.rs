//! The room's BitTorrent tracker: the PCs installing an image announce
//! themselves here and learn where the others are (BEP 3 HTTP announce,
//! BEP 23 compact peer lists, BEP 7 `peers6`). It listens on a port of its
//! own, in plain HTTP: a peer list is no secret, and nothing a peer sends is
//! used before the engine checked its SHA-1 and the agent its sha256
//! against the signed chunk index.
//!
//! `lazare serve` is one source among the peers: when it seeds the image
//! itself, its seed is listed (first) to one PC at a time, the room's
//! leader (see [`Swarm::seed_to`]), at the address the PC reached the
//! tracker on (so a server behind NAT or on several LANs is named the way
//! each PC sees it). Only the torrents of the images this server serves
//! are tracked; a PC that stops announcing is forgotten after [`EXPIRE`].
//!
//! A PC is not told of every other PC, only of a few ahead of it in a tree
//! rooted at the leader ([`Swarm::neighbours`]): the torrents are private
//! (no peer exchange), so these are all the peers it meets.
//!
//! It also says where a PC gets the sharing engine itself (`GET /engine`,
//! [`super::handout`]): from a PC announcing now, so the server's link
//! carries the engine about once for the room. A rogue host can announce
//! and be named a source; what it sends fails the sha256 the plan pins and
//! the PC takes the engine from the server.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;

use lazare_proto::{EngineSource, ENGINE_SOURCE_PATH};

use super::handout::Handouts;
use super::listen::ConnAddrs;
use crate::bencode::Value;

/// How often a PC announces again: 40 PCs make 4 tiny requests a second.
/// Short, because a leader that left (rebooted) is replaced at the next
/// announce, and a PC that waits 30 s for a piece gives up on the room.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// A PC not heard of for this long is switched off or gone.
pub const EXPIRE: Duration = Duration::from_secs(3 * 10);
/// Peers per answer at most (a room is 40 PCs).
const NUMWANT_MAX: usize = 80;
/// How often the images folder is read again for a torrent not known yet.
const RESCAN: Duration = Duration::from_secs(5);

/// One announce, as BEP 3 names its parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Announce {
    pub info_hash: [u8; 20],
    pub peer_id: Vec<u8>,
    pub port: u16,
    /// Bytes the peer still lacks (0: it has the whole image).
    pub left: Option<u64>,
    pub stopped: bool,
    pub numwant: usize,
}

/// Why an announce is refused (sent back as BEP 3's `failure reason`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    #[error("missing or malformed parameter {0}")]
    Param(&'static str),
    #[error("not an image this server serves")]
    UnknownTorrent,
}

/// Reads the query string; `info_hash` and `peer_id` are raw bytes,
/// percent-encoded, so the query is decoded by hand, not as UTF-8.
pub fn parse(query: &str) -> Result<Announce, Refused> {
    let mut info_hash = None;
    let mut peer_id = None;
    let mut port = None;
    let mut left = None;
    let mut stopped = false;
    let mut numwant = 50;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let bytes: Vec<u8> = percent_encoding::percent_decode_str(v).collect();
        let text = || std::str::from_utf8(&bytes).ok();
        match k {
            "info_hash" => {
                info_hash =
                    Some(bytes.as_slice().try_into().map_err(|_| Refused::Param("info_hash"))?)
            }
            "peer_id" if bytes.len() == 20 => peer_id = Some(bytes),
            "peer_id" => return Err(Refused::Param("peer_id")),
            "port" => {
                port = Some(text().and_then(|t| t.parse().ok()).ok_or(Refused::Param("port"))?)
            }
            "left" => {
                left = Some(text().and_then(|t| t.parse().ok()).ok_or(Refused::Param("left"))?)
            }
            "event" => stopped = text() == Some("stopped"),
            "numwant" => {
                numwant = text().and_then(|t| t.parse().ok()).ok_or(Refused::Param("numwant"))?;
            }
            _ => {}
        }
    }
    let port: u16 = port.ok_or(Refused::Param("port"))?;
    if port == 0 {
        return Err(Refused::Param("port"));
    }
    Ok(Announce {
        info_hash: info_hash.ok_or(Refused::Param("info_hash"))?,
        peer_id: peer_id.ok_or(Refused::Param("peer_id"))?,
        port,
        left,
        stopped,
        numwant: numwant.min(NUMWANT_MAX),
    })
}

struct Peer {
    addr: SocketAddr,
    left: Option<u64>,
    seen: Instant,
    /// Its first announce: its place in the room's tree ([`Swarm::neighbours`]).
    first: Instant,
}

/// One image's PCs, by peer id, and the one the server's seed is listed to.
#[derive(Default)]
struct Swarm {
    peers: HashMap<Vec<u8>, Peer>,
    leader: Option<Vec<u8>>,
}

impl Swarm {
    /// Whether the PC `id` is given the server's seed. One PC at a time is:
    /// the first that needs it becomes the room's leader and stays so until
    /// it has the whole image, stops or goes silent. The others get the
    /// image from the PCs ahead of them, which go no slower than the
    /// server's link feeds the leader: the server sends each piece about
    /// once. The leader is kept, not chosen again at each announce: a PC
    /// once told of the seed stays connected to it, and announces come
    /// every [`INTERVAL`], so "furthest along" read from them is stale and
    /// named a new PC at nearly every announce (the room then pulled each
    /// piece from the server several times). When the leader has the whole
    /// image the next PC that announces and lacks some leads: the others
    /// are close behind it by then (the tree), and a PC that says it has
    /// everything is not believed enough to cut the room off the server (a
    /// rogue host announcing `left=0` would have, when that stopped the
    /// seed for all). A PC left with nobody to give it a piece (peers that
    /// cannot reach each other) stalls and goes on over HTTP (the agent's
    /// RoomFetch).
    fn seed_to(&mut self, id: &[u8]) -> bool {
        let done = |p: &Peer| p.left == Some(0);
        let gone = |leader: &Vec<u8>| self.peers.get(leader).is_none_or(done);
        if self.leader.as_ref().is_some_and(gone) {
            self.leader = None;
        }
        if self.peers.get(id).is_none_or(done) {
            return false;
        }
        match &self.leader {
            Some(leader) => leader == id,
            None => {
                self.leader = Some(id.to_vec());
                true
            }
        }
    }

    /// The PCs `id` is told of: its parent in a binary tree of the room
    /// (the leader at its root, then the PCs in the order they first
    /// announced) and the two PCs just before it. A PC streams the image
    /// in order, so each wants the piece the leader just got from the
    /// server; told of everyone (as before), all 39 others of a room of 40
    /// asked the leader for it, its link gave each a 39th of its speed,
    /// and half the image was still missing everywhere when the leader had
    /// it all (`make bench-room`: 40 PCs 3.7x one PC). In the tree a piece
    /// goes from a PC to at most 4 others (2 children, the next 2), less
    /// than its link's 5 times the server's, then on from them; the PCs
    /// before it are the ones that have more. Stable between announces:
    /// the order changes only when a PC comes, goes or leads.
    fn neighbours(&self, id: &[u8]) -> Vec<SocketAddr> {
        let mut order: Vec<(&Vec<u8>, &Peer)> = self.peers.iter().collect();
        order.sort_by_key(|(pid, p)| (self.leader.as_ref() != Some(*pid), p.first, *pid));
        let Some(i) = order.iter().position(|(pid, _)| pid.as_slice() == id) else {
            return Vec::new();
        };
        let mut at: Vec<usize> =
            [i.checked_sub(1).map(|j| j / 2), i.checked_sub(1), i.checked_sub(2)]
                .into_iter()
                .flatten()
                .collect();
        at.sort_unstable();
        at.dedup();
        at.into_iter().map(|j| order[j].1.addr).collect()
    }
}

struct Known {
    hashes: HashSet<[u8; 20]>,
    read: Option<Instant>,
}

pub struct Tracker {
    /// Info hash → peer id → where it is.
    swarms: Mutex<HashMap<[u8; 20], Swarm>>,
    known: Mutex<Known>,
    images: PathBuf,
    /// The peer port of the server's own seed of each image it seeds.
    seeds: HashMap<[u8; 20], u16>,
    /// Who gives each PC the engine (`GET /engine`).
    handouts: Mutex<Handouts>,
}

impl Tracker {
    pub fn new(images: PathBuf, seeds: HashMap<[u8; 20], u16>) -> Self {
        Tracker {
            swarms: Mutex::default(),
            known: Mutex::new(Known { hashes: HashSet::new(), read: None }),
            images,
            seeds,
            handouts: Mutex::default(),
        }
    }

    /// Whether `hash` is the torrent of an image in the images folder,
    /// reading the folder again at most every [`RESCAN`].
    fn serves(&self, hash: &[u8; 20], now: Instant) -> bool {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.hashes.contains(hash) {
            return true;
        }
        if known.read.is_some_and(|t| now.duration_since(t) < RESCAN) {
            return false;
        }
        known.hashes = super::plan::usable_manifests(&self.images)
            .into_iter()
            .filter_map(|m| m.torrent.as_deref().and_then(unhex20))
            .collect();
        known.read = Some(now);
        known.hashes.contains(hash)
    }

    /// Records `a`, sent from `conn`, and answers with the other peers.
    pub fn announce(&self, a: &Announce, conn: ConnAddrs, now: Instant) -> Result<Value, Refused> {
        if !self.serves(&a.info_hash, now) {
            return Err(Refused::UnknownTorrent);
        }
        let mut swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
        let swarm = swarms.entry(a.info_hash).or_default();
        swarm.peers.retain(|_, p| now.duration_since(p.seen) < EXPIRE);
        if a.stopped {
            swarm.peers.remove(&a.peer_id);
        } else {
            let addr = SocketAddr::new(conn.remote.ip(), a.port);
            let first = swarm.peers.get(&a.peer_id).map_or(now, |p| p.first);
            swarm.peers.insert(a.peer_id.clone(), Peer { addr, left: a.left, seen: now, first });
        }
        let seed = self.seeds.get(&a.info_hash).map(|&port| SocketAddr::new(conn.local.ip(), port));
        let seed = seed.filter(|_| swarm.seed_to(&a.peer_id));
        let listed = seed.into_iter().chain(swarm.neighbours(&a.peer_id)).take(a.numwant);
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for addr in listed {
            let (list, ip) = match canonical(addr.ip()) {
                IpAddr::V4(ip) => (&mut v4, ip.octets().to_vec()),
                IpAddr::V6(ip) => (&mut v6, ip.octets().to_vec()),
            };
            list.extend_from_slice(&ip);
            list.extend_from_slice(&addr.port().to_be_bytes());
        }
        let (complete, incomplete) = swarm.peers.values().fold((0, 0), |(c, i), p| match p.left {
            Some(0) => (c + 1, i),
            _ => (c, i + 1),
        });
        Ok(Value::dict([
            ("interval", Value::Int(INTERVAL.as_secs() as i64)),
            ("min interval", Value::Int(INTERVAL.as_secs() as i64 / 2)),
            ("complete", Value::Int(complete + i64::from(seed.is_some()))),
            ("incomplete", Value::Int(incomplete)),
            ("peers", Value::Bytes(v4)),
            ("peers6", Value::Bytes(v6)),
        ]))
    }

    /// Where the PC at `to` gets the engine: from a PC announcing now (any
    /// image: each runs the same engine and serves it, see
    /// [`lazare_proto::engine_port`]), the server, or in a moment.
    pub fn engine_source(&self, to: IpAddr, now: Instant) -> EngineSource {
        let sources: Vec<(IpAddr, SocketAddr)> = {
            let swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
            let mut by_age: Vec<&Peer> = swarms
                .values()
                .flat_map(|s| s.peers.values())
                .filter(|p| now.duration_since(p.seen) < EXPIRE)
                .collect();
            by_age.sort_by_key(|p| p.first);
            by_age
                .into_iter()
                .map(|p| {
                    let ip = canonical(p.addr.ip());
                    (ip, SocketAddr::new(ip, lazare_proto::engine_port(p.addr.port())))
                })
                .collect()
        };
        let mut handouts = self.handouts.lock().unwrap_or_else(|e| e.into_inner());
        handouts.answer(canonical(to), &sources, now)
    }

    /// PCs announcing now, all images together (for `/metrics`).
    pub fn peers_known(&self, now: Instant) -> usize {
        let swarms = self.swarms.lock().unwrap_or_else(|e| e.into_inner());
        swarms
            .values()
            .flat_map(|s| s.peers.values())
            .filter(|p| now.duration_since(p.seen) < EXPIRE)
            .count()
    }
}

/// An IPv4 peer reached over an IPv6 socket is listed as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// An info hash from its hex form.
pub fn unhex20(hex: &str) -> Option<[u8; 20]> {
    let bytes = lazare_proto::unhex(hex)?;
    bytes.try_into().ok()
}

/// The tracker's own router: `GET /announce`, and `GET /engine` (one
/// line, [`EngineSource`]).
pub fn router(tracker: Arc<Tracker>) -> axum::Router {
    axum::Router::new()
        .route("/announce", axum::routing::get(announce))
        .route(ENGINE_SOURCE_PATH, axum::routing::get(engine))
        .with_state(tracker)
}

async fn engine(
    State(tracker): State<Arc<Tracker>>,
    Extension(conn): Extension<ConnAddrs>,
) -> Response {
    let answer = tracker.engine_source(conn.remote.ip(), Instant::now());
    ([(header::CONTENT_TYPE, "text/plain")], answer.line()).into_response()
}

async fn announce(
    State(tracker): State<Arc<Tracker>>,
    Extension(conn): Extension<ConnAddrs>,
    RawQuery(query): RawQuery,
) -> Response {
    let answer = parse(query.as_deref().unwrap_or(""))
        .and_then(|a| tracker.announce(&a, conn, Instant::now()))
        .unwrap_or_else(|e| Value::dict([("failure reason", Value::bytes(e.to_string()))]));
    ([(header::CONTENT_TYPE, "text/plain")], answer.encode()).into_response()
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
