//! Shared by the server tests: start the real `lazare serve` on loopback with
//! a fresh data dir, talk HTTP to it, make inventories and image fixtures.
#![allow(dead_code)] // each test file uses a different part

use base64::Engine as _;
use lazare_proto::{Dmi, ImageFormat, ImageManifest, Inventory};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const MIB: u64 = 1024 * 1024;

/// A running `lazare serve`; killed on drop.
pub struct TestServer {
    child: Child,
    pub base: String,
    pub data: PathBuf,
    /// `ed25519:BASE64` as printed at start.
    pub public_key: String,
    /// The banner, line by line.
    pub banner: Vec<String>,
}

impl TestServer {
    /// Plain HTTP (`--http`): what these tests' plain ureq client speaks.
    pub fn start(data: &Path) -> TestServer {
        Self::start_with(data, &["--http"])
    }

    /// HTTPS, the default (tests/server_tls.rs).
    pub fn start_https(data: &Path) -> TestServer {
        Self::start_with(data, &[])
    }

    fn start_with(data: &Path, extra: &[&str]) -> TestServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lazare"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .arg("--data")
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting lazare serve");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut banner = Vec::new();
        loop {
            let mut line = String::new();
            let n = out.read_line(&mut line).expect("reading the banner");
            assert!(n > 0, "lazare serve exited during start; banner so far: {banner:#?}");
            let line = line.trim_end().to_string();
            let last = line.starts_with("images:");
            banner.push(line);
            if last {
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let field = |prefix: &str| {
            banner
                .iter()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} in banner {banner:#?}"))
                .trim()
                .to_string()
        };
        let base = field("listening on ");
        let public_key = field("public key: ");
        TestServer { child, base, data: data.to_path_buf(), public_key, banner }
    }

    /// The admin token as kept in the data dir.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin-token")).unwrap().trim().to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `Bearer <admin token>`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token())
    }

    /// A read as the admin's scripts do it.
    pub fn admin_get(&self, path: &str) -> Reply {
        get_with(&self.url(path), &[("Authorization", &self.bearer())])
    }

    /// An admin order (reinstall, accept, forget...).
    pub fn admin_post(&self, path: &str, body: &[u8]) -> Reply {
        let bearer = self.bearer();
        post_with(
            &self.url(path),
            &[("Authorization", &bearer), ("Content-Type", "application/json")],
            body,
        )
    }

    /// A hello as the agent sends it: a fresh challenge, and the machine's
    /// secret once it has one.
    pub fn hello(&self, inv: &Inventory, secret: Option<&str>) -> Hello {
        let challenge = fresh_hex(16);
        let mut headers = vec![
            ("Content-Type", "application/json".to_string()),
            ("Lazare-Challenge", challenge.clone()),
        ];
        if let Some(s) = secret {
            headers.push(("Authorization", format!("Lazare-Machine {s}")));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let reply =
            post_with(&self.url("/api/v1/hello"), &headers, &serde_json::to_vec(inv).unwrap());
        let secret = reply.header("Lazare-Machine-Secret").map(str::to_string);
        Hello { reply, challenge, secret }
    }

    /// The first hello of a new machine, which must enrol it; returns its secret.
    pub fn enrol(&self, inv: &Inventory) -> String {
        let h = self.hello(inv, None);
        assert_eq!(h.reply.status, 200, "{}", h.reply.text());
        h.secret.expect("the first hello enrols the machine: no Lazare-Machine-Secret header")
    }

    /// Kills the server like a power cut of the process (SIGKILL), and waits.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One hello's answer, the challenge it sent, and the secret it got.
pub struct Hello {
    pub reply: Reply,
    pub challenge: String,
    pub secret: Option<String>,
}

/// `n` random bytes in hex.
pub fn fresh_hex(n: usize) -> String {
    let mut raw = vec![0u8; n];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut raw).unwrap();
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// A call as an enrolled machine makes it.
pub fn machine_post(url: &str, secret: &str, content_type: &str, body: &[u8]) -> Reply {
    let auth = format!("Lazare-Machine {secret}");
    post_with(url, &[("Authorization", &auth), ("Content-Type", content_type)], body)
}

pub fn machine_post_json<T: serde::Serialize>(url: &str, secret: &str, v: &T) -> Reply {
    machine_post(url, secret, "application/json", &serde_json::to_vec(v).unwrap())
}

pub fn machine_get(url: &str, secret: &str) -> Reply {
    get_with(url, &[("Authorization", &format!("Lazare-Machine {secret}"))])
}

/// Status, headers and body of one answer, whatever its status.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("answer {} is not JSON ({e}): {}", self.status, self.text()))
    }
}

fn finish(r: Result<ureq::Response, ureq::Error>) -> Reply {
    let resp = match r {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("HTTP transport error: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = resp.header(&n).unwrap_or("").to_string();
            (n, v)
        })
        .collect();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    Reply { status, headers, body }
}

pub fn get(url: &str) -> Reply {
    finish(ureq::get(url).call())
}

pub fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = ureq::get(url);
    for (n, v) in headers {
        req = req.set(n, v);
    }
    finish(req.call())
}

