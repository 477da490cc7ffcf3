//! The whole chain, as a volunteer and a PC live it: the real test image
//! (`lazare image build --profile test`, cached in ~/.cache/lazare), the real
//! `lazare serve` on loopback, `lazare key show`, `lazare build --key`, and a
//! qemu PC (i440FX, SeaBIOS, 256 MB, TCG, two IDE disks) booting the ISO,
//! installing, then booting its disk alone to a login prompt.
//!
//! TCG is slow: each install takes minutes. The tests take a lock so only
//! one VM runs at a time (the machines running them have 2 cores), which also
//! lets them share one server port and one ISO.

use lazare::vm::{DiskInterface, DiskSpec, Pattern, Vm, VmSpec};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

const MIN: Duration = Duration::from_secs(60);
const GIB: u64 = 1 << 30;

/// Rules for the test server: the `test` image for every PC and no countdown.
const RULES: &str = r#"
hostname = "e2e-{n:03}"
locale = "fr_FR.UTF-8"
keymap = "fr"
timezone = "Europe/Paris"
countdown_secs = 0
reinstall_entry = true
action = "install"

[[image]]
profile = "test"

[disks]
root_min = 3221225472
home = "preserve"
swap = { kind = "auto" }
table = "auto"
exclude = []

[[user]]
name = "utilisateur"
full_name = "Utilisateur"
admin = false
"#;

fn lazare() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lazare"))
}

/// Runs `cmd`, fails the test with its output if it fails; returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What every test shares: the image, a signing key and an ISO that bakes
/// in `http://10.0.2.100:<port>` and that key.
struct Fixture {
    dir: PathBuf,
    port: u16,
    image: PathBuf,
    iso: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let images = dir.join("images");
        run(lazare().args(["image", "build", "--profile", "test", "-q", "--output"]).arg(&images));
        let image = std::fs::read_dir(&images)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".tar.zst"))
            .expect("lazare image build wrote no .tar.zst");
        // The key is made by the server's first start, as a volunteer does.
        let seed = dir.join("seed");
        let port = free_port();
        drop(Server::start(&seed, port));
        let key = dir.join("server.pub");
        std::fs::write(&key, run(lazare().args(["key", "show", "--data"]).arg(&seed))).unwrap();
        let iso = dir.join("lazare.iso");
        run(lazare()
            .args(["build", "--server", &format!("http://10.0.2.100:{port}"), "--key"])
            .arg(&key)
            .arg("--output")
            .arg(&iso));
        Fixture { dir, port, image, iso }
    })
}

/// One VM at a time (2 cores; one shared port).
fn one_vm() -> MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    L.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running `lazare serve`; killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts on 127.0.0.1:`port` and waits for its banner.
    fn start(data: &Path, port: u16) -> Server {
        let mut child = lazare()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting lazare serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        loop {
            let mut line = String::new();
            let n = out.read_line(&mut line).unwrap();
            assert!(n > 0, "lazare serve exited during start:\n{banner}");
            banner.push_str(&line);
            if line.starts_with("images:") {
                break;
            }
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Server { child, base: format!("http://127.0.0.1:{port}") }
    }

    fn get(&self, path: &str) -> Value {
        let resp = ureq::get(&format!("{}{path}", self.base)).call().unwrap();
        resp.into_json().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh data dir with the fixture's key, the test rules and the image.
fn data_dir(f: &Fixture, work: &Path) -> PathBuf {
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let key = data.join("server.key");
    std::fs::copy(f.dir.join("seed/server.key"), &key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(data.join("lazare.toml"), RULES).unwrap();
    run(lazare().args(["image", "add", "--data"]).arg(&data).arg(&f.image));
    data
}

fn disk(work: &Path, name: &str, size: u64) -> PathBuf {
    let p = work.join(name);
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&p)
        .arg(size.to_string()));
    p
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

const DONE: &str = "installed; restarting into the new system";

/// Waits for the end of the install: `DONE`, or the agent's failure screen
/// (its "Technical detail:" line), which fails the test at once instead of
/// after the timeout.
fn wait_install_end(vm: &mut Vm) {
    let end = Pattern::regex(&format!("{}|Technical detail: ", regex::escape(DONE))).unwrap();
    let line = vm.wait_for(end, 30 * MIN).unwrap_or_else(|e| panic!("install did not finish: {e}"));
    assert!(line.contains(DONE), "the agent failed: {line}\n{}", tail(&vm.output(), 40));
    let st = vm.wait_exit(2 * MIN).expect("the PC did not restart after the install");
    assert!(st.success(), "qemu: {st}");
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
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

/// The one machine the server knows, checked `installed`, with its log.
fn installed_machine(server: &Server) -> Value {
    let list = server.get("/api/v1/machines");
    let machines = list.as_array().expect("machines is a list");
    assert_eq!(machines.len(), 1, "{list:#}");
    let id = machines[0]["id"].as_str().unwrap();
    assert_eq!(machines[0]["status"], "installed", "{list:#}");
    let detail = server.get(&format!("/api/v1/machines/{id}"));
    let events = detail["events"].to_string();
    assert!(events.contains("plan verified"), "no signed plan was verified: {events}");
    let logs = detail["logs"].as_array().expect("logs");
    let last = logs.last().and_then(|l| l["text"].as_str()).unwrap_or("");
    assert!(last.contains(DONE), "the uploaded log does not end the install: {last}");
    detail
}

#[test]
fn installs_a_blank_pc_which_then_boots_alone() {
    let f = fixture();
    let _one = one_vm();
    let work = tempfile::tempdir_in(&f.dir).unwrap();
    let data = data_dir(f, work.path());
    let server = Server::start(&data, f.port);
    let disks = [disk(work.path(), "a.qcow2", 8 * GIB), disk(work.path(), "b.qcow2", 4 * GIB)];
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
    let f = fixture();
    let _one = one_vm();
    let work = tempfile::tempdir_in(&f.dir).unwrap();
    let data = data_dir(f, work.path());
    let server = Server::start(&data, f.port);
    let (old, text) = disk_with_home(work.path());
    let disks = [old.clone(), disk(work.path(), "b.qcow2", 4 * GIB)];
    install(&pc(Some(&f.iso), &disks, work.path(), f.port));
    installed_machine(&server);
    assert_eq!(read_from_home(&old, "/utilisateur/lettre.txt"), text);
}

#[test]
fn install_survives_the_server_going_away_mid_download() {
    let f = fixture();
    let _one = one_vm();
    let work = tempfile::tempdir_in(&f.dir).unwrap();
    let data = data_dir(f, work.path());
    let server = Server::start(&data, f.port);
    let disks = [disk(work.path(), "a.qcow2", 8 * GIB), disk(work.path(), "b.qcow2", 4 * GIB)];
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
