//! The install steps on real block devices: a disk image file whose planned
//! partitions are attached as loop devices (this kernel's loop driver does
//! not scan partitions here, so each partition gets its own offset loop),
//! real mke2fs, mount, streaming into ext4, a kept /home with a user's file,
//! and disarming. Needs root (losetup, mount), as the agent itself does.

mod support;

use std::io::Write;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use diskplan::testing::{self, one_disk};
use diskplan::{partition_name, Fs, Layout};
use lazare_agent::install::{self, InstallCtx, Made, Reporter, Retry, UreqFetch};
use lazare_proto::{
    ChunkIndex, Disk, DiskPolicy, Firmware, PartitionTable, Phase, Plan, CHUNK_SIZE, MIB,
};
use sha2::Digest;
use support::images::{serve, serve_with_index, tar_zst, Mode};

struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

fn attach(file: &Path, offset: u64, size: u64) -> Loop {
    let out = Command::new("losetup")
        .args(["-f", "--show", "-o", &offset.to_string(), "--sizelimit", &size.to_string()])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
    Loop(String::from_utf8(out.stdout).unwrap().trim().to_string())
}

/// A fake /dev: `img` is the disk image, `imgN` the loop of partition N.
struct Dev {
    dir: tempfile::TempDir,
    _loops: Vec<Loop>,
}

fn dev_for(file: &Path, layout: &Layout) -> Dev {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(file, dir.path().join("img")).unwrap();
    let mut loops = Vec::new();
    for p in &layout.disks[0].partitions {
        let l = attach(file, p.start, p.size);
        std::os::unix::fs::symlink(&l.0, dir.path().join(partition_name("img", p.number))).unwrap();
        loops.push(l);
    }
    Dev { dir, _loops: loops }
}

#[derive(Default)]
struct Events(Mutex<Vec<(Phase, Option<u8>, String)>>);

impl Reporter for Events {
    fn event(&self, phase: Phase, percent: Option<u8>, message: &str) {
        self.0.lock().unwrap().push((phase, percent, message.into()));
    }
    fn log(&self, _line: &str) {}
}

fn test_plan(body: &[u8]) -> Plan {
    let made = ChunkIndex::build(body, CHUNK_SIZE).unwrap();
    let (sha, chunks) = (made.sha256, made.index.hash());
    serde_json::from_value(serde_json::json!({
        "machine_id": "0".repeat(64), "hostname": "pc", "action": "install",
        "image": {"name": "test", "url": "/images/t.tar.zst", "sha256": sha, "size": body.len(),
                  "format": "tar.zst", "chunks": chunks},
        "disks": {"root_min": 256 * MIB}, "locale": "C.UTF-8", "keymap": "us", "timezone": "UTC"
    }))
    .unwrap()
}

/// This host's mke2fs, as a CD that carries one would use it.
fn host_mke2fs() -> install::tools::Mke2fs {
    install::tools::Mke2fs::Local(PathBuf::from("/usr/sbin/mke2fs"))
}

