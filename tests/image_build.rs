//! `lazare image build --profile test` (a real mmdebstrap build, cached in
//! ~/.cache/lazare/images: the first run takes ~10 minutes, later ones
//! seconds) and `lazare image add`, driven as a black box.

use lazare_proto::{ImageFormat, ImageManifest};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn lazare() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lazare"))
}

/// Builds (or takes from the cache) the test image into `out`.
fn build_test_image(out: &Path) -> (PathBuf, ImageManifest) {
    let st = lazare()
        .args(["image", "build", "--profile", "test", "--output"])
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "lazare image build failed: {st}");
    let manifests: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.zst.json"))
        .collect();
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let m: ImageManifest = serde_json::from_slice(&std::fs::read(&manifests[0]).unwrap()).unwrap();
    (out.join(&m.file), m)
}

fn sha256_file(p: &Path) -> (String, u64) {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    (h.finalize().iter().map(|b| format!("{b:02x}")).collect(), n)
}

struct Entry {
    size: u64,
    link: Option<String>,
    body: Option<String>,
}

/// Every path in the tarball (without the leading "./"), with the contents
/// of the small /etc files the checks read.
fn list(tarball: &Path) -> BTreeMap<String, Entry> {
    let dec = zstd::stream::Decoder::new(std::fs::File::open(tarball).unwrap()).unwrap();
    let mut a = tar::Archive::new(dec);
    let mut out = BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().trim_start_matches("./").to_string();
        let link = e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned());
        let size = e.size();
        let body = (path.starts_with("etc/") && size < 65536 && e.header().entry_type().is_file())
            .then(|| {
                let mut s = String::new();
                e.read_to_string(&mut s).ok().map(|_| s)
            })
            .flatten();
        out.insert(path, Entry { size, link, body });
    }
    out
}

#[test]
fn test_profile_is_bootable_and_generic() {
    let out = tempfile::tempdir().unwrap();
    let (tarball, m) = build_test_image(out.path());
    assert_eq!(m.name, "test");
    assert_eq!(m.suite, "bookworm");
    assert_eq!(m.format, ImageFormat::TarZst);
    assert!(m.file.starts_with("test-bookworm-") && m.file.ends_with(".tar.zst"), "{}", m.file);
    let (sha, size) = sha256_file(&tarball);
    assert_eq!(sha, m.sha256, "manifest sha256 must match the tarball");
    assert_eq!(size, m.size);

    let t = list(&tarball);
    let has_prefix = |p: &str| t.keys().any(|k| k.starts_with(p));
    assert!(has_prefix("boot/vmlinuz-"), "no kernel in /boot");
    assert!(has_prefix("boot/initrd.img-"), "no initramfs in /boot");
    assert!(has_prefix("usr/lib/grub/i386-pc/"), "no GRUB for BIOS");
    assert!(t.contains_key("usr/lib/grub/i386-pc/boot.img"));
    assert!(has_prefix("usr/lib/grub/x86_64-efi/"), "no GRUB for UEFI");
    for tool in [
        "usr/sbin/grub-install",
        "usr/sbin/grub-mkconfig",
        "usr/bin/grub-editenv",
        "usr/sbin/chroot",
        "usr/bin/curl",
        "usr/bin/sudo",
    ] {
        assert!(t.contains_key(tool), "{tool} missing");
    }
    // Nothing machine-specific.
    assert_eq!(t["etc/machine-id"].size, 0, "/etc/machine-id must be empty");
    assert!(!has_prefix("etc/ssh/ssh_host_"), "SSH host keys baked in");
    assert!(!t.contains_key("etc/hostname"), "hostname baked in");
    let fstab = t["etc/fstab"].body.as_deref().unwrap();
    assert!(fstab.lines().all(|l| l.trim().is_empty() || l.starts_with('#')), "{fstab}");
    // Serial console and what grub-reboot needs.
    let getty = &t["etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"];
    assert_eq!(getty.link.as_deref(), Some("/lib/systemd/system/serial-getty@.service"));
    let grub = t["etc/default/grub"].body.as_deref().unwrap();
    assert!(grub.contains("GRUB_DEFAULT=saved"), "{grub}");
    assert!(grub.contains("console=ttyS0,115200"), "{grub}");
    // Locale, keyboard, timezone defaults of the profile.
    assert_eq!(t["etc/default/locale"].body.as_deref(), Some("LANG=fr_FR.UTF-8\n"));
    assert!(t["etc/default/keyboard"].body.as_deref().unwrap().contains("XKBLAYOUT=\"fr\""));
    assert_eq!(t["etc/localtime"].link.as_deref(), Some("/usr/share/zoneinfo/Europe/Paris"));
    assert!(t.contains_key("usr/lib/locale/locale-archive"), "locales not generated");
    // The network comes up by itself (systemd-networkd in this profile).
    assert!(t.contains_key("etc/systemd/system/multi-user.target.wants/systemd-networkd.service"));
    assert!(m.installed_size > m.size, "installed {} <= compressed {}", m.installed_size, m.size);

    // The second build comes from the cache and is the same image.
    let again = tempfile::tempdir().unwrap();
    let (_, m2) = build_test_image(again.path());
    assert_eq!(m2, m);
}

