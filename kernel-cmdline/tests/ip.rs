//! `ip=` values from the kernel's nfsroot.rst and dracut.cmdline(7).

use std::net::IpAddr;

use kernel_cmdline::{Autoconf as A, IpConfig, IpForm, MacAddr, Netmask};
use proptest::prelude::*;

fn ip(s: &str) -> IpConfig {
    s.parse().unwrap_or_else(|e| panic!("ip={s} should parse: {e}"))
}

fn addr(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn short_forms() {
    for (s, want) in [
        ("dhcp", vec![A::Dhcp]),
        ("off", vec![A::Off]),
        ("none", vec![A::None]),
        ("on", vec![A::On]),
        ("any", vec![A::Any]),
        ("bootp", vec![A::Bootp]),
        ("rarp", vec![A::Rarp]),
        ("both", vec![A::Both]),
        ("dhcp6", vec![A::Dhcp6]),
        ("auto6", vec![A::Auto6]),
        ("either6", vec![A::Either6]),
        ("link6", vec![A::Link6]),
        ("single-dhcp", vec![A::SingleDhcp]),
        ("ibft", vec![A::Ibft]),
        ("dhcp,dhcp6", vec![A::Dhcp, A::Dhcp6]),
    ] {
        let c = ip(s);
        assert_eq!(c.form, IpForm::Short, "{s}");
        assert_eq!(c.autoconf, want, "{s}");
        assert_eq!(c.to_string(), s);
    }
}

#[test]
fn kernel_dhcp_client_identifier() {
    // nfsroot.rst: "ip=dhcp,client-id-type,client-id-value"
    let c = ip("dhcp,1,52:54:00:12:34:56");
    assert_eq!(c.autoconf, [A::Dhcp]);
    let id = c.client_id.as_ref().unwrap();
    assert_eq!((id.kind, id.value.as_str()), (1, "52:54:00:12:34:56"));
    assert_eq!(c.to_string(), "dhcp,1,52:54:00:12:34:56");
    assert_eq!(ip("dhcp,0x3d,host").client_id.unwrap().kind, 0x3d);
}

#[test]
fn full_kernel_form() {
    // The classic FAI line: DHCP for the address, the server named by hand.
    let c = ip(":192.168.0.100:::::dhcp");
    assert_eq!((c.form, c.client, c.server), (IpForm::Full, None, addr("192.168.0.100")));
    assert_eq!(c.autoconf, [A::Dhcp]);

    let c = ip("192.168.1.10:192.168.1.1:192.168.1.254:255.255.255.0:pc1:eth0:off:8.8.8.8:8.8.4.4:192.168.1.2");
    assert_eq!(c.client, addr("192.168.1.10"));
    assert_eq!(c.server, addr("192.168.1.1"));
    assert_eq!(c.gateway, addr("192.168.1.254"));
    assert_eq!(c.netmask, Some(Netmask::Dotted("255.255.255.0".parse().unwrap())));
    assert_eq!(c.hostname.as_deref(), Some("pc1"));
    assert_eq!(c.device.as_deref(), Some("eth0"));
    assert_eq!(c.autoconf, [A::Off]);
    assert_eq!(c.dns, [addr("8.8.8.8").unwrap(), addr("8.8.4.4").unwrap()]);
    assert_eq!(c.ntp, addr("192.168.1.2"));

    // nfsroot.txt: update the DNS record with ip=::::$HOST_NAME::dhcp
    let c = ip("::::myhost::dhcp");
    assert_eq!((c.hostname.as_deref(), c.client), (Some("myhost"), None));
    // Fields may stop early; a lone client address is the full form too.
    let c = ip("10.0.0.5::10.0.0.1:255.0.0.0");
    assert_eq!((c.client, c.gateway, c.autoconf.len()), (addr("10.0.0.5"), addr("10.0.0.1"), 0));
    assert_eq!(ip("10.0.0.5").client, addr("10.0.0.5"));
    // dns0 empty, dns1 given (kernel positions).
    assert_eq!(ip("10.0.0.5:::255.0.0.0:::off::1.1.1.1").dns, [addr("1.1.1.1").unwrap()]);
}

#[test]
fn dracut_device_form() {
    let c = ip("eth0:dhcp");
    assert_eq!(
        (c.form, c.device.as_deref(), c.autoconf.clone()),
        (IpForm::Device, Some("eth0"), vec![A::Dhcp])
    );
    let c = ip("enp2s0f0:dhcp6");
    assert_eq!(c.autoconf, [A::Dhcp6]);
    let c = ip("eth0:dhcp:1500");
    assert_eq!(c.mtu, Some(1500));
    let c = ip("eth0:on:9000:52:54:00:12:34:56");
    assert_eq!((c.mtu, c.mac), (Some(9000), Some(MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]))));
    let c = ip("bootnet:any::52:54:00:AB:cd:EF");
    assert_eq!((c.mtu, c.mac.unwrap().to_string()), (None, "52:54:00:ab:cd:ef".to_string()));
    assert_eq!(c.to_string(), "bootnet:any::52:54:00:ab:cd:ef");
    assert_eq!(ip(":dhcp").device, None);
}

