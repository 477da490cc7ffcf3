//! The initramfs writer on this host's real kernel modules: the default
//! module set with its dependencies, and the size and build time of the
//! default initramfs (printed; never asserted).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lazare::initramfs::{
    kernel_release_of, read_initramfs, write_initramfs, CpioEntry, InitramfsSpec, DEFAULT_MODULES,
};
use lazare_cd::modpack;

/// The kernel the tests use: the first release under /lib/modules.
fn modules_dir() -> PathBuf {
    let mut releases: Vec<PathBuf> =
        std::fs::read_dir("/lib/modules").unwrap().map(|e| e.unwrap().path()).collect();
    releases.sort();
    releases.into_iter().next().expect("no kernel under /lib/modules (make deps)")
}

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// modules.dep read independently of the library: name → dependency names.
fn real_deps(dir: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(dir.join("modules.dep")).unwrap();
    let name = |p: &str| normalize(p.rsplit('/').next().unwrap().split(".ko").next().unwrap());
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, deps)| (name(m), deps.split_whitespace().map(name).collect()))
        .collect()
}

fn default_spec(agent: &Path) -> InitramfsSpec {
    InitramfsSpec::new(agent, modules_dir(), 1_700_000_000)
}

fn stand_in_agent(dir: &Path) -> PathBuf {
    let agent = dir.join("lazare-agent");
    std::fs::write(&agent, vec![0x7f; 2 << 20]).unwrap();
    agent
}

#[test]
fn default_set_on_the_real_kernel_is_closed_under_modules_dep() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = default_spec(&stand_in_agent(tmp.path()));
    let mut out = Vec::new();
    let report = write_initramfs(&spec, &mut out, &mut |_| {}).unwrap();
    let carried: BTreeSet<&str> = report.modules.iter().map(String::as_str).collect();
    for needed in ["e1000", "e1000e", "r8169", "8139too", "ata_piix", "ahci", "sd_mod", "sr_mod"] {
        assert!(carried.contains(needed), "{needed} not carried");
    }
    for needed in ["ext4", "isofs", "vfat", "crc32c_generic", "virtio_net", "usb_storage"] {
        assert!(carried.contains(needed), "{needed} not carried");
    }
    // ext4's softdep `pre: crypto-crc32c` is an alias of crc32c_generic and
    // crc32c_intel: both come along.
    assert!(carried.contains("crc32c_intel"));
    let deps = real_deps(&spec.modules_dir);
    for module in &carried {
        for dep in &deps[*module] {
            assert!(carried.contains(dep.as_str()), "{module} needs {dep}, not carried");
        }
    }
    assert!(carried.iter().any(|m| m.starts_with("pata_")));
    // bnx2 names its firmware in .modinfo: carried if the host has it
    // (firmware-bnx2), else reported.
    let missing = report.missing_firmware.iter().map(|m| &m.file);
    let firmware: Vec<&String> = report.firmware.iter().chain(missing).collect();
    assert!(firmware.iter().any(|f| f.starts_with("bnx2/bnx2-mips")), "{firmware:?}");
    // Each missing file names the module that asked for it.
    let bnx2 = report.missing_firmware.iter().filter(|m| m.file.starts_with("bnx2/"));
    assert!(bnx2.clone().all(|m| m.module == "bnx2"), "{:?}", bnx2.collect::<Vec<_>>());
    println!("firmware carried {:?}, missing {}", report.firmware, report.missing_firmware.len());
    // af_packet is built into Debian's kernel: present, nothing to carry.
    assert!(report.builtin_modules.contains(&"af_packet".to_string()));

    // The trimmed modules.alias only names carried modules.
    let entries = read_initramfs(&out).unwrap();
    let release = spec.modules_dir.file_name().unwrap().to_str().unwrap().to_string();
    let alias = find(&entries, &format!("/lib/modules/{release}/modules.alias"));
    let alias = String::from_utf8(alias.data.clone()).unwrap();
    for line in alias.lines().filter(|l| l.starts_with("alias ")) {
        let module = line.split_whitespace().nth(2).unwrap();
        assert!(carried.contains(normalize(module).as_str()), "{line}");
    }
    assert!(alias.contains(" e1000\n"), "no e1000 alias");
    let full = std::fs::metadata(spec.modules_dir.join("modules.alias")).unwrap().len();
    println!(
        "modules: {} carried, {} builtin, missing {:?}; modules.alias {} of {full} bytes",
        report.modules.len(),
        report.builtin_modules.len(),
        report.missing_modules,
        alias.len()
    );
    // Modules are copied as they are (the appended signature stays), in
    // two packs: the network drivers with what they load with, then the
    // rest, which needs the first as its dictionary.
    let pack = |i: usize| {
        let file = find(&entries, &format!("/lib/modules/{release}/{}", modpack::PACKS[i]));
        file.data.clone()
    };
    let first = modpack::unpack(0, &pack(0), &[]).unwrap();
    let rest = modpack::unpack(1, &pack(1), &first).unwrap();
    let names = |archive: &[u8], i: usize| -> BTreeSet<String> {
        let members = modpack::members(i, archive, |n| n.ends_with(".ko")).unwrap();
        members.into_iter().map(|(n, _)| normalize(n.rsplit('/').next().unwrap())).collect()
    };
    let (net, other) = (names(&first, 0), names(&rest, 1));
    let net: BTreeSet<String> = net.into_iter().map(|n| n.trim_end_matches(".ko").into()).collect();
    let other: BTreeSet<String> =
        other.into_iter().map(|n| n.trim_end_matches(".ko").into()).collect();
    assert!(net.is_disjoint(&other));
    let both: BTreeSet<&str> = net.iter().chain(&other).map(String::as_str).collect();
    assert_eq!(both, carried, "every carried module in one pack");
    for m in ["e1000", "r8169", "virtio_net", "mii", "virtio_pci"] {
        assert!(net.contains(m), "{m} not in the network pack: {net:?}");
    }
    for m in ["ext4", "ata_piix", "libata", "usb_storage"] {
        assert!(other.contains(m), "{m} not in the second pack");
    }
    for (archive, i, path) in [
        (&first, 0, "kernel/drivers/net/ethernet/intel/e1000/e1000.ko"),
        (&rest, 1, "kernel/fs/ext4/ext4.ko"),
    ] {
        let got = modpack::members(i, archive, |n| n == path).unwrap();
        let host = std::fs::read(spec.modules_dir.join(path)).unwrap();
        assert_eq!(got, vec![(path.to_string(), host)]);
    }
    // No plain module file is left for the kernel to unpack.
    assert!(!entries.iter().any(|e| e.path.ends_with(".ko")));
    println!(
        "packs: network {} modules, {} B; rest {} modules, {} B",
        net.len(),
        pack(0).len(),
        other.len(),
        pack(1).len()
    );
}

