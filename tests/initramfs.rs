//! The initramfs writer on a fake module tree: dependency closure, soft
//! dependencies, aliases, trimmed indexes, missing names, compressed modules,
//! the archive layout read back by GNU cpio, and reproducibility.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lazare::initramfs::{
    read_initramfs, resolve_modules, write_initramfs, CpioEntry, ExtraFile, InitramfsError,
    InitramfsSpec,
};
use lazare_cd::modpack;

const RELEASE: &str = "6.1.0-test-amd64";

/// A module tree shaped like Debian's: ext4 needs jbd2 + mbcache and softdeps
/// on the `crypto-crc32c` alias; e1000 is plain; ne2k-pci (dash) needs 8390;
/// af_packet is built in; two pata_ drivers share libata.
fn fake_tree(root: &Path) -> PathBuf {
    let dir = root.join(RELEASE);
    let modules = [
        ("kernel/fs/ext4/ext4.ko", "kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko"),
        ("kernel/fs/jbd2/jbd2.ko", ""),
        ("kernel/fs/mbcache.ko", ""),
        ("kernel/crypto/crc32c_generic.ko", ""),
        ("kernel/fs/isofs/isofs.ko", ""),
        ("kernel/drivers/net/e1000.ko", ""),
        ("kernel/drivers/net/ne2k-pci.ko.xz", "kernel/drivers/net/8390.ko.zst"),
        ("kernel/drivers/net/8390.ko.zst", ""),
        ("kernel/drivers/ata/pata_via.ko", "kernel/drivers/ata/libata.ko"),
        ("kernel/drivers/ata/pata_amd.ko", "kernel/drivers/ata/libata.ko"),
        ("kernel/drivers/ata/libata.ko", ""),
        ("kernel/drivers/unused.ko", ""),
    ];
    let mut dep = String::new();
    for (path, deps) in modules {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let plain = module_bytes(path);
        if let Some(tool) = compressor(path) {
            compress_with(tool, &plain, &file);
        } else {
            std::fs::write(&file, plain).unwrap();
        }
        dep.push_str(&format!("{path}: {deps}\n").replace(": \n", ":\n"));
    }
    write(&dir, "modules.dep", &dep);
    write(
        &dir,
        "modules.alias",
        "# Aliases extracted from modules themselves.\n\
         alias crypto-crc32c crc32c_generic\nalias fs-iso9660 isofs\nalias iso9660 isofs\n\
         alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000\nalias pci:v*d*sv*sd*bc01sc*i* unused\n",
    );
    write(
        &dir,
        "modules.softdep",
        "# Soft dependencies extracted from modules themselves.\n\
         softdep ext4 pre: crypto-crc32c\nsoftdep unused pre: e1000\nsoftdep jbd2 ignored-word\n",
    );
    write(&dir, "modules.builtin", "kernel/net/packet/af_packet.ko\n");
    let order: String = modules.iter().map(|(p, _)| format!("{p}\n")).collect();
    write(&dir, "modules.order", &order);
    dir
}

/// Distinct contents per module, ending like a signed module does.
fn module_bytes(path: &str) -> Vec<u8> {
    let mut data = format!("\x7fELF fake module {path}\n").into_bytes();
    data.extend_from_slice(b"~Module signature appended~\n");
    data
}

fn compressor(path: &str) -> Option<&'static str> {
    if path.ends_with(".xz") {
        Some("xz")
    } else if path.ends_with(".zst") {
        Some("zstd")
    } else {
        None
    }
}

