//! `lazare-agent config` as a black box: command lines from the kernel's and
//! dracut's documentation, good and bad, through the built binary.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_lazare-agent");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).arg("config").args(args).output().expect("running lazare-agent")
}

/// An empty baked file, so a host's own /etc/lazare/cmdline cannot interfere.
fn no_baked() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("config-cli-empty-baked");
    std::fs::write(&p, "").unwrap();
    p
}

/// The baked server key the tests' CD carries.
fn baked_key() -> lazare_proto::PublicKey {
    lazare_proto::SigningKey::from_bytes(&[1; 32]).public()
}

/// `cmdline` with an empty baked command line and [`baked_key`].
fn run_unbaked(cmdline: &str) -> Output {
    // Written once: tests run in parallel, and a rewrite truncates the file
    // another test is reading.
    static KEY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| file("config-cli-key", &format!("{}\n", baked_key())));
    let baked = no_baked();
    let (baked, key) = (baked.to_str().unwrap(), key.to_str().unwrap());
    run(&["--cmdline", cmdline, "--baked", baked, "--baked-key", key])
}

fn file(name: &str, text: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn good(cmdline: &str) -> Value {
    let out = run_unbaked(cmdline);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmdline:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{cmdline:?}: not JSON ({e})"))
}

fn bad(cmdline: &str) -> String {
    let out = run_unbaked(cmdline);
    assert_eq!(out.status.code(), Some(1), "{cmdline:?} should fail");
    assert!(out.stdout.is_empty(), "{cmdline:?}: nothing on stdout on error");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("lazare-agent: ") && err.lines().count() == 1, "{err:?}");
    err
}

fn net(device: Option<&str>, method: &str) -> Value {
    json!({"device": device, "method": method, "address": null, "netmask": null,
           "gateway": null, "hostname": null, "dns": []})
}

/// The contract's keys of one network entry (extra keys are allowed after them).
fn contract(n: &Value) -> Value {
    let keys = ["device", "method", "address", "netmask", "gateway", "hostname", "dns"];
    Value::Object(keys.iter().map(|k| (k.to_string(), n[*k].clone())).collect())
}

#[test]
fn fai_line_dhcp_with_server_from_ip() {
    let v = good(
        "root=/dev/nfs nfsroot=/srv/fai/nfsroot ip=:192.168.0.100:::::dhcp console=ttyS0,115200n8",
    );
    assert_eq!(v["server"], "https://192.168.0.100:8470");
    assert_eq!(v["key"], baked_key().to_string(), "the baked key file's key");
    assert_eq!(v["action"], "install");
    assert_eq!(v["insecure"], false);
    assert_eq!(contract(&v["network"][0]), net(None, "dhcp"));
    assert_eq!(v["network"].as_array().unwrap().len(), 1);
}

