//! Where a PC of the room gets the sharing engine: the tracker's answer to
//! `GET /engine` (one line), written by the server and read by the agent.
//! The engine is 3 MB compressed; a room of 40 pulling it from the server
//! sent 40 of them through the server's link (8 image sizes in the
//! scaled `make bench-room`, a fifth of the real `standard` image). PCs
//! running it serve it to the others instead, and whatever a PC is sent is
//! checked against the sha256 its signed plan pins before it is run.

use std::net::SocketAddr;

/// The tracker's path for the question.
pub const ENGINE_SOURCE_PATH: &str = "/engine";

/// The name a PC serves the engine under (`GET /lazare-share.zst`).
pub const ENGINE_FILE: &str = "lazare-share.zst";

/// A PC of the room serves the engine on its BitTorrent peer port + 1.
pub fn engine_port(peer_port: u16) -> u16 {
    peer_port.wrapping_add(1)
}

/// The tracker's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineSource {
    /// Take it from this PC (its engine port).
    Peer(SocketAddr),
    /// Take it from the server's [`crate::ENGINE_PATH`].
    Server,
    /// Others are fetching it now and will serve it soon: ask again.
    Wait,
}

impl EngineSource {
    pub fn line(&self) -> String {
        match self {
            EngineSource::Peer(addr) => format!("peer {addr}\n"),
            EngineSource::Server => "server\n".into(),
            EngineSource::Wait => "wait\n".into(),
        }
    }

    /// The answer, or `None` for anything else (the agent then asks the
    /// server directly).
    pub fn parse(text: &str) -> Option<EngineSource> {
        match text.trim().split_once(' ') {
            Some(("peer", addr)) => addr.parse().ok().map(EngineSource::Peer),
            None if text.trim() == "server" => Some(EngineSource::Server),
            None if text.trim() == "wait" => Some(EngineSource::Wait),
            _ => None,
        }
    }

    /// The URL to fetch from a peer.
    pub fn peer_url(addr: SocketAddr) -> String {
        format!("http://{addr}/{ENGINE_FILE}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_anything_else_is_refused() {
        for a in [
            EngineSource::Peer("10.0.0.12:6882".parse().unwrap()),
            EngineSource::Peer("[fd00::3]:6882".parse().unwrap()),
            EngineSource::Server,
            EngineSource::Wait,
        ] {
            assert_eq!(EngineSource::parse(&a.line()), Some(a));
        }
        for bad in ["", "peer", "peer nowhere", "server now", "d8:failure"] {
            assert_eq!(EngineSource::parse(bad), None, "{bad}");
        }
        assert_eq!(
            EngineSource::peer_url("10.0.0.12:6882".parse().unwrap()),
            "http://10.0.0.12:6882/lazare-share.zst"
        );
    }
}
