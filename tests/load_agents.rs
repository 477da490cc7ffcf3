//! 40 PCs booting at once: each says hello, streams events and uploads its
//! log concurrently; every event and every log line must be stored.
//! Prints the figures; asserts no time.

mod server_support;

use lazare_proto::{Event, Phase, Plan, PublicKey, SIGNATURE_HEADER};
use server_support::*;
use std::time::Instant;

const AGENTS: u32 = 40;
const EVENTS: usize = 30;
const LOG_CHUNKS: usize = 5;
const LINES_PER_CHUNK: usize = 40;

#[test]
fn forty_agents_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    add_image(dir.path(), "light", b"light");
    add_image(dir.path(), "standard", b"standard");
    let s = TestServer::start(dir.path());
    let key: PublicKey = s.public_key.parse().unwrap();
    let base = s.base.clone();
    let start = Instant::now();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(AGENTS as usize));
    let agents: Vec<_> = (1..=AGENTS)
        .map(|n| {
            let (base, key, barrier) = (base.clone(), key.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                agent(&base, &key, n)
            })
        })
        .collect();
    let ids: Vec<String> = agents.into_iter().map(|a| a.join().expect("agent thread")).collect();
    let elapsed = start.elapsed();

    let list = s.admin_get("/api/v1/machines").json();
    assert_eq!(list.as_array().unwrap().len(), AGENTS as usize);
    let mut hostnames: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["hostname"].as_str().unwrap().to_string())
        .collect();
    hostnames.sort();
    hostnames.dedup();
    assert_eq!(hostnames.len(), AGENTS as usize, "two PCs got the same host name");
    for (i, id) in ids.iter().enumerate() {
        let d = s.admin_get(&format!("/api/v1/machines/{id}")).json();
        assert_eq!(d["status"], "installed", "agent {i}");
        let events = d["events"].as_array().unwrap();
        assert_eq!(events.len(), EVENTS + 1, "agent {i}");
        for (k, e) in events.iter().take(EVENTS).enumerate() {
            assert_eq!(e["message"], format!("agent {i} event {k}"));
        }
        let log = d["logs"][0]["text"].as_str().unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), LOG_CHUNKS * LINES_PER_CHUNK, "agent {i}");
        for (k, line) in lines.iter().enumerate() {
            assert_eq!(*line, format!("agent {i} log line {k}"));
        }
    }
    let requests = AGENTS as usize * (1 + EVENTS + 1 + LOG_CHUNKS);
    println!(
        "load: {AGENTS} agents, {requests} requests in {:.2} s ({:.0} requests/s)",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64()
    );
}

/// One agent's conversation; returns its machine id.
fn agent(base: &str, key: &PublicKey, n: u32) -> String {
    let i = n - 1;
    let inv = inventory(n, if n.is_multiple_of(2) { 256 } else { 1024 });
    let id = inv.machine_id.clone();
    let r = post_json(&format!("{base}/api/v1/hello"), &inv);
    assert_eq!(r.status, 200, "{}", r.text());
    // Every later call proves the machine with the secret its hello got.
    let secret = r.header("Lazare-Machine-Secret").expect("the hello enrols the PC").to_string();
    key.verify(&r.body, r.header(SIGNATURE_HEADER).unwrap()).expect("plan signature");
    let plan: Plan = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(plan.setup.image.name, if n.is_multiple_of(2) { "light" } else { "standard" });
    let events = format!("{base}/api/v1/machines/{id}/events");
    let log = format!("{base}/api/v1/machines/{id}/log");
    let mut line = 0;
    for k in 0..EVENTS {
        let ev = Event {
            phase: Phase::Download,
            percent: Some((k * 100 / EVENTS) as u8),
            message: format!("agent {i} event {k}"),
            from_peers: None,
        };
        assert_eq!(machine_post_json(&events, &secret, &ev).status, 204);
        if k.is_multiple_of(EVENTS / LOG_CHUNKS) {
            let chunk: String = (0..LINES_PER_CHUNK)
                .map(|_| {
                    line += 1;
                    format!("agent {i} log line {}\n", line - 1)
                })
                .collect();
            assert_eq!(machine_post(&log, &secret, "text/plain", chunk.as_bytes()).status, 204);
        }
    }
    let done =
        Event { phase: Phase::Installed, percent: None, message: "done".into(), from_peers: None };
    assert_eq!(machine_post_json(&events, &secret, &done).status, 204);
    id
}
