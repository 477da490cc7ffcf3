//! `lazare build` end to end, read back with independent tools: xorriso
//! (El Torito catalog, Rock Ridge names), fdisk (the hybrid GPT), mtools-free
//! checks of the ESP through xorriso's extraction, and `lazare inspect`.
//! Also: byte-identical rebuilds, and bad inputs that must leave nothing.

mod common;

use std::path::Path;
use std::process::Command;

fn tool(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(o.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn build(dir: &Path, name: &str, args: &[&str]) -> std::path::PathBuf {
    let iso = dir.join(name);
    common::build_iso(&iso, args);
    iso
}

#[test]
fn iso_reads_back_with_xorriso_fdisk_and_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let lilo = dir.path().join("lilo");
    let iso = build(
        dir.path(),
        "a.iso",
        &[
            "--server",
            "http://192.0.2.7:9000",
            "--ip",
            "eth0:dhcp",
            "--cmdline",
            "lazare.retries=4",
            "--label",
            "LAB_7",
            "--insecure",
            "--lilo",
            lilo.to_str().unwrap(),
        ],
    );
    let size = std::fs::metadata(&iso).unwrap().len();
    println!("ISO size: {size} bytes");

    let el = tool("xorriso", &["-indev", iso.to_str().unwrap(), "-report_el_torito", "plain"]);
    assert!(el.contains("Volume id    : 'LAB_7'"), "{el}");
    assert!(el.contains("El Torito boot img :   1  BIOS  y   none"), "{el}");
    assert!(el.contains("El Torito boot img :   2  UEFI  y   none"), "{el}");
    assert!(el.contains("/isolinux/isolinux.bin"), "{el}");
    assert!(el.contains("boot-info-table"), "{el}");
    assert!(el.contains("GPT"), "{el}");

    let fd = tool("fdisk", &["-l", iso.to_str().unwrap()]);
    assert!(fd.contains("Disklabel type: gpt"), "{fd}");
    assert!(fd.contains("EFI System"), "{fd}");

    // Rock Ridge names as xorriso sees them, and the ESP's files via xorriso + the FAT.
    let files = tool("xorriso", &["-indev", iso.to_str().unwrap(), "-find", "/", "-type", "f"]);
    for f in ["/isolinux/ldlinux.c32", "/boot/grub/grub.cfg", "/boot/initrd.img", "/boot/vmlinuz"] {
        assert!(files.contains(&format!("'{f}'")), "{f} missing: {files}");
    }

    // The ESP image is a clean FAT with the signed chain where firmware looks.
    let esp = dir.path().join("efi.img");
    let iso_s = iso.to_str().unwrap();
    tool(
        "xorriso",
        &[
            "-osirrox",
            "on",
            "-indev",
            iso_s,
            "-extract",
            "/boot/grub/efi.img",
            esp.to_str().unwrap(),
        ],
    );
    let fat = tool("fsck.vfat", &["-n", "-l", esp.to_str().unwrap()]);
    for f in [
        "/EFI/BOOT/BOOTX64.EFI",
        "/EFI/BOOT/grubx64.efi",
        "/EFI/BOOT/mmx64.efi",
        "/boot/grub/grub.cfg",
    ] {
        assert!(fat.to_lowercase().contains(&f.to_lowercase()), "{f} not on the ESP: {fat}");
    }

    let out = common::lazare(&["inspect", "--json", iso_s]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let baked = v["baked_cmdline"].as_str().unwrap();
    assert_eq!(
        baked,
        "lazare.server=http://192.0.2.7:9000 ip=eth0:dhcp lazare.insecure console=tty0 console=ttyS0,115200 lazare.retries=4"
    );
    // Every boot config's install entry carries exactly the baked line.
    let entries = v["boot_entries"].as_array().unwrap();
    let installs: Vec<_> = entries.iter().filter(|e| e["entry"] == "install").collect();
    assert_eq!(installs.len(), 2, "{entries:?}");
    for e in installs {
        assert_eq!(e["cmdline"], baked, "{e}");
    }
    let init = v["initramfs"].as_array().unwrap();
    assert!(init.iter().any(|e| e["path"] == "/init" && e["size"].as_u64().unwrap() > 100_000));
    // Where the bytes go: each place's kinds add up to its listing, and
    // the agent and the modules are seen as such.
    let sizes = v["sizes"].as_array().unwrap();
    let sum = |place: &str| -> u64 {
        sizes.iter().filter(|k| k["place"] == place).map(|k| k["bytes"].as_u64().unwrap()).sum()
    };
    let listed = |key: &str| -> u64 {
        v[key].as_array().unwrap().iter().map(|f| f["size"].as_u64().unwrap()).sum()
    };
    assert_eq!(sum("cd"), listed("files"));
    assert_eq!(sum("initramfs"), listed("initramfs"));
    for kind in ["agent", "modules", "kernel", "initramfs", "boot-loaders"] {
        assert!(sizes.iter().any(|k| k["kind"] == kind && k["bytes"].as_u64() > Some(0)), "{kind}");
    }
    assert!(v["biggest"].as_array().unwrap().len() == 10, "{}", v["biggest"]);
    let lilo_conf = std::fs::read_to_string(lilo.join("lilo.conf")).unwrap();
    assert!(lilo_conf.contains(&format!("append=\"{baked}\"")), "{lilo_conf}");
    assert!(lilo.join("vmlinuz").is_file() && lilo.join("initrd.img").is_file());
}

#[test]
fn key_and_config_file_are_baked() {
    let dir = tempfile::tempdir().unwrap();
    let key = lazare_proto::SigningKey::from_bytes(&[7; 32]).public().to_string();
    std::fs::write(dir.path().join("server.pub"), format!("{key}\n")).unwrap();
    let cfg = dir.path().join("lazare-build.toml");
    std::fs::write(
        &cfg,
        "server = \"http://10.9.8.7:8470\"\nkey = \"server.pub\"\nip = [\"dhcp\"]\nserial = false\n",
    )
    .unwrap();
    // The flag wins over the file's server.
    let iso = build(
        dir.path(),
        "k.iso",
        &["--config", cfg.to_str().unwrap(), "--server", "http://10.1.1.1:8470"],
    );
    let out = common::lazare(&["inspect", "--json", iso.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["baked_key"], key.as_str());
    assert_eq!(v["baked_cmdline"], "lazare.server=http://10.1.1.1:8470 ip=dhcp console=tty0");
}

#[test]
fn two_builds_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--server", "http://10.0.0.1:8470", "--insecure"];
    let a = std::fs::read(build(dir.path(), "a.iso", &args)).unwrap();
    let b = std::fs::read(build(dir.path(), "b.iso", &args)).unwrap();
    assert_eq!(a.len(), b.len());
    assert!(a == b, "two builds with the same SOURCE_DATE_EPOCH differ");
}

/// Each bad input: non-zero exit, one line naming the culprit, no ISO and no temp file.
#[test]
fn bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.iso");
    let agent = common::agent_path();
    let not_elf = dir.path().join("agent.sh");
    std::fs::write(&not_elf, "#!/bin/sh\n").unwrap();
    let key = dir.path().join("bad.pub");
    std::fs::write(&key, "ed25519:not-base64!!\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--server".into(), "ftp://x".into()], "ftp://x"),
        // No key and no --insecure: a CD that cannot tell a rogue server.
        (vec!["--server".into(), "https://a".into()], "--key"),
        (
            vec![
                "--server".into(),
                "http://a".into(),
                "--ip".into(),
                "10.0.0.300::::::none".into(),
            ],
            "10.0.0.300",
        ),
        (
            vec![
                "--server".into(),
                "http://a".into(),
                "--kernel".into(),
                "/nonexistent/vmlinuz".into(),
            ],
            "/nonexistent/vmlinuz",
        ),
        (
            vec![
                "--server".into(),
                "http://a".into(),
                "--modules-dir".into(),
                "/nonexistent/mods".into(),
            ],
            "/nonexistent/mods",
        ),
        (
            vec![
                "--server".into(),
                "http://a".into(),
                "--agent".into(),
                "/nonexistent/agent".into(),
            ],
            "/nonexistent/agent",
        ),
        (
            vec!["--server".into(), "http://a".into(), "--key".into(), key.display().to_string()],
            "bad.pub",
        ),
        (
            vec!["--server".into(), "http://a".into(), "--label".into(), "lower case".into()],
            "lower case",
        ),
        (
            vec![
                "--server".into(),
                "http://a".into(),
                "--agent".into(),
                not_elf.display().to_string(),
            ],
            "agent.sh",
        ),
    ];
    for (args, culprit) in cases {
        let mut all = vec!["build".to_string()];
        if !args.iter().any(|a| a == "--agent") {
            all.extend(["--agent".into(), agent.display().to_string()]);
        }
        all.extend(["--output".into(), out.display().to_string()]);
        all.extend(args.iter().cloned());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let o = common::lazare(&refs);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(culprit), "{args:?}: error does not name {culprit}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
    }
    let unwritable = common::lazare(&[
        "build",
        "--server",
        "http://a",
        "--agent",
        agent.to_str().unwrap(),
        "--output",
        "/proc/x.iso",
    ]);
    assert!(!unwritable.status.success());
    assert!(String::from_utf8_lossy(&unwritable.stderr).contains("/proc"));
    let left: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    let mut left = left;
    left.sort();
    let expected: Vec<std::ffi::OsString> = vec!["agent.sh".into(), "bad.pub".into()];
    assert_eq!(left, expected, "something was left behind");
}
