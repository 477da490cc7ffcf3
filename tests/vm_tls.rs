//! The pinned channel from a real boot: an ISO made with `lazare build
//! --server https://10.0.2.100:PORT --key server.pub` boots in qemu (TCG)
//! and its agent's hello reaches the real `lazare serve` over HTTPS
//! (guestfwd to 127.0.0.1); with `lazare.action=inventory` it reports and
//! powers off. A TCP relay between the two reads the TLS record headers to
//! time each handshake under TCG (printed, not asserted).

mod common;
mod server_support;

use lazare::vm::{BootFrom, Firmware, Machine, Vm, VmSpec};
use lazare_agent::{http, tls};
use server_support::TestServer;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When one connection's records crossed the relay.
#[derive(Debug, Default, Clone)]
struct Handshake {
    /// The client's first record (its ClientHello) arrived.
    hello: Option<Instant>,
    /// The client's first encrypted record (TLS 1.3: its Finished) arrived.
    finished: Option<Instant>,
}

/// Relays 127.0.0.1:`port` to `target`, noting record times per connection.
fn relay(port: u16, target: String) -> Arc<Mutex<Vec<Handshake>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(client) = c else { continue };
            let Ok(server) = TcpStream::connect(&target) else { continue };
            let n = {
                let mut s = out.lock().unwrap();
                s.push(Handshake::default());
                s.len() - 1
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
            let out = out.clone();
            std::thread::spawn(move || client_to_server(client, server, &out, n));
        }
    });
    seen
}

/// Copies the client's bytes, reading the 5-byte TLS record headers
/// (type, version, length) to time the ClientHello and the first 0x17 record.
fn client_to_server(
    mut client: TcpStream,
    mut server: TcpStream,
    out: &Mutex<Vec<Handshake>>,
    n: usize,
) {
    let (mut buf, mut pending) = ([0u8; 16384], Vec::new());
    loop {
        let got = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => k,
        };
        let now = Instant::now();
        pending.extend_from_slice(&buf[..got]);
        while pending.len() >= 5 {
            let len = u16::from_be_bytes([pending[3], pending[4]]) as usize;
            if pending.len() < 5 + len {
                break;
            }
            let mut s = out.lock().unwrap();
            let h = &mut s[n];
            h.hello.get_or_insert(now);
            if pending[0] == 0x17 {
                h.finished.get_or_insert(now);
            }
            pending.drain(..5 + len);
        }
        if server.write_all(&buf[..got]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Write);
}

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
    let handshakes = relay(port, server.base.trim_start_matches("https://").to_string());

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
    let client = http::Client::new(http::agent(vec![], config), server.base.parse().unwrap());
    let list: serde_json::Value = client
        .agent
        .get(&server.url("/api/v1/machines"))
        .set("Authorization", &format!("Bearer {}", server.token()))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}\n{out}");

    let hs = handshakes.lock().unwrap().clone();
    let times: Vec<String> = hs
        .iter()
        .filter_map(|h| Some(h.finished?.duration_since(h.hello?).as_millis()))
        .map(|ms| format!("{ms} ms"))
        .collect();
    assert!(!times.is_empty(), "no TLS handshake crossed the relay: {hs:?}");
    println!(
        "TLS handshakes under TCG (ClientHello to the client's Finished): {}",
        times.join(", ")
    );
}
