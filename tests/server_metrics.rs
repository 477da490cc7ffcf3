//! `GET /metrics` on the real `lazare serve`: the admin's only, and its
//! counters move with what the server really did (a hello, a machine, an
//! image download counted by the bytes that went out).

mod server_support;

use server_support::*;

/// The value of the sample line starting with `name` (labels included).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_are_for_the_admin_and_count_what_the_server_did() {
    let dir = tempfile::tempdir().unwrap();
    let image = add_image(dir.path(), "light", &[7u8; 300_000]);
    add_image(dir.path(), "standard", b"s");
    let s = TestServer::start(dir.path());
    assert_eq!(get(&s.url("/metrics")).status, 401);

    let before = s.admin_get("/metrics");
    assert_eq!(before.status, 200);
    let text = before.text();
    assert_eq!(sample(&text, "lazare_hellos_total"), 0.0);
    assert_eq!(sample(&text, "lazare_image_bytes_sent_total{protocol=\"http\"}"), 0.0);

    s.enrol(&inventory(1, 256));
    let got = get(&s.url(&format!("/images/{}", image.file)));
    assert_eq!(got.status, 200);
    assert_eq!(got.body.len() as u64, image.size);

    let text = s.admin_get("/metrics").text();
    assert_eq!(sample(&text, "lazare_hellos_total"), 1.0);
    assert_eq!(
        sample(&text, "lazare_image_bytes_sent_total{protocol=\"http\"}"),
        image.size as f64
    );
    assert_eq!(sample(&text, "lazare_machines{status=\"seen\"}"), 1.0);
    assert_eq!(sample(&text, "lazare_request_seconds_count{kind=\"images\"}"), 1.0);
    // The hello and the first scrape (this scrape is timed after it renders).
    assert!(sample(&text, "lazare_request_seconds_count{kind=\"api\"}") >= 1.0, "{text}");
    assert!(text.contains("# TYPE lazare_request_seconds histogram"));
}

/// The room's tracker on the real server: its own port from the banner, an
/// announce in the raw form BitTorrent clients send it, the other PC in
/// the answer, and the PCs it knows in `/metrics`.
#[test]
fn the_tracker_introduces_the_pcs_of_a_room_and_metrics_count_them() {
    let dir = tempfile::tempdir().unwrap();
    let image = add_image(dir.path(), "light", &[9u8; 3 << 20]);
    let hash = lazare_proto::unhex(image.torrent.as_deref().expect("a torrent")).unwrap();
    let s = TestServer::start_room(dir.path(), None);
    let tracker = s
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("room tracker: "))
        .expect("the banner names the tracker")
        .to_string();
    let enc = |b: &[u8]| b.iter().map(|b| format!("%{b:02X}")).collect::<String>();
    let announce = |hash: &[u8], id: u8, port: u16| {
        let q = format!(
            "info_hash={}&peer_id={}&port={port}&left=100&compact=1",
            enc(hash),
            enc(&[id; 20])
        );
        let r = get(&format!("{tracker}?{q}"));
        assert_eq!(r.status, 200);
        r.body
    };
    let first = announce(&hash, 1, 6881);
    assert!(first.ends_with(b"5:peers0:6:peers60:e"), "{}", String::from_utf8_lossy(&first));
    // The second PC learns where the first is: 127.0.0.1, port 6881.
    let second = announce(&hash, 2, 6882);
    assert!(
        second.ends_with(b"5:peers6:\x7f\x00\x00\x01\x1a\xe16:peers60:e"),
        "{}",
        String::from_utf8_lossy(&second)
    );
    // A torrent this server does not serve is refused in BitTorrent's way.
    let other = announce(&[0x55; 20], 3, 6883);
    assert_eq!(other, b"d14:failure reason31:not an image this server servese");
    // Where a PC gets the engine: the two PCs announced from the asking
    // PC's own address, so nobody else runs it: from the server (asking
    // again is a retry, answered the same).
    let engine = tracker.replace("/announce", lazare_proto::ENGINE_SOURCE_PATH);
    assert_eq!(get(&engine).body, b"server\n");
    assert_eq!(get(&engine).body, b"server\n");
    let text = s.admin_get("/metrics").text();
    assert_eq!(sample(&text, "lazare_room_peers"), 2.0);
    // No seed here (no engine): nothing sent over BitTorrent, and said so.
    assert_eq!(sample(&text, "lazare_image_bytes_sent_total{protocol=\"bittorrent\"}"), 0.0);
}
