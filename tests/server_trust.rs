//! Issue 14, "trust nothing on the LAN", against the real `lazare serve` on
//! loopback with its real SQLite: forged calls change nothing, reads need
//! the admin, new PCs enrol by the rule, plans echo the hello's challenge,
//! slow clients are cut off, a lost key stops the start.

mod server_support;

use lazare_proto::{Event, Phase, Plan};
use server_support::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

fn lazare(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lazare")).args(args).output().unwrap()
}

fn data_arg(dir: &tempfile::TempDir) -> String {
    dir.path().display().to_string()
}

fn started(images: bool) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    if images {
        add_image(dir.path(), "light", b"l");
        add_image(dir.path(), "standard", b"s");
    }
    let s = TestServer::start(dir.path());
    (dir, s)
}

#[test]
fn forged_events_hellos_and_logs_change_nothing() {
    let (_dir, s) = started(true);
    let inv = inventory(1, 1024);
    let id = inv.machine_id.clone();
    let secret = s.enrol(&inv);
    let m = |p: &str| s.url(&format!("/api/v1/machines/{id}{p}"));
    let ev = Event {
        phase: Phase::Download,
        percent: Some(40),
        message: "real".into(),
        from_peers: None,
    };
    assert_eq!(machine_post_json(&m("/events"), &secret, &ev).status, 204);
    assert_eq!(machine_post(&m("/log"), &secret, "text/plain", b"real log\n").status, 204);
    assert_eq!(s.admin_post(&format!("/api/v1/machines/{id}/reinstall"), b"").status, 204);
    let before = s.admin_get(&format!("/api/v1/machines/{id}")).json();

    // Someone else on the LAN knows the id (it is derived from DMI and MACs).
    let wrong = "ab".repeat(32);
    let forged = Event {
        phase: Phase::Installed,
        percent: None,
        message: "forged".into(),
        from_peers: None,
    };
    assert_eq!(post_json(&m("/events"), &forged).status, 401);
    assert_eq!(machine_post_json(&m("/events"), &wrong, &forged).status, 403);
    assert_eq!(post(&m("/log"), "text/plain", b"forged log\n").status, 401);
    assert_eq!(machine_post(&m("/log"), &wrong, "text/plain", b"forged log\n").status, 403);
    let mut other = inv.clone();
    other.dmi.serial = Some("FORGED".into());
    let h = s.hello(&other, None);
    assert_eq!(h.reply.status, 401, "{}", h.reply.text());
    assert!(h.secret.is_none() && h.reply.header("Lazare-Signature").is_none());
    assert_eq!(s.hello(&other, Some(&wrong)).reply.status, 403);

    let after = s.admin_get(&format!("/api/v1/machines/{id}")).json();
    assert_eq!(after, before, "a refused call changed the machine");
    assert_eq!(after["status"], "installing");
    assert_eq!(after["reinstall_pending"], true, "a forged hello cancelled the reinstall");
    assert_eq!(after["inventory"]["dmi"]["serial"], "SN00001");
    // The real machine still gets in.
    let next = machine_get(&m("/next"), &secret);
    assert_eq!(next.json()["action"], "reinstall");
    assert_eq!(s.hello(&inv, Some(&secret)).reply.status, 200);
}

#[test]
fn a_forged_next_learns_and_orders_nothing() {
    let (_dir, s) = started(true);
    let inv = inventory(2, 1024);
    let id = inv.machine_id.clone();
    let secret = s.enrol(&inv);
    assert_eq!(s.admin_post(&format!("/api/v1/machines/{id}/reinstall"), b"").status, 204);
    let next = s.url(&format!("/api/v1/machines/{id}/next"));
    let r = get(&next);
    assert_eq!(r.status, 401);
    assert!(!r.text().contains("reinstall\""), "{}", r.text());
    assert_eq!(machine_get(&next, &"cd".repeat(32)).status, 403);
    assert_eq!(machine_get(&next, &secret).json()["action"], "reinstall");
}