/// Compresses with the real xz/zstd tools, as a distribution's build does.
fn compress_with(tool: &str, data: &[u8], out: &Path) {
    let mut child =
        Command::new(tool).arg("-c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{tool} failed");
    std::fs::write(out, output.stdout).unwrap();
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn spec(root: &Path, modules: &[&str], mtime: u64) -> InitramfsSpec {
    let agent = root.join("agent");
    // The writer treats /init as opaque bytes; the real static agent is
    // exercised by the ISO and VM tests.
    std::fs::write(&agent, b"\x7fELF stand-in for the static agent").unwrap();
    let mut spec = InitramfsSpec::new(&agent, fake_tree(root), mtime);
    spec.modules = modules.iter().map(|s| s.to_string()).collect();
    spec.files = vec![ExtraFile {
        path: "/etc/lazare/cmdline".into(),
        data: b"lazare.server=http://10.0.2.100:8080\n".to_vec(),
        mode: 0o644,
    }];
    spec
}

fn build(spec: &InitramfsSpec) -> (Vec<u8>, lazare::initramfs::InitramfsReport) {
    let mut out = Vec::new();
    let report = write_initramfs(spec, &mut out, &mut |_| {}).unwrap();
    (out, report)
}

fn entry<'a>(entries: &'a [CpioEntry], path: &str) -> &'a CpioEntry {
    entries.iter().find(|e| e.path == path).unwrap_or_else(|| panic!("{path} not in the archive"))
}

#[test]
fn closure_softdeps_aliases_and_missing_names() {
    let root = tempfile::tempdir().unwrap();
    let dir = fake_tree(root.path());
    let wanted: Vec<String> =
        ["ext4", "iso9660", "ne2k_pci", "af-packet", "pata_*", "nosuchdrv", "wifi_*"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let selection = resolve_modules(&dir, &wanted).unwrap();
    let names: Vec<&str> = selection.modules.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "8390",
            "crc32c_generic",
            "ext4",
            "isofs",
            "jbd2",
            "libata",
            "mbcache",
            "ne2k_pci",
            "pata_amd",
            "pata_via"
        ]
    );
    assert_eq!(selection.builtin, ["af_packet"]);
    assert_eq!(selection.missing, ["nosuchdrv", "wifi_*"]);
}

#[test]
fn archive_holds_modules_indexes_and_skeleton() {
    let root = tempfile::tempdir().unwrap();
    let spec = spec(root.path(), &["ext4", "ne2k-pci", "e1000", "missing_one"], 1_700_000_000);
    let (image, report) = build(&spec);
    assert_eq!(report.missing_modules, ["missing_one"]);
    assert_eq!(report.compressed_bytes, image.len() as u64);
    let entries = read_initramfs(&image).unwrap();
    let base = format!("/lib/modules/{RELEASE}");

    // The modules are in the two packs (lazare_cd::modpack): the network
    // drivers and what they load with, then the rest. Compressed modules
    // are stored plain, byte-identical to the original.
    let pack = |i: usize| entry(&entries, &format!("{base}/{}", modpack::PACKS[i])).data.clone();
    let first = modpack::unpack(0, &pack(0), &[]).unwrap();
    let rest = modpack::unpack(1, &pack(1), &first).unwrap();
    let members = |i: usize, archive: &[u8]| {
        let all = modpack::members(i, archive, |n| n.ends_with(".ko")).unwrap();
        all.into_iter().collect::<std::collections::BTreeMap<String, Vec<u8>>>()
    };
    let (net, other) = (members(0, &first), members(1, &rest));
    assert_eq!(
        net.keys().collect::<Vec<_>>(),
        [
            "kernel/drivers/net/8390.ko",
            "kernel/drivers/net/e1000.ko",
            "kernel/drivers/net/ne2k-pci.ko"
        ]
    );
    assert_eq!(
        other.keys().collect::<Vec<_>>(),
        [
            "kernel/crypto/crc32c_generic.ko",
            "kernel/fs/ext4/ext4.ko",
            "kernel/fs/jbd2/jbd2.ko",
            "kernel/fs/mbcache.ko"
        ]
    );
    assert_eq!(
        net["kernel/drivers/net/ne2k-pci.ko"],
        module_bytes("kernel/drivers/net/ne2k-pci.ko.xz")
    );
    assert_eq!(net["kernel/drivers/net/8390.ko"], module_bytes("kernel/drivers/net/8390.ko.zst"));
    assert_eq!(other["kernel/fs/ext4/ext4.ko"], module_bytes("kernel/fs/ext4/ext4.ko"));
    assert!(!entries.iter().any(|e| e.path.contains("unused") || e.path.ends_with(".ko")));

    let text = |name: &str| {
        String::from_utf8(entry(&entries, &format!("{base}/{name}")).data.clone()).unwrap()
    };
    assert_eq!(
        text("modules.dep"),
        "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko\n\
         kernel/fs/jbd2/jbd2.ko:\nkernel/fs/mbcache.ko:\nkernel/crypto/crc32c_generic.ko:\n\
         kernel/drivers/net/e1000.ko:\n\
         kernel/drivers/net/ne2k-pci.ko: kernel/drivers/net/8390.ko\n\
         kernel/drivers/net/8390.ko:\n"
    );
    assert_eq!(
        text("modules.alias"),
        "alias crypto-crc32c crc32c_generic\n\
         alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000\n"
    );
    // `softdep jbd2 ignored-word` has no pre:/post: list: it means nothing
    // (as for kmod), so the trimmed copy leaves it out.
    assert_eq!(text("modules.softdep"), "softdep ext4 pre: crypto-crc32c\n");
    assert_eq!(text("modules.builtin"), "kernel/net/packet/af_packet.ko\n");
    assert!(text("modules.order").starts_with("kernel/fs/ext4/ext4.ko\n"));

    let init = entry(&entries, "/init");
    assert_eq!(init.mode, 0o100755);
    assert_eq!(entry(&entries, "/dev/console").rdev, (5, 1));
    assert_eq!(entry(&entries, "/dev/console").mode, 0o020600);
    assert_eq!(entry(&entries, "/dev/null").rdev, (1, 3));
    let cmdline = entry(&entries, "/etc/lazare/cmdline");
    assert_eq!(cmdline.data, b"lazare.server=http://10.0.2.100:8080\n");
    for dir in ["/proc", "/sys", "/dev", "/run", "/tmp", "/mnt", "/etc/lazare"] {
        assert_eq!(entry(&entries, dir).mode, 0o040755, "{dir}");
    }
    for e in &entries {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 1_700_000_000), "{}", e.path);
    }
    // The report lists exactly what the archive holds, in archive order.
    let listed: Vec<&str> = report.entries.iter().map(|e| e.path.as_str()).collect();
    let read: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(listed, read);
}

