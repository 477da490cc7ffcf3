//! `lazare serve` API v1 against the real binary on loopback: signed plans
//! checked with OpenSSL, image rules, events, logs, reinstall, bad input.

mod server_support;

use lazare_proto::{Event, Phase, Plan, SIGNATURE_HEADER};
use server_support::*;

fn hello(s: &TestServer, inv: &lazare_proto::Inventory) -> Reply {
    post_json(&s.url("/api/v1/hello"), inv)
}

/// Later hellos of a machine carry its secret.
fn hello_again(s: &TestServer, inv: &lazare_proto::Inventory, secret: &str) -> Reply {
    let h = s.hello(inv, Some(secret));
    assert!(h.secret.is_none(), "a proven hello must not hand out a new secret");
    h.reply
}

#[test]
fn plans_are_signed_and_pick_the_image_by_ram() {
    let dir = tempfile::tempdir().unwrap();
    let light = add_image(dir.path(), "light", b"light image bytes");
    let standard = add_image(dir.path(), "standard", b"standard image, bigger bytes");
    let s = TestServer::start(dir.path());

    // The key printed at start is the one `lazare key show` prints.
    let shown = std::process::Command::new(env!("CARGO_BIN_EXE_lazare"))
        .args(["key", "show", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(shown.status.success());
    assert_eq!(String::from_utf8(shown.stdout).unwrap().trim(), s.public_key);

    let mut secrets = Vec::new();
    for (n, ram, want) in
        [(1, 256, &light), (2, 384, &light), (3, 512, &standard), (4, 2048, &standard)]
    {
        let inv = inventory(n, ram);
        let h = s.hello(&inv, None);
        secrets.push(h.secret.clone().expect("a new machine gets its secret"));
        let r = h.reply;
        assert_eq!(r.status, 200, "{}", r.text());
        let sig = r.header(SIGNATURE_HEADER).expect("signature header").to_string();
        assert!(openssl_verify(&s.public_key, &r.body, &sig), "OpenSSL refused the plan signature");
        let mut tampered = r.body.clone();
        tampered[10] ^= 1;
        assert!(!openssl_verify(&s.public_key, &tampered, &sig), "OpenSSL accepted a changed body");

        let plan: Plan = serde_json::from_slice(&r.body).unwrap();
        plan.validate_for(&inv.machine_id).unwrap();
        assert_eq!(plan.setup.image.name, want.name, "{ram} MiB");
        assert_eq!(plan.setup.image.url, format!("/images/{}", want.file));
        assert_eq!(plan.setup.image.sha256, want.sha256);
        assert_eq!(plan.setup.image.size, want.size);
        assert_eq!(plan.hostname, format!("pc-{n:03}"));
        assert_eq!((plan.setup.locale.as_str(), plan.setup.keymap.as_str()), ("fr_FR.UTF-8", "fr"));
        assert_eq!(plan.setup.timezone, "Europe/Paris");
        assert_eq!(plan.challenge, h.challenge, "the plan echoes the hello's challenge");
        assert_eq!(plan.valid_secs, lazare_proto::PLAN_VALID_SECS);
    }

    // The same PC keeps its number; the plan carries a fresh nonce.
    let a: Plan =
        serde_json::from_slice(&hello_again(&s, &inventory(1, 256), &secrets[0]).body).unwrap();
    let b: Plan =
        serde_json::from_slice(&hello_again(&s, &inventory(1, 256), &secrets[0]).body).unwrap();
    assert_eq!((a.hostname.as_str(), b.hostname.as_str()), ("pc-001", "pc-001"));
    assert_ne!(a.nonce, b.nonce);

    // The image URL is served, whole and in ranges.
    let whole = get(&s.url(&a.setup.image.url));
    assert_eq!((whole.status, whole.body.as_slice()), (200, &b"light image bytes"[..]));
    let part = get_with(&s.url(&a.setup.image.url), &[("Range", "bytes=6-10")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, b"image");
    assert_eq!(part.header("Content-Range"), Some("bytes 6-10/17"));
    assert_eq!(get(&s.url("/images/../lazare.toml")).status, 404);
    assert_eq!(get(&s.url("/images/server.key")).status, 404);
}

#[test]
fn missing_image_is_a_clear_503_and_the_machine_is_still_listed() {
    let dir = tempfile::tempdir().unwrap();
    add_image(dir.path(), "standard", b"std");
    let s = TestServer::start(dir.path());
    let r = hello(&s, &inventory(9, 256));
    assert_eq!(r.status, 503);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(msg.contains("\"light\"") && msg.contains("lazare image add"), "{msg}");
    // Any PC reads this answer: it names no path of the server.
    assert!(!msg.contains(&dir.path().display().to_string()), "{msg}");
    let list = s.admin_get("/api/v1/machines").json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["status"], "seen");
}

#[test]
fn events_logs_status_and_remote_reinstall() {
    let dir = tempfile::tempdir().unwrap();
    add_image(dir.path(), "light", b"l");
    add_image(dir.path(), "standard", b"s");
    let s = TestServer::start(dir.path());
    let inv = inventory(7, 1024);
    let id = inv.machine_id.clone();
    let m = |p: &str| s.url(&format!("/api/v1/machines/{id}{p}"));
    let list = || s.admin_get("/api/v1/machines").json();

    // Unknown machine: 404 on every agent call.
    let ev = Event {
        phase: Phase::Partition,
        percent: Some(0),
        message: "sda".into(),
        from_peers: None,
    };
    let nobody = "0".repeat(64);
    assert_eq!(machine_post_json(&m("/events"), &nobody, &ev).status, 404);
    assert_eq!(machine_post(&m("/log"), &nobody, "text/plain", b"x").status, 404);
    assert_eq!(machine_get(&m("/next"), &nobody).status, 404);
    assert_eq!(s.admin_get(&format!("/api/v1/machines/{id}")).status, 404);

    let secret = s.enrol(&inv);
    assert_eq!(list()[0]["status"], "seen");
    assert_eq!(machine_post_json(&m("/events"), &secret, &ev).status, 204);
    assert_eq!(list()[0]["status"], "installing");
    // What the room gave this PC goes on its row (and the dashboard's).
    assert!(list()[0]["from_peers"].is_null());
    let room = Event {
        phase: Phase::Download,
        percent: None,
        message: "room: 3 MiB".into(),
        from_peers: Some(3 * MIB),
    };
    assert_eq!(machine_post_json(&m("/events"), &secret, &room).status, 204);
    assert_eq!(list()[0]["from_peers"], 3 * MIB);
    assert!(s.admin_get("/").text().contains("3 MiB from the room"));
    machine_post(&m("/log"), &secret, "text/plain", b"line 1\n");
    machine_post(&m("/log"), &secret, "text/plain", b"line 2 \xff\n");
    let done =
        Event { phase: Phase::Installed, percent: None, message: "done".into(), from_peers: None };
    assert_eq!(machine_post_json(&m("/events"), &secret, &done).status, 204);

    let list = list();
    let row = &list[0];
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["hostname"], "pc-001");
    assert_eq!(row["status"], "installed");
    assert_eq!(row["accepted"], true);
    assert_eq!(row["last_event"]["phase"], "installed");
    assert_eq!(row["hardware"]["memory_bytes"], 1024 * MIB);
    assert!(row["hardware"]["disks"][0].as_str().unwrap().starts_with("sda 37.3 GiB HDD"));
    assert!(row["first_seen"].as_str().unwrap().ends_with('Z'));

    let detail = s.admin_get(&format!("/api/v1/machines/{id}")).json();
    // Partition, the room's, installed.
    assert_eq!(detail["events"].as_array().unwrap().len(), 3);
    assert_eq!(detail["logs"][0]["install"], 1);
    assert_eq!(detail["logs"][0]["text"], "line 1\nline 2 \u{fffd}\n");
    assert_eq!(detail["inventory"]["cpu_model"], inv.cpu_model.as_str());

    // Reinstall: admin only, seen by /next, cleared by the next hello.
    let next = || machine_get(&m("/next"), &secret).json()["action"].clone();
    assert_eq!(next(), "none");
    assert_eq!(post_with(&m("/reinstall"), &[], b"").status, 401);
    assert_eq!(post_with(&m("/reinstall"), &[("Authorization", "Bearer wrong")], b"").status, 403);
    assert_eq!(next(), "none");
    let reinstall = format!("/api/v1/machines/{id}/reinstall");
    assert_eq!(s.admin_post(&reinstall, b"").status, 204);
    assert_eq!(next(), "reinstall");
    assert_eq!(hello_again(&s, &inv, &secret).status, 200);
    assert_eq!(next(), "none");
    // A second install keeps its log apart from the first.
    machine_post(&m("/log"), &secret, "text/plain", b"second install\n");
    let detail = s.admin_get(&format!("/api/v1/machines/{id}")).json();
    assert_eq!(detail["logs"][1]["install"], 2);
    assert_eq!(detail["logs"][1]["text"], "second install\n");
    assert_eq!(detail["status"], "seen");
}

#[test]
fn bad_input_is_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    add_image(dir.path(), "light", b"l");
    add_image(dir.path(), "standard", b"s");
    let mut s = TestServer::start(dir.path());
    let hello_url = s.url("/api/v1/hello");

    let r = post(&hello_url, "application/json", b"{\"machine_id\": ");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("invalid inventory JSON"), "{}", r.text());
    let r = post(&hello_url, "application/json", b"[1, 2]");
    assert_eq!(r.status, 400);

    let mut inv = inventory(1, 512);
    inv.machine_id = "not-hex".into();
    let r = post_json(&hello_url, &inv);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("machine_id"), "{}", r.text());
    let mut inv = inventory(1, 512);
    inv.nics[0].mac = "zz".into();
    assert_eq!(post_json(&hello_url, &inv).status, 400);

    // 20 MB bodies: refused on every endpoint that takes one.
    let good = inventory(2, 512);
    let secret = s.enrol(&good);
    let id = &good.machine_id;
    for path in [
        "/api/v1/hello".to_string(),
        format!("/api/v1/machines/{id}/events"),
        format!("/api/v1/machines/{id}/log"),
    ] {
        assert_eq!(post_huge(&s.base, &path, 20_000_000), 413, "{path}");
    }
    let ev = s.url(&format!("/api/v1/machines/{id}/events"));
    let r = machine_post(
        &ev,
        &secret,
        "application/json",
        b"{\"phase\": \"melting\", \"percent\": 1, \"message\": \"\"}",
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("melting"), "{}", r.text());
    let r = machine_post(
        &ev,
        &secret,
        "application/json",
        b"{\"phase\": \"format\", \"percent\": 101, \"message\": \"\"}",
    );
    assert_eq!(r.status, 400);

    // Machine ids in paths: 64 lowercase hex.
    assert_eq!(get(&s.url("/api/v1/machines/../../etc/next")).status, 404);
    assert_eq!(get(&s.url(&format!("/api/v1/machines/{}/next", id.to_uppercase()))).status, 400);
    assert_eq!(get(&s.url("/api/v1/machines/abc/next")).status, 400);

    // Still up and still answering correctly.
    assert!(s.alive());
    assert_eq!(s.hello(&good, Some(&secret)).reply.status, 200);
    assert_eq!(s.admin_get("/api/v1/machines").json().as_array().unwrap().len(), 1);
}
