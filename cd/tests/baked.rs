use kernel_cmdline::Cmdline;
use lazare_cd::paths::{BAKED_CMDLINE, BAKED_KEY};
use lazare_cd::BakedConfig;
use lazare_proto::SigningKey;

fn text(files: &[(&'static str, Vec<u8>)], path: &str) -> Option<String> {
    files.iter().find(|(p, _)| *p == path).map(|(_, d)| String::from_utf8(d.clone()).unwrap())
}

#[test]
fn baked_files_read_back_to_the_same_config() {
    let key = SigningKey::from_bytes(&[3; 32]).public();
    let config = BakedConfig {
        cmdline: Cmdline::parse(
            r#"lazare.server=http://10.0.2.2:8470 "x=a b" console=tty0 -- single"#,
        ),
        key: Some(key),
    };
    let files = config.files();
    assert_eq!(files.len(), 2);
    let cmdline = text(&files, BAKED_CMDLINE);
    let key = text(&files, BAKED_KEY);
    assert!(cmdline.as_deref().unwrap().ends_with('\n'));
    assert_eq!(BakedConfig::parse(cmdline.as_deref(), key.as_deref()).unwrap(), config);

    let no_key = BakedConfig { key: None, ..config };
    let files = no_key.files();
    assert_eq!(files.len(), 1, "no key file without a key");
    let back = BakedConfig::parse(text(&files, BAKED_CMDLINE).as_deref(), None).unwrap();
    assert_eq!(back, no_key);
}

#[test]
fn absent_files_are_empty_and_a_bad_key_is_refused() {
    assert_eq!(BakedConfig::parse(None, None).unwrap(), BakedConfig::default());
    let e = BakedConfig::parse(None, Some("ed25519:AAAA\n")).unwrap_err();
    assert!(e.to_string().contains(BAKED_KEY), "{e}");
}
