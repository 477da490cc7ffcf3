//! The whole chain, as a volunteer and a PC live it: the real test image
//! (`lazare image build --profile test`, cached in ~/.cache/lazare), the real
//! `lazare serve` on loopback, `lazare key show`, `lazare build --key`, and a
//! qemu PC (i440FX, SeaBIOS, 256 MB, TCG, two IDE disks) booting the ISO,
//! installing, then booting its disk alone to a login prompt.
//!
//! TCG is slow: each install takes minutes. The tests take a lock so only
//! one VM runs at a time (the machines running them have 2 cores), which also
//! lets them share one server port and one ISO.

#[path = "common/e2e.rs"]
mod e2e;

use e2e::{disk, installed_machine, run, tail, wait_install_end, Fixture, Server};
use e2e::{sha256_of, DONE, GIB, MIN};
use lazare::vm::{DiskInterface, DiskSpec, Pattern, Vm, VmSpec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// This file's [`e2e::start`]: its fixture (the image, a signing key and an
/// ISO that bakes in `https://10.0.2.100:<port>` and that key) lives in
/// `CARGO_TARGET_TMPDIR/e2e`.
fn start() -> (&'static Fixture, MutexGuard<'static, ()>, TempDir, PathBuf, Server) {
    e2e::start("e2e")
}

/// A blank PC's two disks: 8 GiB and 4 GiB.
fn blank_disks(work: &Path) -> [PathBuf; 2] {
    [disk(work, "a.qcow2", 8 * GIB), disk(work, "b.qcow2", 4 * GIB)]
}

/// A 256 MB i440FX PC with SeaBIOS, an e1000 and `disks` on IDE: two on the
/// primary channel, as in most old PCs (qemu puts the CD on the secondary).
fn pc(iso: Option<&Path>, disks: &[PathBuf], work: &Path, port: u16) -> VmSpec {
    let mut spec = VmSpec::new(iso.map(Path::to_path_buf), work.join("serial.log"));
    spec.memory_mb = 256;
    // Placed by hand: the harness's IDE disks take no bus/unit, and qemu
    // then refuses a second IDE disk beside the CD ("IDE unit 1 is in use").
    let slots = ["bus=ide.0,unit=0", "bus=ide.0,unit=1", "bus=ide.1,unit=1"];
    assert!(disks.len() <= slots.len(), "at most 3 IDE disks beside the CD");
    for (i, (d, slot)) in disks.iter().zip(slots).enumerate() {
        let fmt = DiskSpec::new(d, DiskInterface::Ide).format;
        spec.extra_args.push("-drive".into());
        spec.extra_args.push(format!("if=none,id=e2e{i},format={fmt},file={}", d.display()));
        spec.extra_args.push("-device".into());
        spec.extra_args.push(format!("ide-hd,drive=e2e{i},{slot}"));
    }
    spec.guestfwd_port = Some(port);
    spec.max_runtime = 40 * MIN;
    spec
}

/// Boots the CD and waits until the agent restarts the PC (qemu exits:
/// `-no-reboot`); returns the serial output of the run.
fn install(spec: &VmSpec) -> String {
    let mut vm = Vm::start(spec).expect("starting qemu");
    wait_install_end(&mut vm);
    vm.output()
}

/// Boots the installed disks alone (no CD) to the serial login prompt.
fn boot_installed(disks: &[PathBuf], work: &Path, port: u16) -> String {
    let spec = pc(None, disks, work, port);
    let mut vm = Vm::start(&spec).expect("starting qemu");
    vm.wait_for_text("login:", 15 * MIN)
        .unwrap_or_else(|e| panic!("the installed system did not reach a login prompt: {e}"));
    vm.output()
}

#[test]
fn installs_a_blank_pc_which_then_boots_alone() {
    let (f, _one, work, _, server) = start();
    let disks = blank_disks(work.path());
    install(&pc(Some(&f.iso), &disks, work.path(), f.port));
    let detail = installed_machine(&server);
    assert_eq!(detail["hostname"], "e2e-001");
    let boot = boot_installed(&disks, work.path(), f.port);
    assert!(boot.contains("e2e-001 login:"), "the host name from the plan is not set:\n{boot}");
}

/// A raw disk whose MBR holds one ext4 partition labelled `home` (4 GiB at
/// 4 GiB) with a user's file, as a PC installed before would have.
fn disk_with_home(work: &Path) -> (PathBuf, &'static str) {
    let p = work.join("old.raw");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(8 * GIB).unwrap();
    let table = "label: dos\nstart=8388608, size=8388608, type=83\n";
    let mut sf = Command::new("sfdisk").args(["-q"]).arg(&p).stdin(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut sf.stdin.take().unwrap(), table.as_bytes()).unwrap();
    assert!(sf.wait().unwrap().success(), "sfdisk failed");
    let src = work.join("home-src/utilisateur");
    std::fs::create_dir_all(&src).unwrap();
    let text = "lettre à garder\n";
    std::fs::write(src.join("lettre.txt"), text).unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-F", "-q", "-L", "home", "-d"])
        .arg(work.join("home-src"))
        .args(["-E", &format!("offset={}", 4 * GIB)])
        .arg(&p)
        .arg("4G"));
    (p, text)
}

