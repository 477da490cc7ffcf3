//! The module index parser on lines captured from Debian 12's
//! /lib/modules/6.1.0-57-amd64 (modules.dep, modules.alias, modules.softdep,
//! modules.builtin.modinfo), checked against what kmod 30's
//! `modprobe -S 6.1.0-57-amd64 --show-depends` loads.

use lazare_cd::kmod::{
    name_of, normalize, parse_alias, parse_builtin, parse_builtin_aliases, parse_dep,
    parse_softdep, plain_path, IndexFiles, ModuleIndex, SoftDep,
};

const DEP: &str = "\
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/fs/mbcache.ko:
kernel/crypto/crc32c_generic.ko:
kernel/lib/crc16.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/net/phy/realtek.ko: kernel/drivers/net/phy/libphy.ko
kernel/drivers/net/phy/mdio_devres.ko: kernel/drivers/net/phy/libphy.ko
kernel/drivers/net/phy/libphy.ko:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
kernel/drivers/net/ethernet/realtek/r8169.ko: kernel/drivers/net/phy/mdio_devres.ko kernel/drivers/net/phy/libphy.ko
kernel/drivers/usb/host/ehci-hcd.ko: kernel/drivers/usb/core/usbcore.ko kernel/drivers/usb/common/usb-common.ko
kernel/drivers/usb/host/ehci-pci.ko: kernel/drivers/usb/host/ehci-hcd.ko kernel/drivers/usb/core/usbcore.ko kernel/drivers/usb/common/usb-common.ko
kernel/drivers/usb/host/ohci-hcd.ko: kernel/drivers/usb/core/usbcore.ko kernel/drivers/usb/common/usb-common.ko
kernel/drivers/usb/host/ohci-pci.ko: kernel/drivers/usb/host/ohci-hcd.ko kernel/drivers/usb/core/usbcore.ko kernel/drivers/usb/common/usb-common.ko
kernel/drivers/usb/common/usb-common.ko:
kernel/drivers/usb/core/usbcore.ko: kernel/drivers/usb/common/usb-common.ko
kernel/drivers/ata/libata.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/ata/ata_piix.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
";

const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias fs-ext4 ext4
alias crypto-crc32c crc32c_generic
alias pci:v00008086d0000107Csv*sd*bc*sc*i* e1000
alias mdio:0000000000011100110010?????????? realtek
alias pci:v*d*sv*sd*bc0Csc03i20* ehci_pci
alias pci:v0000104Ad0000CC01sv*sd*bc*sc*i* ohci_pci
alias pci:v00008086d00008C81sv*sd*bc*sc*i* ata_piix
alias pci:v000010ECd00008125sv*sd*bc*sc*i* r8169
";

const SOFTDEP: &str = "\
# Soft dependencies extracted from modules themselves.
softdep ext4 pre: crypto-crc32c
softdep cifs gcm
softdep ksmbd pre: crc32
softdep ksmbd pre: gcm
softdep r8169 pre: realtek
softdep ohci_pci pre: ehci_pci
softdep pcengines_apuv2 pre: platform:gpio_amd_fch platform:leds-gpio platform:gpio_keys_polled
softdep vfio post: vfio_iommu_type1 vfio_iommu_spapr_tce
";

const BUILTIN: &str = "kernel/drivers/block/loop.ko\nkernel/crypto/sha256_generic.ko\n";

fn index() -> ModuleIndex {
    let modinfo = b"loop.alias=devname:loop-control\0sha256_generic.alias=crypto-sha256\0sha256_generic.license=GPL\0";
    let files = IndexFiles {
        dep: DEP,
        alias: ALIAS,
        softdep: SOFTDEP,
        builtin: BUILTIN,
        builtin_modinfo: modinfo,
    };
    ModuleIndex::parse(&files).unwrap()
}

fn round_trip<T: std::fmt::Display>(text: &str, parsed: &[T]) {
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let back: Vec<String> = parsed.iter().map(ToString::to_string).collect();
    assert_eq!(back, lines);
}

#[test]
fn real_dep_and_alias_lines_format_back_to_themselves() {
    round_trip(DEP, &parse_dep(DEP).unwrap());
    round_trip(ALIAS, &parse_alias(ALIAS).unwrap());
    let ehci = &parse_dep(DEP).unwrap()[14];
    assert_eq!(ehci.name(), "ehci_pci");
    assert_eq!(ehci.deps.len(), 3);
}

