//! The image pipeline against a real HTTP server on 127.0.0.1: tar.zst and
//! tar.gz, a server that cuts the connection mid-download (Range resume), a
//! server that ignores Range (restart), and a wrong sha256.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lazare_agent::install::stream::{stream, Progress, StreamError};
use lazare_agent::install::{Retry, UreqFetch};
use lazare_proto::{ImageFormat, ImageRef};
use sha2::{Digest, Sha256};

/// How the test server misbehaves.
#[derive(Clone, Copy)]
enum Mode {
    Good,
    /// Closes the first response after this many body bytes.
    CutAt(usize),
    /// Cuts like CutAt, then answers Range requests with the whole file (200).
    CutNoRange(usize),
}

struct Server {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn serve(body: Vec<u8>, mode: Mode) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/images/test.tar", l.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let n = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let i = n.fetch_add(1, Ordering::SeqCst);
            let _ = answer(s, &body, mode, i, &log);
        }
    });
    Server { url, requests }
}

fn answer(
    mut s: TcpStream,
    body: &[u8],
    mode: Mode,
    i: usize,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut r = BufReader::new(s.try_clone()?);
    let mut range = None;
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Range: bytes=") {
            range = v.trim_end_matches('-').parse::<usize>().ok();
        }
    }
    log.lock().unwrap().push(format!("range={range:?}"));
    let honour = !matches!(mode, Mode::CutNoRange(_));
    let from = if honour { range.unwrap_or(0) } else { 0 };
    let part = &body[from..];
    let status = if from > 0 { "206 Partial Content" } else { "200 OK" };
    write!(s, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", part.len())?;
    let cut = match mode {
        Mode::CutAt(n) | Mode::CutNoRange(n) if i == 0 => n,
        _ => part.len(),
    };
    s.write_all(&part[..cut])?;
    s.flush()?;
    // Dropping the socket closes it: the client sees a short body.
    Ok(())
}

/// A tar with a directory, an executable, a big incompressible file, a
/// symlink, a hard link, a device node, and owner/permission bits.
fn tree_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(100);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        if kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    };
    add("etc/", tar::EntryType::Directory, 0o755, b"", None);
    add("etc/hostname", tar::EntryType::Regular, 0o644, b"image\n", None);
    add("usr/bin/tool", tar::EntryType::Regular, 0o4755, b"#!/bin/sh\necho hi\n", None);
    add("usr/bin/tool2", tar::EntryType::Link, 0o755, b"", Some("usr/bin/tool"));
    add("bin", tar::EntryType::Symlink, 0o777, b"", Some("usr/bin"));
    add("dev/null", tar::EntryType::Char, 0o666, b"", None);
    // 3 MiB of xorshift noise: incompressible, so the cut lands mid-stream.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    add("var/big.bin", tar::EntryType::Regular, 0o600, &noise, None);
    b.into_inner().unwrap()
}

fn zst(tar: &[u8]) -> Vec<u8> {
    zstd::encode_all(tar, 3).unwrap()
}

fn gz(tar: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(tar).unwrap();
    e.finish().unwrap()
}

fn image(body: &[u8], format: ImageFormat) -> ImageRef {
    let sha: String = Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect();
    ImageRef {
        name: "test".into(),
        url: "/images/test".into(),
        sha256: sha,
        size: body.len() as u64,
        format,
    }
}

#[derive(Default)]
struct Seen {
    pcts: Mutex<Vec<u8>>,
    warns: Mutex<Vec<String>>,
}

impl Progress for Seen {
    fn percent(&self, pct: u8) {
        self.pcts.lock().unwrap().push(pct);
    }
    fn warn(&self, line: &str) {
        self.warns.lock().unwrap().push(line.to_string());
    }
}

fn quick() -> Retry {
    Retry { tries: 5, first_wait: Duration::from_millis(10) }
}

fn check_tree(root: &Path) {
    assert_eq!(std::fs::read_to_string(root.join("etc/hostname")).unwrap(), "image\n");
    let tool = std::fs::metadata(root.join("usr/bin/tool")).unwrap();
    assert_eq!(tool.permissions().mode() & 0o7777, 0o4755, "setuid bit kept");
    assert_eq!((tool.uid(), tool.gid()), (1000, 100), "ownership kept");
    let tool2 = std::fs::metadata(root.join("usr/bin/tool2")).unwrap();
    assert_eq!(tool2.ino(), tool.ino(), "hard link");
    assert_eq!(std::fs::read_link(root.join("bin")).unwrap(), Path::new("usr/bin"));
    let null = std::fs::symlink_metadata(root.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device(), "device node made with mknod");
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.permissions().mode() & 0o777, 0o666);
    assert_eq!(std::fs::metadata(root.join("var/big.bin")).unwrap().len(), 3 << 20);
}