fn blkid(dev: &Path) -> String {
    let out = Command::new("blkid").args(["-p", "-o", "export"]).arg(dev).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The image the installs stream: one file, /etc/hostname.
fn tiny_image() -> Vec<u8> {
    tar_zst(&[("etc/hostname", 0o644, b"image\n")])
}

/// The mount table, read with the agent's own parser.
fn mounts() -> Vec<lazare_agent::procfs::Mount> {
    lazare_agent::procfs::mounts(&std::fs::read_to_string("/proc/self/mounts").unwrap())
}

/// The options of the (last) mount at `p`.
fn mount_options(p: &Path) -> Vec<String> {
    let m = mounts().into_iter().rfind(|m| m.target == p).unwrap();
    m.options.split(',').map(String::from).collect()
}

fn has_nosuid_nodev(opts: &[String]) -> bool {
    opts.iter().any(|o| o == "nosuid") && opts.iter().any(|o| o == "nodev")
}

fn mounted_below(p: &Path) -> usize {
    mounts().iter().filter(|m| m.target.starts_with(p)).count()
}

/// What the planner makes for this machine with a 256 MiB root minimum.
fn layout(firmware: Firmware, disk: Disk) -> Layout {
    let policy = DiskPolicy { root_min: 256 * MIB, ..DiskPolicy::default() };
    diskplan::plan(&one_disk(firmware, disk), &policy).unwrap()
}

/// A blank 1 GiB disk image in `work` and the layout planned for it.
fn fresh_disk(work: &Path, firmware: Firmware) -> (PathBuf, Layout) {
    let file = support::disk_image(work, "disk.img", 1024 * MIB);
    (file, layout(firmware, testing::disk("img", 1024 * MIB)))
}

/// One install onto a disk image: its fake /dev, the target directory, and
/// what [`InstallCtx`] borrows. Dropping it unmounts the target (passing
/// test or not) before the loops go.
struct Install {
    plan: Plan,
    layout: Layout,
    url: String,
    target: PathBuf,
    events: Events,
    fetch: UreqFetch,
    dev: Dev,
}

impl Install {
    fn new(work: &Path, file: &Path, layout: Layout, plan: Plan, url: String) -> Install {
        let dev = dev_for(file, &layout);
        let target = work.join("target");
        let (events, fetch) = (Events::default(), UreqFetch::default());
        Install { plan, layout, url, target, events, fetch, dev }
    }

    fn ctx(&self) -> InstallCtx<'_> {
        InstallCtx {
            plan: &self.plan,
            layout: &self.layout,
            image_url: &self.url,
            dev: self.dev.dir.path(),
            target: &self.target,
            fetch: &self.fetch,
            reporter: &self.events,
            retry: Retry::default(),
            reinstall: None,
            room: None,
        }
    }

    fn phases(&self) -> Vec<Phase> {
        self.events.0.lock().unwrap().iter().map(|e| e.0).collect()
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        let _ = install::unmount_all(&self.target);
    }
}

#[test]
fn fresh_uefi_disk_is_partitioned_formatted_mounted_and_filled() {
    let work = tempfile::tempdir().unwrap();
    let (file, layout) = fresh_disk(work.path(), Firmware::Uefi);
    let body = tiny_image();
    let url = serve(body.clone(), Mode::Good).url;
    let run = Install::new(work.path(), &file, layout, test_plan(&body), url);
    let (ctx, target) = (run.ctx(), &run.target);
    install::partition(&ctx).unwrap();
    let made: Vec<Made> = install::make_filesystems(&ctx, &host_mke2fs()).unwrap();
    let kinds: Vec<(&str, Fs)> = made.iter().map(|m| (m.mount.as_str(), m.fs)).collect();
    assert_eq!(kinds, [("/", Fs::Ext4), ("/boot/efi", Fs::Vfat), ("swap", Fs::Swap)]);
    for m in &made {
        let id = blkid(&m.device);
        assert!(id.contains(&format!("UUID={}\n", m.uuid)), "{}: {id}", m.mount);
        let ty = if m.fs == Fs::Vfat { "vfat" } else { m.fs.name() };
        assert!(id.contains(&format!("TYPE={ty}\n")), "{}: {id}", m.mount);
    }
    let esp = made.iter().find(|m| m.fs == Fs::Vfat).unwrap();
    let fsck = Command::new("fsck.fat").arg("-n").arg(&esp.device).output().unwrap();
    assert!(fsck.status.success(), "fsck.fat: {}", String::from_utf8_lossy(&fsck.stdout));
    // This host's kernel may lack vfat (the agent's initramfs carries it):
    // mount the ESP only where the kernel can.
    let vfat = std::fs::read_to_string("/proc/filesystems").unwrap().contains("vfat");
    let to_mount: Vec<Made> = made.iter().filter(|m| vfat || m.fs != Fs::Vfat).cloned().collect();
    if !vfat {
        eprintln!("no vfat in this kernel: the ESP is checked with fsck.fat, not mounted");
    }
    install::mount_all(&ctx, &to_mount).unwrap();
    assert_eq!(mounted_below(target), if vfat { 2 } else { 1 }, "/ and /boot/efi");
    let opts = mount_options(target);
    assert!(has_nosuid_nodev(&opts), "{opts:?}");
    let progress = NoProgress;
    install::stream::stream(
        &run.fetch,
        &run.url,
        &run.plan.setup.image,
        target,
        Retry::default(),
        &progress,
    )
    .unwrap();
    assert_eq!(std::fs::read_to_string(target.join("etc/hostname")).unwrap(), "image\n");
    // Verified: the new system's own flags back for configuring it.
    install::mount_verified(&ctx, &to_mount).unwrap();
    let opts = mount_options(target);
    assert!(!opts.iter().any(|o| o == "nosuid" || o == "nodev"), "{opts:?}");
    install::unmount_all(target).unwrap();
    assert_eq!(mounted_below(target), 0);

    install::disarm(run.dev.dir.path(), &run.layout).unwrap();
    let root = made.iter().find(|m| m.mount == "/").unwrap();
    assert!(!blkid(&root.device).contains("TYPE="), "root superblock gone after disarm");
    let head = std::fs::read(&file).map(|b| b[..440].to_vec()).unwrap();
    assert!(head.iter().all(|b| *b == 0), "boot code zeroed");
}