/// GNU cpio, an independent reader, lists the same archive: part by part,
/// as the kernel unpacks it (each zstd frame holds one cpio archive, and GNU
/// cpio stops at an archive's trailer).
#[test]
fn gnu_cpio_reads_the_archive() {
    let root = tempfile::tempdir().unwrap();
    let (image, report) = build(&spec(root.path(), &["ext4"], 1_700_000_000));
    let mut listing = String::new();
    let mut rest = &image[..];
    while !rest.is_empty() {
        let len = zstd::zstd_safe::find_frame_compressed_size(rest).expect("a zstd frame");
        let (frame, tail) = rest.split_at(len);
        rest = tail;
        listing += &gnu_cpio_list(frame.to_vec());
    }
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), report.entries.len(), "{listing}");
    let line = |name: &str| {
        *lines
            .iter()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name} not listed:\n{listing}"))
    };
    assert!(line("init").starts_with("-rwxr-xr-x   1 root     root"), "{}", line("init"));
    assert!(line("dev/console").starts_with("crw-------   1 root     root       5,   1"));
    assert!(line("etc/mtab -> /proc/self/mounts").starts_with("lrwxrwxrwx"));
    let pack = format!("lib/modules/{RELEASE}/{}", modpack::PACKS[1]);
    assert!(line(&pack).starts_with("-rw-r--r--"), "{}", line(&pack));
    // Sorted within each part, so every directory comes before what it
    // holds, in its own part or an earlier one.
    let names: Vec<&str> =
        lines.iter().map(|l| l.split(" -> ").next().unwrap().rsplit(' ').next().unwrap()).collect();
    for (i, name) in names.iter().enumerate() {
        if let Some((parent, _)) = name.rsplit_once('/') {
            assert!(names[..i].contains(&parent), "{name} before its directory: {names:?}");
        }
    }
}

