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
    for (i, inv) in invs.iter().enumerate() {
        assert_eq!(post_json(&s.url("/api/v1/hello"), inv).status, 200);
        let id = &inv.machine_id;
        for k in 0..=i {
            let ev = Event {
                phase: Phase::Download,
                percent: Some(k as u8 * 10),
                message: format!("chunk {k}"),
            };
            assert_eq!(
                post_json(&s.url(&format!("/api/v1/machines/{id}/events")), &ev).status,
                204
            );
        }
        let log = format!("log of machine {i}\n");
        assert_eq!(
            post(&s.url(&format!("/api/v1/machines/{id}/log")), "text/plain", log.as_bytes())
                .status,
            204
        );
    }
    let bearer = format!("Bearer {token}");
    let r = post_with(
        &s.url(&format!("/api/v1/machines/{}/reinstall", invs[0].machine_id)),
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 204);
    let before = get(&s.url("/api/v1/machines")).json();
    s.kill();

    let s = TestServer::start(dir.path());
    assert_eq!(s.public_key, key);
    assert_eq!(s.token(), token);
    assert!(!s.banner.iter().any(|l| l.contains(&token)), "token printed again: {:#?}", s.banner);
    assert_eq!(get(&s.url("/api/v1/machines")).json(), before);
    let html = get(&s.url("/")).text();
    for n in 1..=5 {
        assert!(html.contains(&format!("pc-{n:03}")), "dashboard lost pc-{n:03}");
    }
    for (i, inv) in invs.iter().enumerate() {
        let d = get(&s.url(&format!("/api/v1/machines/{}", inv.machine_id))).json();
        assert_eq!(d["events"].as_array().unwrap().len(), i + 1);
        assert_eq!(d["logs"][0]["text"], format!("log of machine {i}\n"));
        let page = get(&s.url(&format!("/machines/{}", inv.machine_id))).text();
        assert!(page.contains(&format!("log of machine {i}")));
    }
    let next = get(&s.url(&format!("/api/v1/machines/{}/next", invs[0].machine_id))).json();
    assert_eq!(next["action"], "reinstall");
    // New PCs continue the numbering.
    let r = post_json(&s.url("/api/v1/hello"), &inventory(6, 1024));
    assert_eq!(r.json()["hostname"], "pc-006");
}
