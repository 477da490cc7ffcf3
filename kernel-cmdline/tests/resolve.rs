//! Resolving the agent's configuration from the baked and the live command lines.

use std::net::IpAddr;

use kernel_cmdline::{
    resolve, BootAction, Cmdline, ConfigError, Method, Server, ServerSource, DEFAULT_SERVER_PORT,
};

fn ok(baked: &str, live: &str) -> kernel_cmdline::AgentConfig {
    resolve(&Cmdline::parse(baked), &Cmdline::parse(live))
        .unwrap_or_else(|e| panic!("baked {baked:?} live {live:?}: {e}"))
}

fn err(baked: &str, live: &str) -> ConfigError {
    resolve(&Cmdline::parse(baked), &Cmdline::parse(live)).expect_err(live)
}

fn addr(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn fai_style_server_from_ip() {
    let c = ok("", "ip=:192.168.0.100:::::dhcp console=ttyS0,115200");
    assert_eq!(DEFAULT_SERVER_PORT, 8470);
    assert_eq!(c.server.to_string(), "https://192.168.0.100:8470");
    assert_eq!(c.server_source, ServerSource::IpServerField);
    assert_eq!(c.network.len(), 1);
    assert_eq!((c.network[0].device.as_deref(), c.network[0].method), (None, Method::Dhcp));
    assert_eq!(c.cmdline.value("console"), Some("ttyS0,115200"), "other parameters are kept");
    // 0.0.0.0 means "not given", as in the kernel.
    assert!(matches!(err("", "ip=:0.0.0.0:::::dhcp"), ConfigError::NoServer));
    assert_eq!(ok("", "lazare.server=dhcp ip=0.0.0.0").network[0].method, Method::Dhcp);
    let v6 = ok("", "ip=:[2001:db8::5]:::::dhcp");
    assert_eq!(v6.server.to_string(), "https://[2001:db8::5]:8470");
}

#[test]
fn defaults() {
    let c = ok("", "lazare.server=http://srv:8470");
    assert_eq!(c.action, BootAction::Install);
    assert!(!c.insecure);
    assert_eq!((c.key, c.retries), (None, None));
    assert_eq!(c.network.len(), 1, "no ip= is DHCP on every NIC");
    assert_eq!((c.network[0].device.clone(), c.network[0].method), (None, Method::Dhcp));
    assert_eq!(c.server_source, ServerSource::Live);
}

#[test]
fn live_wins_over_baked() {
    let baked = "lazare.server=http://baked:1 lazare.action=inventory lazare.retries=3 ip=eth0:dhcp ip=eth1:dhcp";
    let c = ok(baked, "lazare.action=rescue lazare.insecure ip=eth2:dhcp");
    assert_eq!(c.server.to_string(), "http://baked:1");
    assert_eq!(c.server_source, ServerSource::Baked);
    assert_eq!(c.action, BootAction::Rescue);
    assert_eq!(c.retries, Some(3));
    assert!(c.insecure);
    let devs: Vec<_> = c.network.iter().map(|n| n.device.clone().unwrap()).collect();
    assert_eq!(devs, ["eth2"], "the live ip= list replaces the baked one");
    // Without a live ip=, the baked ones apply.
    let c = ok(baked, "quiet");
    assert_eq!(c.network.len(), 2);
    // lazare.server beats an ip= server field, wherever each comes from.
    let c = ok("lazare.server=https://srv/", "ip=:10.0.0.9:::::dhcp");
    assert_eq!(
        (c.server.to_string(), c.server_source),
        ("https://srv".into(), ServerSource::Baked)
    );
    // Within one line the last occurrence wins, as in the kernel.
    assert_eq!(
        ok("", "lazare.server=http://a lazare.server=http://b").server.to_string(),
        "http://b"
    );
    assert_eq!(ok("", "lazare.server=dhcp").server, Server::Dhcp);
    assert!(!ok("", "lazare.server=dhcp lazare.insecure lazare.insecure=0").insecure);
}

#[test]
fn static_network() {
    let c = ok(
        "",
        "lazare.server=http://10.0.0.1 ip=10.0.0.5::10.0.0.1:255.255.255.0:pc5:eth0:off:10.0.0.1",
    );
    let n = &c.network[0];
    assert_eq!(
        (n.method, n.device.as_deref(), n.address),
        (Method::Static, Some("eth0"), addr("10.0.0.5"))
    );
    assert_eq!(n.netmask, Some([255, 255, 255, 0].into()));
    assert_eq!((n.gateway, n.hostname.as_deref()), (addr("10.0.0.1"), Some("pc5")));
    assert_eq!(n.dns, [addr("10.0.0.1").unwrap()]);
    // Empty <netmask>: the classful default, as the kernel does.
    let n = &ok("", "lazare.server=dhcp ip=172.16.3.4:::::eth0:none").network[0];
    assert_eq!(n.netmask, Some([255, 255, 0, 0].into()));
    // A prefix length is accepted as the netmask (dracut).
    let n = &ok("", "lazare.server=dhcp ip=192.168.1.9:::20::eth0:none").network[0];
    assert_eq!(n.netmask, Some([255, 255, 240, 0].into()));
    // No autoconf with a client address: static (the kernel's rule).
    assert_eq!(ok("", "lazare.server=dhcp ip=192.168.1.9").network[0].method, Method::Static);
    // An explicit dhcp wins over a client address (dracut's rule).
    assert_eq!(
        ok("", "lazare.server=dhcp ip=192.168.1.9::::::dhcp").network[0].method,
        Method::Dhcp
    );
}

#[test]
fn per_device_and_off() {
    let c = ok("", "lazare.server=dhcp ip=eth0:dhcp:1400:52:54:00:12:34:56 ip=eth1:off");
    assert_eq!(c.network[0].mtu, Some(1400));
    assert_eq!(c.network[0].mac.unwrap().to_string(), "52:54:00:12:34:56");
    assert_eq!(c.network[1].method, Method::Off);
    assert_eq!(ok("", "lazare.server=dhcp ip=off").network[0].method, Method::Off);
    for dhcpish in
        ["on", "any", "dhcp", "bootp", "both", "single-dhcp", "dhcp,dhcp6", "dhcp,1,pc-42"]
    {
        let c = ok("", &format!("lazare.server=dhcp ip={dhcpish}"));
        assert_eq!(c.network[0].method, Method::Dhcp, "{dhcpish}");
    }
}

#[test]
fn errors_name_the_problem() {
    // (baked, live, part of the message)
    let cases = [
        ("", "quiet", "no install server: add lazare.server=URL or ip=:SERVER-IP:::::dhcp"),
        ("", "ip=dhcp", "no install server"),
        (
            "",
            "lazare.server=ftp://10.0.0.1/",
            "lazare.server=ftp://10.0.0.1/: scheme ftp: only http and https",
        ),
        ("", "lazare.server", "lazare.server: expected a value"),
        (
            "",
            "lazare.server=dhcp lazare.action=reboot",
            "lazare.action=reboot: expected install, inventory or rescue",
        ),
        (
            "",
            "lazare.server=dhcp lazare.retries=many",
            "lazare.retries=many: expected a whole number",
        ),
        (
            "",
            "lazare.server=dhcp lazare.key=ssh-rsa:AAAA",
            "lazare.key=ssh-rsa:AAAA: expected ed25519:",
        ),
        ("", "lazare.server=dhcp lazare.insecure=maybe", "lazare.insecure=maybe"),
        ("", "lazare.sever=http://x", "unknown key lazare.sever"),
        (
            "",
            "ip=300.1.2.3::::::off lazare.server=dhcp",
            "ip=300.1.2.3::::::off: client-ip: 300.1.2.3 is not an IPv4 address",
        ),
        ("", "ip=:192.168.0.300:::::dhcp", "ip=:192.168.0.300:::::dhcp: server-ip"),
        (
            "",
            "ip=10.0.0.2:::255.255.0.255::eth0:off lazare.server=dhcp",
            "netmask: 255.255.0.255 is not contiguous",
        ),
        ("", "ip lazare.server=dhcp", "ip=: autoconf"),
        ("", "lazare.server=dhcp ip=rarp", "ip=rarp: autoconf rarp is not supported by lazare"),
        ("", "lazare.server=dhcp ip=ibft", "not supported by lazare"),
        (
            "",
            "lazare.server=dhcp ip=dhcp6",
            "ip=dhcp6: autoconf dhcp6 (IPv6 without IPv4) is not supported",
        ),
        (
            "",
            "lazare.server=dhcp ip=eth0:auto6",
            "autoconf auto6 (IPv6 without IPv4) is not supported",
        ),
        (
            "",
            "lazare.server=dhcp ip=[2001:db8::2]::::::none",
            "a static IPv6 address is not supported",
        ),
        ("", "lazare.server=dhcp ip=10.0.0.2::[fe80::1]:24:::none", "gw-ip: an IPv6 gateway"),
        (
            "",
            "lazare.server=dhcp ip=10.0.0.2:::64:::none",
            "netmask: prefix length 64 is larger than 32",
        ),
        (
            "",
            "lazare.server=dhcp ip=eth0:dhcp ip=eth0:off",
            "ip= given twice for eth0: ip=eth0:dhcp and ip=eth0:off",
        ),
        ("", "lazare.server=dhcp ip=dhcp ip=off", "given twice for every interface"),
        (
            "lazare.action=oops",
            "lazare.server=dhcp",
            "in the baked command line: lazare.action=oops",
        ),
        ("ip=bogus", "lazare.server=dhcp", "in the baked command line: ip=bogus: autoconf"),
    ];
    for (baked, live, part) in cases {
        let e = err(baked, live).to_string();
        assert!(e.contains(part), "baked {baked:?} live {live:?}:\n  got  {e:?}\n  want {part:?}");
    }
    // A bad baked value hidden by a live one is not an error.
    assert_eq!(
        ok("lazare.action=oops", "lazare.server=dhcp lazare.action=rescue").action,
        BootAction::Rescue
    );
}

#[test]
fn json_shape() {
    let c = ok(
        "",
        "ip=10.1.2.3::10.1.2.1:255.255.255.0:pc:eth0:off:10.1.2.1 lazare.server=http://h:1/p",
    );
    // serde_json::Value sorts keys: check the order on the text.
    let text = serde_json::to_string(&c).unwrap();
    let at = |k: &str| text.find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("{k} in {text}"));
    assert_eq!(at("server"), 1, "{text}");
    let order = [
        "server", "action", "insecure", "network", "device", "method", "address", "netmask",
        "gateway", "hostname", "dns", "ntp",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["server"], "http://h:1/p");
    assert_eq!(v["action"], "install");
    assert_eq!(v["insecure"], false);
    let n = &v["network"][0];
    assert_eq!(n["device"], "eth0");
    assert_eq!(n["method"], "static");
    assert_eq!(n["address"], "10.1.2.3");
    assert_eq!(n["netmask"], "255.255.255.0");
    assert_eq!(n["gateway"], "10.1.2.1");
    assert_eq!(n["hostname"], "pc");
    assert_eq!(n["dns"], serde_json::json!(["10.1.2.1"]));
}

#[test]
fn lang_is_baked_and_the_live_one_wins() {
    use kernel_cmdline::Lang;
    assert_eq!(ok("", "lazare.server=dhcp").lang, None);
    assert_eq!(ok("lazare.server=dhcp lazare.lang=fr", "quiet").lang, Some(Lang::Fr));
    assert_eq!(
        ok("lazare.server=dhcp lazare.lang=fr", "lazare.lang=de_DE.UTF-8").lang,
        Some(Lang::De)
    );
    let e = err("lazare.server=dhcp lazare.lang=klingon", "").to_string();
    assert!(
        e.starts_with("in the baked command line: lazare.lang=klingon: expected en, fr"),
        "{e}"
    );
}
