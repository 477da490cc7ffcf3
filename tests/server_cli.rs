//! `lazare serve` and `lazare key` as a volunteer meets them: first start,
//! an edited rules file, a broken rules file, a mistyped data dir.

mod server_support;

use server_support::*;
use std::process::Command;

fn lazare(args: &[&str], data: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lazare")).args(args).arg(data).output().unwrap()
}

#[test]
fn first_start_prints_what_a_volunteer_needs() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let banner = s.banner.join("\n");
    assert!(banner.contains(&format!("dashboard: {}/", s.base)), "{banner}");
    assert!(banner.contains(&format!(
        "admin token (shown once, kept in {}",
        dir.path().join("admin-token").display()
    )));
    assert!(banner.contains(&s.token()), "the token is printed at first start");
    let pem = std::fs::read_to_string(dir.path().join("server.pub")).unwrap();
    assert_eq!(pem.trim(), s.public_key);
    use std::os::unix::fs::PermissionsExt;
    for secret in ["server.key", "admin-token"] {
        let mode = std::fs::metadata(dir.path().join(secret)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{secret}");
    }
    let rules = std::fs::read_to_string(dir.path().join("lazare.toml")).unwrap();
    assert!(rules.contains("ram_below_mib = 512") && rules.contains("Europe/Paris"), "{rules}");
}

#[test]
fn edited_rules_apply_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    add_image(dir.path(), "light", b"l");
    add_image(dir.path(), "standard", b"s");
    add_image(dir.path(), "tiny", b"t");
    TestServer::start(dir.path()).kill();
    let path = dir.path().join("lazare.toml");
    let rules = std::fs::read_to_string(&path).unwrap();
    let rules = rules
        .replace("pc-{n:03}", "salle2-{n:02}")
        .replace("keymap = \"fr\"", "keymap = \"be\"")
        .replace(
            "[[image]]\nprofile = \"light\"",
            "[[image]]\nprofile = \"tiny\"\nram_below_mib = 128\n\n[[image]]\nprofile = \"light\"",
        );
    std::fs::write(&path, rules).unwrap();
    let s = TestServer::start(dir.path());
    for (n, ram, profile) in [(1, 96, "tiny"), (2, 256, "light"), (3, 1024, "standard")] {
        let plan = s.hello(&inventory(n, ram), None).reply.json();
        assert_eq!(plan["image"]["name"], profile, "{ram} MiB");
        assert_eq!(plan["hostname"], format!("salle2-{n:02}"));
        assert_eq!(plan["keymap"], "be");
    }
}

#[test]
fn a_broken_rules_file_stops_the_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lazare.toml"), "hostname = \"pc_{n}\"\n").unwrap();
    let out = lazare(&["serve", "--listen", "127.0.0.1:0", "--data"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lazare.toml") && err.contains("missing field"), "{err}");
}

#[test]
fn key_show_needs_an_existing_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = lazare(&["key", "show", "--data"], &dir.path().join("typo"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no server key") && err.contains("lazare serve --data"), "{err}");
    assert!(!dir.path().join("typo/server.key").exists());
}
