//! Wake-on-LAN on a real (namespaced) LAN: `lazare serve` runs in one
//! network namespace, a "switched-off PC" listens for UDP port 9 in another,
//! joined by a veth pair made here. When the admin orders a reinstall, the
//! PC's side receives one magic packet per MAC of its inventory, sent to the
//! LAN's broadcast address. Nothing leaves the two namespaces. Needs root,
//! iproute2, curl and socat (Makefile DEB_PACKAGES).

// For `spawn_serve`: the same start as the install tests' server.
#[path = "common/e2e.rs"]
mod e2e;
mod server_support;

use lazare_proto::Inventory;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip (iproute2)");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Two namespaces joined by a cable, and what runs in them; removed on drop.
struct Lan {
    server_ns: String,
    pc_ns: String,
    children: Vec<Child>,
}

const SERVER_IP: &str = "10.98.0.1";
const PORT: u16 = 8470;

impl Lan {
    fn new() -> Lan {
        let id = std::process::id();
        let lan = Lan {
            server_ns: format!("lzw-s-{id}"),
            pc_ns: format!("lzw-p-{id}"),
            children: Vec::new(),
        };
        ip(&["netns", "add", &lan.server_ns]);
        ip(&["netns", "add", &lan.pc_ns]);
        ip(&[
            "-n",
            &lan.server_ns,
            "link",
            "add",
            "srv0",
            "type",
            "veth",
            "peer",
            "name",
            "pc0",
            "netns",
            &lan.pc_ns,
        ]);
        for (ns, dev, addr) in
            [(&lan.server_ns, "srv0", "10.98.0.1/24"), (&lan.pc_ns, "pc0", "10.98.0.2/24")]
        {
            ip(&["-n", ns, "addr", "add", addr, "brd", "+", "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        lan
    }

    fn exec(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// `lazare serve` on the server's LAN address; returns once it listens.
    fn start_server(&mut self, data: &Path) {
        let mut serve = self.exec(&self.server_ns, env!("CARGO_BIN_EXE_lazare"));
        serve.args(["serve", "--http", "--no-tracker"]);
        let child = e2e::spawn_serve(&mut serve, &format!("{SERVER_IP}:{PORT}"), data);
        self.children.push(child);
    }

    /// What arrives on UDP port 9 on the PC's side, appended to `file`.
    fn listen_port_9(&mut self, file: &Path) {
        let child = self
            .exec(&self.pc_ns, "socat")
            .args(["-u", "UDP4-RECV:9,reuseaddr"])
            .arg(format!("OPEN:{},creat,append", file.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting socat");
        self.children.push(child);
    }

    /// An HTTP call to the server from its own namespace: (status, body).
    fn curl(&self, args: &[&str], path: &str) -> (u16, String) {
        let out = self
            .exec(&self.server_ns, "curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
            .args(args)
            .arg(format!("http://{SERVER_IP}:{PORT}{path}"))
            .output()
            .expect("running curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.server_ns]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.pc_ns]).status();
    }
}

#[test]
fn a_reinstall_order_wakes_every_nic_of_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let received = dir.path().join("port9.bin");
    let mut lan = Lan::new();
    lan.start_server(&data);
    lan.listen_port_9(&received);

    // A PC with two NICs says hello (no image on this server: it is recorded
    // anyway, answered 503).
    let mut inv = server_support::inventory(7, 512);
    let mut second = inv.nics[0].clone();
    second.name = "eth1".into();
    second.mac = "00:1b:21:aa:bb:cc".into();
    inv.nics.push(second);
    let macs: Vec<String> = inv.nics.iter().map(|n| n.mac.clone()).collect();
    inv.machine_id = Inventory::compute_machine_id(&inv.dmi, &macs);
    let body = dir.path().join("hello.json");
    std::fs::write(&body, serde_json::to_vec(&inv).unwrap()).unwrap();
    let hello = format!("@{}", body.display());
    let json = ["-H", "Content-Type: application/json", "--data-binary", hello.as_str()];
    let (status, answer) = lan.curl(&json, "/api/v1/hello");
    assert_eq!(status, 503, "hello: {answer}");
    // Nothing is sent before the order.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::metadata(&received).map(|m| m.len()).unwrap_or(0), 0);

    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let auth = format!("Authorization: Bearer {}", token.trim());
    let path = format!("/api/v1/machines/{}/reinstall", inv.machine_id);
    let (status, answer) = lan.curl(&["-X", "POST", "-H", &auth], &path);
    assert_eq!(status, 204, "reinstall order: {answer}");

    let expected: Vec<[u8; 102]> = macs
        .iter()
        .map(|m| {
            let mut p = [0xffu8; 102];
            let bytes: Vec<u8> = m.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
            for chunk in p[6..].chunks_exact_mut(6) {
                chunk.copy_from_slice(&bytes);
            }
            p
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    let got = loop {
        let got = std::fs::read(&received).unwrap_or_default();
        if got.len() >= 102 * expected.len() || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(got.len(), 102 * expected.len(), "bytes on port 9: {got:02x?}");
    let packets: Vec<&[u8]> = got.chunks(102).collect();
    for p in &expected {
        assert!(
            packets.contains(&&p[..]),
            "no magic packet for {:02x?} in {packets:02x?}",
            &p[6..12]
        );
    }
}
