//! The install steps on real block devices: a disk image file whose planned
//! partitions are attached as loop devices (this kernel's loop driver does
//! not scan partitions here, so each partition gets its own offset loop),
//! real mke2fs, mount, streaming into ext4, a kept /home with a user's file,
//! and disarming. Needs root (losetup, mount), as the agent itself does.

use std::io::Write;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use diskplan::{partition_name, Fs, Layout};
use lazare_agent::install::{self, InstallCtx, Made, Reporter, Retry, UreqFetch};
use lazare_proto::{
    ChunkIndex, Disk, DiskPolicy, Dmi, Firmware, Inventory, Partition, PartitionTable, Phase, Plan,
    CHUNK_SIZE, MIB,
};
use sha2::Digest;

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

fn inventory(firmware: Firmware, disk: Disk) -> Inventory {
    Inventory {
        machine_id: "0".repeat(64),
        memory_bytes: 256 * MIB,
        cpus: 1,
        cpu_model: "test".into(),
        firmware,
        dmi: Dmi::default(),
        disks: vec![disk],
        nics: vec![],
        boot_device: None,
        agent_version: String::new(),
    }
}

fn disk(size: u64, partitions: Vec<Partition>, table: Option<PartitionTable>) -> Disk {
    Disk {
        name: "img".into(),
        size_bytes: size,
        model: None,
        serial: None,
        removable: false,
        rotational: true,
        sector_size: 512,
        partitions,
        table,
    }
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

fn blkid(dev: &Path) -> String {
    let out = Command::new("blkid").args(["-p", "-o", "export"]).arg(dev).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn image_file(dir: &Path, size: u64) -> PathBuf {
    let path = dir.join("disk.img");
    std::fs::File::create(&path).unwrap().set_len(size).unwrap();
    path
}

/// Serves `body` once per connection on 127.0.0.1, and its chunk index at
/// the URL plus `.chunks`.
fn serve(body: Vec<u8>) -> String {
    let index = ChunkIndex::build(&body[..], CHUNK_SIZE).unwrap().index.to_bytes();
    serve_with_index(body, index)
}

/// Serves `body` as the image and `index` as its chunk index.
fn serve_with_index(body: Vec<u8>, index: Vec<u8>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/images/t.tar.zst", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let mut s = s.unwrap();
            let mut req = [0u8; 4096];
            let n = std::io::Read::read(&mut s, &mut req).unwrap_or(0);
            let line = String::from_utf8_lossy(&req[..n]);
            let bytes = if line.contains(".chunks ") { &index } else { &body };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            );
            let _ = s.write_all(bytes);
        }
    });
    url
}

fn tiny_image() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(6);
    h.set_cksum();
    b.append_data(&mut h, "etc/hostname", &b"image\n"[..]).unwrap();
    zstd::encode_all(&b.into_inner().unwrap()[..], 3).unwrap()
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

fn mounted_below(p: &Path) -> usize {
    mounts().iter().filter(|m| m.target.starts_with(p)).count()
}

#[test]
fn fresh_uefi_disk_is_partitioned_formatted_mounted_and_filled() {
    let work = tempfile::tempdir().unwrap();
    let file = image_file(work.path(), 1024 * MIB);
    let policy = DiskPolicy { root_min: 256 * MIB, ..DiskPolicy::default() };
    let layout =
        diskplan::plan(&inventory(Firmware::Uefi, disk(1024 * MIB, vec![], None)), &policy)
            .unwrap();
    let dev = dev_for(&file, &layout);
    let body = tiny_image();
    let url = serve(body.clone());
    let plan = test_plan(&body);
    let target = work.path().join("target");
    let _unmount = Unmount(&target);
    let events = Events::default();
    let fetch = UreqFetch::default();
    let ctx = InstallCtx {
        plan: &plan,
        layout: &layout,
        image_url: &url,
        dev: dev.dir.path(),
        target: &target,
        fetch: &fetch,
        reporter: &events,
        retry: Retry::default(),
        reinstall: None,
    };
    install::partition(&ctx).unwrap();
    let made: Vec<Made> = install::make_filesystems(&ctx).unwrap();
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
    assert_eq!(mounted_below(&target), if vfat { 2 } else { 1 }, "/ and /boot/efi");
    let opts = mount_options(&target);
    assert!(opts.iter().any(|o| o == "nosuid") && opts.iter().any(|o| o == "nodev"), "{opts:?}");
    let progress = NoProgress;
    install::stream::stream(&fetch, &url, &plan.image, &target, Retry::default(), &progress)
        .unwrap();
    assert_eq!(std::fs::read_to_string(target.join("etc/hostname")).unwrap(), "image\n");
    // Verified: the new system's own flags back for configuring it.
    install::mount_verified(&ctx, &to_mount).unwrap();
    let opts = mount_options(&target);
    assert!(!opts.iter().any(|o| o == "nosuid" || o == "nodev"), "{opts:?}");
    install::unmount_all(&target).unwrap();
    assert_eq!(mounted_below(&target), 0);

    install::disarm(dev.dir.path(), &layout).unwrap();
    let root = made.iter().find(|m| m.mount == "/").unwrap();
    assert!(!blkid(&root.device).contains("TYPE="), "root superblock gone after disarm");
    let head = std::fs::read(&file).map(|b| b[..440].to_vec()).unwrap();
    assert!(head.iter().all(|b| *b == 0), "boot code zeroed");
}

