//! A second reader of the image inside the engine, from a place of this
//! PC's own choosing. librqbit asks peers for the pieces ahead of each open
//! stream in turn (32 MiB of each), then for the rest in file order; with
//! the agent's reader alone, PCs that started together all wanted the same
//! next piece at the same time and only the room's leader had it: at 40 PCs
//! in `make bench-room` every follower waited on the leader's one link for
//! each piece and stalled. With this reader each PC also wants the pieces
//! after its own random place, takes those from the leader while the
//! others take theirs, and they give them to each other.
//!
//! And [`reconnect`]: librqbit drops a peer that has nothing this PC needs
//! when they meet, and calls such peers back only when a stream opens. In a
//! room every PC has nothing at first, so the PCs dropped each other and
//! each kept only the leader: when the leader left, 39 PCs with 10 to 14 of
//! 17 pieces each sat with 2 to 4 peers and nothing to take from them
//! (`make bench-room`, 40 PCs).

use std::io::SeekFrom;
use std::sync::Arc;

use librqbit::ManagedTorrent;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::swarm::PIECE_LEN;

/// Reads the file from a random piece to its end, then from its start to
/// that piece, throwing the bytes away; ends when it has read the whole
/// file (every piece is then on disk) or the stream fails.
pub async fn run(torrent: Arc<ManagedTorrent>) {
    let total = torrent.stats().total_bytes;
    // The torrent's own: small images have pieces under 1 MiB
    // (lazare_proto::chunk_size_for).
    let piece = torrent.with_metadata(|m| m.lengths().default_piece_length());
    let piece = u64::from(piece.unwrap_or(PIECE_LEN));
    let pieces = total.div_ceil(piece);
    if pieces < 2 {
        return;
    }
    let start = random_below(pieces) * piece;
    let Ok(mut stream) = torrent.stream(0).await else { return };
    let mut buf = vec![0u8; 256 * 1024];
    for (from, to) in [(start, total), (0, start)] {
        if stream.seek(SeekFrom::Start(from)).await.is_err() {
            return;
        }
        let mut left = to - from;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            // Asked again every RECHECK: librqbit can miss a stream's wake-up.
            match tokio::time::timeout(crate::http::RECHECK, stream.read(&mut buf[..want])).await {
                Err(_) => continue,
                Ok(Ok(0) | Err(_)) => return,
                Ok(Ok(n)) => left -= n as u64,
            }
        }
    }
}

/// Not for secrets: a different place per PC, from the clock and the pid.
fn random_below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    // splitmix64's finaliser: neighbouring inputs spread over the range.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) % n
}

/// How often the peers dropped as "not needed" are called back: each
/// time every such connection is made again, so not too often in a room of
/// 40.
const RECONNECT: std::time::Duration = std::time::Duration::from_secs(10);

/// Until the file is whole: opens (and closes) a stream every
/// [`RECONNECT`], which makes librqbit call back the peers it dropped as
/// having nothing for us; they may have pieces now.
pub async fn reconnect(torrent: Arc<ManagedTorrent>) {
    loop {
        tokio::time::sleep(RECONNECT).await;
        if torrent.stats().finished {
            return;
        }
        drop(torrent.clone().stream(0).await);
    }
}
