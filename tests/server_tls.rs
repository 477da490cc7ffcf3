//! The pinned TLS channel against the real `lazare serve` (HTTPS by default)
//! on 127.0.0.1, and a rogue `lazare serve` with another key: the agent's own
//! client, curl with the pin, and the installed system's `lazare-next` accept
//! the server whose key the CD carries and refuse the rogue one.

mod server_support;

use lazare_agent::{http, tls};
use lazare_proto::PublicKey;
use server_support::*;
use std::path::Path;
use std::process::Command;

fn client(trust: tls::Trust, base: &str) -> http::Client {
    // Clock floor 0: the test host's clock is right.
    let config = tls::client_config(trust, 0).unwrap();
    http::Client::new(http::agent(vec![], config), base.parse().unwrap(), vec![])
}

fn key_of(s: &TestServer) -> PublicKey {
    s.public_key.parse().unwrap()
}

#[test]
fn agent_talks_to_the_pinned_server_and_refuses_a_rogue_one() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    add_image(d1.path(), "standard", b"image");
    add_image(d2.path(), "standard", b"image");
    let real = TestServer::start_https(d1.path());
    let rogue = TestServer::start_https(d2.path());
    assert!(real.base.starts_with("https://127.0.0.1:"), "{}", real.base);
    let key = key_of(&real);
    let inv = inventory(1, 1024);

    // The key baked into the CD is the server's TLS key: the hello goes
    // through, and its plan is signed with the same key.
    let answer = client(tls::Trust::Pinned(key.clone()), &real.base).hello(&inv).unwrap();
    key.verify(&answer.body, answer.signature.as_deref().unwrap()).unwrap();

    // A rogue server (another key, its own self-signed certificate): no
    // TLS session, so not even the inventory reaches it.
    let err = client(tls::Trust::Pinned(key.clone()), &rogue.base).hello(&inv).unwrap_err();
    // Its own variant: the agent's screen says another server answered.
    assert!(matches!(err, http::HttpError::NotPinned { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("not for the install server's key baked into this CD"), "{msg}");
    assert!(msg.contains(&key.to_string()), "{msg}");
    let seen = client(tls::Trust::Pinned(key_of(&rogue)), &rogue.base)
        .agent
        .get(&rogue.url("/api/v1/machines"))
        .set("Authorization", &format!("Bearer {}", rogue.token()))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&seen).unwrap(), serde_json::json!([]));

    // A CD without a key trusts only the CA roots: a self-signed server is
    // refused; `--insecure` (Anything) accepts it.
    let err = client(tls::Trust::Roots, &real.base).hello(&inv).unwrap_err();
    assert!(matches!(err, http::HttpError::Transport { .. }), "no pin here: {err:?}");
    let err = err.to_string();
    assert!(err.contains("UnknownIssuer") || err.contains("issuer"), "{err}");
    client(tls::Trust::Anything, &real.base).hello(&inv).unwrap();

    // The HTTPS port speaks no plain HTTP.
    let plain = real.base.replace("https://", "http://");
    assert!(client(tls::Trust::Pinned(key), &plain).hello(&inv).is_err());
}

fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl").args(args).output().expect("running curl (apt package curl)");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn curl_with_the_pin_accepts_the_server_and_refuses_a_rogue_one() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let real = TestServer::start_https(d1.path());
    let rogue = TestServer::start_https(d2.path());
    let pin = key_of(&real).tls_pin();
    // The banner gives the same pin to volunteers' scripts.
    assert!(real.banner.iter().any(|l| l.contains(&pin)), "{:#?}", real.banner);
    let machines = real.url("/api/v1/machines");
    let auth = format!("Authorization: Bearer {}", real.token());
    let (code, body) = curl(&["-sS", "-k", "--pinnedpubkey", &pin, "-H", &auth, &machines]);
    assert_eq!((code, body.as_str()), (0, "[]"));
    // 90: CURLE_SSL_PINNEDPUBKEYNOTMATCH.
    let (code, _) = curl(&["-sS", "-k", "--pinnedpubkey", &pin, &rogue.url("/api/v1/machines")]);
    assert_eq!(code, 90);
    // Without -k curl also wants a CA: the certificate is self-signed (60).
    let (code, _) = curl(&["-sS", "--pinnedpubkey", &pin, &machines]);
    assert_eq!(code, 60);
}

/// Installs `lazare-next` for `server` with `pin` into a fake root, runs it
/// with grub-reboot and systemctl replaced by recorders, and returns what
/// they recorded and the script's stderr.
fn run_next(server: &str, pin: &str, machine_id: &str, secret: &str) -> (String, String) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("usr/bin/curl"), "").unwrap();
    lazare_agent::target::install_next_service(&root, &server.parse().unwrap(), machine_id, 900)
        .unwrap();
    lazare_agent::target::write_server_pin(&root, pin).unwrap();
    lazare_agent::target::write_machine_secret(&root, secret).unwrap();
    let bin = d.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = d.path().join("calls");
    for tool in ["grub-reboot", "systemctl"] {
        recorder(&bin.join(tool), tool, &log);
    }
    // No wget on the PATH the script sees: https must go through curl.
    let tools = d.path().join("tools");
    link_tools(&tools);
    let path = format!("{}:{}", bin.display(), tools.display());
    let out = Command::new("/bin/sh")
        .arg(root.join("usr/local/sbin/lazare-next"))
        .env("PATH", path)
        .env("LAZARE_ETC", root.join("etc/lazare"))
        .env("LAZARE_NEXT_TRIES", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (std::fs::read_to_string(&log).unwrap_or_default(), stderr)
}

fn recorder(path: &Path, tool: &str, log: &Path) {
    std::fs::write(path, format!("#!/bin/sh\necho {tool} \"$@\" >> '{}'\n", log.display()))
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Links curl and the few tools the script runs besides it into `dir`.
fn link_tools(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for tool in ["curl", "cat", "tr", "sleep", "mktemp", "rm"] {
        let found =
            ["/usr/bin", "/bin"].iter().map(|p| Path::new(p).join(tool)).find(|p| p.exists());
        std::os::unix::fs::symlink(found.unwrap(), dir.join(tool)).unwrap();
    }
}

#[test]
fn lazare_next_obeys_only_the_pinned_server() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for d in [&d1, &d2] {
        add_image(d.path(), "standard", b"image");
    }
    let real = TestServer::start_https(d1.path());
    let rogue = TestServer::start_https(d2.path());
    let key = key_of(&real);
    let inv = inventory(7, 1024);
    // The machine is known to both; both ask it to reinstall.
    let mut secret = String::new();
    for (s, k) in [(&real, key.clone()), (&rogue, key_of(&rogue))] {
        let c = client(tls::Trust::Pinned(k), &s.base);
        c.hello(&inv).unwrap();
        if secret.is_empty() {
            // What the installed system keeps from its install by the real server.
            secret = c.secret().expect("the hello enrolled the machine");
        }
        let r = c
            .agent
            .post(&s.url(&format!("/api/v1/machines/{}/reinstall", inv.machine_id)))
            .set("Authorization", &format!("Bearer {}", s.token()))
            .call()
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let (calls, _) = run_next(&real.base, &key.tls_pin(), &inv.machine_id, &secret);
    assert_eq!(calls, "grub-reboot lazare-reinstall\nsystemctl reboot\n");
    // The rogue server's order is never read: the pin does not match and no
    // certificate authority vouches for its certificate.
    let (calls, stderr) = run_next(&rogue.base, &key.tls_pin(), &inv.machine_id, &secret);
    assert_eq!(calls, "");
    assert!(stderr.contains("no answer"), "{stderr}");
}
