use super::*;
use lazare_proto::{hex, ImageFormat, ImageManifest};

const HASH: [u8; 20] = [0xab; 20];

fn conn(remote: &str) -> ConnAddrs {
    ConnAddrs { local: "10.0.0.1:8471".parse().unwrap(), remote: remote.parse().unwrap() }
}

/// An images folder serving one image whose torrent is [`HASH`].
fn images() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let m = ImageManifest {
        name: "test".into(),
        file: "t.tar.zst".into(),
        sha256: "0".repeat(64),
        size: 3,
        format: ImageFormat::TarZst,
        installed_size: 0,
        suite: "bookworm".into(),
        locale: "C.UTF-8".into(),
        keymap: "us".into(),
        timezone: "UTC".into(),
        created: 0,
        chunks: None,
        tools: None,
        torrent: Some(hex(&HASH)),
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
fn a_room_learns_of_each_other_and_of_the_server_seed() {
    let dir = images();
    let t = Tracker::new(dir.path().to_path_buf(), Some(6999));
    let now = Instant::now();
    let first = parse(&query(1, 6881, "&left=3")).unwrap();
    // Alone: only the server's seed, at the address the PC reached it on.
    let v = t.announce(&first, conn("10.0.0.11:40000"), now).unwrap();
    assert_eq!(peers(&v, "peers"), [10, 0, 0, 1, 0x1b, 0x57]);
    // A second PC gets the seed, then the first PC at its own port.
    let second = parse(&query(2, 6882, "&left=3")).unwrap();
    let v = t.announce(&second, conn("10.0.0.12:40001"), now).unwrap();
    assert_eq!(peers(&v, "peers"), [10, 0, 0, 1, 0x1b, 0x57, 10, 0, 0, 11, 0x1a, 0xe1]);
    assert_eq!(t.peers_known(now), 2);
    // Stopped: forgotten at once. Silent: forgotten after EXPIRE.
    t.announce(&parse(&query(1, 6881, "&event=stopped")).unwrap(), conn("10.0.0.11:1"), now)
        .unwrap();
    assert_eq!(t.peers_known(now), 1);
    assert_eq!(t.peers_known(now + EXPIRE), 0);
    // An IPv6 peer goes in peers6; an IPv4-mapped one in peers.
    let v6 = parse(&query(3, 7000, "")).unwrap();
    let v = t.announce(&v6, conn("[fd00::3]:5"), now).unwrap();
    assert_eq!(peers(&v, "peers").len(), 12);
    let v = t.announce(&second, conn("[::ffff:10.0.0.12]:5"), now).unwrap();
    assert_eq!(peers(&v, "peers6").len(), 18);
    assert_eq!(peers(&v, "peers"), [10, 0, 0, 1, 0x1b, 0x57]);
}

#[test]
fn only_the_images_served_are_tracked_and_the_answer_is_bencode() {
    let dir = images();
    let t = Tracker::new(dir.path().to_path_buf(), None);
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
        b"d8:completei0e10:incompletei1e8:intervali30e12:min intervali10e5:peers0:6:peers60:e"
    );
}
