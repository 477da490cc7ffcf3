//! The end-to-end install fixture shared by
//! `e2e_install.rs` and `e2e_uefi.rs`: the real `test` image, a
//! signing key from a first `lazare serve` start, an ISO that bakes in
//! `https://10.0.2.100:<port>` and that key (the pinned channel, as a
//! volunteer's first run makes it), a `lazare serve` per test, and
//! the checks that an install ended and the server saw it. Included with
//! `#[path = "common/e2e.rs"] mod e2e;` so only the slow tests compile it.
#![allow(dead_code)]

use lazare::vm::{Pattern, Vm};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tempfile::TempDir;

pub const MIN: Duration = Duration::from_secs(60);
pub const GIB: u64 = 1 << 30;

/// Rules for the test server: the `test` image for every PC and no
/// countdown (the same file the bench and the demo use).
pub const RULES: &str = include_str!("../fixtures/rules-test.toml");

/// The agent's last screen line of a successful install.
pub const DONE: &str = "installed; restarting into the new system";

pub fn lazare() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lazare"))
}

/// Runs `cmd`, fails the test with its output if it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
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

/// What every test of one file shares.
pub struct Fixture {
    pub dir: PathBuf,
    pub port: u16,
    /// The first profile's image.
    pub image: PathBuf,
    /// Every profile's image, added to each test's server.
    pub images: Vec<PathBuf>,
    pub iso: PathBuf,
    /// The server rules each test starts with.
    pub rules: String,
}

/// Built once per test binary in `CARGO_TARGET_TMPDIR/<name>` (a name of its
/// own per test file: the directory is emptied first): the `test` image and
/// [`RULES`].
pub fn fixture(name: &str) -> &'static Fixture {
    fixture_with(name, &["test"], |_| RULES.to_string())
}

/// [`fixture`] with the images of `profiles`, and the rules `rules` makes
/// from the default rules file a first `lazare serve` start wrote.
pub fn fixture_with(
    name: &str,
    profiles: &[&str],
    rules: fn(default: &str) -> String,
) -> &'static Fixture {
    // One per name: a test file may use several (one per image set), each
    // built at its first use and kept to the end of the process.
    static FIXTURES: Mutex<Vec<(String, &'static Fixture)>> = Mutex::new(Vec::new());
    let mut all = FIXTURES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, f)) = all.iter().find(|(n, _)| n == name) {
        return f;
    }
    let f: &'static Fixture = Box::leak(Box::new({
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut images = Vec::new();
        for profile in profiles {
            let out = dir.join("images").join(profile);
            run(lazare()
                .args(["image", "build", "--profile", profile, "-q", "--output"])
                .arg(&out));
            images.push(
                std::fs::read_dir(&out)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .find(|p| p.to_string_lossy().ends_with(".tar.zst"))
                    .expect("lazare image build wrote no .tar.zst"),
            );
        }
        // The key is made by the server's first start, as a volunteer does.
        let seed = dir.join("seed");
        let port = free_port();
        drop(Server::start(&seed, port));
        let rules = rules(&std::fs::read_to_string(seed.join("lazare.toml")).unwrap());
        let key = dir.join("server.pub");
        std::fs::write(&key, run(lazare().args(["key", "show", "--data"]).arg(&seed))).unwrap();
        let iso = dir.join("lazare.iso");
        run(lazare()
            .args(["build", "--server", &format!("https://10.0.2.100:{port}"), "--key"])
            .arg(&key)
            .arg("--output")
            .arg(&iso));
        Fixture { dir, port, image: images[0].clone(), images, iso, rules }
    }));
    all.push((name.to_string(), f));
    f
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One VM at a time per test binary (2 cores; one shared port).
pub fn one_vm() -> MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    L.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running `lazare serve`; killed on drop.
pub struct Server {
    child: Child,
    base: String,
    /// The admin token: reads of the machine API need it.
    token: String,
    /// A client that pins the server's key, as the CD does.
    client: ureq::Agent,
}

impl Server {
    /// Starts on 127.0.0.1:`port` and waits for its banner.
    pub fn start(data: &Path, port: u16) -> Server {
        // HTTPS with the signing key, the default a volunteer gets.
        // No room: a VM on qemu's user network reaches only the server's
        // port (tests/e2e_room.rs has a room on a LAN of its own).
        let mut serve = lazare();
        serve.args(["serve", "--no-tracker"]);
        let child = spawn_serve(&mut serve, &format!("127.0.0.1:{port}"), data);
        let token = std::fs::read_to_string(data.join("admin-token")).unwrap().trim().to_string();
        let key: lazare_proto::PublicKey =
            run(lazare().args(["key", "show", "--data"]).arg(data)).trim().parse().unwrap();
        let tls =
            lazare_agent::tls::client_config(lazare_agent::tls::Trust::Pinned(key), 0).unwrap();
        let client = lazare_agent::http::agent(vec![], tls);
        Server { child, base: format!("https://127.0.0.1:{port}"), token, client }
    }

