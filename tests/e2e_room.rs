//! The room (issue 15) in VMs: three blank qemu PCs on one LAN install the
//! `test` image at about the same time, sharing it with BitTorrent, and
//! the server's link carries fewer than [`BAR`] image sizes.
//!
//! The LAN is made here, in network namespaces: a "switch" namespace holds
//! a bridge, one tap device per PC (qemu runs in that namespace) and
//! dnsmasq as the room's own DHCP server, as a school's router would be;
//! `lazare serve` (HTTPS with the pinned key, its tracker and the engine's
//! seed) runs in a namespace of its own, cabled to the bridge by a veth
//! pair (shaped to [`SERVER_RATE`]), so its `tx_bytes` are exactly what
//! the server sent. Nothing
//! leaves the namespaces; they are removed on drop. Needs root, iproute2,
//! dnsmasq, curl and the engine (`make share`). Then each PC boots its own
//! disk alone to a login prompt. `make e2e-room`; ~15 min of TCG.
//!
//! First runs (2026-12-01): the installs and boots pass, the bar does not
//! yet: 2.27 and 2.66 image sizes at 10 Mbit/s, 2.82 unshaped. Started a
//! few seconds apart, the PCs read the image in lockstep, and librqbit
//! picks pieces in order (the stream's next pieces, then the rest in
//! order; no rarest-first), so each asks the server's seed for the same
//! next pieces.

#[path = "common/e2e.rs"]
mod e2e;

