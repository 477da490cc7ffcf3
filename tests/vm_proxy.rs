//! A real CD behind a hostile proxy (issue 14): an ISO made with `lazare
//! build` boots in qemu (TCG, BIOS, 256 MB, one blank disk) and reaches the
//! real `lazare serve` only through a proxy of tests/proxy that forges,
//! records, replays or changes what the server says. Each time the agent
//! refuses, says why on the screen (checked on the serial console, with the
//! agent's own English sentence), and the disk file ends byte-identical.
//!
//! Five boots in all, one VM at a time:
//! - HTTPS: a proxy with its own key and certificate; a relay that records
//!   a whole session; the recorded server bytes played to the next boot.
//! - Plain HTTP (lab mode): the plan with one byte changed; the recorded
//!   plan played to the next boot.

mod common;
mod proxy;
mod server_support;

use lazare::vm::{BootFrom, DiskInterface, DiskSpec, Firmware, Machine, Vm, VmSpec};
use lazare_agent::i18n::t;
use lazare_agent::{http, tls};
use proxy::{Front, Play, Upstream};
use server_support::TestServer;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// One VM at a time (the machine's rule): the two tests take turns.
static ONE_VM: Mutex<()> = Mutex::new(());

/// The rules of both servers: one image for a 256 MB PC, any PC accepted at
/// once (no enrolment window to open), and what a plan orders.
fn rules(action: &str) -> String {
    format!(
        "hostname = \"pc-{{n:03}}\"\nlocale = \"en_GB.UTF-8\"\nkeymap = \"gb\"\n\
         timezone = \"Europe/London\"\nenroll = \"open\"\naction = \"{action}\"\n\n\
         [[image]]\nprofile = \"light\"\n"
    )
}

/// A server with fake images (it never looks inside: no plan here gets as
/// far as downloading one) and its rules.
fn data_dir(dir: &Path, action: &str) -> PathBuf {
    let data = dir.join("data");
    server_support::add_image(&data, "light", b"light");
    std::fs::write(data.join("lazare.toml"), rules(action)).unwrap();
    data
}

/// `lazare build` for the proxy on `port`, pinned to the server's key, with
/// `retries` more tries at the server after the first: then the failure and
/// the choices.
fn build_iso(dir: &Path, scheme: &str, port: u16, public_key: &str, retries: u32) -> PathBuf {
    let key_file = dir.join("server.pub");
    std::fs::write(&key_file, format!("{public_key}\n")).unwrap();
    let iso = dir.join(format!("lazare-{scheme}.iso"));
    common::build_iso(
        &iso,
        &[
            "--server",
            &format!("{scheme}://10.0.2.100:{port}"),
            "--key",
            key_file.to_str().unwrap(),
            "--timeout",
            "1",
            "--cmdline",
            // no_timer_check: see tests/vm_boot.rs.
            &format!("lazare.retries={retries} no_timer_check"),
        ],
    );
    iso
}

