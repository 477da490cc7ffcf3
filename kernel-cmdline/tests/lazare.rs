//! The typed `lazare.*` values: what parses, and errors that name the key.

use kernel_cmdline::{parse_key, BootAction, Host, Insecure, Retries, Scheme, Server, ServerUrl};
use proptest::prelude::*;

#[test]
fn server_urls() {
    // (input, scheme, host, port, path)
    let good: &[(&str, Scheme, Host, Option<u16>, &str)] = &[
        ("http://10.0.2.100:8470", Scheme::Http, Host::V4([10, 0, 2, 100].into()), Some(8470), ""),
        (
            "https://install.example.org",
            Scheme::Https,
            Host::Name("install.example.org".into()),
            None,
            "",
        ),
        // A trailing `/` is dropped once, here: the base has no other form.
        ("http://srv/lazare/", Scheme::Http, Host::Name("srv".into()), None, "/lazare"),
        ("http://srv/", Scheme::Http, Host::Name("srv".into()), None, ""),
        (
            "HTTP://Srv.Example:80/a/b",
            Scheme::Http,
            Host::Name("Srv.Example".into()),
            Some(80),
            "/a/b",
        ),
        (
            "http://[2001:db8::1]:8470/x",
            Scheme::Http,
            Host::V6("2001:db8::1".parse().unwrap()),
            Some(8470),
            "/x",
        ),
        ("http://[fe80::1]", Scheme::Http, Host::V6("fe80::1".parse().unwrap()), None, ""),
        ("http://localhost.:8080", Scheme::Http, Host::Name("localhost.".into()), Some(8080), ""),
    ];
    for (s, scheme, host, port, path) in good {
        let u: ServerUrl = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(
            (u.scheme(), u.host(), u.port(), u.path()),
            (*scheme, host, *port, *path),
            "{s}"
        );
        assert_eq!(u.to_string().parse::<ServerUrl>().unwrap(), u);
    }
    assert_eq!("dhcp".parse::<Server>().unwrap(), Server::Dhcp);
    assert_eq!("http://a:1".parse::<ServerUrl>().unwrap().port_or_default(), 1);
    assert_eq!("https://a".parse::<ServerUrl>().unwrap().port_or_default(), 443);
}

#[test]
fn join_puts_paths_under_the_base_and_keeps_absolute_urls() {
    let root: ServerUrl = "http://10.0.2.2:8470".parse().unwrap();
    let under: ServerUrl = "https://srv/lazare/".parse().unwrap();
    assert_eq!(root.join("/api/v1/hello"), "http://10.0.2.2:8470/api/v1/hello");
    assert_eq!(under.join("/api/v1/hello"), "https://srv/lazare/api/v1/hello");
    assert_eq!(under.join("images/a.tar.zst"), "https://srv/lazare/images/a.tar.zst");
    let mirror = "HTTP://mirror.lan/a.tar.zst";
    assert_eq!(under.join(mirror), mirror);
    let built = ServerUrl::new(Scheme::Http, "install.lan".parse().unwrap(), Some(8470));
    assert_eq!(built.to_string(), "http://install.lan:8470");
    assert_eq!(built, "http://install.lan:8470".parse().unwrap());
    assert_eq!("[fe80::1]".parse::<Host>().unwrap(), "fe80::1".parse::<Host>().unwrap());
    assert!("bad host!".parse::<Host>().is_err());
    let json = serde_json::to_string(&Server::Url(under.clone())).unwrap();
    assert_eq!(serde_json::from_str::<Server>(&json).unwrap(), Server::Url(under));
    assert!(serde_json::from_str::<Server>("\"ftp://x\"").is_err());
}