pub fn post(url: &str, content_type: &str, body: &[u8]) -> Reply {
    finish(ureq::post(url).set("Content-Type", content_type).send_bytes(body))
}

pub fn post_with(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut req = ureq::post(url);
    for (n, v) in headers {
        req = req.set(n, v);
    }
    finish(req.send_bytes(body))
}

pub fn post_json<T: serde::Serialize>(url: &str, v: &T) -> Reply {
    post(url, "application/json", &serde_json::to_vec(v).unwrap())
}

/// A plausible old PC, distinct for each `n`. Built from JSON as an agent
/// sends it, so fields added to the type later with defaults need no change.
pub fn inventory(n: u32, ram_mib: u64) -> Inventory {
    let mac = format!("52:54:00:00:{:02x}:{:02x}", (n >> 8) & 0xff, n & 0xff);
    let dmi = Dmi {
        vendor: Some("Dell Inc.".into()),
        product: Some("OptiPlex GX270".into()),
        serial: Some(format!("SN{n:05}")),
        uuid: None,
    };
    let id = Inventory::compute_machine_id(&dmi, std::slice::from_ref(&mac));
    serde_json::from_value(serde_json::json!({
        "machine_id": id,
        "memory_bytes": ram_mib * MIB,
        "cpus": 1,
        "cpu_model": "Intel(R) Pentium(R) 4 CPU 2.40GHz",
        "firmware": "bios",
        "dmi": dmi,
        "disks": [{
            "name": "sda", "size_bytes": 40_000_000_000u64, "model": "ST340014A",
            "serial": format!("5JX{n:05}"), "removable": false, "rotational": true,
            "sector_size": 512,
            "partitions": [{
                "number": 1, "start": MIB, "size": 10 * 1024 * MIB, "fs_type": "ext4",
                "label": null, "uuid": null
            }]
        }],
        "nics": [{"name": "eth0", "mac": mac, "driver": "e100", "carrier": true}],
        "boot_device": "sr0",
        "agent_version": "0.1.0"
    }))
    .expect("the test inventory matches lazare_proto::Inventory")
}

/// Puts `DATA/images/<profile>-test.tar.zst` (arbitrary bytes: the server
/// never looks inside) and its manifest where `lazare image add` would.
pub fn add_image(data: &Path, profile: &str, bytes: &[u8]) -> ImageManifest {
    use sha2::Digest;
    let dir = data.join("images");
    std::fs::create_dir_all(&dir).unwrap();
    let file = format!("{profile}-test.tar.zst");
    std::fs::write(dir.join(&file), bytes).unwrap();
    let m = ImageManifest {
        name: profile.into(),
        file: file.clone(),
        sha256: sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect(),
        size: bytes.len() as u64,
        format: ImageFormat::TarZst,
        installed_size: 2 * 1024 * MIB,
        suite: "bookworm".into(),
        locale: "fr_FR.UTF-8".into(),
        keymap: "fr".into(),
        timezone: "Europe/Paris".into(),
        created: 1_700_000_000,
        chunks: None,
        tools: None,
        torrent: None,
    };
    let manifest = dir.join(format!("{file}.json"));
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    // The chunk index as `lazare image add` makes it (the plan names its hash).
    lazare::image::chunks::ensure(&manifest).unwrap()
}

/// Verifies an `ed25519:BASE64` signature with OpenSSL, an implementation
/// independent of ours. The raw key becomes a PEM SubjectPublicKeyInfo.
pub fn openssl_verify(public: &str, body: &[u8], signature: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = b64.decode(public.strip_prefix("ed25519:").expect("key prefix")).unwrap();
    assert_eq!(raw.len(), 32);
    let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    der.extend_from_slice(&raw);
    let pem =
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", b64.encode(&der));
    let sig = b64.decode(signature.strip_prefix("ed25519:").expect("signature prefix")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pub.pem"), pem).unwrap();
    std::fs::write(dir.path().join("body"), body).unwrap();
    std::fs::write(dir.path().join("sig"), sig).unwrap();
    let out = Command::new("openssl")
        .current_dir(dir.path())
        .args(["pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin"])
        .args(["-in", "body", "-sigfile", "sig"])
        .output()
        .expect("running openssl (apt package openssl)");
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && text.contains("Signature Verified Successfully")
}

/// Sends a request with a body of `len` bytes over a raw socket, reading the
/// answer while the body is still being written: a server that refuses a
/// huge body answers early and closes, which a write-then-read client would
/// see as a broken pipe instead of the status.
pub fn post_huge(base: &str, path: &str, len: usize) -> u16 {
    let addr = base.strip_prefix("http://").unwrap().to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\n\r\n"
    );
    let w = std::thread::spawn(move || {
        let chunk = vec![b' '; 64 * 1024];
        let _ = writer.write_all(head.as_bytes());
        let mut sent = 0;
        while sent < len {
            let n = chunk.len().min(len - sent);
            if writer.write_all(&chunk[..n]).is_err() {
                break;
            }
            sent += n;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = w.join();
    let text = String::from_utf8_lossy(&answer);
    let status = text.split_whitespace().nth(1).unwrap_or_else(|| panic!("no answer: {text:?}"));
    status.parse().unwrap()
}
