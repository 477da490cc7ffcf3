//! A room on this machine: one network namespace holds a bridge (the
//! switch), and each PC is a namespace cabled to it by a veth pair. Nothing
//! leaves the namespaces. Removed on drop. Needs root and iproute2 (ip, tc).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip (iproute2)");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The binary `$var` names, else the checkout's `rel`.
pub fn checkout_bin(var: &str, rel: &str) -> PathBuf {
    let p = std::env::var_os(var)
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel), PathBuf::from);
    assert!(p.exists(), "{} is missing: make build, or set {var}", p.display());
    p
}

pub struct Lan {
    switch: String,
    prefix: String,
    nodes: Vec<String>,
    pub children: Vec<Child>,
}

impl Lan {
    /// The switch namespace with its bridge; `tag` keeps concurrent LANs apart.
    pub fn new(tag: &str) -> Lan {
        let prefix = format!("lz{tag}{}", std::process::id());
        let switch = format!("{prefix}-sw");
        ip(&["netns", "add", &switch]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        Lan { switch, prefix, nodes: Vec::new(), children: Vec::new() }
    }

    /// A PC on the switch with address 10.97.0.`host`/24; returns its
    /// namespace. `rate`: its link's upload rate (tc tbf), e.g. "40mbit".
    pub fn add(&mut self, host: u8, rate: Option<&str>) -> String {
        let ns = format!("{}-{host}", self.prefix);
        let port = format!("p{host}");
        ip(&["netns", "add", &ns]);
        ip(&[
            "-n",
            &self.switch,
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ]);
        ip(&["-n", &self.switch, "link", "set", &port, "master", "br0", "up"]);
        ip(&["-n", &ns, "addr", "add", &format!("10.97.0.{host}/24"), "dev", "eth0"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        if let Some(rate) = rate {
            let out = Command::new("tc")
                .args(["-n", &ns, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate])
                .args(["burst", "64kb", "latency", "200ms"])
                .output()
                .expect("running tc");
            assert!(out.status.success(), "tc: {}", String::from_utf8_lossy(&out.stderr));
        }
        self.nodes.push(ns.clone());
        ns
    }

    /// Client isolation on the switch (as on a Wi-Fi or a managed switch):
    /// the PC `host` can reach the ports that are not isolated (the
    /// server's) but no other isolated one.
    #[allow(dead_code, reason = "share_lan's PCs all reach each other")]
    pub fn isolate(&self, host: u8) {
        let port = format!("p{host}");
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            "dev",
            &port,
            "type",
            "bridge_slave",
            "isolated",
            "on",
        ]);
    }

    /// `program` run inside `ns`.
    pub fn exec(ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// `lazare serve --http --listen IP:8470` with `args` in `ns`, serving
    /// `data`; returns once its banner is out (its stdout is drained after,
    /// so it never blocks on a full pipe). `LAZARE` names the CLI, else the
    /// checkout's release build.
    pub fn serve(&mut self, ns: &str, ip: &str, args: &[&str], data: &Path, stderr: Stdio) {
        let lazare = checkout_bin("LAZARE", "target/release/lazare");
        let mut child = Lan::exec(ns, lazare.to_str().unwrap())
            .args(["serve", "--http", "--listen", &format!("{ip}:8470")])
            .args(args)
            .arg("--data")
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting lazare serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("images:") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "lazare serve exited during start");
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        self.children.push(child);
    }

    /// Bytes a PC sent on its cable (its upload, framing included).
    pub fn tx_bytes(ns: &str) -> u64 {
        let out =
            Lan::exec(ns, "cat").arg("/sys/class/net/eth0/statistics/tx_bytes").output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("tx_bytes")
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.nodes.iter().chain([&self.switch]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
