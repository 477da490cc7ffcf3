//! The pinned channel from a real boot: an ISO made with `lazare build
//! --server https://10.0.2.100:PORT --key server.pub` boots in qemu (TCG)
//! and its agent's hello reaches the real `lazare serve` over HTTPS
//! (guestfwd to 127.0.0.1); with `lazare.action=inventory` it reports and
//! powers off. A TCP relay between the two (tests/proxy) records what
//! crossed; its TLS record headers time each handshake under TCG (printed,
//! not asserted).

mod common;
mod proxy;
mod server_support;

use lazare::vm::{BootFrom, Firmware, Machine, Vm, VmSpec};
use lazare_agent::{http, tls};
use server_support::TestServer;
use std::time::Duration;

#[test]
fn cd_says_hello_over_the_pinned_https_channel() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The default rules pick light (< 512 MiB) or standard.
    server_support::add_image(&data, "light", b"light");
    server_support::add_image(&data, "standard", b"standard");
    let server = TestServer::start_https(&data);
    let key: lazare_proto::PublicKey = server.public_key.parse().unwrap();
    let key_file = dir.path().join("server.pub");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let port = common::free_port();
    let iso = dir.path().join("lazare.iso");
    common::build_iso(
        &iso,
        &[
            "--server",
            &format!("https://10.0.2.100:{port}"),
            "--key",
            key_file.to_str().unwrap(),
            "--timeout",
            "1",
            "--cmdline",
            // no_timer_check: see tests/vm_boot.rs.
            "lazare.action=inventory lazare.retries=2 no_timer_check",
        ],
    );
    let relayed = proxy::relay(port, server.base.trim_start_matches("https://").to_string());

    let mut spec = VmSpec::new(Some(iso), dir.path().join("serial.log"));
    spec.boot_from = BootFrom::Cdrom;
    spec.firmware = Firmware::Bios;
    spec.machine = Machine::Pc;
    spec.memory_mb = 256;
    spec.guestfwd_port = Some(port);
    spec.max_runtime = Duration::from_secs(600);
    let mut vm = Vm::start(&spec).unwrap();
    let status = vm.wait_exit(Duration::from_secs(560));
    let out = vm.output();
    assert!(status.is_ok(), "the VM did not power off by itself: {status:?}\n{out}");
    assert!(out.contains("Powering off"), "{out}");

    // The server got the hello and the inventory, through the pinned channel.
    let config = tls::client_config(tls::Trust::Pinned(key), 0).unwrap();
    let client =
        http::Client::new(http::agent(vec![], config), server.base.parse().unwrap(), vec![]);
    let list: serde_json::Value = client
        .agent
        .get(&server.url("/api/v1/machines"))
        .set("Authorization", &format!("Bearer {}", server.token()))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}\n{out}");

    // From the ClientHello to the client's first encrypted record (TLS 1.3:
    // its Finished), per connection.
    let conns = relayed.seen.lock().unwrap().clone();
    let times: Vec<String> = conns
        .iter()
        .filter_map(|c| {
            let records = proxy::tls_records(&c.up);
            let hello = records.first()?.complete;
            let finished = records.iter().find(|r| r.content_type == 0x17)?.complete;
            Some(format!("{} ms", finished.duration_since(hello).as_millis()))
        })
        .collect();
    assert!(!times.is_empty(), "no TLS handshake crossed the relay: {conns:?}");
    println!(
        "TLS handshakes under TCG (ClientHello to the client's Finished): {}",
        times.join(", ")
    );
}