#[test]
fn dracut_static_forms() {
    // [:[<mtu>][:<macaddr>]]
    let c = ip("192.168.122.10::192.168.122.1:255.255.255.0:pc:ens3:none:1500:52:54:00:12:34:56");
    assert_eq!((c.mtu, c.mac.is_some(), c.dns.len()), (Some(1500), true, 0));
    let c = ip("192.168.122.10::192.168.122.1:24:pc:ens3:none::52:54:00:12:34:56");
    assert_eq!((c.mtu, c.mac.is_some(), c.netmask), (None, true, Some(Netmask::Prefix(24))));
    // [:[<dns1>][:<dns2>]]
    let c = ip("192.168.122.10::192.168.122.1:255.255.255.0:pc:ens3:none:192.168.122.1:8.8.8.8");
    assert_eq!(c.dns.len(), 2);
    // IPv6 in brackets, a prefix length as the netmask, IPv6 DNS.
    let c = ip("[2001:DB8::10]::[2001:DB8::1]:64:pc:eth0:none:[2001:4860:4860::8888]");
    assert_eq!(c.client, addr("2001:db8::10"));
    assert_eq!(c.gateway, addr("2001:db8::1"));
    assert_eq!(c.netmask, Some(Netmask::Prefix(64)));
    assert_eq!(c.dns, [addr("2001:4860:4860::8888").unwrap()]);
    assert_eq!(
        c.to_string(),
        "[2001:db8::10]::[2001:db8::1]:64:pc:eth0:none:[2001:4860:4860::8888]"
    );
    // <peer> with a prefix length (point-to-point).
    let c = ip("10.0.0.1:10.0.0.2/32:::ppp:eth0:none");
    assert_eq!((c.server, c.server_prefix), (addr("10.0.0.2"), Some(32)));
    let c = ip("[fd00::1]:[fd00::2]/128::64::eth0:none");
    assert_eq!((c.server, c.server_prefix), (addr("fd00::2"), Some(128)));
    assert_eq!(c.to_string(), "[fd00::1]:[fd00::2]/128::64::eth0:none");
    // ibft in the full form.
    assert_eq!(ip(":::::eth0:ibft").autoconf, [A::Ibft]);
}

/// (value, the field its error must name)
const BAD: &[(&str, &str)] = &[
    ("", "autoconf"),
    ("dhcpp", "autoconf"),
    ("reboot", "autoconf"),
    ("300.1.2.3::::::off", "client-ip"),
    ("300.1.2.3", "client-ip"),
    ("10.0.0", "client-ip"),
    (":300.1.2.3:::::dhcp", "server-ip"),
    ("10.0.0.1::10.0.0.256:255.255.255.0", "gw-ip"),
    ("10.0.0.1:::255.0.255.0", "netmask"),
    ("10.0.0.1:::255.255.255.1", "netmask"),
    ("10.0.0.1:::33", "netmask"),
    ("10.0.0.1:::banana", "netmask"),
    ("10.0.0.1::::bad host!", "hostname"),
    ("10.0.0.1:::::this-name-is-too-long0", "device"),
    ("10.0.0.1::::::sometimes", "autoconf"),
    ("10.0.0.1::::::off:1.2.3.999", "dns0-ip"),
    ("10.0.0.1::::::off:1.1.1.1:1.2.3", "dns1-ip"),
    ("10.0.0.1::::::off:1.1.1.1:1.0.0.1:x", "ntp0-ip"),
    ("10.0.0.1::::::off:1.1.1.1:1.0.0.1:1.2.3.4:5.6.7.8", "ntp0-ip"),
    ("eth0:dhcp:12", "mtu"),
    ("eth0:dhcp:70000", "mtu"),
    ("eth0:dhcp:1500:52:54:00:12:34", "macaddr"),
    ("eth0:dhcp:1500:zz:54:00:12:34:56", "macaddr"),
    ("eth0:", "autoconf"),
    ("eth0:static", "autoconf"),
    ("[10.0.0.1]::::::off", "client-ip"),
    ("[2001:db8::zz]::::::off", "client-ip"),
    ("10.0.0.1:10.0.0.2/33:::::off", "server-ip"),
    ("2001:db8::1::::::off", "client-ip"),
];