/// Unmounts the target when a test ends, passing or not.
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = install::unmount_all(self.0);
    }
}

struct NoProgress;

impl install::stream::Progress for NoProgress {
    fn percent(&self, _: u8) {}
    fn warn(&self, _: &str) {}
}

/// A disk image of an old install: GPT, root 600 MiB, then an ext4 /home
/// of 512 MiB holding alice's notes. Returns the file, the layout the
/// planner makes for it (home kept), the home's byte range and UUID.
fn old_install(work: &Path) -> (PathBuf, Layout, std::ops::Range<u64>, String) {
    let size = 1536 * MIB;
    let file = image_file(work, size);
    let script = "label: gpt\nstart=2048, size=600MiB\nsize=512MiB\n";
    let mut c = Command::new("sfdisk").arg("-q").arg(&file).stdin(Stdio::piped()).spawn().unwrap();
    c.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success());
    let home_start = MIB + 600 * MIB;
    let old = attach(&file, home_start, 512 * MIB);
    assert!(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "home", &old.0])
        .status()
        .unwrap()
        .success());
    let mnt = work.join("old");
    std::fs::create_dir(&mnt).unwrap();
    assert!(Command::new("mount").arg(&old.0).arg(&mnt).status().unwrap().success());
    std::fs::create_dir(mnt.join("alice")).unwrap();
    std::fs::write(mnt.join("alice/notes.txt"), "do not lose me\n").unwrap();
    assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
    let old_uuid = install::ext_uuid(Path::new(&old.0)).unwrap();
    drop(old);
    let part = |number, start, size, label: &str| Partition {
        number,
        start,
        size,
        fs_type: Some("ext4".into()),
        label: Some(label.into()),
        uuid: None,
        looks_like_home: label == "home",
    };
    let parts = vec![part(1, MIB, 600 * MIB, "root"), part(2, home_start, 512 * MIB, "home")];
    let inv = inventory(Firmware::Bios, disk(size, parts, Some(PartitionTable::Gpt)));
    let policy = DiskPolicy { root_min: 256 * MIB, ..DiskPolicy::default() };
    let layout = diskplan::plan(&inv, &policy).unwrap();
    (file, layout, home_start..home_start + 512 * MIB, old_uuid)
}

#[test]
fn a_kept_home_keeps_the_users_files() {
    let work = tempfile::tempdir().unwrap();
    let (file, layout, _, old_uuid) = old_install(work.path());
    let dev = dev_for(&file, &layout);
    let plan = test_plan(b"");
    let target = work.path().join("target");
    let _unmount = Unmount(&target);
    let (events, fetch) = (Events::default(), UreqFetch::default());
    let ctx = InstallCtx {
        plan: &plan,
        layout: &layout,
        image_url: "http://127.0.0.1:9/unused",
        dev: dev.dir.path(),
        target: &target,
        fetch: &fetch,
        reporter: &events,
        retry: Retry::default(),
        reinstall: None,
    };
    install::partition(&ctx).unwrap();
    let made = install::make_filesystems(&ctx).unwrap();
    let home = made.iter().find(|m| m.mount == "/home").unwrap();
    assert_eq!((home.number, &home.uuid), (2, &old_uuid), "kept /home, same filesystem");
    assert!(home.kept);
    install::mount_all(&ctx, &made).unwrap();
    assert_eq!(mounted_below(&target), 1, "only the new root while the image is unpacked");
    install::mount_verified(&ctx, &made).unwrap();
    let notes = std::fs::read_to_string(target.join("home/alice/notes.txt"));
    let opts = mount_options(&target.join("home"));
    install::unmount_all(&target).unwrap();
    assert_eq!(notes.unwrap(), "do not lose me\n");
    assert!(opts.iter().any(|o| o == "nosuid") && opts.iter().any(|o| o == "nodev"), "{opts:?}");
}