#[test]
fn same_spec_same_bytes_other_mtime_other_bytes() {
    let root = tempfile::tempdir().unwrap();
    let first = build(&spec(root.path(), &["ext4", "e1000"], 1_700_000_000)).0;
    let again = build(&spec(root.path(), &["ext4", "e1000"], 1_700_000_000)).0;
    assert!(first == again, "two builds of the same spec differ");
    let later = build(&spec(root.path(), &["ext4", "e1000"], 1_700_000_001)).0;
    assert!(first != later, "the mtime did not reach the archive");
}

#[test]
fn bad_inputs_name_the_file() {
    let root = tempfile::tempdir().unwrap();
    let mut bad = spec(root.path(), &["ext4"], 0);
    bad.agent = root.path().join("no-agent");
    let err = write_initramfs(&bad, Vec::new(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, InitramfsError::Read { .. }) && err.to_string().contains("no-agent"));

    let bad = spec(root.path(), &["ext4"], 0);
    std::fs::write(bad.modules_dir.join("modules.dep"), "kernel/a.ko: x\nno colon here\n").unwrap();
    let err = write_initramfs(&bad, Vec::new(), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("modules.dep line 1"), "{err}");

    let mut bad = spec(root.path(), &["ext4"], 0);
    bad.files.push(ExtraFile { path: "/init".into(), data: vec![], mode: 0o644 });
    let err = write_initramfs(&bad, Vec::new(), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("\"/init\": given twice"), "{err}");

    let mut bad = spec(root.path(), &["ext4"], 0);
    bad.files.push(ExtraFile { path: "/etc/../x".into(), data: vec![], mode: 0o644 });
    assert!(matches!(
        write_initramfs(&bad, Vec::new(), &mut |_| {}),
        Err(InitramfsError::BadPath { .. })
    ));
}

#[test]
fn reading_back_raw_newc_and_round_tripping() {
    let root = tempfile::tempdir().unwrap();
    let (image, _) = build(&spec(root.path(), &["e1000"], 1_700_000_000));
    let raw = zstd::decode_all(&image[..]).unwrap();
    assert!(raw.starts_with(b"070701"));
    assert_eq!(read_initramfs(&raw).unwrap(), read_initramfs(&image).unwrap());
}

/// A raw (uncompressed) archive of the fake tree, built once.
fn sample_archive() -> &'static [u8] {
    static SAMPLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SAMPLE.get_or_init(|| {
        let root = tempfile::tempdir().unwrap();
        let (image, _) = build(&spec(root.path(), &["e1000", "isofs"], 1_700_000_000));
        zstd::decode_all(&image[..]).unwrap()
    })
}

proptest::proptest! {
    /// The reader sees untrusted images (`lazare inspect` on any file):
    /// damaged ones are errors, never panics.
    #[test]
    fn damaged_archives_are_errors_not_panics(
        flips in proptest::collection::vec(
            (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
            1..6,
        ),
        cut in proptest::prelude::any::<proptest::sample::Index>(),
        gzip in proptest::prelude::any::<bool>(),
    ) {
        let mut data = sample_archive().to_vec();
        for (at, byte) in flips {
            let at = at.index(data.len());
            data[at] = byte;
        }
        data.truncate(cut.index(data.len() + 1));
        if gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&data).unwrap();
            data = gz.finish().unwrap();
        }
        let _ = read_initramfs(&data);
    }
}

/// `zstd -dc | cpio -itv` of one frame.
fn gnu_cpio_list(frame: Vec<u8>) -> String {
    let mut unzstd = Command::new("zstd")
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = unzstd.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&frame).unwrap());
    let cpio = Command::new("cpio")
        .args(["-itv", "--quiet"])
        .stdin(unzstd.stdout.take().unwrap())
        .output()
        .unwrap();
    writer.join().unwrap();
    assert!(unzstd.wait().unwrap().success(), "zstd -d rejected the image");
    assert!(cpio.status.success(), "{}", String::from_utf8_lossy(&cpio.stderr));
    String::from_utf8(cpio.stdout).unwrap()
}