#[test]
fn impossible_values_name_ip_and_the_field() {
    for (value, field) in BAD {
        let err = value.parse::<IpConfig>().expect_err(value);
        assert_eq!(err.field, *field, "ip={value}: {err}");
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("ip={value}: {field}: ")), "{msg}");
    }
}

fn v4() -> impl Strategy<Value = String> {
    any::<[u8; 4]>().prop_map(|b| format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]))
}

fn v6() -> impl Strategy<Value = String> {
    any::<[u16; 8]>().prop_map(|w| format!("[{}]", std::net::Ipv6Addr::from(w)))
}

fn addr_field() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), v4(), v6()]
}

fn autoconf_field() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "",
        "off",
        "none",
        "on",
        "any",
        "dhcp",
        "bootp",
        "rarp",
        "both",
        "dhcp6",
        "auto6",
        "ibft",
        "dhcp,dhcp6",
    ])
    .prop_map(String::from)
}

fn mac() -> impl Strategy<Value = String> {
    any::<[u8; 6]>().prop_map(|m| MacAddr(m).to_string())
}

proptest! {
    #[test]
    fn full_forms_round_trip(
        client in addr_field(), server in addr_field(), gw in addr_field(),
        mask in prop_oneof![Just(String::new()), (0u8..=32).prop_map(|p| p.to_string()), Just("255.255.252.0".to_string())],
        host in "[a-z0-9-]{0,8}", dev in "[a-z0-9]{0,6}", auto in autoconf_field(),
        tail in prop_oneof![
            Just(String::new()),
            (addr_field(), addr_field(), addr_field()).prop_map(|(a, b, c)| format!(":{a}:{b}:{c}")),
            (68u16.., mac()).prop_map(|(m, mac)| format!(":{m}:{mac}")),
            mac().prop_map(|mac| format!("::{mac}")),
        ],
    ) {
        let s = format!("{client}:{server}:{gw}:{mask}:{host}:{dev}:{auto}{tail}");
        let c = ip(&s);
        prop_assert_eq!(c.to_string().parse::<IpConfig>(), Ok(c.clone()), "{} -> {}", s, c);
    }

    #[test]
    fn device_forms_round_trip(dev in "[a-z][a-z0-9]{0,8}", auto in "(dhcp|on|any|dhcp6|auto6|link6)", mtu in proptest::option::of(68u16..), m in proptest::option::of(mac())) {
        let mut s = format!("{dev}:{auto}");
        match (mtu, &m) {
            (_, Some(m)) => s += &format!(":{}:{m}", mtu.map(|x| x.to_string()).unwrap_or_default()),
            (Some(x), None) => s += &format!(":{x}"),
            (None, None) => {}
        }
        let c = ip(&s);
        prop_assert_eq!((c.mtu, c.mac.map(|x| x.to_string())), (mtu, m.clone()));
        prop_assert_eq!(c.to_string(), s);
    }

    #[test]
    fn any_text_parses_or_errors_without_panic(s in "[0-9a-z.:\\[\\]/,]{0,48}") {
        if let Ok(c) = s.parse::<IpConfig>() {
            prop_assert_eq!(c.to_string().parse::<IpConfig>(), Ok(c));
        }
    }
}