#[test]
fn bad_server_urls_say_what_is_expected() {
    // (input, part of the message)
    let bad = [
        ("ftp://10.0.0.1/", "only http and https"),
        ("nfs://10.0.0.1:/srv", "only http and https"),
        ("10.0.0.1:8470", "expected http://HOST[:PORT][/PATH]"),
        ("http://", "empty host"),
        ("http://300.1.2.3:8470", "300.1.2.3 is not an IPv4 address"),
        ("http://10.0.0:8470", "is not an IPv4 address"),
        ("http://host:0", "port \"0\""),
        ("http://host:99999", "port \"99999\""),
        ("http://host:", "port \"\""),
        ("http://host:80x", "port"),
        ("http://user:pw@host/", "passwords"),
        ("http://[2001:db8::zz]/", "not an IPv6 address"),
        ("http://[2001:db8::1/", "unclosed ["),
        ("http://under_score.example/", "not a host name"),
        ("http://-bad.example/", "not a host name"),
        ("http://host/a?b=c", "no query"),
        ("http://host/#frag", "no query"),
    ];
    for (s, part) in bad {
        let e = s.parse::<Server>().expect_err(s).to_string();
        assert!(e.starts_with(&format!("lazare.server={s}: ")), "{e}");
        assert!(e.contains(part), "{s}: {e:?} should mention {part:?}");
    }
}

#[test]
fn actions() {
    for (s, a) in [
        ("install", BootAction::Install),
        ("inventory", BootAction::Inventory),
        ("rescue", BootAction::Rescue),
    ] {
        assert_eq!(s.parse::<BootAction>().unwrap(), a);
        assert_eq!(a.to_string(), s);
    }
    assert_eq!(BootAction::default(), BootAction::Install);
    let e = "reboot".parse::<BootAction>().unwrap_err();
    assert_eq!(e.to_string(), "lazare.action=reboot: expected install, inventory or rescue");
    assert!("Install".parse::<BootAction>().is_err());
}

#[test]
fn keys() {
    let public = lazare_proto::SigningKey::from_bytes(&[5; 32]).public();
    let text = public.to_string();
    let b64 = text.strip_prefix("ed25519:").unwrap();
    assert_eq!(parse_key(&text).unwrap(), public);
    for (bad, part) in [
        (b64.to_string(), "expected ed25519:"),
        (format!("rsa:{b64}"), "expected ed25519:"),
        ("ed25519:AAAA".to_string(), "not a valid ed25519 public key"),
        ("ed25519:!!!".to_string(), "base64"),
    ] {
        let e = parse_key(&bad).unwrap_err().to_string();
        assert!(e.starts_with(&format!("lazare.key={bad}: ")) && e.contains(part), "{e}");
    }
}

#[test]
fn insecure_and_retries() {
    assert_eq!(Insecure::from_value(None).unwrap(), Insecure(true));
    for (s, v) in [
        ("1", true),
        ("yes", true),
        ("true", true),
        ("on", true),
        ("0", false),
        ("no", false),
        ("false", false),
        ("off", false),
    ] {
        assert_eq!(Insecure::from_value(Some(s)).unwrap(), Insecure(v), "{s}");
    }
    let e = Insecure::from_value(Some("maybe")).unwrap_err().to_string();
    assert!(e.starts_with("lazare.insecure=maybe: expected"), "{e}");
    assert_eq!("5".parse::<Retries>().unwrap(), Retries(5));
    for bad in ["-1", "+3", "x", "", "99999999999"] {
        let e = bad.parse::<Retries>().unwrap_err().to_string();
        assert!(e.starts_with(&format!("lazare.retries={bad}: expected a whole number")), "{e}");
    }
}

proptest! {
    #[test]
    fn server_urls_round_trip(
        https in any::<bool>(),
        host in prop_oneof![
            "[a-z][a-z0-9-]{0,10}[a-z0-9](\\.[a-z]{2,5}){0,2}",
            any::<[u8; 4]>().prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
            any::<[u16; 8]>().prop_map(|w| format!("[{}]", std::net::Ipv6Addr::from(w))),
        ],
        port in proptest::option::of(1u16..),
        path in "(/[a-zA-Z0-9._~-]{0,8}){0,3}",
    ) {
        let scheme = if https { "https" } else { "http" };
        let port_s = port.map(|p| format!(":{p}")).unwrap_or_default();
        let s = format!("{scheme}://{host}{port_s}{path}");
        let u: ServerUrl = s.parse().unwrap();
        prop_assert_eq!(u.to_string(), s.trim_end_matches('/'));
        prop_assert_eq!(u.port(), port);
        prop_assert_eq!(u.to_string().parse::<ServerUrl>().unwrap(), u);
    }
}
