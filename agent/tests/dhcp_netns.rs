//! The agent's DHCP client against a real dnsmasq, in network namespaces
//! joined by veth pairs made here: next-server (siaddr) and option 66 reach
//! the lease, and a second NIC without a cable does not stop the first from
//! getting one. Needs root, iproute2 and dnsmasq (Makefile DEB_PACKAGES).

use std::process::{Child, Command, Stdio};

/// Namespaces and dnsmasq of one test, removed on drop.
struct Lan {
    server: String,
    client: String,
    dnsmasq: Option<Child>,
    _dir: tempfile::TempDir,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip (iproute2)");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Lan {
    fn new(tag: &str) -> Lan {
        let id = std::process::id();
        let (server, client) = (format!("lzs-{tag}-{id}"), format!("lzc-{tag}-{id}"));
        let dir = tempfile::tempdir().unwrap();
        let lan = Lan { server: server.clone(), client: client.clone(), dnsmasq: None, _dir: dir };
        ip(&["netns", "add", &server]);
        ip(&["netns", "add", &client]);
        // Cabled: srv0 <-> cli0. Uncabled: cli1's peer stays down, so cli1
        // has no carrier (like an unplugged port).
        for (s, c) in [("srv0", "cli0"), ("srv1", "cli1")] {
            ip(&[
                "-n", &server, "link", "add", s, "type", "veth", "peer", "name", c, "netns",
                &client,
            ]);
        }
        ip(&["-n", &server, "addr", "add", "192.168.77.1/24", "dev", "srv0"]);
        ip(&["-n", &server, "link", "set", "srv0", "up"]);
        ip(&["-n", &server, "link", "set", "lo", "up"]);
        lan
    }

    fn start_dnsmasq(&mut self) {
        self.start_dnsmasq_with(&["--port=0", "--dhcp-option=6,192.168.77.53"]);
    }

    fn start_dnsmasq_with(&mut self, extra: &[&str]) {
        let leases = self._dir.path().join("leases");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.server,
                "dnsmasq",
                "--no-daemon",
                "--conf-file=/dev/null",
            ])
            .args(extra)
            .args(["--interface=srv0", "--bind-interfaces", "--user=root", "--group=root"])
            .arg("--dhcp-range=192.168.77.50,192.168.77.99,255.255.255.0,1h")
            .arg("--dhcp-boot=lazare,,192.168.77.5")
            .arg("--dhcp-option=66,install.lan")
            .arg("--dhcp-option=3,192.168.77.1")
            .arg(format!("--dhcp-leasefile={}", leases.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dnsmasq");
        self.dnsmasq = Some(child);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    fn agent(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.client, env!("CARGO_BIN_EXE_lazare-agent")])
            .args(args)
            .output()
            .expect("running lazare-agent")
    }

    fn agent_dhcp(&self, ifaces: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.client,
            env!("CARGO_BIN_EXE_lazare-agent"),
            "dhcp",
            "--tries",
            "2",
        ]);
        for i in ifaces {
            cmd.args(["--iface", i]);
        }
        cmd.output().expect("running lazare-agent dhcp")
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        if let Some(mut c) = self.dnsmasq.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn lease_from_dnsmasq_with_next_server_and_option_66_beside_an_uncabled_nic() {
    let mut lan = Lan::new("a");
    lan.start_dnsmasq();
    let out = lan.agent_dhcp(&["cli1", "cli0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "lazare-agent dhcp failed: {stderr}");
    assert!(stderr.contains("cli1"), "the uncabled NIC is reported as skipped: {stderr}");
    let lease: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(lease["iface"], "cli0");
    let addr: std::net::Ipv4Addr = lease["address"].as_str().unwrap().parse().unwrap();
    assert!(
        (50..=99).contains(&addr.octets()[3]) && addr.octets()[..3] == [192, 168, 77],
        "{addr}"
    );
    assert_eq!(lease["netmask"], "255.255.255.0");
    assert_eq!(lease["router"], "192.168.77.1");
    assert_eq!(lease["dns"], serde_json::json!(["192.168.77.53"]));
    assert_eq!(lease["next_server"], "192.168.77.5");
    assert_eq!(lease["tftp_server"], "install.lan");
}

#[test]
fn no_dhcp_server_is_a_clear_error() {
    let lan = Lan::new("b");
    let out = lan.agent_dhcp(&["cli0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no DHCP answer on cli0 after 2 tries"), "{stderr}");
}

/// The lease applied (address + default route through ioctls), then a name
/// looked up with the agent's own resolver at the lease's DNS server.
#[test]
fn applied_lease_and_own_resolver_find_the_server_by_name() {
    let mut lan = Lan::new("c");
    lan.start_dnsmasq_with(&[
        "--port=53",
        "--listen-address=192.168.77.1",
        "--no-resolv",
        "--no-hosts",
        "--address=/install.lan/192.168.77.5",
        "--dhcp-option=6,192.168.77.1",
    ]);
    let out = lan.agent(&["dhcp", "--iface", "cli0", "--apply", "--tries", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lease: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let addr = lease["address"].as_str().unwrap();
    let shown = Command::new("ip")
        .args(["-n", &lan.client, "-4", "addr", "show", "cli0"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&format!("{addr}/24")),
        "address applied"
    );
    let routes = Command::new("ip").args(["-n", &lan.client, "route"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&routes.stdout).contains("default via 192.168.77.1 dev cli0"),
        "default route"
    );
    let dns = lease["dns"][0].as_str().unwrap();
    let out = lan.agent(&["resolve", "install.lan", "--dns", dns]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "192.168.77.5");
    let out = lan.agent(&["resolve", "nothing.invalid", "--dns", dns]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing.invalid has no IPv4 address"));
}