struct NoProgress;

impl install::stream::Progress for NoProgress {
    fn percent(&self, _: u8) {}
    fn warn(&self, _: &str) {}
}

/// Makes an ext4 filesystem (with `args`, e.g. a label) on the loop `dev`,
/// and writes `files` (path below its root, contents) into it through a
/// mount at `mnt`.
fn ext4_with(dev: &Loop, args: &[&str], mnt: &Path, files: &[(&str, &str)]) {
    assert!(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4"])
        .args(args)
        .arg(&dev.0)
        .status()
        .unwrap()
        .success());
    std::fs::create_dir(mnt).unwrap();
    assert!(Command::new("mount").arg(&dev.0).arg(mnt).status().unwrap().success());
    for (path, data) in files {
        let p = mnt.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    assert!(Command::new("umount").arg(mnt).status().unwrap().success());
}

/// A disk image of an old install: GPT, root 600 MiB, then an ext4 /home
/// of 512 MiB holding alice's notes. Returns the file, the layout the
/// planner makes for it (home kept), the home's byte range and UUID.
fn old_install(work: &Path) -> (PathBuf, Layout, std::ops::Range<u64>, String) {
    let size = 1536 * MIB;
    let file = support::disk_image(work, "disk.img", size);
    let script = "label: gpt\nstart=2048, size=600MiB\nsize=512MiB\n";
    let mut c = Command::new("sfdisk").arg("-q").arg(&file).stdin(Stdio::piped()).spawn().unwrap();
    c.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success());
    let home_start = MIB + 600 * MIB;
    let old = attach(&file, home_start, 512 * MIB);
    ext4_with(&old, &["-L", "home"], &work.join("old"), &[("alice/notes.txt", "do not lose me\n")]);
    let old_uuid = install::ext_uuid(Path::new(&old.0)).unwrap();
    drop(old);
    let disk = Disk {
        partitions: vec![
            testing::partition(1, MIB, 600 * MIB, "ext4", "root"),
            testing::partition(2, home_start, 512 * MIB, "ext4", "home"),
        ],
        table: Some(PartitionTable::Gpt),
        ..testing::disk("img", size)
    };
    (file, layout(Firmware::Bios, disk), home_start..home_start + 512 * MIB, old_uuid)
}

#[test]
fn a_kept_home_keeps_the_users_files() {
    let work = tempfile::tempdir().unwrap();
    let (file, layout, _, old_uuid) = old_install(work.path());
    let unused = "http://127.0.0.1:9/unused".to_string();
    let run = Install::new(work.path(), &file, layout, test_plan(b""), unused);
    let (ctx, target) = (run.ctx(), &run.target);
    install::partition(&ctx).unwrap();
    let made = install::make_filesystems(&ctx, &host_mke2fs()).unwrap();
    let home = made.iter().find(|m| m.mount == "/home").unwrap();
    assert_eq!((home.number, &home.uuid), (2, &old_uuid), "kept /home, same filesystem");
    assert!(home.kept);
    install::mount_all(&ctx, &made).unwrap();
    assert_eq!(mounted_below(target), 1, "only the new root while the image is unpacked");
    install::mount_verified(&ctx, &made).unwrap();
    let notes = std::fs::read_to_string(target.join("home/alice/notes.txt"));
    let opts = mount_options(&target.join("home"));
    install::unmount_all(target).unwrap();
    assert_eq!(notes.unwrap(), "do not lose me\n");
    assert!(has_nosuid_nodev(&opts), "{opts:?}");
}

