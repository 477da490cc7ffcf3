//! The installed system's `lazare-next` script against a real HTTP server on
//! 127.0.0.1, with grub-reboot and systemctl replaced by recorders.

use lazare_agent::target;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// Serves `body` once; returns the base URL and a handle yielding the
/// request line followed by the header lines.
fn serve_once(body: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut first = String::new();
        r.read_line(&mut first).unwrap();
        let mut line = String::new();
        while r.read_line(&mut line).unwrap() > 2 {
            first.push_str(&line);
            line.clear();
        }
        let mut s = s;
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        first
    });
    (url, h)
}

/// Installs the service into a fake root and runs its script with recorders
/// for grub-reboot and systemctl; returns (request line, what they recorded).
fn run_next(answer: &'static str) -> (String, String) {
    run_next_with(answer, None)
}

fn run_next_with(answer: &'static str, secret: Option<&str>) -> (String, String) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("usr/bin/wget"), "").unwrap();
    let (url, server) = serve_once(answer);
    target::install_next_service(&root, &url.parse().unwrap(), "m-42", 900).unwrap();
    if let Some(secret) = secret {
        target::write_machine_secret(&root, secret).unwrap();
    }
    let bin = d.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = d.path().join("calls");
    for tool in ["grub-reboot", "systemctl"] {
        let p = bin.join(tool);
        std::fs::write(&p, format!("#!/bin/sh\necho {tool} \"$@\" >> '{}'\n", log.display()))
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = Command::new("sh")
        .arg(root.join("usr/local/sbin/lazare-next"))
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("LAZARE_ETC", root.join("etc/lazare"))
        .env("LAZARE_NEXT_TRIES", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let request = server.join().unwrap();
    (request, std::fs::read_to_string(&log).unwrap_or_default())
}

#[test]
fn reinstall_answer_selects_the_entry_and_reboots() {
    let (req, calls) = run_next(r#"{ "action": "reinstall" }"#);
    assert!(req.starts_with("GET /api/v1/machines/m-42/next "), "{req}");
    assert_eq!(calls, "grub-reboot lazare-reinstall\nsystemctl reboot\n");
}

#[test]
fn the_machine_secret_proves_the_call_and_stays_private() {
    let secret = "5e".repeat(32);
    let (req, calls) = run_next_with(r#"{"action":"reinstall"}"#, Some(&secret));
    assert!(req.contains(&format!("Authorization: Lazare-Machine {secret}\r\n")), "{req}");
    assert_eq!(calls, "grub-reboot lazare-reinstall\nsystemctl reboot\n");
}

#[test]
fn the_secret_file_is_root_only() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    target::write_machine_secret(d.path(), &"ab".repeat(32)).unwrap();
    let path = d.path().join("etc/lazare/machine-secret");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", "ab".repeat(32)));
    assert!(target::write_machine_secret(d.path(), "not hex; reboot").is_err());
}

#[test]
fn none_answer_does_nothing() {
    let (_, calls) = run_next(r#"{"action":"none"}"#);
    assert_eq!(calls, "");
}

#[test]
fn unreachable_server_gives_up_quietly() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("usr/bin/wget"), "").unwrap();
    // A port nothing listens on (bound then closed).
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}").parse().unwrap();
    target::install_next_service(root, &url, "m-1", 900).unwrap();
    let out = Command::new("sh")
        .arg(root.join("usr/local/sbin/lazare-next"))
        .env("LAZARE_ETC", root.join("etc/lazare"))
        .env("LAZARE_NEXT_TRIES", "2")
        .env("LAZARE_NEXT_DELAY", "0")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no answer") && err.contains("after 2 tries"), "{err}");
    assert!(Path::new(&root.join("etc/lazare/server")).exists());
}