    /// An admin read of the API.
    pub fn get(&self, path: &str) -> Value {
        let resp = self
            .client
            .get(&format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token))
            .call()
            .unwrap();
        resp.into_json().unwrap()
    }

    /// An admin order through the API, as the dashboard's buttons send it
    /// (`/api/v1/machines/ID/reinstall`); returns the status code.
    pub fn post(&self, path: &str) -> u16 {
        self.client
            .post(&format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token))
            .call()
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
            .status()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh data dir with the fixture's key, rules and images.
pub fn data_dir(f: &Fixture, work: &Path) -> PathBuf {
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let key = data.join("server.key");
    std::fs::copy(f.dir.join("seed/server.key"), &key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(data.join("lazare.toml"), &f.rules).unwrap();
    for image in &f.images {
        run(lazare().args(["image", "add", "--data"]).arg(&data).arg(image));
    }
    data
}

/// Each test's start: the fixture `name`, the one-VM lock, a work dir inside
/// the fixture's, and a server on a fresh data dir in it. Bound as
/// `let (f, _one, work, data, server) = start(..)`, the server drops first,
/// before its dir goes.
pub fn start(name: &str) -> (&'static Fixture, MutexGuard<'static, ()>, TempDir, PathBuf, Server) {
    start_in(fixture(name))
}

/// [`start`] on a fixture of [`fixture_with`].
pub fn start_in(
    f: &'static Fixture,
) -> (&'static Fixture, MutexGuard<'static, ()>, TempDir, PathBuf, Server) {
    let one = one_vm();
    let work = tempfile::tempdir_in(&f.dir).unwrap();
    let data = data_dir(f, work.path());
    let server = Server::start(&data, f.port);
    (f, one, work, data, server)
}

/// A blank qcow2 disk of `size` bytes in `work`.
pub fn disk(work: &Path, name: &str, size: u64) -> PathBuf {
    let p = work.join(name);
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&p)
        .arg(size.to_string()));
    p
}

/// Waits for the end of the install: `DONE`, or the agent's failure screen
/// (its "Technical detail:" line), which fails the test at once instead of
/// after the timeout; then for qemu to exit (the agent restarts the PC and
/// the harness runs qemu with `-no-reboot`).
pub fn wait_install_end(vm: &mut Vm) {
    let end = Pattern::regex(&format!("{}|Technical detail: ", regex::escape(DONE))).unwrap();
    let line = vm.wait_for(end, 30 * MIN).unwrap_or_else(|e| panic!("install did not finish: {e}"));
    assert!(line.contains(DONE), "the agent failed: {line}\n{}", tail(&vm.output(), 40));
    let st = vm.wait_exit(2 * MIN).expect("the PC did not restart after the install");
    assert!(st.success(), "qemu: {st}");
}

/// Types `line` on the serial console and waits for `expect` (a regex)
/// after it; returns the line that matched.
pub fn say(vm: &mut Vm, line: &str, expect: &str, timeout: Duration) -> String {
    vm.mark();
    vm.send(&format!("{line}\n")).unwrap();
    vm.wait_for_text(Pattern::regex(expect).unwrap(), timeout)
        .unwrap_or_else(|e| panic!("after {line:?}: {e}"))
}

/// Logs `user` in at the serial getty's `login:` prompt (already shown),
/// up to its shell prompt. The prompts are in the plan's locale.
pub fn log_in(vm: &mut Vm, user: &str, password: &str) {
    say(vm, user, "(?i)(password|mot de passe)", 5 * MIN);
    say(vm, password, r"\$ $", 5 * MIN);
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The one machine the server knows, checked `installed`, with its log.
pub fn installed_machine(server: &Server) -> Value {
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

/// Starts `cmd --listen LISTEN --data DATA`, where `cmd` is `lazare serve`
/// with its options (or it behind `ip netns exec`), and returns once the
/// banner is out (its `images:` line). The rest of its stdout is drained
/// so the server never blocks on a full pipe.
pub fn spawn_serve(cmd: &mut Command, listen: &str, data: &Path) -> Child {
    let mut child = cmd
        .args(["--listen", listen, "--data"])
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
    child
}

/// sha256 of `len` bytes of the file `disk` from `offset` (a partition, or
/// the whole disk): "byte-identical" in the install tests.
pub fn sha256_of(disk: &Path, offset: u64, len: u64) -> String {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(disk).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    let mut left = len;
    while left > 0 {
        let k = f.read(&mut buf[..left.min(1 << 20) as usize]).unwrap();
        assert!(k > 0, "{} ends before {offset}+{len}", disk.display());
        h.update(&buf[..k]);
        left -= k as u64;
    }
    format!("{:x}", h.finalize())
}
