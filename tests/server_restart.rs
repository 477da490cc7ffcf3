//! Machines, events and logs survive the server being killed and restarted
//! on the same data dir; the key and token stay the same.

mod server_support;

use lazare_proto::{Event, Phase};
use server_support::*;

#[test]
fn everything_survives_a_killed_server() {
    let dir = tempfile::tempdir().unwrap();
    add_image(dir.path(), "light", b"l");
    add_image(dir.path(), "standard", b"s");
    let s = TestServer::start(dir.path());
    assert!(s.banner.iter().any(|l| l.starts_with("admin token (shown once")), "{:#?}", s.banner);
    let token = s.token();
    let key = s.public_key.clone();
    let invs: Vec<_> = (1..=5).map(|n| inventory(n, 256 * u64::from(n))).collect();
    let mut secrets = Vec::new();
    for (i, inv) in invs.iter().enumerate() {
        let secret = s.enrol(inv);
        let id = &inv.machine_id;
        for k in 0..=i {
            let ev = Event {
                phase: Phase::Download,
                percent: Some(k as u8 * 10),
                message: format!("chunk {k}"),
                from_peers: None,
            };
            let url = s.url(&format!("/api/v1/machines/{id}/events"));
            assert_eq!(machine_post_json(&url, &secret, &ev).status, 204);
        }
        let log = format!("log of machine {i}\n");
        let url = s.url(&format!("/api/v1/machines/{id}/log"));
        assert_eq!(machine_post(&url, &secret, "text/plain", log.as_bytes()).status, 204);
        secrets.push(secret);
    }
    let r = s.admin_post(&format!("/api/v1/machines/{}/reinstall", invs[0].machine_id), b"");
    assert_eq!(r.status, 204);
    let before = s.admin_get("/api/v1/machines").json();
    s.kill();

    let s = TestServer::start(dir.path());
    assert_eq!(s.public_key, key);
    assert_eq!(s.token(), token);
    assert!(!s.banner.iter().any(|l| l.contains(&token)), "token printed again: {:#?}", s.banner);
    assert_eq!(s.admin_get("/api/v1/machines").json(), before);
    let html = s.admin_get("/").text();
    for n in 1..=5 {
        assert!(html.contains(&format!("pc-{n:03}")), "dashboard lost pc-{n:03}");
    }
    for (i, inv) in invs.iter().enumerate() {
        let d = s.admin_get(&format!("/api/v1/machines/{}", inv.machine_id)).json();
        assert_eq!(d["events"].as_array().unwrap().len(), i + 1);
        assert_eq!(d["logs"][0]["text"], format!("log of machine {i}\n"));
        let page = s.admin_get(&format!("/machines/{}", inv.machine_id)).text();
        assert!(page.contains(&format!("log of machine {i}")));
    }
    let next_url = s.url(&format!("/api/v1/machines/{}/next", invs[0].machine_id));
    assert_eq!(machine_get(&next_url, &secrets[0]).json()["action"], "reinstall");
    // The secrets survive too: a known PC still proves itself, a stranger still cannot.
    assert_eq!(s.hello(&invs[1], Some(&secrets[1])).reply.status, 200);
    assert_eq!(s.hello(&invs[1], None).reply.status, 401);
    // New PCs continue the numbering.
    let r = s.hello(&inventory(6, 1024), None).reply;
    assert_eq!(r.json()["hostname"], "pc-006");
}