#[test]
fn softdep_words_before_pre_or_post_are_ignored_as_kmod_does() {
    let lines = parse_softdep(SOFTDEP).unwrap();
    let cifs = lines.iter().find(|s| s.module == "cifs").unwrap();
    assert_eq!(cifs, &SoftDep { module: "cifs".into(), pre: vec![], post: vec![] });
    let apu = lines.iter().find(|s| s.module == "pcengines_apuv2").unwrap();
    assert_eq!(apu.pre.len(), 3);
    let vfio = lines.iter().find(|s| s.module == "vfio").unwrap();
    assert_eq!((vfio.pre.len(), vfio.post.len()), (0, 2));
    // Lines with lists format back to themselves; the parse round-trips.
    for s in &lines {
        assert_eq!(parse_softdep(&s.to_string()).unwrap(), vec![s.clone()]);
    }
    assert!(SOFTDEP.contains(&vfio.to_string()));
    let mixed = parse_softdep("softdep m x pre: a post: b pre: c").unwrap();
    assert_eq!(
        (mixed[0].pre.clone(), mixed[0].post.clone()),
        (vec!["a".into(), "c".into()], vec!["b".into()])
    );
}

#[test]
fn bad_lines_are_named() {
    let e = parse_dep("kernel/a.ko: kernel/b.ko\nkernel/c.o: kernel/a.ko\n").unwrap_err();
    assert_eq!((e.file, e.line), ("modules.dep", 2));
    assert!(e.to_string().contains("kernel/c.o"), "{e}");
    assert_eq!(parse_dep("no colon here\n").unwrap_err().line, 1);
    assert_eq!(parse_alias("alias onlyone\n").unwrap_err().line, 1);
    assert_eq!(parse_softdep("options ext4 x=1\n").unwrap_err().line, 1);
    assert_eq!(parse_builtin("kernel/a.ko\nREADME\n").unwrap_err().line, 2);
}

#[test]
fn names_paths_and_normalisation() {
    assert_eq!(name_of("kernel/drivers/net/ne2k-pci.ko").as_deref(), Some("ne2k_pci"));
    assert_eq!(name_of("kernel/a/b.ko.zst").as_deref(), Some("b"));
    assert_eq!(name_of("kernel/a/b.o"), None);
    assert_eq!(name_of("kernel/a/.ko"), None);
    assert_eq!(plain_path("kernel/a/b.ko.xz"), "kernel/a/b.ko");
    assert_eq!(plain_path("kernel/a/b.ko"), "kernel/a/b.ko");
    assert_eq!(plain_path("kernel/a/b.gz"), "kernel/a/b.gz");
    // Bracket expressions of globs keep their `-` (a range), as in kmod.
    assert_eq!(normalize("platform:leds-gpio"), "platform:leds_gpio");
    assert_eq!(normalize("i8[0-9a-f]*-x"), "i8[0-9a-f]*_x");
    assert_eq!(parse_builtin(BUILTIN).unwrap(), ["loop", "sha256_generic"]);
    let aliases = parse_builtin_aliases(b"a.alias=x-y\0a.license=GPL\0b.alias=z\0");
    assert_eq!(
        aliases.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["alias x-y a", "alias z b"]
    );
}

/// The file names in load order, as `modprobe --show-depends` lists them.
fn closure(index: &ModuleIndex, name: &str) -> Vec<String> {
    index.closure(name).iter().map(|p| p.rsplit('/').next().unwrap().to_string()).collect()
}

#[test]
fn closure_loads_what_modprobe_loads() {
    let index = index();
    // kmod 30: usb-common usbcore ehci-hcd [ohci-hcd] ehci-pci ohci-pci.
    assert_eq!(
        closure(&index, "ohci-pci"),
        ["usb-common.ko", "usbcore.ko", "ehci-hcd.ko", "ehci-pci.ko", "ohci-hcd.ko", "ohci-pci.ko"]
    );
    // kmod 30: libphy mdio_devres realtek r8169 (the PHY driver is a pre softdep).
    assert_eq!(closure(&index, "r8169"), ["libphy.ko", "realtek.ko", "mdio_devres.ko", "r8169.ko"]);
    // crypto-crc32c names two alternatives; both come before ext4.
    assert_eq!(
        closure(&index, "ext4"),
        ["crc32c-intel.ko", "crc32c_generic.ko", "jbd2.ko", "mbcache.ko", "crc16.ko", "ext4.ko"]
    );
    assert!(closure(&index, "loop").is_empty(), "built in: nothing to load");
    assert!(closure(&index, "nosuch").is_empty());
}