/// Reads `file` from the ext4 partition labelled `home` on raw `disk`.
fn read_from_home(disk: &Path, file: &str) -> String {
    let table: Value =
        serde_json::from_str(&run(Command::new("sfdisk").arg("-J").arg(disk))).unwrap();
    let parts = table["partitiontable"]["partitions"].as_array().unwrap().clone();
    for part in &parts {
        let offset = part["start"].as_u64().unwrap() * 512;
        let probe = Command::new("blkid")
            .args(["-p", "-s", "LABEL", "-o", "value", "-O", &offset.to_string()])
            .arg(disk)
            .output()
            .unwrap();
        if String::from_utf8_lossy(&probe.stdout).trim() == "home" {
            let dev = format!("{}?offset={offset}", disk.display());
            return run(Command::new("debugfs").args(["-R", &format!("cat {file}"), &dev]));
        }
    }
    panic!("no partition labelled home on {} after the install: {table:#}", disk.display());
}

#[test]
fn reinstall_keeps_an_existing_home() {
    let (f, _one, work, _, server) = start();
    let (old, text) = disk_with_home(work.path());
    let disks = [old.clone(), disk(work.path(), "b.qcow2", 4 * GIB)];
    install(&pc(Some(&f.iso), &disks, work.path(), f.port));
    installed_machine(&server);
    assert_eq!(read_from_home(&old, "/utilisateur/lettre.txt"), text);
}

#[test]
fn install_survives_the_server_going_away_mid_download() {
    let (f, _one, work, data, server) = start();
    let disks = blank_disks(work.path());
    let mut vm = Vm::start(&pc(Some(&f.iso), &disks, work.path(), f.port)).unwrap();
    let re =
        Pattern::regex(r"downloading and unpacking the system \([2-9][0-9]%\)|Technical detail: ")
            .unwrap();
    let line = vm.wait_for(re, 30 * MIN).unwrap_or_else(|e| panic!("no download progress: {e}"));
    assert!(
        !line.contains("Technical detail"),
        "the agent failed: {line}\n{}",
        tail(&vm.output(), 40)
    );
    drop(server);
    vm.mark();
    // Let the agent notice the cut and start retrying before the server returns.
    let cut = Instant::now();
    while cut.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_secs(1));
    }
    let server = Server::start(&data, f.port);
    // Progress after the cut shows the download was still under way when the
    // server went away (not already finished).
    let progress = Pattern::regex(r"downloading and unpacking the system \(\d+%\)").unwrap();
    vm.wait_for(progress, 30 * MIN)
        .unwrap_or_else(|e| panic!("no download progress after the server came back: {e}"));
    wait_install_end(&mut vm);
    drop(vm);
    let detail = installed_machine(&server);
    eprintln!("server cut after: {line}");
    assert!(detail["events"].as_array().is_some_and(|e| !e.is_empty()));
}

/// The image swapped on the server after `image add` (one byte of a middle
/// chunk flipped, the index and signed plan unchanged): the agent refuses
/// that chunk before unpacking it, the server hears `failed`, and the kept
/// /home partition is byte-identical (it is mounted only once the whole
/// image has been verified).
#[test]
fn tampered_image_on_the_server_fails_and_leaves_home_untouched() {
    // The server reads the images folder at each request: the image is
    // swapped under a running server, as after an `image add`.
    let (f, _one, work, data, server) = start();
    let served = data.join("images").join(f.image.file_name().unwrap());
    let mut bytes = std::fs::read(&served).unwrap();
    let chunk = lazare_proto::chunk_size_for(bytes.len() as u64) as usize;
    let at = (bytes.len() / chunk / 2) * chunk + 4321;
    bytes[at] ^= 0x5a;
    std::fs::write(&served, &bytes).unwrap();
    drop(bytes);
    let (old, _) = disk_with_home(work.path());
    let home_before = sha256_of(&old, 4 * GIB, 4 * GIB);
    let disks = [old.clone(), disk(work.path(), "b.qcow2", 4 * GIB)];
    let mut vm = Vm::start(&pc(Some(&f.iso), &disks, work.path(), f.port)).unwrap();
    let end = Pattern::regex(&format!("{}|Technical detail: ", regex::escape(DONE))).unwrap();
    let line = vm.wait_for(end, 30 * MIN).unwrap_or_else(|e| panic!("no end of install: {e}"));
    assert!(line.contains("Technical detail"), "a tampered image installed:\n{line}");
    let out = vm.output();
    assert!(out.contains(&format!("chunk {}", at / chunk)), "{}", tail(&out, 40));
    drop(vm);
    let list = server.get("/api/v1/machines");
    assert_eq!(list[0]["status"], "failed", "{list:#}");
    assert_eq!(sha256_of(&old, 4 * GIB, 4 * GIB), home_before, "the kept /home changed");
}
