//! Tokenizing and formatting the kernel command line, checked against what the
//! kernel's `next_arg()` (lib/cmdline.c) and `parse_args()` do.

use kernel_cmdline::{keys_equal, Cmdline, CmdlineError, Param};
use proptest::prelude::*;

fn p(key: &str, value: Option<&str>) -> Param {
    Param::new(key, value)
}

/// Parameters as (key, value).
type Params = &'static [(&'static str, Option<&'static str>)];

/// (input, kernel parameters, init arguments)
const SPLITS: &[(&str, Params, Params)] = &[
    ("", &[], &[]),
    ("   \t\n", &[], &[]),
    ("quiet", &[("quiet", None)], &[]),
    ("root=/dev/sda1 ro quiet", &[("root", Some("/dev/sda1")), ("ro", None), ("quiet", None)], &[]),
    // /proc/cmdline ends with a newline; tabs and newlines separate too.
    ("a=1\tb=2\nc\n", &[("a", Some("1")), ("b", Some("2")), ("c", None)], &[]),
    ("  lead  and   trail  ", &[("lead", None), ("and", None), ("trail", None)], &[]),
    // Quotes group a value, and the whole parameter.
    (r#"key="a b" x"#, &[("key", Some("a b")), ("x", None)], &[]),
    (r#""key=a b" x"#, &[("key", Some("a b")), ("x", None)], &[]),
    (r#""flag with space""#, &[("flag with space", None)], &[]),
    (r#"key="""#, &[("key", Some(""))], &[]),
    ("key=", &[("key", Some(""))], &[]),
    // The first '=' splits; later ones belong to the value.
    ("root=LABEL=Root", &[("root", Some("LABEL=Root"))], &[]),
    ("rd.iscsi.param=node.session.timeo.replacement_timeout=30", &[("rd.iscsi.param", Some("node.session.timeo.replacement_timeout=30"))], &[]),
    // Quotes inside a value stay (the kernel only strips a leading one).
    (r#"a=x"b c"y z"#, &[("a", Some(r#"x"b c"y"#)), ("z", None)], &[]),
    // An unclosed quote runs to the end of the line.
    (r#"a="b c d"#, &[("a", Some("b c d"))], &[]),
    // A leading '=' is not a separator (the kernel's `equals == 0` test).
    ("=x", &[("=x", None)], &[]),
    ("==", &[("=", Some(""))], &[]),
    // Repeated keys are all kept, in order.
    ("console=tty0 console=ttyS0,115200n8", &[("console", Some("tty0")), ("console", Some("ttyS0,115200n8"))], &[]),
    // `--` ends the kernel's parameters; the rest are init's.
    ("quiet -- single splash=1", &[("quiet", None)], &[("single", None), ("splash", Some("1"))]),
    ("quiet --", &[("quiet", None)], &[]),
    ("-- a -- b", &[], &[("a", None), ("--", None), ("b", None)]),
    // `--=x` is an ordinary parameter, and a quoted "--" still ends them.
    ("--=x y", &[("--", Some("x")), ("y", None)], &[]),
    (r#"a "--" b"#, &[("a", None)], &[("b", None)]),
    // The kernel's command line is a C string.
    ("a=1\0b=2", &[("a", Some("1"))], &[]),
    // A real Debian live command line.
    (
        "BOOT_IMAGE=/live/vmlinuz boot=live components quiet splash findiso= initrd=/live/initrd.gz",
        &[("BOOT_IMAGE", Some("/live/vmlinuz")), ("boot", Some("live")), ("components", None), ("quiet", None), ("splash", None), ("findiso", Some("")), ("initrd", Some("/live/initrd.gz"))],
        &[],
    ),
    // dracut.cmdline(7) examples.
    (
        r#"root=/dev/disk/by-path/pci-0000:00:1f.1-scsi-0:0:1:0-part1 "rd.luks.key=/foo/bar.key""#,
        &[("root", Some("/dev/disk/by-path/pci-0000:00:1f.1-scsi-0:0:1:0-part1")), ("rd.luks.key", Some("/foo/bar.key"))],
        &[],
    ),
];

#[test]
fn splits_like_the_kernel() {
    for (input, params, init) in SPLITS {
        let c = Cmdline::parse(input);
        let want: Vec<Param> = params.iter().map(|(k, v)| p(k, *v)).collect();
        let want_init: Vec<Param> = init.iter().map(|(k, v)| p(k, *v)).collect();
        assert_eq!(c.params(), want.as_slice(), "params of {input:?}");
        assert_eq!(c.init_args(), want_init.as_slice(), "init args of {input:?}");
        assert_eq!(Cmdline::parse(&c.to_string()), c, "round trip of {input:?} via {c}");
        assert_eq!(input.parse::<Cmdline>().unwrap(), c);
    }
}

/// (parameters, formatted)
const FORMATS: &[(Params, &str)] = &[
    (&[("quiet", None)], "quiet"),
    (&[("a", Some("1")), ("b", None)], "a=1 b"),
    (&[("key", Some("a b"))], r#"key="a b""#),
    (&[("key", Some(""))], "key="),
    (&[("flag with space", None)], r#""flag with space""#),
    (&[("k", Some("tab\there"))], "k=\"tab\there\""),
    (
        &[("lazare.server", Some("http://10.0.2.100:8470/x"))],
        "lazare.server=http://10.0.2.100:8470/x",
    ),
    (&[("k", Some(r#""quoted""#))], r#"k=""quoted"""#),
];

#[test]
fn formats_quoting_only_when_needed() {
    for (params, want) in FORMATS {
        let mut c = Cmdline::new();
        for (k, v) in *params {
            c.push(k, *v).unwrap();
        }
        assert_eq!(c.to_string(), *want);
        assert_eq!(Cmdline::parse(want), c, "{want:?} reads back");
    }
}

#[test]
fn init_args_are_written_after_dashes() {
    let mut c = Cmdline::parse("quiet");
    c.push_init_arg("single", None).unwrap();
    c.push_init_arg("x", Some("a b")).unwrap();
    assert_eq!(c.to_string(), r#"quiet -- single x="a b""#);
    assert_eq!(Cmdline::parse(&c.to_string()), c);
}

#[test]
fn dash_and_underscore_are_the_same_in_keys() {
    let c = Cmdline::parse("rd.net.timeout_dhcp=5 log-level=7 log_level=3");
    assert_eq!(c.value("rd.net.timeout-dhcp"), Some("5"));
    assert_eq!(c.value("log_level"), Some("3"), "the last occurrence wins");
    assert_eq!(c.get_all("log-level").count(), 2);
    assert!(keys_equal("a-b_c", "a_b-c"));
    assert!(!keys_equal("a.b", "a_b"));
    assert!(!keys_equal("ab", "abc"));
}

#[test]
fn get_contains_remove_set() {
    let mut c = Cmdline::parse("console=tty0 quiet console=ttyS0 ip=dhcp");
    assert_eq!(c.get("console"), Some(&p("console", Some("ttyS0"))));
    let all: Vec<_> = c.get_all("console").filter_map(|p| p.value.as_deref()).collect();
    assert_eq!(all, ["tty0", "ttyS0"]);
    assert!(c.contains("quiet"));
    assert_eq!(c.value("quiet"), None, "a flag has no value");
    assert!(!c.contains("splash"));
    assert_eq!(c.remove("console"), 2);
    assert_eq!(c.to_string(), "quiet ip=dhcp");
    c.set("ip", Some("eth0:dhcp")).unwrap();
    c.set("lazare-insecure", None).unwrap();
    assert_eq!(c.to_string(), "quiet ip=eth0:dhcp lazare-insecure");
    assert_eq!(c.len(), 3);
    assert_eq!(c.iter().count(), 3);
    assert!(!c.is_empty());
}

#[test]
fn refuses_what_the_kernel_cannot_carry() {
    let mut c = Cmdline::new();
    assert_eq!(c.push("--", None), Err(CmdlineError::DashDash));
    // Blanks on both sides of a lone quote: one of them is always outside quotes.
    assert!(matches!(c.push("k", Some(r#"a b"c d"#)), Err(CmdlineError::Unrepresentable(_))));
    // A lone quote with one blank can still be written.
    c.push("k", Some(r#"a" b"#)).unwrap();
    assert_eq!(c.to_string(), r#"k=a" b"#, "last: may run to the end of the line");
    c.push("next", None).unwrap();
    assert_eq!(c.to_string(), r#""k="a" b" next"#);
    assert_eq!(Cmdline::parse(&c.to_string()), c);
    c = Cmdline::new();
    assert!(c.is_empty(), "a refused push leaves the line unchanged");
    // A token that only works at the end of a line must stay there.
    let mut end = Cmdline::parse(r#"x a""#);
    assert_eq!(end.params()[1], p(r#"a""#, None));
    assert_eq!(end.to_string(), r#"x a""#);
    assert!(end.push("y", None).is_err());
    assert!(end.push_init_arg("y", None).is_err());
    assert_eq!(end.remove(r#"a""#), 1);
    end.push("y", None).unwrap();
    assert_eq!(end.to_string(), "x y");
}

/// Keys and values as a builder would push them (URLs, paths, text with spaces).
fn key() -> impl Strategy<Value = String> {
    "[a-zA-Z_.-][a-zA-Z0-9_.:/,-]{0,12}".prop_filter("not --", |k| k != "--")
}

fn value() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[a-zA-Z0-9 \t=:/,.\"_-]{0,16}")
}

proptest! {
    #[test]
    fn pushed_lines_round_trip(
        params in proptest::collection::vec((key(), value()), 0..8),
        init in proptest::collection::vec((key(), value()), 0..3),
    ) {
        let mut c = Cmdline::new();
        for (k, v) in &params {
            let _ = c.push(k, v.as_deref());
        }
        for (k, v) in &init {
            let _ = c.push_init_arg(k, v.as_deref());
        }
        let text = c.to_string();
        prop_assert_eq!(Cmdline::parse(&text), c, "via {:?}", text);
    }

    #[test]
    fn values_without_quotes_are_always_accepted(k in key(), v in "[^\"\0]{0,24}") {
        let mut c = Cmdline::new();
        c.push(&k, Some(&v)).unwrap();
        c.push("next", None).unwrap();
        let back = Cmdline::parse(&c.to_string());
        prop_assert_eq!(back.params()[0].value.as_deref(), Some(v.as_str()));
    }

    /// The fuzz target's body, on random text and random bytes.
    #[test]
    fn fuzz_check_on_random_text(s in "[a-z=\" \t\n\\-]{0,40}") {
        kernel_cmdline::fuzz_check(s.as_bytes());
    }

    #[test]
    fn fuzz_check_on_random_bytes(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        kernel_cmdline::fuzz_check(&b);
    }

    #[test]
    fn fuzz_check_on_ip_like_lines(s in "ip=[0-9a-f.:\\[\\]/,a-z]{0,40}( ip=[0-9.:a-z]{0,20})?") {
        kernel_cmdline::fuzz_check(s.as_bytes());
    }
}