#[test]
fn json_keys_come_in_contract_order() {
    let baked = no_baked();
    let out = run(&[
        "--cmdline",
        "lazare.server=http://h/p ip=eth0:dhcp",
        "--baked",
        baked.to_str().unwrap(),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    let order = [
        "\"server\"",
        "\"action\"",
        "\"insecure\"",
        "\"network\"",
        "\"device\"",
        "\"method\"",
        "\"address\"",
        "\"netmask\"",
        "\"gateway\"",
        "\"hostname\"",
        "\"dns\"",
    ];
    let pos: Vec<usize> =
        order.iter().map(|k| text.find(k).unwrap_or_else(|| panic!("{k} in {text}"))).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.starts_with("{\n  \"server\""), "pretty JSON: {text}");
}

#[test]
fn documented_command_lines() {
    // (command line, server, action, insecure, network contract entries)
    let cases: Vec<(&str, &str, &str, bool, Vec<Value>)> = vec![
        (
            "lazare.server=http://10.0.2.100:8470 quiet",
            "http://10.0.2.100:8470",
            "install",
            false,
            vec![net(None, "dhcp")],
        ),
        (
            "lazare.server=https://install.example.org/lazare lazare.action=inventory ip=dhcp",
            "https://install.example.org/lazare",
            "inventory",
            false,
            vec![net(None, "dhcp")],
        ),
        (
            "lazare.server=dhcp lazare.action=rescue lazare.insecure ip=off",
            "dhcp",
            "rescue",
            true,
            vec![net(None, "off")],
        ),
        (
            "lazare.server=http://[2001:db8::1]:8470 ip=eth0:dhcp ip=eth1:on",
            "http://[2001:db8::1]:8470",
            "install",
            false,
            vec![net(Some("eth0"), "dhcp"), net(Some("eth1"), "dhcp")],
        ),
        (
            "lazare.server=http://s ip=enp2s0f0:dhcp:1500:52:54:00:12:34:56",
            "http://s",
            "install",
            false,
            vec![net(Some("enp2s0f0"), "dhcp")],
        ),
        (
            "lazare.server=http://s ip=dhcp,dhcp6",
            "http://s",
            "install",
            false,
            vec![net(None, "dhcp")],
        ),
        (
            "lazare.server=http://s ip=single-dhcp",
            "http://s",
            "install",
            false,
            vec![net(None, "dhcp")],
        ),
        (
            "lazare.server=http://s ip=::::pc42::dhcp",
            "http://s",
            "install",
            false,
            vec![
                json!({"device": null, "method": "dhcp", "address": null, "netmask": null, "gateway": null, "hostname": "pc42", "dns": []}),
            ],
        ),
        (
            "lazare.server=http://s lazare.insecure=no ip=none",
            "http://s",
            "install",
            false,
            vec![net(None, "off")],
        ),
        ("\"lazare.server=http://s/a b\"", "", "", false, vec![]),
    ];
    for (line, server, action, insecure, network) in cases {
        if server.is_empty() {
            // A quoted parameter with a space: the URL check refuses the space.
            assert!(bad(line).contains("in the path"), "{line}");
            continue;
        }
        let v = good(line);
        assert_eq!(v["server"], server, "{line}");
        assert_eq!(v["action"], action, "{line}");
        assert_eq!(v["insecure"], insecure, "{line}");
        let got: Vec<Value> = v["network"].as_array().unwrap().iter().map(contract).collect();
        assert_eq!(got, network, "{line}");
    }
}

#[test]
fn static_addresses() {
    let v = good(
        "ip=192.168.1.10:192.168.1.1:192.168.1.254:255.255.255.0:pc1:eth0:off:192.168.1.1:9.9.9.9",
    );
    assert_eq!(v["server"], "https://192.168.1.1:8470");
    assert_eq!(
        contract(&v["network"][0]),
        json!({"device": "eth0", "method": "static", "address": "192.168.1.10", "netmask": "255.255.255.0",
               "gateway": "192.168.1.254", "hostname": "pc1", "dns": ["192.168.1.1", "9.9.9.9"]})
    );
    // dracut: a prefix length as netmask, MTU and MAC after autoconf.
    let v =
        good("lazare.server=http://s ip=10.9.8.7::10.9.8.1:16:pc:ens3:none:9000:52:54:00:ab:cd:ef");
    let n = &v["network"][0];
    assert_eq!(
        (n["address"].as_str(), n["netmask"].as_str()),
        (Some("10.9.8.7"), Some("255.255.0.0"))
    );
    assert_eq!((n["mtu"].as_u64(), n["mac"].as_str()), (Some(9000), Some("52:54:00:ab:cd:ef")));
    // Empty netmask: the classful default, as the kernel does.
    let v = good("lazare.server=http://s ip=10.9.8.7:::::eth0:off");
    assert_eq!(v["network"][0]["netmask"], "255.0.0.0");
}

#[test]
fn rejected_with_a_message_naming_the_problem() {
    let cases = [
        (
            "lazare.server=ftp://10.0.0.1/",
            "lazare.server=ftp://10.0.0.1/: scheme ftp: only http and https",
        ),
        ("lazare.server=nfs://10.0.0.1:/srv/fai", "only http and https"),
        ("lazare.server=10.0.0.1", "lazare.server=10.0.0.1: expected http://"),
        ("lazare.server=http://300.1.2.3/", "300.1.2.3 is not an IPv4 address"),
        ("ip=300.1.2.3:::::eth0:off lazare.server=dhcp", "ip=300.1.2.3:::::eth0:off: client-ip"),
        ("ip=:192.168.0.256:::::dhcp", "ip=:192.168.0.256:::::dhcp: server-ip"),
        (
            "ip=10.0.0.2::10.0.0.1:255.255.0.255::eth0:off lazare.server=dhcp",
            "netmask: 255.255.0.255 is not contiguous",
        ),
        ("ip=10.0.0.2:::::eth0:off:8.8.8.888 lazare.server=dhcp", "dns0-ip"),
        ("quiet splash", "no install server"),
        ("ip=dhcp", "no install server"),
        ("ip=eth0:dhcp root=/dev/nfs", "no install server"),
        (
            "lazare.server=dhcp lazare.action=reboot",
            "lazare.action=reboot: expected install, inventory or rescue",
        ),
        ("lazare.server=dhcp lazare.action", "lazare.action: expected a value"),
        ("lazare.server=dhcp ip=rarp", "rarp is not supported"),
        ("lazare.server=dhcp ip=eth0:dhcp6", "dhcp6 (IPv6 without IPv4) is not supported"),
        ("lazare.server=dhcp ip=eth0:dhcp:100000", "mtu"),
        ("lazare.servr=http://x", "unknown key lazare.servr"),
    ];
    for (line, part) in cases {
        let err = bad(line);
        assert!(err.contains(part), "{line:?}:\n  got  {err:?}\n  want {part:?}");
    }
}

#[test]
fn reads_files_and_the_baked_line() {
    let live =
        file("config-cli-live", "BOOT_IMAGE=/vmlinuz ip=eth0:dhcp lazare.action=inventory\n");
    let baked = file(
        "config-cli-baked",
        "lazare.server=http://baked:8470 lazare.action=install lazare.retries=5\n",
    );
    let out = run(&["--cmdline-file", live.to_str().unwrap(), "--baked", baked.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["server"], "http://baked:8470");
    assert_eq!(v["action"], "inventory", "the live command line wins");
    assert_eq!(v["retries"], 5);
    assert_eq!(v["network"][0]["device"], "eth0");

    // A bad baked value is reported as baked.
    let baked = file("config-cli-bad-baked", "lazare.server=gopher://x\n");
    let out = run(&["--cmdline", "quiet", "--baked", baked.to_str().unwrap()]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("in the baked command line: lazare.server=gopher://x"), "{err}");

    // Missing files are named.
    let out = run(&["--cmdline-file", "/nonexistent/cmdline"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("reading the kernel command line from /nonexistent/cmdline"), "{err}");
    let out = run(&["--cmdline", "lazare.server=dhcp", "--baked", "/nonexistent/baked"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/baked"));
}

#[test]
fn library_load_matches_the_cli() {
    let live = file("config-cli-load-live", "ip=:10.0.0.7:::::dhcp\n");
    let no_root = std::path::Path::new("/nonexistent");
    let cfg = lazare_agent::config::load(&live, no_root).unwrap();
    assert_eq!(cfg.server.to_string(), "https://10.0.0.7:8470");
    assert_eq!(cfg.key, None);
    let err =
        lazare_agent::config::load(&file("config-cli-load-bad", "quiet\n"), no_root).unwrap_err();
    assert!(format!("{err:#}").contains("no install server"));
}