#[test]
fn reads_need_the_admin_and_the_dashboard_logs_in_with_a_strict_cookie() {
    let (dir, s) = started(true);
    s.enrol(&inventory(3, 1024));
    let id = inventory(3, 1024).machine_id;

    // Without the token: no list, no machine, no page.
    for path in ["/api/v1/machines".to_string(), format!("/api/v1/machines/{id}")] {
        assert_eq!(get(&s.url(&path)).status, 401, "{path}");
        let wrong = get_with(&s.url(&path), &[("Authorization", "Bearer not-the-token")]);
        assert_eq!(wrong.status, 403, "{path}");
    }
    for path in ["/".to_string(), format!("/machines/{id}"), format!("/machines/{id}/logs/1")] {
        let r = ureq::AgentBuilder::new().redirects(0).build().get(&s.url(&path)).call();
        let r = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.header("Location"), Some("/login"), "{path}");
    }
    let login = get(&s.url("/login"));
    assert_eq!(login.status, 200);
    assert!(!login.text().contains("SN00003"));
    for (name, want) in [("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff")] {
        assert_eq!(login.header(name), Some(want), "{name}");
    }
    let csp = login.header("Content-Security-Policy").expect("a CSP header").to_string();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{csp}");

    // The banner says how to log in.
    assert!(s.banner.iter().any(|l| l.starts_with("log in: ") && l.contains("Bearer")));

    // Login: a wrong token is refused, the right one sets an HttpOnly, Strict cookie.
    let no_redirect = ureq::AgentBuilder::new().redirects(0).build();
    let post_login =
        |token: &str| match no_redirect.post(&s.url("/login")).send_form(&[("token", token)]) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
    let r = post_login("not-the-token");
    assert_eq!(r.status(), 403);
    assert!(r.header("Set-Cookie").is_none());
    let r = post_login(&s.token());
    assert_eq!(r.status(), 303);
    let cookie = r.header("Set-Cookie").expect("a login cookie").to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();
    let page = get_with(&s.url("/"), &[("Cookie", &pair)]);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("pc-001"), "{}", page.text());
    let page = get_with(&s.url(&format!("/machines/{id}")), &[("Cookie", &pair)]);
    assert!(page.text().contains("SN00003"));

    // Rotating the token logs the cookie and the old Bearer out, at once.
    let old = s.bearer();
    let out = lazare(&["admin", "rotate-token", "--data", &data_arg(&dir)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let new = s.token();
    assert!(printed.contains(&new), "{printed}");
    assert_ne!(format!("Bearer {new}"), old);
    assert_eq!(get_with(&s.url("/api/v1/machines"), &[("Authorization", &old)]).status, 403);
    let r = no_redirect.get(&s.url("/")).set("Cookie", &pair).call();
    let r = match r {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(r.status(), 303);
    assert_eq!(s.admin_get("/api/v1/machines").status, 200);
}

/// Rules with `enroll` set and a user whose password hash must stay secret.
fn rules_with(enroll: &str) -> String {
    format!(
        "hostname = \"pc-{{n:03}}\"\nlocale = \"fr_FR.UTF-8\"\nkeymap = \"fr\"\n\
         timezone = \"Europe/Paris\"\nenroll = \"{enroll}\"\n\n[[image]]\nprofile = \"standard\"\n\n\
         [[user]]\nname = \"admin\"\npassword_hash = \"$6$salt$SECRETHASH\"\nadmin = true\n"
    )
}

#[test]
fn approve_rule_makes_new_pcs_wait_without_the_password_hashes() {
    let dir = tempfile::tempdir().unwrap();
    add_image(dir.path(), "standard", b"s");
    std::fs::write(dir.path().join("lazare.toml"), rules_with("approve")).unwrap();
    let s = TestServer::start(dir.path());
    let inv = inventory(4, 1024);
    let id = inv.machine_id.clone();
    let h = s.hello(&inv, None);
    assert_eq!(h.reply.status, 200, "{}", h.reply.text());
    let secret = h.secret.expect("a waiting PC is enrolled too");
    let plan: Plan = serde_json::from_slice(&h.reply.body).unwrap();
    assert_eq!(plan.action, lazare_proto::Action::Wait);
    assert!(!h.reply.text().contains("SECRETHASH"), "a stranger got the hash: {}", h.reply.text());
    assert_eq!(s.admin_get("/api/v1/machines").json()[0]["accepted"], false);
    // Asking again changes nothing until the admin accepts.
    let again = s.hello(&inv, Some(&secret));
    assert!(!again.reply.text().contains("SECRETHASH"));
    assert_eq!(s.admin_post(&format!("/api/v1/machines/{id}/accept"), b"").status, 204);
    let r = s.hello(&inv, Some(&secret)).reply;
    let plan: Plan = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(plan.action, lazare_proto::Action::Install);
    assert_eq!(plan.setup.users[0].password_hash.as_deref(), Some("$6$salt$SECRETHASH"));
}

#[test]
fn window_rule_and_the_admin_commands() {
    let dir = tempfile::tempdir().unwrap();
    add_image(dir.path(), "light", b"l");
    add_image(dir.path(), "standard", b"s");
    let s = TestServer::start(dir.path());
    // A fresh server opened a window at its first start, and says so.
    assert!(s.banner.iter().any(|l| l.starts_with("new PCs: accepted until")), "{:#?}", s.banner);
    let first = inventory(5, 1024);
    let secret = s.enrol(&first);
    let plan: Plan = serde_json::from_slice(&s.hello(&first, Some(&secret)).reply.body).unwrap();
    assert_eq!(plan.action, lazare_proto::Action::Install);

    // Window closed from the CLI: a new PC waits.
    let out = lazare(&["admin", "enroll", "--hours", "0", "--data", &data_arg(&dir)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let late = inventory(6, 1024);
    let h = s.hello(&late, None);
    let plan: Plan = serde_json::from_slice(&h.reply.body).unwrap();
    assert_eq!(plan.action, lazare_proto::Action::Wait);
    let html = s.admin_get("/").text();
    assert!(html.contains("1 waiting to be accepted"), "{html}");
    // Opened again from the API: the next new PC is accepted at once.
    let r = s.admin_post("/api/v1/enroll-window", br#"{"hours": 2}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let plan: Plan =
        serde_json::from_slice(&s.hello(&inventory(7, 1024), None).reply.body).unwrap();
    assert_eq!(plan.action, lazare_proto::Action::Install);

    // The disk of the first PC died with its secret: refused until let in again.
    let id = first.machine_id.clone();
    assert_eq!(s.hello(&first, None).reply.status, 401);
    let out = lazare(&["admin", "reenroll", "--data", &data_arg(&dir), &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new_secret = s.enrol(&first);
    assert_ne!(new_secret, secret);
    let events = s.url(&format!("/api/v1/machines/{id}/events"));
    let ev =
        Event { phase: Phase::Format, percent: None, message: String::new(), from_peers: None };
    assert_eq!(machine_post_json(&events, &secret, &ev).status, 403);
    assert_eq!(machine_post_json(&events, &new_secret, &ev).status, 204);

    // Forgotten: gone from the list, its secret useless.
    let out = lazare(&["admin", "forget", "--data", &data_arg(&dir), &id]);
    assert!(out.status.success());
    assert_eq!(machine_post_json(&events, &new_secret, &ev).status, 404);
    assert_eq!(s.admin_get("/api/v1/machines").json().as_array().unwrap().len(), 2);
    let out = lazare(&["admin", "forget", "--data", &data_arg(&dir), &id]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn plans_echo_the_challenge_of_their_hello() {
    let (_dir, s) = started(true);
    let inv = inventory(8, 1024);
    let a = s.hello(&inv, None);
    let secret = a.secret.clone().unwrap();
    let b = s.hello(&inv, Some(&secret));
    let pa: Plan = serde_json::from_slice(&a.reply.body).unwrap();
    let pb: Plan = serde_json::from_slice(&b.reply.body).unwrap();
    assert_eq!(pa.challenge, a.challenge);
    assert_eq!(pb.challenge, b.challenge);
    assert_ne!(pa.challenge, pb.challenge);
    assert!(pa.valid_secs > 0);
    // The challenge is inside the signed bytes.
    let sig = a.reply.header(lazare_proto::SIGNATURE_HEADER).unwrap();
    assert!(openssl_verify(&s.public_key, &a.reply.body, sig));
    // A malformed challenge is refused, not echoed.
    let r = post_with(
        &s.url("/api/v1/hello"),
        &[("Lazare-Challenge", "not hex"), ("Authorization", &format!("Lazare-Machine {secret}"))],
        &serde_json::to_vec(&inv).unwrap(),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn slow_headers_are_cut_off() {
    let (_dir, s) = started(false);
    let addr = s.base.strip_prefix("http://").unwrap().to_string();
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(); // never finished
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        conns.push(c);
    }
    let start = Instant::now();
    for mut c in conns {
        let mut buf = Vec::new();
        // The server answers 408 or just closes; either way the read ends.
        let r = c.read_to_end(&mut buf);
        assert!(r.is_ok(), "the server still held the connection after {:?}", start.elapsed());
    }
    // Meanwhile and after, it serves.
    assert_eq!(get(&s.url("/login")).status, 200);
}

/// The connection cap: with `MAX_CONNECTIONS` clients connected and silent,
/// one more is left in the kernel's queue (not answered, not holding
/// server memory) until a permit frees; then it is served.
#[test]
fn connections_beyond_the_cap_wait_for_a_free_permit() {
    use lazare::serve::listen::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
    let (_dir, s) = started(false);
    let addr = s.base.strip_prefix("http://").unwrap().to_string();
    let idle: Vec<_> =
        (0..MAX_CONNECTIONS).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    let mut extra = std::net::TcpStream::connect(&addr).unwrap();
    extra.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    // Well inside the header timeout that would free the idle ones' permits.
    extra.set_read_timeout(Some(HEADER_READ_TIMEOUT / 4)).unwrap();
    let mut first = [0u8; 1];
    let waited = extra.read(&mut first);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "a connection beyond the cap was served at once: {waited:?}"
    );
    drop(idle);
    extra.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reply = Vec::new();
    extra.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[test]
fn a_lost_key_file_stops_the_start() {
    let (dir, s) = started(false);
    let key = s.public_key.clone();
    s.kill();
    std::fs::remove_file(dir.path().join("server.key")).unwrap();
    let out = lazare(&["serve", "--listen", "127.0.0.1:0", "--data", &data_arg(&dir)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no signing key") && err.contains("Restore server.key"), "{err}");
    assert!(!dir.path().join("server.key").exists(), "a new key was made");
    let public = std::fs::read_to_string(dir.path().join("server.pub")).unwrap();
    assert_eq!(public.trim(), key, "the published key changed");
}

#[test]
fn the_database_is_private_and_bounded() {
    let (dir, s) = started(true);
    for f in ["lazare.db", "lazare.db-wal"] {
        let mode = std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let inv = inventory(9, 1024);
    let id = inv.machine_id.clone();
    let secret = s.enrol(&inv);
    let log = s.url(&format!("/api/v1/machines/{id}/log"));
    // Five installs, each with its log: the page keeps the last three.
    for n in 1..=5 {
        if n > 1 {
            assert_eq!(s.hello(&inv, Some(&secret)).reply.status, 200);
        }
        let text = format!("install {n} begins\n{}install {n} ends\n", "x\n".repeat(20_000));
        assert_eq!(machine_post(&log, &secret, "text/plain", text.as_bytes()).status, 204);
    }
    let d = s.admin_get(&format!("/api/v1/machines/{id}")).json();
    let installs: Vec<_> =
        d["logs"].as_array().unwrap().iter().map(|l| l["install"].clone()).collect();
    assert_eq!(installs, [3, 4, 5]);
    // The page shows the end of each log and links the whole.
    let page = s.admin_get(&format!("/machines/{id}")).text();
    assert!(page.contains("install 5 ends") && !page.contains("install 5 begins"));
    assert!(page.contains(&format!("/machines/{id}/logs/5")), "no link to the whole log");
    let whole = s.admin_get(&format!("/machines/{id}/logs/5"));
    assert_eq!(whole.status, 200);
    assert!(whole.text().starts_with("install 5 begins"));
}
