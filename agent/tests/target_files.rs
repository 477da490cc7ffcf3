//! The target configuration steps on a temp dir shaped like a Debian root.

use lazare_agent::target::{self, MountEntry, Mounts, Reinstall, TargetError};
use lazare_proto::User;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn fake_root() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    for dir in ["etc/default", "etc/skel/.config", "usr/share/zoneinfo/Europe", "home", "usr/bin"] {
        fs::create_dir_all(r.join(dir)).unwrap();
    }
    fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/usr/sbin/nologin\nold:x:1000:1000::/home/old:/bin/sh\n").unwrap();
    fs::write(r.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    fs::write(
        r.join("etc/group"),
        "root:x:0:\nsudo:x:27:\naudio:x:29:pulse\nvideo:x:44:\nold:x:1000:\n",
    )
    .unwrap();
    fs::write(r.join("etc/gshadow"), "root:*::\nsudo:*::\naudio:*::pulse\n").unwrap();
    fs::write(r.join("etc/skel/.bashrc"), "# skel\n").unwrap();
    fs::write(r.join("etc/skel/.config/x"), "x").unwrap();
    fs::write(r.join("usr/share/zoneinfo/Europe/Paris"), "TZif").unwrap();
    fs::write(r.join("etc/locale.gen"), "# en_US.UTF-8 UTF-8\n# fr_FR.UTF-8 UTF-8\n").unwrap();
    d
}

fn read(r: &Path, p: &str) -> String {
    fs::read_to_string(r.join(p)).unwrap()
}

fn entry(uuid: &str, fstype: &str, mp: &str) -> MountEntry {
    MountEntry {
        uuid: uuid.into(),
        fstype: fstype.into(),
        mountpoint: mp.into(),
        options: String::new(),
    }
}

#[test]
fn fstab_by_uuid_in_mount_order() {
    let d = fake_root();
    let m = Mounts {
        entries: vec![
            entry("AAAA-BBBB", "vfat", "/boot/efi"),
            entry("sw-1", "swap", "none"),
            entry("home-1", "ext4", "/home"),
            entry("root-1", "ext4", "/"),
        ],
    };
    target::write_fstab(d.path(), &m).unwrap();
    let body: Vec<String> = read(d.path(), "etc/fstab")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(String::from)
        .collect();
    assert_eq!(
        body,
        [
            "UUID=root-1 / ext4 errors=remount-ro 0 1",
            "UUID=home-1 /home ext4 defaults 0 2",
            "UUID=AAAA-BBBB /boot/efi vfat umask=0077 0 2",
            "UUID=sw-1 none swap sw 0 0",
        ]
    );
    let no_root = Mounts { entries: vec![entry("h", "ext4", "/home")] };
    assert!(matches!(target::write_fstab(d.path(), &no_root), Err(TargetError::Invalid(_))));
}

#[test]
fn hostname_and_hosts() {
    let d = fake_root();
    target::write_hostname(d.path(), "pc-042").unwrap();
    assert_eq!(read(d.path(), "etc/hostname"), "pc-042\n");
    assert!(read(d.path(), "etc/hosts").contains("127.0.1.1\tpc-042\n"));
    assert!(target::write_hostname(d.path(), "bad_name").is_err());
}

#[test]
fn locale_keymap_timezone() {
    let d = fake_root();
    let r = d.path();
    target::write_locale(r, "fr_FR.UTF-8").unwrap();
    assert_eq!(read(r, "etc/default/locale"), "LANG=fr_FR.UTF-8\n");
    // Uncommented in place, not duplicated; the other line stays commented.
    assert_eq!(read(r, "etc/locale.gen"), "# en_US.UTF-8 UTF-8\nfr_FR.UTF-8 UTF-8\n");
    target::write_keymap(r, "ch-fr").unwrap();
    let kb = read(r, "etc/default/keyboard");
    assert!(kb.contains("XKBLAYOUT=\"ch\"") && kb.contains("XKBVARIANT=\"fr\""), "{kb}");
    target::write_timezone(r, "Europe/Paris").unwrap();
    assert_eq!(read(r, "etc/timezone"), "Europe/Paris\n");
    assert_eq!(
        fs::read_link(r.join("etc/localtime")).unwrap(),
        Path::new("/usr/share/zoneinfo/Europe/Paris")
    );
    assert!(target::write_timezone(r, "Mars/Olympus").is_err());
    assert!(target::write_timezone(r, "../../etc/passwd").is_err());
    assert!(target::write_locale(r, "fr_FR.UTF-8\nLC_ALL=x").is_err());
}

