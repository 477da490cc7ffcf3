//! Shared pieces of the agent's integration tests: a recording install
//! server on 127.0.0.1, an image server ([`images`]), and an initramfs with
//! the static agent as /init.
#![allow(dead_code)]

pub mod images;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// A small HTTP/1.1 server on 127.0.0.1 that records every request and
/// answers hello with `plan` signed by `key`.
pub struct Recorder {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl Recorder {
    pub fn start(plan: Vec<u8>, signature: Option<String>) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let rec = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (rec, plan, sig) = (rec.clone(), plan.clone(), signature.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &rec, &plan, sig.as_deref());
                });
            }
        });
        Recorder { port, requests }
    }

    pub fn bodies(&self, path_end: &str) -> Vec<Vec<u8>> {
        let r = self.requests.lock().unwrap();
        r.iter().filter(|q| q.path.ends_with(path_end)).map(|q| q.body.clone()).collect()
    }
}

fn serve(
    stream: TcpStream,
    rec: &Mutex<Vec<Request>>,
    plan: &[u8],
    sig: Option<&str>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) =
            (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        rec.lock().unwrap().push(Request { method, path: path.clone(), body });
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        if path == "/api/v1/hello" {
            let sig_header = sig.map(|s| format!("Lazare-Signature: {s}\r\n")).unwrap_or_default();
            write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nDate: {date}\r\n{sig_header}\r\n", plan.len())?;
            out.write_all(plan)?;
        } else {
            write!(out, "HTTP/1.1 204 No Content\r\nDate: {date}\r\n\r\n")?;
        }
        out.flush()?;
    }
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The static agent: `$LAZARE_AGENT`, else the Makefile's path.
pub fn agent_binary() -> PathBuf {
    let p = std::env::var_os("LAZARE_AGENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/x86_64-unknown-linux-gnu/agent/lazare-agent"));
    assert!(
        p.exists(),
        "the static agent {} is missing: run `make agent` (or set LAZARE_AGENT)",
        p.display()
    );
    p
}

/// The newest kernel in /boot and its release.
pub fn kernel() -> (PathBuf, String) {
    let names: Vec<String> = std::fs::read_dir("/boot")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // The one `lazare build` takes by default.
    let newest =
        lazare_cd::kernel::newest(names.iter().map(String::as_str)).expect("a kernel in /boot");
    let release = lazare_cd::kernel::release(newest).unwrap().to_string();
    (PathBuf::from("/boot").join(newest), release)
}

/// An initramfs (agent as /init, the default module set, `baked` as
/// /etc/lazare/cmdline) written into `dir`.
pub fn initramfs(dir: &Path, baked: &str, key: Option<&str>) -> PathBuf {
    initramfs_with(dir, baked, key, &[])
}

/// [`initramfs`] with extra files (path, contents, mode).
pub fn initramfs_with(
    dir: &Path,
    baked: &str,
    key: Option<&str>,
    extra: &[(&str, Vec<u8>, u32)],
) -> PathBuf {
    use lazare::initramfs::{write_initramfs, ExtraFile, InitramfsSpec};
    let (_, release) = kernel();
    let mut spec = InitramfsSpec::new(agent_binary(), Path::new("/lib/modules").join(release), 0);
    let file = |path: &str, data: Vec<u8>, mode: u32| ExtraFile { path: path.into(), data, mode };
    spec.files.push(file("/etc/lazare/cmdline", format!("{baked}\n").into_bytes(), 0o644));
    if let Some(k) = key {
        spec.files.push(file("/etc/lazare/server.pub", format!("{k}\n").into_bytes(), 0o644));
    }
    for (path, data, mode) in extra {
        spec.files.push(file(path, data.clone(), *mode));
    }
    let out = dir.join("initrd.gz");
    let f = std::fs::File::create(&out).unwrap();
    write_initramfs(&spec, f, &mut |_| {}).unwrap();
    out
}

/// A blank sparse raw disk image of `size` bytes.
pub fn disk_image(dir: &Path, name: &str, size: u64) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    p
}

/// A VM booting the host's kernel with `initrd` and `append` directly (no
/// ISO, no boot loader): 256 MB, its serial console logged in `dir`.
pub fn direct_boot(dir: &Path, initrd: &Path, append: &str) -> lazare::vm::VmSpec {
    let (kernel, _) = kernel();
    let mut spec = lazare::vm::VmSpec::new(None, dir.join("serial.log"));
    spec.memory_mb = 256;
    spec.extra_args = vec![
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
        "-append".into(),
        append.into(),
    ];
    spec
}

/// Waits (up to `timeout`) for the VM to power off by itself, then returns
/// the one inventory its agent sent `server`, and the serial output.
pub fn inventory_after_power_off(
    vm: &mut lazare::vm::Vm,
    server: &Recorder,
    timeout: std::time::Duration,
) -> (lazare_proto::Inventory, String) {
    let status = vm.wait_exit(timeout);
    let out = vm.output();
    assert!(status.is_ok(), "the VM did not power off by itself: {status:?}\n{out}");
    let hellos = server.bodies("/api/v1/hello");
    assert_eq!(hellos.len(), 1, "exactly one hello; serial:\n{out}");
    (serde_json::from_slice(&hellos[0]).unwrap(), out)
}

/// `f` every 100 ms for up to 10 s, until it gives something: for what
/// comes a moment after the event a test waited for.
pub fn poll<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..100 {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    f()
}