#[test]
fn names_and_modaliases_resolve() {
    let index = index();
    assert_eq!(index.resolve("fs-ext4"), ["ext4"]);
    assert_eq!(index.resolve("crypto-crc32c"), ["crc32c_intel", "crc32c_generic"]);
    assert_eq!(index.resolve("ata-piix"), ["ata_piix"]);
    assert_eq!(index.resolve("loop"), ["loop"]);
    assert!(index.is_builtin("loop"));
    // An alias the kernel serves itself (modules.builtin.modinfo).
    assert_eq!(index.resolve("crypto-sha256"), ["sha256_generic"]);
    assert!(index.resolve("nosuch").is_empty());
    assert_eq!(
        index.matching("pci:v00008086d00008C81sv00001AF4sd00001100bc01sc01i8a"),
        ["ata_piix"]
    );
    assert_eq!(
        index.matching("pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i20"),
        ["ehci_pci"]
    );
    assert!(index.matching("pci:v00001234d00001111sv00000000sd00000000bc03sc00i00").is_empty());
    assert_eq!(index.path("ehci-pci"), Some("kernel/drivers/usb/host/ehci-pci.ko"));
    assert_eq!(index.names().count(), 21);
}

/// The prefix-indexed `matching` against the plain scan of every glob
/// (what it replaced), on this machine's real module index: every glob's own
/// text with its wildcards filled in, and every modalias under /sys/devices.
#[test]
fn indexed_matching_finds_what_a_scan_of_every_glob_finds() {
    let dir = std::fs::read_dir("/lib/modules")
        .expect("/lib/modules (make deps installs linux-image-amd64)")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("modules.alias").is_file())
        .expect("a kernel with modules.alias under /lib/modules");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap_or_default();
    let text = |f: &str| String::from_utf8(read(f)).unwrap();
    let (dep, alias, softdep, builtin) = (
        text("modules.dep"),
        text("modules.alias"),
        text("modules.softdep"),
        text("modules.builtin"),
    );
    let modinfo = read("modules.builtin.modinfo");
    let files = IndexFiles {
        dep: &dep,
        alias: &alias,
        softdep: &softdep,
        builtin: &builtin,
        builtin_modinfo: &modinfo,
    };
    let index = ModuleIndex::parse(&files).unwrap();
    let mut globs: Vec<(String, String)> = Vec::new();
    for a in parse_alias(&alias).unwrap().into_iter().chain(parse_builtin_aliases(&modinfo)) {
        let entry = (normalize(&a.pattern), normalize(&a.module));
        if !globs.contains(&entry) {
            globs.push(entry);
        }
    }
    let scan = |text: &str| {
        let text = normalize(text);
        let mut out: Vec<String> = Vec::new();
        for (g, m) in &globs {
            if lazare_cd::kmod::fnmatch(g.as_bytes(), text.as_bytes()) && !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    };
    // A text each glob matches: `*` → "0A", `?` → "Z", a class → its first member.
    let mut texts: Vec<String> = globs
        .iter()
        .map(|(g, _)| {
            let mut t = String::new();
            let mut chars = g.chars();
            while let Some(c) = chars.next() {
                match c {
                    '*' => t.push_str("0A"),
                    '?' => t.push('Z'),
                    '[' => {
                        let class: String = chars.by_ref().take_while(|&c| c != ']').collect();
                        t.push(class.trim_start_matches(['!', '^']).chars().next().unwrap_or('x'));
                    }
                    c => t.push(c),
                }
            }
            t
        })
        .collect();
    for e in walkdir::WalkDir::new("/sys/devices").max_depth(12).into_iter().flatten() {
        if e.file_name() == "modalias" {
            if let Ok(m) = std::fs::read_to_string(e.path()) {
                texts.push(m.trim().to_string());
            }
        }
    }
    assert!(texts.len() > 1000, "{} texts", texts.len());
    let mut matched = 0;
    for t in &texts {
        let want = scan(t);
        matched += usize::from(!want.is_empty());
        assert_eq!(index.matching(t), want, "{t}");
    }
    assert!(matched > 1000, "only {matched} texts matched a glob");
}
