use super::*;
use lazare_proto::{hex, ImageManifest};
use std::time::Duration;

const HASH: [u8; 20] = [0xab; 20];

fn conn(remote: &str) -> ConnAddrs {
    ConnAddrs { local: "10.0.0.1:8471".parse().unwrap(), remote: remote.parse().unwrap() }
}

/// An images folder serving one image whose torrent is [`HASH`].
fn images() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let m = ImageManifest {
        torrent: Some(hex(&HASH)),
        ..lazare_proto::testing::manifest("test", "t.tar.zst", b"abc")
    };
    std::fs::write(dir.path().join("t.tar.zst"), b"abc").unwrap();
    std::fs::write(dir.path().join("t.tar.zst.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    dir
}

fn query(id: u8, port: u16, extra: &str) -> String {
    let enc = |b: &[u8]| b.iter().map(|b| format!("%{b:02X}")).collect::<String>();
    format!(
        "info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&compact=1{extra}",
        enc(&HASH),
        enc(&[id; 20])
    )
}

fn peers(v: &Value, key: &str) -> Vec<u8> {
    let Value::Dict(d) = v else { panic!("{v:?}") };
    match d.get(key.as_bytes()) {
        Some(Value::Bytes(b)) => b.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

#[test]
fn parses_raw_bytes_and_refuses_what_is_missing() {
    let a = parse(&query(7, 6881, "&left=100&event=started&numwant=500")).unwrap();
    assert_eq!(a.info_hash, HASH);
    assert_eq!(a.peer_id, [7; 20]);
    assert_eq!((a.port, a.left, a.stopped, a.numwant), (6881, Some(100), false, NUMWANT_MAX));
    assert!(parse(&query(7, 6881, "&event=stopped")).unwrap().stopped);
    assert_eq!(parse("peer_id=x&port=1"), Err(Refused::Param("peer_id")));
    assert_eq!(parse(&query(7, 0, "")), Err(Refused::Param("port")));
    assert_eq!(parse("info_hash=%AB&port=1"), Err(Refused::Param("info_hash")));
    assert_eq!(parse(&query(7, 6881, "&left=many")), Err(Refused::Param("left")));
}

#[test]
fn a_room_learns_of_the_pcs_ahead_and_one_leader_at_a_time_of_the_server_seed() {
    let dir = images();
    let t = Tracker::new(dir.path().to_path_buf(), HashMap::from([(HASH, 6999)]));
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    const SEED: [u8; 6] = [10, 0, 0, 1, 0x1b, 0x57];
    const PC1: [u8; 6] = [10, 0, 0, 11, 0x1a, 0xe1];
    const PC2: [u8; 6] = [10, 0, 0, 12, 0x1a, 0xe2];
    const PC3: [u8; 6] = [10, 0, 0, 13, 0x1a, 0xe3];
    let ann = |id: u8, left: u64, at: Instant| {
        let q = query(id, 6880 + u16::from(id), &format!("&left={left}"));
        let v = t.announce(&parse(&q).unwrap(), conn(&format!("10.0.0.1{id}:40000")), at).unwrap();
        peers(&v, "peers")
    };
    // Alone: the server's seed, at the address the PC reached it on.
    assert_eq!(ann(1, 3, t0), SEED);
    // A second PC gets the first PC only.
    assert_eq!(ann(2, 3, t0 + s), PC1);
    // The leader keeps the seed; a PC that overtakes it on paper (PC 1's
    // figure is an announce old) is not given it: one PC holds the seed.
    assert_eq!(ann(2, 1, t0 + 2 * s), PC1);
    // The leader is the root of the room's tree: told of the seed only
    // (the others connect to it).
    assert_eq!(ann(1, 2, t0 + 3 * s), SEED);
    // A third PC: its parent (the leader) and the PC before it.
    assert_eq!(ann(3, 3, t0 + 4 * s), [PC1, PC2].concat());
    // The leader has the whole image: the next PC that lacks some leads and
    // is the new root; the complete PC stays in the tree for the others.
    assert!(ann(1, 0, t0 + 5 * s).is_empty());
    assert_eq!(ann(2, 1, t0 + 6 * s), SEED);
    assert_eq!(ann(3, 3, t0 + 6 * s), [PC2, PC1].concat());
    assert_eq!(t.peers_known(t0 + 6 * s), 3);
    // A leader that stops (it reboots) is replaced by the next PC that
    // announces. Stopped: forgotten at once. Silent: after EXPIRE.
    t.announce(&parse(&query(1, 6881, "&event=stopped")).unwrap(), conn("10.0.0.11:1"), t0)
        .unwrap();
    t.announce(&parse(&query(2, 6882, "&event=stopped")).unwrap(), conn("10.0.0.12:1"), t0)
        .unwrap();
    assert_eq!(ann(3, 2, t0 + 7 * s), SEED);
    assert_eq!(ann(2, 1, t0 + 7 * s), PC3);
    assert_eq!(t.peers_known(t0 + 7 * s + EXPIRE), 0);
    // The leader went silent: PC 2 leads when it announces again.
    assert_eq!(ann(2, 1, t0 + 8 * s + EXPIRE), SEED);
    // An IPv6 peer goes in peers6; an IPv4-mapped one in peers.
    let v6 = parse(&query(4, 7000, "&left=3")).unwrap();
    let v = t.announce(&v6, conn("[fd00::3]:5"), t0 + 9 * s + EXPIRE).unwrap();
    assert_eq!(peers(&v, "peers"), PC2);
    let mapped = parse(&query(5, 6885, "&left=1")).unwrap();
    let v = t.announce(&mapped, conn("[::ffff:10.0.0.15]:5"), t0 + 10 * s + EXPIRE).unwrap();
    assert_eq!(peers(&v, "peers6").len(), 18);
    assert_eq!(peers(&v, "peers"), PC2);
}

#[test]
fn each_pc_is_told_of_its_parent_and_the_two_before_it_and_feeds_at_most_four() {
    let dir = images();
    let t = Tracker::new(dir.path().to_path_buf(), HashMap::from([(HASH, 6999)]));
    let t0 = Instant::now();
    let n: u8 = 40;
    // listed[i]: the PCs PC i is told of, by their join order.
    let mut listed = Vec::new();
    for i in 0..n {
        let q = query(i + 1, 6881, "&left=5");
        let v =
            t.announce(&parse(&q).unwrap(), conn(&format!("10.0.1.{}:40000", i + 1)), t0).unwrap();
        let got = peers(&v, "peers");
        if i == 0 {
            // The first is the leader: the server's seed, nobody else.
            assert_eq!(got, [10, 0, 0, 1, 0x1b, 0x57]);
        }
        listed.push(got.chunks(6).map(|c| usize::from(c[3]) - 1).collect::<Vec<_>>());
    }
    for (i, got) in listed.iter().enumerate().skip(1) {
        let mut want = vec![(i - 1) / 2, i - 1];
        want.extend(i.checked_sub(2));
        want.sort_unstable();
        want.dedup();
        assert_eq!(*got, want, "PC {i}");
    }
    // A piece goes from a PC to at most 4 others: its link is 5 times the
    // server's in a room (`make bench-room`).
    for j in 0..usize::from(n) {
        let fed = listed.iter().skip(1).filter(|l| l.contains(&j)).count();
        assert!(fed <= 4, "PC {j} feeds {fed}");
    }
}

#[test]
fn only_the_images_served_are_tracked_and_the_answer_is_bencode() {
    let dir = images();
    let t = Tracker::new(dir.path().to_path_buf(), HashMap::new());
    let mut other = parse(&query(1, 6881, "")).unwrap();
    other.info_hash = [1; 20];
    assert_eq!(
        t.announce(&other, conn("10.0.0.11:1"), Instant::now()),
        Err(Refused::UnknownTorrent)
    );
    let v = t
        .announce(&parse(&query(1, 6881, "")).unwrap(), conn("10.0.0.11:1"), Instant::now())
        .unwrap();
    // No seed of its own and nobody else yet: an empty list.
    assert_eq!(
        v.encode(),
        b"d8:completei0e10:incompletei1e8:intervali10e12:min intervali5e5:peers0:6:peers60:e"
    );
}

#[test]
fn the_engine_comes_from_a_pc_announcing_now_at_its_engine_port() {
    let dir = images();
    let t = Tracker::new(dir.path().to_path_buf(), HashMap::new());
    let t0 = Instant::now();
    let pc1: IpAddr = "10.0.0.11".parse().unwrap();
    let pc2: IpAddr = "10.0.0.12".parse().unwrap();
    assert_eq!(t.engine_source(pc1, t0), EngineSource::Server);
    assert_eq!(t.engine_source(pc2, t0), EngineSource::Wait);
    t.announce(&parse(&query(1, 6881, "&left=3")).unwrap(), conn("10.0.0.11:40000"), t0).unwrap();
    let from = SocketAddr::new(pc1, lazare_proto::engine_port(6881));
    assert_eq!(t.engine_source(pc2, t0), EngineSource::Peer(from));
    // Reached over IPv6 as an IPv4-mapped address: still the same PC.
    let mapped: IpAddr = "::ffff:10.0.0.11".parse().unwrap();
    assert_ne!(t.engine_source(mapped, t0), EngineSource::Peer(from));
}
