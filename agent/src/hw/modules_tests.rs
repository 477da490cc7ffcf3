use super::*;
use std::fs;

fn fake_tree() -> (tempfile::TempDir, ProbeOpts) {
    let dir = tempfile::tempdir().unwrap();
    let kver = "6.1.0-test".to_string();
    let m = dir.path().join("lib/modules").join(&kver);
    fs::create_dir_all(&m).unwrap();
    fs::write(
        m.join("modules.dep"),
        "kernel/drivers/net/ethernet/intel/e1000/e1000.ko:\n\
         kernel/drivers/ata/ata_piix.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko\n\
         kernel/drivers/ata/libata.ko: kernel/drivers/scsi/scsi_mod.ko\n\
         kernel/drivers/scsi/scsi_mod.ko:\n\
         kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko\n\
         kernel/fs/jbd2/jbd2.ko:\n\
         kernel/fs/mbcache.ko:\n\
         kernel/crypto/crc32c_generic.ko:\n\
         kernel/drivers/net/ethernet/realtek/8139too.ko:\n",
    )
    .unwrap();
    fs::write(
        m.join("modules.alias"),
        "# Aliases extracted from modules themselves.\n\
         alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000\n\
         alias pci:v00008086d00007010sv*sd*bc*sc*i* ata_piix\n\
         alias pci:v00008086d*sv*sd*bc01sc01i8[0-9a-f]* ata_piix\n\
         alias pci:v000010ECd00008139sv*sd*bc*sc*i* 8139too\n\
         alias fs-ext4 ext4\n\
         alias crypto-crc32c crc32c_generic\n",
    )
    .unwrap();
    fs::write(m.join("modules.softdep"), "softdep ext4 pre: crypto-crc32c\n").unwrap();
    fs::write(m.join("modules.builtin"), "kernel/drivers/block/loop.ko\n").unwrap();
    let root = dir.path().to_path_buf();
    (dir, ProbeOpts { root, kver })
}

#[test]
fn alias_matching_on_fake_tree() {
    let (_dir, opts) = fake_tree();
    let db = ModuleDb::load(&opts).unwrap();
    assert_eq!(db.matching("pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"), vec!["e1000"]);
    // Two patterns for the same module yield it once.
    assert_eq!(
        db.matching("pci:v00008086d00007010sv00000000sd00000000bc01sc01i80"),
        vec!["ata_piix"]
    );
    assert!(db.matching("pci:v00001234d00001111sv*").is_empty());
    assert_eq!(db.resolve("fs-ext4"), vec!["ext4"]);
    assert_eq!(db.resolve("8139too"), vec!["8139too"]);
    assert!(db.is_builtin("loop"));
}

#[test]
fn dep_closure_orders_dependencies_first_with_softdeps() {
    let (_dir, opts) = fake_tree();
    let db = ModuleDb::load(&opts).unwrap();
    let names: Vec<String> =
        db.closure("ata-piix").iter().map(|p| p.rsplit('/').next().unwrap().to_string()).collect();
    assert_eq!(names, vec!["scsi_mod.ko", "libata.ko", "ata_piix.ko"]);
    let ext4: Vec<String> =
        db.closure("ext4").iter().map(|p| p.rsplit('/').next().unwrap().to_string()).collect();
    assert_eq!(ext4.first().map(String::as_str), Some("crc32c_generic.ko"), "{ext4:?}");
    assert_eq!(ext4.last().map(String::as_str), Some("ext4.ko"));
    assert_eq!(ext4.len(), 4);
    assert!(db.closure("loop").is_empty(), "builtins load nothing");
}

#[test]
fn coldplug_plan_from_fake_sysfs() {
    let (dir, opts) = fake_tree();
    let dev = dir.path().join("sys/devices/pci0000:00/0000:00:03.0");
    fs::create_dir_all(&dev).unwrap();
    fs::write(dev.join("modalias"), "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00\n")
        .unwrap();
    let other = dir.path().join("sys/devices/pci0000:00/0000:00:04.0");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("modalias"), "pci:v00001234d00001111sv00000000sd00000000bc03sc00i00\n")
        .unwrap();
    let aliases = modaliases(&opts.root);
    assert_eq!(aliases.len(), 2);
    let db = ModuleDb::load(&opts).unwrap();
    let plan = plan(&db, &aliases);
    assert_eq!(plan.values().cloned().collect::<Vec<_>>(), vec![vec!["e1000".to_string()]]);
}

#[test]
fn wrong_kernel_is_said_plainly() {
    let (_dir, mut opts) = fake_tree();
    opts.kver = "6.12.0-other".into();
    let e = ModuleDb::load(&opts).unwrap_err().to_string();
    assert!(e.contains("6.12.0-other") && e.contains("6.1.0-test"), "{e}");
}

#[test]
fn unsupported_nic_is_named_by_pci_id() {
    let (dir, opts) = fake_tree();
    let bus = dir.path().join("sys/bus/pci/devices");
    for (slot, class, dev, bound) in [
        ("0000:00:03.0", "0x020000", "0x10d3", false),
        ("0000:00:04.0", "0x020000", "0x100e", true),
        ("0000:00:05.0", "0x010601", "0x2922", false),
    ] {
        let d = bus.join(slot);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("class"), format!("{class}\n")).unwrap();
        fs::write(d.join("vendor"), "0x8086\n").unwrap();
        fs::write(d.join("device"), format!("{dev}\n")).unwrap();
        if bound {
            fs::create_dir_all(d.join("driver")).unwrap();
        }
    }
    assert_eq!(unsupported_nics(&opts.root), vec!["8086:10d3"]);
}

/// The packs `lazare build`'s initramfs writer makes from this host's
/// modules, unpacked as the kernel does, read by the agent's [`ModuleDb`]:
/// the bytes it loads are the host's `.ko` files, signature and all.
#[test]
fn modules_come_out_of_the_packs_the_builder_wrote() {
    let mut releases: Vec<PathBuf> =
        fs::read_dir("/lib/modules").unwrap().map(|e| e.unwrap().path()).collect();
    releases.sort();
    let host = releases.into_iter().next().expect("no kernel under /lib/modules");
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("agent");
    fs::write(&agent, b"stand-in").unwrap();
    let spec = lazare::initramfs::InitramfsSpec::new(&agent, &host, 1_700_000_000);
    let mut image = Vec::new();
    lazare::initramfs::write_initramfs(&spec, &mut image, &mut |_| {}).unwrap();
    let root = tmp.path().join("root");
    for e in lazare::initramfs::read_initramfs(&image).unwrap() {
        let path = root.join(e.path.trim_start_matches('/'));
        if e.mode & 0o170000 == 0o100000 {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, e.data).unwrap();
        }
    }
    let kver = host.file_name().unwrap().to_string_lossy().into_owned();
    let db = ModuleDb::load(&ProbeOpts { root, kver }).unwrap();
    for hold in [false, true] {
        db.hold(hold);
        for module in ["e1000", "ext4", "ata_piix"] {
            let files = db.closure(module);
            assert!(files.last().is_some_and(|f| f.contains(module)), "{files:?}");
            let images = db.images(&files).unwrap();
            for (file, image) in files.iter().zip(images) {
                assert_eq!(image, fs::read(host.join(file)).unwrap(), "{file}");
            }
        }
    }
    db.hold(false);
    let err = db.images(&["kernel/none.ko".to_string()]).unwrap_err();
    assert!(matches!(err, ModuleError::NotInPacks(_)), "{err}");
}