fn run(
    body: Vec<u8>,
    format: ImageFormat,
    mode: Mode,
) -> (Result<String, StreamError>, Server, Seen, tempfile::TempDir) {
    let img = image(&body, format);
    let server = serve(body, mode);
    let dir = tempfile::tempdir().unwrap();
    let seen = Seen::default();
    let r = stream(&UreqFetch::default(), &server.url, &img, dir.path(), quick(), &seen);
    (r, server, seen, dir)
}

#[test]
fn tar_zst_streams_into_a_tree() {
    let (r, server, seen, dir) = run(zst(&tree_tar()), ImageFormat::TarZst, Mode::Good);
    r.unwrap();
    check_tree(dir.path());
    assert_eq!(server.requests.lock().unwrap().len(), 1);
    let pcts = seen.pcts.lock().unwrap();
    assert_eq!(pcts.last(), Some(&100));
    assert!(pcts.windows(2).all(|w| w[0] < w[1]), "progress only grows");
}

#[test]
fn tar_gz_streams_into_a_tree() {
    let (r, _, _, dir) = run(gz(&tree_tar()), ImageFormat::TarGz, Mode::Good);
    r.unwrap();
    check_tree(dir.path());
}

#[test]
fn a_cut_connection_resumes_with_range() {
    let body = zst(&tree_tar());
    let cut = body.len() / 3;
    let (r, server, seen, dir) = run(body, ImageFormat::TarZst, Mode::CutAt(cut));
    r.unwrap();
    check_tree(dir.path());
    let reqs = server.requests.lock().unwrap().clone();
    assert_eq!(reqs, ["range=None".to_string(), format!("range=Some({cut})")]);
    assert!(seen.warns.lock().unwrap().iter().any(|w| w.contains("retrying")));
}

#[test]
fn a_server_ignoring_range_is_read_again_from_the_start() {
    let body = gz(&tree_tar());
    let cut = body.len() / 2;
    let (r, server, _, dir) = run(body, ImageFormat::TarGz, Mode::CutNoRange(cut));
    r.unwrap();
    check_tree(dir.path());
    assert_eq!(server.requests.lock().unwrap().len(), 2);
}

#[test]
fn a_wrong_sha256_is_refused() {
    let body = zst(&tree_tar());
    let mut img = image(&body, ImageFormat::TarZst);
    img.sha256 = "0".repeat(64);
    let server = serve(body, Mode::Good);
    let dir = tempfile::tempdir().unwrap();
    let e = stream(&UreqFetch::default(), &server.url, &img, dir.path(), quick(), &Seen::default())
        .unwrap_err();
    assert!(matches!(e, StreamError::Sha256Mismatch { .. }), "{e}");
    assert!(e.to_string().contains("refusing"));
}

#[test]
fn a_server_gone_for_good_is_reported_after_the_retries() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", l.local_addr().unwrap());
    drop(l);
    let img = image(b"x", ImageFormat::TarZst);
    let dir = tempfile::tempdir().unwrap();
    let e = stream(&UreqFetch::default(), &url, &img, dir.path(), quick(), &Seen::default())
        .unwrap_err();
    assert!(matches!(e, StreamError::Download { tries: 5, .. }), "{e}");
}

#[test]
fn a_longer_body_than_announced_is_refused() {
    let body = zst(&tree_tar());
    let mut img = image(&body, ImageFormat::TarZst);
    img.size -= 100;
    let server = serve(body, Mode::Good);
    let dir = tempfile::tempdir().unwrap();
    let e = stream(&UreqFetch::default(), &server.url, &img, dir.path(), quick(), &Seen::default())
        .unwrap_err();
    assert!(matches!(e, StreamError::TooLong(_)), "{e}");
}

#[test]
fn an_image_needing_a_huge_zstd_window_is_refused() {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    enc.window_log(27).unwrap();
    enc.write_all(&tree_tar()).unwrap();
    let body = enc.finish().unwrap();
    let (r, _, _, _) = run(body, ImageFormat::TarZst, Mode::Good);
    let e = r.unwrap_err();
    assert!(matches!(e, StreamError::Unpack(_)), "{e}");
    assert!(e.to_string().contains("too much memory"), "{e}");
}