/// A blank 8 GiB disk, big enough for any plan to be written on it: an
/// agent that wrongly accepted a plan would change the file.
fn blank_disk(path: &Path) {
    let out = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg("8G")
        .output()
        .expect("running qemu-img (apt package qemu-utils)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn sha256_file(path: &Path) -> String {
    lazare_proto::hex(&sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// One boot of `iso` with `disk` attached, the guest's server port
/// forwarded to 127.0.0.1:`port`.
fn start_vm(iso: &Path, disk: &Path, port: u16, serial: PathBuf) -> Vm {
    let mut spec = VmSpec::new(Some(iso.to_path_buf()), serial);
    spec.boot_from = BootFrom::Cdrom;
    spec.firmware = Firmware::Bios;
    spec.machine = Machine::Pc;
    spec.memory_mb = 256;
    spec.disks = vec![DiskSpec::new(disk, DiskInterface::Ide)];
    spec.guestfwd_port = Some(port);
    spec.max_runtime = Duration::from_secs(600);
    Vm::start(&spec).unwrap()
}

/// Boots until the agent shows `plain` and PID 1 offers its choices, then
/// chooses "power off"; returns the serial output and the technical details
/// shown under the failures (one per try at the server).
fn boot_until_refused(
    iso: &Path,
    disk: &Path,
    port: u16,
    serial: PathBuf,
    plain: &str,
) -> (String, Vec<String>) {
    let mut vm = start_vm(iso, disk, port, serial);
    if let Err(e) = vm.wait_for(plain, Duration::from_secs(540)) {
        panic!("no {plain:?} on the serial console: {e}\n{}", vm.output());
    }
    let choices = t_first_words("choices");
    if let Err(e) = vm.wait_for(choices.as_str(), Duration::from_secs(120)) {
        panic!("no choices after the failure: {e}\n{}", vm.output());
    }
    vm.send("p\n").unwrap();
    let status = vm.wait_exit(Duration::from_secs(120));
    let out = vm.output();
    assert!(status.is_ok(), "the VM did not power off when asked: {status:?}\n{out}");
    // Each failure shows as its try fails; the last shows again as the
    // agent gives up.
    let mut details: Vec<String> =
        out.lines().filter(|l| l.starts_with("Technical detail: ")).map(str::to_string).collect();
    details.dedup();
    assert!(!details.is_empty(), "no technical detail\n{out}");
    (out, details)
}

/// The start of a sentence, before its first colon (the choices line goes on
/// with letters the test need not repeat).
fn t_first_words(id: &str) -> String {
    t(id).split(':').next().unwrap().trim().to_string()
}

/// The server's machine list, read as the admin over the pinned channel.
fn machines_https(server: &TestServer, key: &lazare_proto::PublicKey) -> Vec<serde_json::Value> {
    let config = tls::client_config(tls::Trust::Pinned(key.clone()), 0).unwrap();
    let client =
        http::Client::new(http::agent(vec![], config), server.base.parse().unwrap(), vec![]);
    let list: serde_json::Value = client
        .agent
        .get(&server.url("/api/v1/machines"))
        .set("Authorization", &server.bearer())
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    list.as_array().cloned().unwrap_or_else(|| panic!("not a list: {list}"))
}

fn machines_http(server: &TestServer) -> Vec<serde_json::Value> {
    let list = server.admin_get("/api/v1/machines").json();
    list.as_array().cloned().unwrap_or_else(|| panic!("not a list: {list}"))
}

#[test]
fn https_cd_refuses_a_forging_proxy_and_a_replayed_session() {
    let _one = ONE_VM.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // The plan orders an inventory: the recording boot reports and powers off.
    let server = TestServer::start_https(&data_dir(dir.path(), "inventory"));
    let key: lazare_proto::PublicKey = server.public_key.parse().unwrap();
    let target = server.base.trim_start_matches("https://").to_string();
    let port = common::free_port();
    // Two tries at the server: two forgers in boot a.
    let iso = build_iso(dir.path(), "https", port, &server.public_key, 1);
    let disk = dir.path().join("disk.qcow2");
    blank_disk(&disk);
    let blank = sha256_file(&disk);

    // a. The proxy answers the first try with a certificate for a key of its
    // own, the second with the server's own certificate (it is public), the
    // handshake signed with a key of its own; it would forward the
    // decrypted requests to the server.
    let copied = proxy::server_certificate(&target);
    let forger = proxy::mitm(
        port,
        vec![Front::ForgedTls, Front::CopiedCert(copied)],
        Upstream::Pinned(target.clone(), key.clone()),
        Play::Forward,
    );
    let (out, details) =
        boot_until_refused(&iso, &disk, port, dir.path().join("forged.log"), &t("fail-not-pinned"));
    {
        let seen = forger.seen.lock().unwrap();
        assert!(seen.requests.is_empty(), "a request crossed the forged TLS: {:?}", seen.requests);
        assert_eq!(seen.refused_handshakes.len(), 2, "{:?}\n{out}", seen.refused_handshakes);
        println!("the forger's handshakes: {:?}", seen.refused_handshakes);
    }
    drop(forger);
    assert_eq!(details.len(), 2, "{details:#?}");
    assert!(
        details[0].contains("not for the install server's key baked into this CD"),
        "{details:#?}"
    );
    assert!(details[1].contains("cannot sign with that key"), "{details:#?}");
    // Both times the staff read that another server answered.
    assert!(!out.contains(&t("fail-server")), "{out}");
    assert_eq!(sha256_file(&disk), blank, "the disk changed behind a forging proxy\n{out}");
    assert!(machines_https(&server, &key).is_empty(), "the server saw a hello\n{out}");
    println!("forged TLS: {details:#?}");

    // b. A relay records one whole session (hello, plan, inventory)...
    let relay = proxy::relay(port, target);
    let mut vm = start_vm(&iso, &disk, port, dir.path().join("record.log"));
    let status = vm.wait_exit(Duration::from_secs(560));
    let out = vm.output();
    drop(vm);
    assert!(status.is_ok(), "the recorded boot did not power off by itself: {status:?}\n{out}");
    // The CD orders no action of its own: only the server's plan, verified,
    // makes it report and power off.
    assert!(out.contains(&t("details-sent")), "{out}");
    let conns = relay.seen.lock().unwrap().clone();
    drop(relay);
    let hellos = machines_https(&server, &key);
    assert_eq!(hellos.len(), 1, "{hellos:?}\n{out}");
    assert_eq!(hellos[0]["install"], 1, "{hellos:?}");
    assert!(!conns.is_empty(), "nothing crossed the relay\n{out}");
    // The first connection carried the hello: past its ClientHello, a
    // request is an encrypted record of hundreds of bytes (the replayed
    // session below sees none of that size).
    let up = proxy::tls_records(&conns[0].up);
    assert!(up.iter().skip(1).any(|r| r.len >= 64), "no request was recorded: {up:?}");
    let recorded = conns[0].down_bytes();

    // ... and its server bytes are played to the next boot of the same CD.
    let replayer = proxy::replay(port, recorded);
    let (out, details) =
        boot_until_refused(&iso, &disk, port, dir.path().join("replay.log"), &t("fail-server"));
    let tried = replayer.seen.lock().unwrap().clone();
    drop(replayer);
    assert!(!tried.is_empty(), "the CD never met the replayer\n{out}");
    // The handshakes themselves failed (the recorded ServerHello answers
    // another ClientHello's key share), so no request could be sent...
    for d in &details {
        assert!(d.contains("tls connection init failed"), "{details:#?}");
    }
    // ... and none was: past its ClientHello the CD sent only short records
    // (a change cipher spec, an encrypted alert of 19 bytes), never the
    // hundreds of bytes of a request.
    for c in &tried {
        let records = proxy::tls_records(&c.up);
        assert!(
            records.iter().skip(1).all(|r| r.len < 64),
            "the CD sent more than an alert to a replayed session: {records:?}\n{out}"
        );
    }
    assert_eq!(sha256_file(&disk), blank, "the disk changed behind a replaying proxy\n{out}");
    let after = machines_https(&server, &key);
    assert_eq!(after[0]["install"], 1, "a hello reached the server: {after:?}");
    println!("replayed TLS session: {details:#?}");
}

/// Changes one hex digit of the image's sha256 in a plan: what a proxy that
/// swaps the image for its own must do.
fn change_image_hash(answer: &mut [u8]) {
    let start = proxy::body_start(answer).expect("an answer with a body");
    let plan: serde_json::Value = serde_json::from_slice(&answer[start..]).expect("a JSON plan");
    let sha = plan["image"]["sha256"].as_str().expect("the plan names the image's sha256");
    let at = answer[start..]
        .windows(sha.len())
        .position(|w| w == sha.as_bytes())
        .expect("the hash in the body's bytes")
        + start;
    answer[at] = if answer[at] == b'0' { b'1' } else { b'0' };
}

#[test]
fn plain_http_cd_refuses_a_changed_or_replayed_plan() {
    let _one = ONE_VM.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // The plan orders an install: only the refusal keeps the disk blank.
    let server = TestServer::start(&data_dir(dir.path(), "install"));
    let target = server.base.trim_start_matches("http://").to_string();
    let port = common::free_port();
    let iso = build_iso(dir.path(), "http", port, &server.public_key, 0);
    let disk = dir.path().join("disk.qcow2");
    blank_disk(&disk);
    let blank = sha256_file(&disk);

    // c1. The proxy forwards the hello and changes one byte of the plan.
    let changer = proxy::mitm(
        port,
        vec![Front::Plain],
        Upstream::Plain(target.clone()),
        Play::Tamper(change_image_hash),
    );
    let (out, details) =
        boot_until_refused(&iso, &disk, port, dir.path().join("changed.log"), &t("fail-refused"));
    let recorded = {
        let seen = changer.seen.lock().unwrap();
        assert_eq!(seen.hello_answers.len(), 1, "{:?}\n{out}", seen.requests);
        seen.hello_answers[0].clone()
    };
    drop(changer);
    assert_eq!(details.len(), 1, "{details:#?}");
    assert!(details[0].contains("signature"), "{details:#?}");
    assert_eq!(sha256_file(&disk), blank, "the disk changed under a changed plan\n{out}");
    // The agent told the server why (its failure event crossed the proxy).
    let list = machines_http(&server);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "failed", "{list:?}\n{out}");
    assert_eq!(list[0]["install"], 1, "{list:?}");
    println!("changed plan: {}", details[0]);

    // c2. The plan recorded above, as the server signed it, answers the next
    // boot's hello; the server is not asked.
    let replayer =
        proxy::mitm(port, vec![Front::Plain], Upstream::Plain(target), Play::Replay(recorded));
    let (out, details) =
        boot_until_refused(&iso, &disk, port, dir.path().join("replayed.log"), &t("fail-replayed"));
    let requests = replayer.seen.lock().unwrap().requests.clone();
    drop(replayer);
    assert!(requests.iter().any(|r| r.starts_with("POST /api/v1/hello ")), "{requests:?}");
    assert_eq!(details.len(), 1, "{details:#?}");
    assert!(details[0].contains("replayed plan"), "{details:#?}");
    assert_eq!(sha256_file(&disk), blank, "the disk changed under a replayed plan\n{out}");
    let list = machines_http(&server);
    assert_eq!(list[0]["install"], 1, "the replayed hello reached the server: {list:?}");
    println!("replayed plan: {}", details[0]);
}