#[test]
fn a_refused_image_leaves_the_disk_unbootable_and_unmounted() {
    let work = tempfile::tempdir().unwrap();
    let (file, layout) = fresh_disk(work.path(), Firmware::Bios);
    let body = tiny_image();
    let url = serve(body.clone(), Mode::Good).url;
    let mut plan = test_plan(&body);
    plan.setup.image.chunks = "ab".repeat(32); // not this image: a man in the middle
    let run = Install::new(work.path(), &file, layout, plan, url);
    let e = install::run(&run.ctx()).unwrap_err();
    assert!(e.to_string().contains("refusing"), "{e}");
    assert_eq!(mounted_below(&run.target), 0, "everything unmounted");
    let number = run.layout.mounted("/").unwrap().1.number;
    let root = run.dev.dir.path().join(partition_name("img", number));
    assert!(!blkid(&root).contains("TYPE="), "root superblock wiped: {}", blkid(&root));
    let head = std::fs::read(&file).map(|b| b[..512].to_vec()).unwrap();
    assert!(head[..440].iter().all(|b| *b == 0), "no boot code");
    assert_eq!(&head[510..], &[0x55, 0xaa], "the partition table itself stays");
    let phases = run.phases();
    assert!(phases.contains(&Phase::Download) && !phases.contains(&Phase::Configure), "{phases:?}");
}

#[test]
fn probing_a_home_finds_it_and_writes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let file = support::disk_image(work.path(), "disk.img", 64 * MIB);
    let l = attach(&file, 0, 64 * MIB);
    ext4_with(&l, &[], &work.path().join("m"), &[("bob/.profile", "x")]);
    let before = sha2::Sha256::digest(std::fs::read(&file).unwrap());
    let scratch = work.path().join("probe");
    assert!(install::probe::looks_like_home(Path::new(&l.0), "ext4", &scratch).unwrap());
    assert_eq!(mounted_below(&scratch), 0);
    let after = sha2::Sha256::digest(std::fs::read(&file).unwrap());
    assert_eq!(before, after, "probing wrote nothing");
}

/// sha256 of the bytes `range` of `file`.
fn digest(file: &Path, range: std::ops::Range<u64>) -> Vec<u8> {
    let mut f = std::fs::File::open(file).unwrap();
    f.seek(SeekFrom::Start(range.start)).unwrap();
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f.take(range.end - range.start), &mut h).unwrap();
    h.finalize().to_vec()
}

/// A tarball swapped on the server after `lazare image add`, carrying a
/// setuid-root shell for a user's home: the install fails, and the kept
/// /home was never even mounted, so not one byte of it changed.
#[test]
fn a_swapped_tarball_with_a_setuid_file_for_home_leaves_the_kept_home_byte_identical() {
    let work = tempfile::tempdir().unwrap();
    let (file, layout, home, _) = old_install(work.path());
    let before = digest(&file, home.clone());
    let good = tiny_image();
    let swapped =
        tar_zst(&[("etc/hostname", 0o644, b"image\n"), ("home/alice/sh", 0o4755, b"\x7fELF")]);
    // The plan and the index are for the image that was added; the server
    // hands out the swapped file.
    let index = ChunkIndex::build(&good[..], CHUNK_SIZE).unwrap().index.to_bytes();
    let url = serve_with_index(swapped, index, Mode::Good).url;
    let run = Install::new(work.path(), &file, layout, test_plan(&good), url);
    let e = install::run(&run.ctx()).unwrap_err();
    assert!(e.to_string().contains("does not match the signed plan"), "{e}");
    assert_eq!(mounted_below(&run.target), 0);
    assert_eq!(digest(&file, home), before, "the kept /home changed");
    let phases = run.phases();
    assert!(!phases.contains(&Phase::Configure), "{phases:?}");
}
