//! A PC installed from an offline stick reports to the server at its first
//! contact: the installed system's real `lazare-next` (as the agent writes
//! it) posts the record the offline agent kept to the real `lazare serve`,
//! which records the machine, its events and log (what the dashboard
//! shows) and hands it its secret, used by the next calls.

mod server_support;

use lazare_proto::{Event, OfflineReport, Phase, RecordedEvent};
use server_support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn report(n: u32) -> OfflineReport {
    let ev = |phase, message: &str| RecordedEvent {
        time: 1_700_000_000,
        event: Event { phase, percent: None, message: message.into(), from_peers: None },
    };
    OfflineReport {
        inventory: inventory(n, 1024),
        hostname: "pc-525400000001".into(),
        image: "test".into(),
        events: vec![
            ev(Phase::Plan, "offline plan verified from sr0: test on pc-525400000001"),
            ev(Phase::Installed, "installed from the offline bundle"),
        ],
        log: "lazare agent log: offline install\n".into(),
    }
}

/// A fake installed root with `lazare-next` for `server`, the report where
/// the agent keeps it, and the tools the script runs on its PATH.
struct Installed {
    _dir: tempfile::TempDir,
    root: PathBuf,
    report: PathBuf,
    path: String,
}

fn installed(server: &str, r: &OfflineReport) -> Installed {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    // The image carries curl (profiles/base.toml): the agent checks for it.
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("usr/bin/curl"), "").unwrap();
    let id = &r.inventory.machine_id;
    lazare_agent::target::install_next_service(&root, &server.parse().unwrap(), id, 900).unwrap();
    lazare_agent::offline::save(&root, r).unwrap();
    let report = root.join(lazare_proto::REPORT_PATH.trim_start_matches('/'));
    let tools = d.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    for tool in ["curl", "cat", "tr", "sleep", "mktemp", "rm", "mv", "grub-reboot", "systemctl"] {
        let real =
            ["/usr/bin", "/bin"].iter().map(|d| Path::new(d).join(tool)).find(|p| p.exists());
        match real {
            // grub-reboot and systemctl must never run for real here.
            Some(p) if !matches!(tool, "grub-reboot" | "systemctl") => {
                std::os::unix::fs::symlink(p, tools.join(tool)).unwrap()
            }
            _ => {
                std::fs::write(tools.join(tool), "#!/bin/sh\nexit 1\n").unwrap();
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::Permissions::from_mode(0o755);
                std::fs::set_permissions(tools.join(tool), mode).unwrap();
            }
        }
    }
    Installed { path: tools.display().to_string(), root, report, _dir: d }
}

impl Installed {
    fn run_next(&self) -> String {
        let out = Command::new("/bin/sh")
            .arg(self.root.join("usr/local/sbin/lazare-next"))
            .env("PATH", &self.path)
            .env("LAZARE_ETC", self.root.join("etc/lazare"))
            .env("LAZARE_OFFLINE_REPORT", &self.report)
            .env("LAZARE_NEXT_TRIES", "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        text
    }
}

#[test]
fn the_first_contact_hands_over_the_offline_record_then_uses_its_secret() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(data.path());
    let r = report(1);
    let id = r.inventory.machine_id.clone();
    let pc = installed(&s.base, &r);

    let said = pc.run_next();
    assert!(said.contains("record was handed to the server"), "{said}");
    assert!(said.contains("nothing to do"), "{said}");
    assert!(!pc.report.exists(), "the report is sent once");
    assert!(pc.report.with_extension("json.sent").exists());
    let secret = std::fs::read_to_string(pc.root.join("etc/lazare/machine-secret")).unwrap();
    assert!(lazare_proto::valid_token_hex(secret.trim()), "{secret:?}");

    let m = s.admin_get(&format!("/api/v1/machines/{id}")).json();
    assert_eq!(m["status"], "installed", "{m:#}");
    assert_eq!(m["hostname"], "pc-525400000001");
    assert_eq!(m["image"], "test");
    let messages: Vec<&str> =
        m["events"].as_array().unwrap().iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("offline") && m.contains("installed from the offline")),
        "{messages:#?}"
    );
    let logs = m["logs"].to_string();
    assert!(logs.contains("offline install"), "{logs}");

    // The next run proves the machine with the secret it was given: a
    // wrong or missing one would be refused and the script say so.
    let said = pc.run_next();
    assert!(said.contains("nothing to do"), "{said}");
    assert!(!said.contains("record"), "{said}");
    let wrong = machine_get(&s.url(&format!("/api/v1/machines/{id}/next")), &"0".repeat(64));
    assert_eq!(wrong.status, 403);
}

#[test]
fn a_known_machine_must_prove_itself_and_a_report_names_its_own_machine() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(data.path());
    // A hello gets a plan only when an image is there.
    add_image(data.path(), "standard", b"image");
    add_image(data.path(), "light", b"image");
    let r = report(2);
    let id = r.inventory.machine_id.clone();
    let url = s.url(&format!("/api/v1/machines/{id}/offline"));
    let secret = s.enrol(&r.inventory);
    // Its secret used once: from then on only it proves the machine.
    assert_eq!(s.hello(&r.inventory, Some(&secret)).reply.status, 200);
    // Enrolled and without its secret (a stranger replaying it): refused.
    assert_eq!(post_json(&url, &r).status, 401);
    let ok = machine_post_json(&url, &secret, &r);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.text(), "", "it already has a secret: none is handed out");
    // The path and the inventory must name the same machine.
    let other = report(3);
    let url = s.url(&format!("/api/v1/machines/{}/offline", other.inventory.machine_id));
    assert_eq!(post_json(&url, &r).status, 400);
}