#[test]
fn a_refused_image_leaves_the_disk_unbootable_and_unmounted() {
    let work = tempfile::tempdir().unwrap();
    let file = image_file(work.path(), 1024 * MIB);
    let policy = DiskPolicy { root_min: 256 * MIB, ..DiskPolicy::default() };
    let inv = inventory(Firmware::Bios, disk(1024 * MIB, vec![], None));
    let layout = diskplan::plan(&inv, &policy).unwrap();
    let dev = dev_for(&file, &layout);
    let body = tiny_image();
    let url = serve(body.clone());
    let mut plan = test_plan(&body);
    plan.image.chunks = "ab".repeat(32); // not this image: a man in the middle
    let target = work.path().join("target");
    let _unmount = Unmount(&target);
    let (events, fetch) = (Events::default(), UreqFetch::default());
    let ctx = InstallCtx {
        plan: &plan,
        layout: &layout,
        image_url: &url,
        dev: dev.dir.path(),
        target: &target,
        fetch: &fetch,
        reporter: &events,
        retry: Retry::default(),
        reinstall: None,
    };
    let e = install::run(&ctx).unwrap_err();
    assert!(e.to_string().contains("refusing"), "{e}");
    assert_eq!(mounted_below(&target), 0, "everything unmounted");
    let root = dev.dir.path().join(partition_name("img", layout.mounted("/").unwrap().1.number));
    assert!(!blkid(&root).contains("TYPE="), "root superblock wiped: {}", blkid(&root));
    let head = std::fs::read(&file).map(|b| b[..512].to_vec()).unwrap();
    assert!(head[..440].iter().all(|b| *b == 0), "no boot code");
    assert_eq!(&head[510..], &[0x55, 0xaa], "the partition table itself stays");
    let phases: Vec<Phase> = events.0.lock().unwrap().iter().map(|e| e.0).collect();
    assert!(phases.contains(&Phase::Download) && !phases.contains(&Phase::Configure), "{phases:?}");
}

#[test]
fn probing_a_home_finds_it_and_writes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let file = image_file(work.path(), 64 * MIB);
    let l = attach(&file, 0, 64 * MIB);
    assert!(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", &l.0])
        .status()
        .unwrap()
        .success());
    let mnt = work.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    assert!(Command::new("mount").arg(&l.0).arg(&mnt).status().unwrap().success());
    std::fs::create_dir(mnt.join("bob")).unwrap();
    std::fs::write(mnt.join("bob/.profile"), "x").unwrap();
    assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
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
    let dev = dev_for(&file, &layout);
    let good = tiny_image();
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, uid, data) in
        [("etc/hostname", 0o644, 0, &b"image\n"[..]), ("home/alice/sh", 0o4755, 0, &b"\x7fELF"[..])]
    {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    }
    let swapped = zstd::encode_all(&b.into_inner().unwrap()[..], 3).unwrap();
    // The plan and the index are for the image that was added; the server
    // hands out the swapped file.
    let index = ChunkIndex::build(&good[..], CHUNK_SIZE).unwrap().index.to_bytes();
    let url = serve_with_index(swapped, index);
    let plan = test_plan(&good);
    let target = work.path().join("target");
    let _unmount = Unmount(&target);
    let (events, fetch) = (Events::default(), UreqFetch::default());
    let ctx = InstallCtx {
        plan: &plan,
        layout: &layout,
        image_url: &url,
        dev: dev.dir.path(),
        target: &target,
        fetch: &fetch,
        reporter: &events,
        retry: Retry::default(),
        reinstall: None,
    };
    let e = install::run(&ctx).unwrap_err();
    assert!(e.to_string().contains("does not match the signed plan"), "{e}");
    assert_eq!(mounted_below(&target), 0);
    assert_eq!(digest(&file, home), before, "the kept /home changed");
    let phases: Vec<Phase> = events.0.lock().unwrap().iter().map(|e| e.0).collect();
    assert!(!phases.contains(&Phase::Configure), "{phases:?}");
}