#[test]
fn image_add_round_trip_and_refusal() {
    let out = tempfile::tempdir().unwrap();
    let (tarball, m) = build_test_image(out.path());
    let data = tempfile::tempdir().unwrap();
    // By manifest path.
    let st = lazare()
        .args(["image", "add", "--data"])
        .arg(data.path())
        .arg(out.path().join(format!("{}.json", m.file)))
        .status()
        .unwrap();
    assert!(st.success());
    let served = data.path().join("images").join(&m.file);
    assert_eq!(sha256_file(&served).0, m.sha256);
    let back: ImageManifest = serde_json::from_slice(
        &std::fs::read(data.path().join("images").join(format!("{}.json", m.file))).unwrap(),
    )
    .unwrap();
    // Added with the info hash of the torrent made on the copying pass.
    assert!(back.torrent.is_some());
    assert_eq!(back, ImageManifest { torrent: back.torrent.clone(), ..m.clone() });
    // No temp files left behind: the tarball, its manifest, its chunk index,
    // its install tools and its room torrent; nothing else.
    let mut names: Vec<String> = std::fs::read_dir(data.path().join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let tools = m.tools.as_ref().expect("the test image carries its install tools");
    let served_tools = data.path().join("images").join(format!("{}.tools", m.file));
    assert_eq!(sha256_file(&served_tools).0, tools.sha256);
    let mut want = vec![
        m.file.clone(),
        format!("{}.chunks", m.file),
        format!("{}.json", m.file),
        format!("{}.tools", m.file),
        format!("{}.torrent", m.file),
    ];
    want.sort();
    assert_eq!(names, want);

    // A tarball whose bytes do not match its manifest is refused, and
    // nothing is written.
    let bad_dir = tempfile::tempdir().unwrap();
    let bad = bad_dir.path().join("evil-bookworm-0.tar.zst");
    std::fs::write(&bad, b"not the image").unwrap();
    let mut bm = m.clone();
    bm.file = "evil-bookworm-0.tar.zst".into();
    bm.size = 13;
    std::fs::write(
        bad_dir.path().join("evil-bookworm-0.tar.zst.json"),
        serde_json::to_vec(&bm).unwrap(),
    )
    .unwrap();
    let o = lazare().args(["image", "add", "--data"]).arg(data.path()).arg(&bad).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("sha256"), "{err}");
    assert!(!data.path().join("images/evil-bookworm-0.tar.zst").exists());
    assert!(!data.path().join("images/evil-bookworm-0.tar.zst.json").exists());
    assert!(!data.path().join("images/evil-bookworm-0.tar.zst.chunks").exists());
    assert!(!data.path().join("images/evil-bookworm-0.tar.zst.tools").exists());
    assert!(!data.path().join("images/evil-bookworm-0.tar.zst.torrent").exists());
    assert_eq!(std::fs::read_dir(data.path().join("images")).unwrap().count(), want.len());
    drop(tarball);
}