use e2e::{disk, lazare, run, spawn_serve, tail, wait_install_end, DONE, GIB, MIN};
use lazare::vm::{DiskInterface, DiskSpec, Vm, VmSpec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bar: the server sends fewer than this many image sizes.
const BAR: f64 = 1.7;
const PCS: usize = 3;
/// Seconds between two PCs' power buttons.
const SPREAD: Duration = Duration::from_secs(4);
const SERVER_IP: &str = "10.96.0.1";
const PORT: u16 = 8470;
/// The server's upload rate (tc tbf on its cable).
const SERVER_RATE: &str = "10mbit";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip (iproute2)");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The room's LAN and what runs on it; removed on drop.
struct Room {
    switch: String,
    server: String,
    children: Vec<Child>,
    /// `lazare serve`: stopped with SIGTERM, so that it ends its seeds
    /// (killed, it would leave them running).
    serve: Option<Child>,
}

impl Room {
    fn new() -> Room {
        let id = std::process::id();
        let room = Room {
            switch: format!("lzroom-{id}"),
            server: format!("lzroom-{id}-s"),
            children: vec![],
            serve: None,
        };
        for ns in [&room.switch, &room.server] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let sw = room.switch.as_str();
        ip(&["-n", sw, "link", "add", "br0", "type", "bridge"]);
        // The DHCP server's address on the switch.
        ip(&["-n", sw, "addr", "add", "10.96.0.254/24", "dev", "br0"]);
        ip(&["-n", sw, "link", "set", "br0", "up"]);
        let srv = room.server.as_str();
        ip(&["-n", sw, "link", "add", "s0", "type", "veth", "peer", "name", "eth0", "netns", srv]);
        ip(&["-n", sw, "link", "set", "s0", "master", "br0", "up"]);
        ip(&["-n", srv, "addr", "add", &format!("{SERVER_IP}/24"), "dev", "eth0"]);
        ip(&["-n", srv, "link", "set", "eth0", "up"]);
        // The server's link is the room's bottleneck, as in a school (the
        // issue's 20 Mbit/s uplink for 100 Mbit/s PCs): slower than one TCG
        // PC unpacks (~15 Mbit/s). Unshaped, the server's seed is the
        // fastest peer and each PC, reading the image in order, took nearly
        // all of it from there (2.82 image sizes for 3 PCs, measured).
        let out = Command::new("tc")
            .args(["-n", srv, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", SERVER_RATE])
            .args(["burst", "64kb", "latency", "200ms"])
            .output()
            .expect("running tc (iproute2)");
        assert!(out.status.success(), "tc: {}", String::from_utf8_lossy(&out.stderr));
        for i in 0..PCS {
            let tap = format!("tap{i}");
            ip(&["-n", sw, "tuntap", "add", "dev", &tap, "mode", "tap"]);
            ip(&["-n", sw, "link", "set", &tap, "master", "br0", "up"]);
        }
        room
    }

    fn exec(ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// dnsmasq as the room's DHCP server (no DNS), on the bridge.
    fn dhcp(&mut self, work: &Path) {
        let child = Room::exec(&self.switch, "dnsmasq")
            .args(["--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--user=root"])
            .args(["--interface=br0", "--bind-interfaces", "--dhcp-authoritative"])
            .args(["--dhcp-range=10.96.0.100,10.96.0.199,255.255.255.0,1h", "--pid-file="])
            .arg(format!("--dhcp-leasefile={}", work.join("leases").display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("starting dnsmasq");
        self.children.push(child);
    }

    /// `lazare serve` on the LAN, with its tracker and the engine's seed;
    /// returns once it listens (the seed has checked the image by then).
    fn serve(&mut self, data: &Path) {
        let engine = std::env::var_os("LAZARE_SHARE").map(PathBuf::from).unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/x86_64-unknown-linux-gnu/agent/lazare-share")
        });
        assert!(engine.is_file(), "{} missing: run `make share`", engine.display());
        let mut serve = Room::exec(&self.server, env!("CARGO_BIN_EXE_lazare"));
        serve.arg("serve").arg("--engine").arg(&engine);
        self.serve = Some(spawn_serve(&mut serve, &format!("{SERVER_IP}:{PORT}"), data));
    }

    /// Bytes the server's cable sent (framing included).
    fn server_tx(&self) -> u64 {
        let out = Room::exec(&self.server, "cat")
            .arg("/sys/class/net/eth0/statistics/tx_bytes")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("tx_bytes")
    }

    /// An admin read of the server's API, from its namespace.
    fn api(&self, data: &Path, path: &str) -> Value {
        let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
        let out = run(Room::exec(&self.server, "curl")
            .args(["-sSfk", "-H", &format!("Authorization: Bearer {}", token.trim())])
            .arg(format!("https://{SERVER_IP}:{PORT}{path}")));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{path}: {e}: {out}"))
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        if let Some(mut serve) = self.serve.take() {
            // `ip netns exec` exec'd lazare: the pid is the server's.
            let _ = Command::new("kill").args(["-TERM", &serve.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(serve.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = serve.kill();
            let _ = serve.wait();
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.server, &self.switch] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// PC `i`: 256 MB (the smallest PC that shares: the engine runs beside the
/// install) and its own disk, booting it alone (qemu's user network,
/// restricted: the installed system needs no server).
fn pc(i: usize, disk: &Path, work: &Path, what: &str) -> VmSpec {
    let mut spec = VmSpec::new(None, work.join(format!("pc{i}-{what}.log")));
    spec.memory_mb = 256;
    spec.disks.push(DiskSpec::new(disk, DiskInterface::Ide));
    spec.max_runtime = 45 * MIN;
    spec
}

/// PC `i` booting the CD, its e1000 on the room's tap `i` with a MAC of
/// its own.
fn installing_pc(i: usize, iso: &Path, disk: &Path, work: &Path, room: &Room) -> VmSpec {
    let mut spec = pc(i, disk, work, "install");
    spec.iso = Some(iso.to_path_buf());
    spec.nic_model = "none".into();
    spec.netns = Some(room.switch.clone());
    spec.extra_args.extend([
        "-netdev".into(),
        format!("tap,id=n0,ifname=tap{i},script=no,downscript=no"),
        "-device".into(),
        format!("e1000,netdev=n0,mac=52:54:00:96:00:{:02x}", i + 1),
    ]);
    spec
}

#[test]
fn three_pcs_share_the_image_and_the_server_sends_it_about_once() {
    let f = e2e::fixture("room");
    let tmp = tempfile::tempdir_in(&f.dir).unwrap();
    let work = tmp.path();
    let data = e2e::data_dir(f, work);
    let iso = work.join("room.iso");
    run(lazare()
        .args(["build", "--server", &format!("https://{SERVER_IP}:{PORT}"), "--key"])
        .arg(f.dir.join("server.pub"))
        .args(["--ip", "dhcp", "--timeout", "1", "--output"])
        .arg(&iso));
    let image_size = std::fs::metadata(&f.image).unwrap().len();

    let mut room = Room::new();
    room.dhcp(work);
    room.serve(&data);
    let disks: Vec<PathBuf> =
        (0..PCS).map(|i| disk(work, &format!("pc{i}.qcow2"), 8 * GIB)).collect();

    let tx_before = room.server_tx();
    let start = Instant::now();
    let results: Vec<(Duration, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PCS)
            .map(|i| {
                let spec = installing_pc(i, &iso, &disks[i], work, &room);
                std::thread::sleep(if i == 0 { Duration::ZERO } else { SPREAD });
                s.spawn(move || {
                    let on = Instant::now();
                    let mut vm = Vm::start(&spec).expect("starting qemu");
                    wait_install_end(&mut vm);
                    (on.elapsed(), vm.output())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a PC's install failed")).collect()
    });
    let all = start.elapsed();
    let sent = room.server_tx() - tx_before;

    let ratio = sent as f64 / image_size as f64;
    eprintln!(
        "room: the server sent {} MiB for {PCS} installs of a {} MiB image: {ratio:.2} image sizes \
         (bar {BAR}); all done in {} s",
        sent >> 20,
        image_size >> 20,
        all.as_secs()
    );
    for (i, (took, out)) in results.iter().enumerate() {
        eprintln!("room: PC {i}: installed in {} s", took.as_secs());
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("room")).collect();
        for l in lines {
            eprintln!("room: PC {i} serial: {}", l.trim());
        }
    }

    // What the server saw: three machines, each installed from a verified
    // plan, each log saying what came from the other PCs and the seed.
    let list = room.api(&data, "/api/v1/machines");
    let machines = list.as_array().expect("machines is a list");
    assert_eq!(machines.len(), PCS, "{list:#}");
    let mut hostnames = Vec::new();
    for m in machines {
        assert_eq!(m["status"], "installed", "{list:#}");
        let detail = room.api(&data, &format!("/api/v1/machines/{}", m["id"].as_str().unwrap()));
        assert!(detail["events"].to_string().contains("plan verified"), "{detail:#}");
        let logs: Vec<&str> = detail["logs"]
            .as_array()
            .expect("logs")
            .iter()
            .filter_map(|l| l["text"].as_str())
            .collect();
        let text = logs.join("\n");
        let host = detail["hostname"].as_str().unwrap_or("?").to_string();
        // Kept in the fixture's dir (it outlives this test's work dir).
        std::fs::write(f.dir.join(format!("{host}.log")), &text).unwrap();
        for l in text.lines().filter(|l| l.contains("room") || l.contains("sharing")) {
            eprintln!("room: {host} log: {}", l.trim());
        }
        assert!(logs.last().is_some_and(|l| l.contains(DONE)), "{}", tail(&text, 20));
        // The agent's line (room::stats_line): what came from the other
        // PCs and what from the server's seed.
        assert!(
            text.contains("came from the other PCs and"),
            "{host} did not share: {}",
            tail(&text, 30)
        );
        hostnames.push(host);
    }
    // Each PC boots its own disk alone, the three at once.
    drop(room);
    let boots: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PCS)
            .map(|i| {
                let spec = pc(i, &disks[i], work, "boot");
                s.spawn(move || {
                    let mut vm = Vm::start(&spec).expect("starting qemu");
                    vm.wait_for_text("login:", 15 * MIN).unwrap_or_else(|e| {
                        panic!("PC {i}'s installed system reached no login prompt: {e}")
                    });
                    vm.output()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a PC did not boot alone")).collect()
    });
    for host in &hostnames {
        assert!(
            boots.iter().any(|b| b.contains(&format!("{host} login:"))),
            "no PC booted as {host}"
        );
    }
    // Last, so that a room that shares too little still shows whether the
    // PCs installed and boot.
    assert!(
        ratio < BAR,
        "the server sent {ratio:.2} image sizes ({sent} bytes for a {image_size}-byte image), \
         not fewer than {BAR}"
    );
}