fn find<'a>(entries: &'a [CpioEntry], path: &str) -> &'a CpioEntry {
    entries.iter().find(|e| e.path == path).unwrap_or_else(|| panic!("{path} missing"))
}

#[test]
fn release_of_the_installed_kernel() {
    let dir = modules_dir();
    let release = dir.file_name().unwrap().to_str().unwrap();
    let kernel = PathBuf::from(format!("/boot/vmlinuz-{release}"));
    assert_eq!(kernel_release_of(&kernel).unwrap(), release);
    // From the bzImage header, not the name.
    let renamed = tempfile::tempdir().unwrap();
    let copy = renamed.path().join("bzImage");
    std::fs::copy(&kernel, &copy).unwrap();
    assert_eq!(kernel_release_of(&copy).unwrap(), release);
}

/// Size and build time of the default initramfs (figures, not assertions).
#[test]
fn default_initramfs_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = default_spec(&stand_in_agent(tmp.path()));
    assert_eq!(spec.modules.len(), DEFAULT_MODULES.len());
    let start = Instant::now();
    let mut out = Vec::new();
    let report = write_initramfs(&spec, &mut out, &mut |_| {}).unwrap();
    let elapsed = start.elapsed();
    let start = Instant::now();
    let again = write_initramfs(&spec, Vec::new(), &mut |_| {}).unwrap();
    assert_eq!(again.compressed_bytes, out.len() as u64);
    println!(
        "default initramfs ({} with a 2 MiB stand-in agent): {} entries, {} modules, \
         {} bytes uncompressed, {} bytes zstd; built in {:.2?} (again {:.2?})",
        spec.modules_dir.display(),
        report.entries.len(),
        report.modules.len(),
        report.uncompressed_bytes,
        report.compressed_bytes,
        elapsed,
        start.elapsed()
    );
    let mut largest = report.entries.clone();
    largest.sort_by_key(|e| std::cmp::Reverse(e.size));
    for e in largest.iter().take(12) {
        println!("  {:>9} {}", e.size, e.path);
    }
}

/// `lazare inspect` can read Debian's own (zstd) initrd: the same paths as
/// initramfs-tools' lsinitramfs lists.
#[test]
fn reads_debians_initrd_like_lsinitramfs() {
    let release = modules_dir().file_name().unwrap().to_str().unwrap().to_string();
    let initrd = PathBuf::from(format!("/boot/initrd.img-{release}"));
    let entries = read_initramfs(&std::fs::read(&initrd).unwrap()).unwrap();
    let ours: BTreeSet<String> = entries.iter().map(|e| e.path.clone()).collect();
    let out = Command::new("lsinitramfs").arg(&initrd).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| *l != ".")
        .map(|l| format!("/{}", l.trim_start_matches("./")))
        .collect();
    assert!(theirs.len() > 100, "lsinitramfs listed {} paths", theirs.len());
    assert_eq!(ours, theirs);
    let init = entries.iter().find(|e| e.path == "/init").unwrap();
    assert!(init.data.starts_with(b"#!/bin/sh"));
}
