//! Fresh plans (issue 14): the agent's own HTTP client and plan check
//! against the real install server (`lazare serve`, in this process on
//! loopback, with its real SQLite). A plan recorded for an earlier hello,
//! or one that arrives after its validity, is refused before anything could
//! touch a disk: `flow::work` installs only a plan `verify::plan` returned.

use lazare_agent::http::{self, SignedAnswer};
use lazare_agent::screen::Screen;
use lazare_agent::{tls, verify};
use lazare_proto::{Dmi, ImageFormat, ImageManifest, Inventory, PublicKey, PLAN_VALID_SECS};
use sha2::Digest;
use std::path::Path;
use std::time::{Duration, Instant};

/// Starts `lazare serve` on a free loopback port with one image; returns its base URL.
fn start_server(data: &Path) -> String {
    let images = data.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let bytes = b"not really an image";
    std::fs::write(images.join("standard-1.tar.zst"), bytes).unwrap();
    let m = ImageManifest {
        name: "standard".into(),
        file: "standard-1.tar.zst".into(),
        sha256: lazare_proto::hex(&sha2::Sha256::digest(bytes)),
        size: bytes.len() as u64,
        format: ImageFormat::TarZst,
        installed_size: 1 << 30,
        suite: "bookworm".into(),
        locale: "fr_FR.UTF-8".into(),
        keymap: "fr".into(),
        timezone: "Europe/Paris".into(),
        created: 1,
        chunks: None,
        tools: None,
        torrent: None,
    };
    let manifest = images.join("standard-1.tar.zst.json");
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    // The chunk index as `lazare image add` makes it (the plan names its hash).
    lazare::image::chunks::ensure(&manifest).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let args = lazare::serve::ServeArgs {
        data: data.to_path_buf(),
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        http: false,
        tracker_port: None,
        no_tracker: true,
    };
    // Runs until the test process ends.
    std::thread::spawn(move || lazare::serve::run(&args));
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(start.elapsed() < Duration::from_secs(60), "lazare serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    format!("https://{addr}")
}

fn inventory() -> Inventory {
    let mac = "52:54:00:12:34:56".to_string();
    let dmi = Dmi { serial: Some("REPLAY1".into()), ..Dmi::default() };
    let id = Inventory::compute_machine_id(&dmi, std::slice::from_ref(&mac));
    serde_json::from_value(serde_json::json!({
        "machine_id": id, "memory_bytes": 1u64 << 30, "cpus": 1, "cpu_model": "Pentium 4",
        "firmware": "bios", "dmi": dmi, "disks": [], "boot_device": null,
        "nics": [{"name": "eth0", "mac": mac, "driver": "e1000", "carrier": true}]
    }))
    .unwrap()
}

#[test]
fn a_replayed_or_late_plan_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = start_server(dir.path());
    let key: PublicKey =
        std::fs::read_to_string(dir.path().join("server.pub")).unwrap().trim().parse().unwrap();
    // The pinned channel, as on the CD.
    let tls = tls::client_config(tls::Trust::Pinned(key.clone()), 0).unwrap();
    let server = http::Client::new(http::agent(vec![], tls), base.parse().unwrap(), vec![]);
    let inv = inventory();
    let screen = Screen::stderr();

    let first = server.hello(&inv).expect("the first hello");
    assert!(server.secret().is_some(), "the first hello enrolled the machine");
    let second = server.hello(&inv).expect("a later hello, proven with the secret");
    assert_ne!(first.challenge, second.challenge);
    let plan = verify::plan(&second, Some(&key), false, &inv.machine_id, &screen).unwrap();
    assert_eq!(plan.challenge, second.challenge);

    // A man in the middle answers the second hello with the first, validly
    // signed, answer (an old plan: another image, `home = "fresh"`...).
    let replay =
        SignedAnswer { body: first.body.clone(), signature: first.signature, ..second.clone() };
    verify::check(&replay, Some(&key)).expect("the replayed bytes are validly signed");
    let e = verify::plan(&replay, Some(&key), false, &inv.machine_id, &screen).unwrap_err();
    assert!(e.plain.contains("nothing will be written"), "{}", e.plain);
    assert!(e.detail.contains("replayed"), "{}", e.detail);

    // The right answer held back past its validity.
    let sent = Instant::now().checked_sub(Duration::from_secs(u64::from(PLAN_VALID_SECS) + 1));
    let late = SignedAnswer { sent: sent.expect("uptime"), ..second };
    let e = verify::plan(&late, Some(&key), false, &inv.machine_id, &screen).unwrap_err();
    assert!(e.detail.contains("validity"), "{}", e.detail);
}
