//! lazare-share on a room of namespaced PCs (real processes, real TCP):
//! `lazare serve` (its tracker, and the torrent it makes for an image at
//! start) and the server's seed behind a 40 Mbit/s uplink, four PCs started
//! 2 s apart that know only the tracker, each reading `/image` in order into
//! a sha256 as the agent would. One PC is switched off mid-way; the others
//! finish, and the seed sends the image well under three times. Then a
//! lying peer (a seed whose file is overwritten with garbage after its
//! check, announced like any PC) is in the room when a fifth PC comes: its
//! pieces fail librqbit's SHA-1 and the PC completes.
//! Needs root, iproute2 (ip, tc), curl and the `lazare` CLI (`make cli`, or
//! $LAZARE); run by name (`test = false`).

mod lan;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lan::Lan;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_lazare-share");
const SIZE: usize = 64 * 1024 * 1024;
const HTTP: &str = "127.0.0.1:8471";
/// The server's uplink: slow enough that the PCs must share to be quick.
const UPLINK: &str = "40mbit";
const SERVER: &str = "10.97.0.1";
const TRACKER: &str = "http://10.97.0.1:8471/announce";

/// Starts `lazare-share` in `ns` and waits for its `ready` line. The PCs'
/// engines run with an empty /etc, as under the agent (no CA roots, no NSS):
/// in a mount namespace of their own, an empty directory over /etc.
fn start(lan: &mut Lan, ns: &str, args: &[&str], bare_etc: Option<&Path>) -> usize {
    let mut cmd = match bare_etc {
        None => Lan::exec(ns, BIN),
        Some(empty) => {
            let mut c = Lan::exec(ns, "unshare");
            c.args(["-m", "--", "sh", "-c", r#"mount --bind "$0" /etc && exec "$@""#]);
            c.arg(empty).arg(BIN);
            c
        }
    };
    let mut child = cmd
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting lazare-share");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("ready"), "lazare-share {args:?} printed {line:?}");
    lan.children.push(child);
    lan.children.len() - 1
}

/// The image as `lazare serve` offers it: its torrent and info hash.
struct Torrent {
    path: PathBuf,
    hash: String,
}

fn seed(lan: &mut Lan, ns: &str, t: &Torrent, file: &Path) -> usize {
    let (p, f) = (t.path.to_str().unwrap(), file.to_str().unwrap());
    let args = ["seed", "--torrent", p, "--info-hash", &t.hash, "--file", f];
    start(lan, ns, &[&args[..], &["--peer-port", "6881", "--tracker", TRACKER]].concat(), None)
}

/// A PC's engine as the agent starts it: the tracker is all it knows.
/// `store`'s parent holds an empty `etc` for it.
fn fetch(lan: &mut Lan, ns: &str, t: &Torrent, store: &Path) -> usize {
    let etc = store.with_file_name("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let (p, s) = (t.path.to_str().unwrap(), store.to_str().unwrap());
    let args = ["fetch", "--torrent", p, "--info-hash", &t.hash, "--store", s];
    let rest = ["--peer-port", "6881", "--http", HTTP, "--tracker", TRACKER];
    start(lan, ns, &[&args[..], &rest[..]].concat(), Some(&etc))
}

/// `lazare serve` with its tracker in `ns`, serving `data`'s images. At
/// start it makes the torrent of an image that has none and names its info
/// hash in the manifest.
fn serve(lan: &mut Lan, ns: &str, data: &Path) {
    lan.serve(ns, SERVER, &["--tracker-port", "8471"], data, Stdio::inherit());
}

/// An image of random bytes in `images`, with the manifest `lazare image
/// add` would write (no torrent yet: `lazare serve` makes it).
fn add_image(images: &Path) -> (PathBuf, String) {
    std::fs::create_dir_all(images).unwrap();
    let file = images.join("test.tar.zst");
    let sha256 = random_file(&file);
    let manifest = serde_json::json!({
        "name": "test", "file": "test.tar.zst", "sha256": sha256, "size": SIZE,
        "format": "tar.zst", "installed_size": SIZE, "suite": "bookworm",
        "locale": "C.UTF-8", "keymap": "us", "timezone": "UTC", "created": 0,
    });
    std::fs::write(images.join("test.tar.zst.json"), manifest.to_string()).unwrap();
    (file, sha256)
}

/// Reads the PC's `/image` from 0 as the agent does: the sha256 of what
/// came, its length, and whether curl got the whole body.
fn read_image(ns: &str) -> JoinHandle<(String, u64, bool)> {
    let mut curl = Lan::exec(ns, "curl")
        .args(["-sS", "--fail", &format!("http://{HTTP}/image")])
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting curl");
    std::thread::spawn(move || {
        let mut out = curl.stdout.take().unwrap();
        let (mut hash, mut n, mut buf) = (Sha256::new(), 0u64, vec![0; 1 << 16]);
        loop {
            let k = out.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            hash.update(&buf[..k]);
            n += k as u64;
        }
        (format!("{:x}", hash.finalize()), n, curl.wait().unwrap().success())
    })
}

fn stats(ns: &str) -> serde_json::Value {
    let out =
        Lan::exec(ns, "curl").args(["-sS", &format!("http://{HTTP}/stats")]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("/stats in {ns}: {e}"))
}

fn mib(n: u64) -> f64 {
    n as f64 / (1024.0 * 1024.0)
}

fn random_file(path: &Path) -> String {
    let mut data = vec![0u8; SIZE];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut data).unwrap();
    std::fs::write(path, &data).unwrap();
    format!("{:x}", Sha256::digest(&data))
}

#[test]
fn a_room_shares_the_image_survives_a_pc_switched_off_and_ignores_a_liar() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (image, want) = add_image(&data.join("images"));

    let mut lan = Lan::new("sh");
    let server = lan.add(1, Some(UPLINK));
    serve(&mut lan, &server, &data);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("images/test.tar.zst.json")).unwrap())
            .unwrap();
    let torrent = Torrent {
        path: data.join("images/test.tar.zst.torrent"),
        hash: manifest["torrent"].as_str().expect("lazare serve named no torrent").to_string(),
    };
    seed(&mut lan, &server, &torrent, &image);
    let t0 = Instant::now();

    // PCs switched on 2 s apart. PC 12 will be switched off.
    let mut readers = Vec::new();
    let mut switched_off = None;
    for host in [11u8, 12, 13, 14] {
        let ns = lan.add(host, None);
        let i = fetch(&mut lan, &ns, &torrent, &dir.path().join(&ns));
        let reader = read_image(&ns);
        if host == 12 {
            switched_off = Some((ns, i, reader));
        } else {
            readers.push((ns, i, reader));
        }
        std::thread::sleep(Duration::from_secs(2));
    }

    // Switched off (SIGKILL, no goodbye) once it holds part of the image.
    let (off_ns, off_child, off_reader) = switched_off.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = stats(&off_ns)["have"].as_u64().unwrap();
        assert!(have < SIZE as u64, "PC 12 finished before it could be switched off");
        if have >= SIZE as u64 / 4 {
            eprintln!("PC 12 switched off at {:.1} MiB", mib(have));
            break;
        }
        assert!(Instant::now() < deadline, "PC 12 got under a quarter in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    lan.children[off_child].kill().unwrap();
    lan.children[off_child].wait().unwrap();
    // Its reader sees the body cut short, as the agent would (it is off).
    let (_, n, whole) = off_reader.join().unwrap();
    assert!(!whole && n < SIZE as u64);

    let mut done = Vec::new();
    for (ns, i, reader) in readers {
        done.push(i);
        let (got, n, whole) = reader.join().unwrap();
        assert!(whole, "curl /image in {ns} failed");
        let s = stats(&ns);
        eprintln!("{ns}: {:.1} MiB in {:.1} s; stats {s}", mib(n), t0.elapsed().as_secs_f64());
        assert_eq!(got, want, "{ns} streamed another image");
    }
    let sent = Lan::tx_bytes(&server);
    let ratio = sent as f64 / SIZE as f64;
    eprintln!(
        "the server's seed sent {:.1} MiB for 3 PCs + one switched off: {ratio:.2} image sizes",
        mib(sent)
    );
    assert!(ratio < 2.5, "the seed sent {ratio:.2} image sizes");

    // The PCs reboot: each engine stops (SIGTERM) and exits cleanly within
    // ~2 s. The next PC has only the server and a liar left.
    for i in done {
        stop(&mut lan, i);
    }

    // A liar in the room: a seed whose file turns to garbage after its
    // check, on an unshaped link (so it gets asked first and most).
    let liar = lan.add(30, None);
    let liar_dir = dir.path().join("liar");
    std::fs::create_dir(&liar_dir).unwrap();
    let liar_file = liar_dir.join("test.tar.zst");
    std::fs::copy(&image, &liar_file).unwrap();
    seed(&mut lan, &liar, &torrent, &liar_file);
    let mut garbage = vec![0u8; SIZE];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut garbage).unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(&liar_file).unwrap();
    f.write_all(&garbage).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let server_before = Lan::tx_bytes(&server);
    let pc = lan.add(31, None);
    let t1 = Instant::now();
    let i = fetch(&mut lan, &pc, &torrent, &dir.path().join(&pc));
    let (got, _, whole) = read_image(&pc).join().unwrap();
    assert!(whole, "curl /image beside the liar failed");
    eprintln!(
        "beside a liar: {:.1} s; the liar sent {:.1} MiB, the server {:.1} MiB; stats {}",
        t1.elapsed().as_secs_f64(),
        mib(Lan::tx_bytes(&liar)),
        mib(Lan::tx_bytes(&server) - server_before),
        stats(&pc)
    );
    assert_eq!(got, want, "the PC beside a liar streamed another image");

    assert!(mib(Lan::tx_bytes(&liar)) > 1.0, "the liar was never asked: no lie was tested");
    stop(&mut lan, i);
}

/// SIGTERM to the engine `lan.children[i]`: it must exit 0 within ~2 s.
fn stop(lan: &mut Lan, i: usize) {
    let pid = lan.children[i].id().to_string();
    // Its peak memory, having streamed the image and served the others
    // (`ip netns exec` execs the engine: same pid).
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("VmHWM: ?");
    let t = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = lan.children[i].wait().unwrap();
    eprintln!("{hwm}; exit after SIGTERM: {:.2} s, {status}", t.elapsed().as_secs_f64());
    assert!(status.success(), "fetch after SIGTERM: {status}");
    assert!(t.elapsed() < Duration::from_millis(2500), "fetch took {:?} to stop", t.elapsed());
}