#[test]
fn machine_ids_fresh_each_time() {
    let d = fake_root();
    let r = d.path();
    target::write_machine_ids(r, "m-1234").unwrap();
    let a = read(r, "etc/machine-id");
    assert_eq!(a.len(), 33);
    assert!(a.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(read(r, "etc/lazare/machine-id"), "m-1234\n");
    target::write_machine_ids(r, "m-1234").unwrap();
    assert_ne!(read(r, "etc/machine-id"), a);
}

#[test]
fn users_are_appended_with_groups_and_home() {
    let d = fake_root();
    let r = d.path();
    let users = vec![
        User {
            name: "marie".into(),
            full_name: "Marie C".into(),
            password_hash: Some("$6$salt$hash".into()),
            admin: true,
            autologin: false,
        },
        User {
            name: "invite".into(),
            full_name: String::new(),
            password_hash: None,
            admin: false,
            autologin: false,
        },
    ];
    target::add_users(r, &users).unwrap();
    target::add_users(r, &users).unwrap(); // again: nothing doubled
    let passwd = read(r, "etc/passwd");
    assert!(passwd.contains("marie:x:1001:1001:Marie C:/home/marie:/bin/bash\n"), "{passwd}");
    assert!(passwd.contains("invite:x:1002:1002::/home/invite:/bin/bash\n"), "{passwd}");
    assert_eq!(passwd.lines().filter(|l| l.starts_with("marie:")).count(), 1);
    let shadow = read(r, "etc/shadow");
    assert!(shadow.contains("marie:$6$salt$hash:"), "{shadow}");
    assert!(shadow.contains("invite:!:"), "{shadow}");
    assert_eq!(fs::metadata(r.join("etc/shadow")).unwrap().mode() & 0o777, 0o640);
    let group = read(r, "etc/group");
    assert!(group.contains("sudo:x:27:marie\n"), "{group}");
    assert!(group.contains("audio:x:29:pulse,marie,invite\n"), "{group}");
    assert!(group.contains("marie:x:1001:\n"));
    assert!(read(r, "etc/gshadow").contains("sudo:*::marie\n"));
    let home = r.join("home/marie");
    assert_eq!(read(&home, ".bashrc"), "# skel\n");
    assert_eq!(fs::metadata(home.join(".config/x")).unwrap().uid(), 1001);
    assert_eq!(fs::metadata(&home).unwrap().mode() & 0o777, 0o750);
    let bad = User {
        name: "x:y".into(),
        full_name: String::new(),
        password_hash: None,
        admin: false,
        autologin: false,
    };
    assert!(target::add_users(r, &[bad]).is_err());
}

#[test]
fn admin_without_sudo_group_is_refused() {
    let d = fake_root();
    let r = d.path();
    fs::write(r.join("etc/group"), "root:x:0:\n").unwrap();
    let u = User {
        name: "a".into(),
        full_name: String::new(),
        password_hash: None,
        admin: true,
        autologin: false,
    };
    assert!(matches!(target::add_users(r, &[u]), Err(TargetError::MissingInImage { .. })));
}

#[test]
fn grub_defaults_keep_other_keys() {
    let d = fake_root();
    let r = d.path();
    fs::write(
        r.join("etc/default/grub"),
        "GRUB_DEFAULT=0\nGRUB_TIMEOUT=2\nGRUB_CMDLINE_LINUX=\"\"\n",
    )
    .unwrap();
    target::write_grub_defaults(r).unwrap();
    let g = read(r, "etc/default/grub");
    assert!(g.contains("GRUB_DEFAULT=saved\n"), "{g}");
    assert!(g.contains("GRUB_TIMEOUT=2\n"), "{g}");
    assert!(g.contains("GRUB_CMDLINE_LINUX=\"console=tty0 console=ttyS0,115200\"\n"), "{g}");
    assert!(g.contains("GRUB_TERMINAL=\"console serial\"\n"), "{g}");
    assert_eq!(g.matches("GRUB_DEFAULT").count(), 1);
}

#[test]
fn reinstall_entry_and_next_service_files() {
    let d = fake_root();
    let r = d.path();
    let cd = tempfile::tempdir().unwrap();
    fs::write(cd.path().join("vmlinuz"), "KERNEL").unwrap();
    fs::write(cd.path().join("initrd.gz"), "INITRD").unwrap();
    let re = Reinstall {
        kernel: cd.path().join("vmlinuz"),
        initrd: cd.path().join("initrd.gz"),
        cmdline: "lazare.server=http://10.0.2.100:8470 console=ttyS0".into(),
        server: "http://10.0.2.100:8470/".parse().unwrap(),
        pin: None,
        secret: None,
    };
    target::install_reinstall_entry(r, &re).unwrap();
    assert_eq!(read(r, "boot/lazare/vmlinuz"), "KERNEL");
    assert_eq!(read(r, "boot/lazare/initrd.img"), "INITRD");
    let s = read(r, "etc/grub.d/42_lazare_reinstall");
    assert!(s.contains("--id lazare-reinstall {"), "{s}");
    assert!(s.contains("kernel=/boot/lazare/vmlinuz\n") && !s.contains('@'), "{s}");
    assert!(s.contains("linux $kpath lazare.server=http://10.0.2.100:8470 console=ttyS0\n"), "{s}");
    assert_eq!(
        fs::metadata(r.join("etc/grub.d/42_lazare_reinstall")).unwrap().mode() & 0o111,
        0o111
    );
    let evil = Reinstall { cmdline: "x'; reboot".into(), ..re.clone() };
    assert!(target::install_reinstall_entry(r, &evil).is_err());
    assert!(!r.join("boot/lazare/secret.cpio").exists(), "no secret, no secret initramfs");

    // With the machine secret: a second initramfs, root only, that puts it
    // where the CD's agent looks (read back with the CD builder's reader).
    let secret = "7a".repeat(32);
    let with = Reinstall { secret: Some(secret.clone()), ..re.clone() };
    target::install_reinstall_entry(r, &with).unwrap();
    let cpio = r.join("boot/lazare/secret.cpio");
    assert_eq!(fs::metadata(&cpio).unwrap().mode() & 0o777, 0o600);
    let entries = lazare::initramfs::read_initramfs(&fs::read(&cpio).unwrap()).unwrap();
    let file = entries.iter().find(|e| e.path == "/etc/lazare/machine-secret").expect("the secret");
    assert_eq!(file.data, format!("{secret}\n").as_bytes());
    assert_eq!(file.mode & 0o777, 0o600);
    assert!(s.contains("secret=/boot/lazare/secret.cpio"), "{s}");

    // No wget or curl in the image: said plainly.
    assert!(matches!(
        target::install_next_service(r, &re.server, "m-1", 900),
        Err(TargetError::MissingInImage { .. })
    ));
    fs::write(r.join("usr/bin/wget"), "").unwrap();
    target::install_next_service(r, &re.server, "m-1", 900).unwrap();
    assert_eq!(read(r, "etc/lazare/server"), "http://10.0.2.100:8470\n");
    assert!(read(r, "etc/systemd/system/lazare-next.service")
        .contains("ExecStart=/usr/local/sbin/lazare-next"));
    let link =
        fs::read_link(r.join("etc/systemd/system/multi-user.target.wants/lazare-next.service"))
            .unwrap();
    assert_eq!(link, Path::new("/etc/systemd/system/lazare-next.service"));
    // The timer asks again every orders_every_secs (the rules' 900 by
    // default), with 2/15 of it as random delay and as accuracy.
    let timer = read(r, "etc/systemd/system/lazare-next.timer");
    let lines = ["OnBootSec=900s\n", "OnUnitActiveSec=900s\n", "RandomizedDelaySec=120s\n"];
    for line in lines.into_iter().chain(["AccuracySec=120s\n"]) {
        assert!(timer.contains(line), "{timer}");
    }
    assert!(!timer.contains('@'), "{timer}");
    let link = fs::read_link(r.join("etc/systemd/system/timers.target.wants/lazare-next.timer"));
    assert_eq!(link.unwrap(), Path::new("/etc/systemd/system/lazare-next.timer"));
    // An https server is reached through curl's pinned channel only: wget
    // (which cannot pin a key) is not enough.
    let https = "https://10.0.2.100:8470".parse().unwrap();
    assert!(matches!(
        target::install_next_service(r, &https, "m-1", 60),
        Err(TargetError::MissingInImage { what, .. }) if what.contains("curl")
    ));
    fs::write(r.join("usr/bin/curl"), "").unwrap();
    target::install_next_service(r, &https, "m-1", 60).unwrap();
    let timer = read(r, "etc/systemd/system/lazare-next.timer");
    assert!(timer.contains("OnUnitActiveSec=60s\n"), "{timer}");
    assert!(timer.contains("RandomizedDelaySec=8s\n") && timer.contains("AccuracySec=8s\n"));
    let pin = "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    target::write_server_pin(r, pin).unwrap();
    assert_eq!(read(r, "etc/lazare/server.pin"), format!("{pin}\n"));
    for bad in ["sha256//", "47DEQpj8", "sha256//a b", "sha256//x'; reboot"] {
        assert!(target::write_server_pin(r, bad).is_err(), "{bad}");
    }
}

#[test]
fn meminfo_is_read() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("meminfo");
    fs::write(&p, "MemTotal:         250000 kB\nMemFree: 1 kB\n").unwrap();
    assert_eq!(target::ram_bytes(&p), Some(250000 * 1024));
    assert!(target::ram_bytes(&p).unwrap() < target::SMALL_RAM);
}
