//! A man in the middle between a booting CD and `lazare serve`, for the VM
//! tests (tests/vm_proxy.rs, tests/vm_tls.rs). The guest reaches
//! 127.0.0.1:PORT through qemu's guestfwd; whatever listens there is what
//! the CD talks to:
//! - [`relay`]: a TCP relay that forwards byte for byte and records both
//!   directions of every connection, with when each chunk crossed;
//! - [`replay`]: answers every connection with bytes recorded earlier;
//! - [`mitm`]: an HTTP/1.1 man in the middle that reads each request and
//!   answer, and forwards, changes or replays the hello's answer. Its front
//!   is plain TCP, or TLS with a certificate for a key of its own.
#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lazare_proto::PublicKey;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

/// A proxy listening on 127.0.0.1:PORT, and what it saw. Dropping it stops
/// the listener (connections under way finish by themselves), so the next
/// boot of the same CD can meet another proxy on the same port.
pub struct Proxy<T> {
    pub seen: T,
    port: u16,
    stop: Arc<AtomicBool>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl<T> Drop for Proxy<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept, which then sees the flag; once its
        // thread has ended, the port is free for the next proxy.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accepting.take() {
            let _ = t.join();
        }
    }
}

/// Accepts on 127.0.0.1:`port` until the returned proxy is dropped, each
/// connection handled by `handle` on its own thread.
fn listen<T>(port: u16, seen: T, handle: impl Fn(TcpStream) + Clone + Send + 'static) -> Proxy<T> {
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let accepting = std::thread::spawn(move || {
        for c in l.incoming() {
            if stopped.load(Ordering::SeqCst) {
                break;
            }
            let Ok(c) = c else { continue };
            let handle = handle.clone();
            std::thread::spawn(move || handle(c));
        }
    });
    Proxy { seen, port, stop, accepting: Some(accepting) }
}

/// The bytes one `read` returned, and when.
pub type Chunks = Vec<(Instant, Vec<u8>)>;

/// What crossed one connection, chunk by chunk as `read` returned it.
#[derive(Debug, Default, Clone)]
pub struct Conn {
    /// From the guest to the server.
    pub up: Chunks,
    /// From the server (or whoever answers in its place) to the guest.
    pub down: Chunks,
}

impl Conn {
    pub fn up_bytes(&self) -> Vec<u8> {
        self.up.iter().flat_map(|(_, b)| b.iter().copied()).collect()
    }
    pub fn down_bytes(&self) -> Vec<u8> {
        self.down.iter().flat_map(|(_, b)| b.iter().copied()).collect()
    }
}

/// The connections a relay or replayer saw, in the order they came.
pub type Recording = Arc<Mutex<Vec<Conn>>>;

/// One TLS record: its outer content type (0x16 handshake, 0x14 change
/// cipher spec, 0x15 alert, 0x17 application data, which in TLS 1.3 is also
/// every encrypted handshake message or alert), its length, and when its
/// last byte arrived.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    pub content_type: u8,
    pub len: usize,
    pub complete: Instant,
}

/// Splits recorded chunks into TLS records by their 5-byte headers (type,
/// version, length). A record cut off by the end of the recording is left out.
pub fn tls_records(chunks: &[(Instant, Vec<u8>)]) -> Vec<Record> {
    let (mut out, mut pending) = (Vec::new(), Vec::new());
    for (at, chunk) in chunks {
        pending.extend_from_slice(chunk);
        while pending.len() >= 5 {
            let len = u16::from_be_bytes([pending[3], pending[4]]) as usize;
            if pending.len() < 5 + len {
                break;
            }
            out.push(Record { content_type: pending[0], len, complete: *at });
            pending.drain(..5 + len);
        }
    }
    out
}

/// Relays 127.0.0.1:`port` to `target` (host:port) byte for byte.
pub fn relay(port: u16, target: String) -> Proxy<Recording> {
    let seen = Recording::default();
    let out = seen.clone();
    listen(port, seen, move |client: TcpStream| {
        let Ok(server) = TcpStream::connect(&target) else { return };
        let n = new_conn(&out);
        let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let down = out.clone();
        std::thread::spawn(move || copy(s2, c2, &down, n, |c| &mut c.down));
        copy(client, server, &out, n, |c| &mut c.up);
    })
}

fn new_conn(rec: &Recording) -> usize {
    let mut s = rec.lock().unwrap();
    s.push(Conn::default());
    s.len() - 1
}

/// Copies `from` to `to` until either end closes, noting each chunk.
fn copy(
    mut from: TcpStream,
    mut to: TcpStream,
    rec: &Recording,
    n: usize,
    side: fn(&mut Conn) -> &mut Chunks,
) {
    let mut buf = [0u8; 16384];
    loop {
        let got = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => k,
        };
        side(&mut rec.lock().unwrap()[n]).push((Instant::now(), buf[..got].to_vec()));
        if to.write_all(&buf[..got]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Answers every connection to 127.0.0.1:`port` with `answer` (a server's
/// bytes recorded earlier) once the guest has sent its first bytes, then
/// records what the guest sends until it closes. The server is never asked.
pub fn replay(port: u16, answer: Vec<u8>) -> Proxy<Recording> {
    let seen = Recording::default();
    let out = seen.clone();
    listen(port, seen, move |mut client: TcpStream| {
        let n = new_conn(&out);
        let _ = client.set_read_timeout(Some(Duration::from_secs(120)));
        let mut buf = [0u8; 16384];
        let mut answered = false;
        loop {
            let got = match client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => k,
            };
            out.lock().unwrap()[n].up.push((Instant::now(), buf[..got].to_vec()));
            if !answered {
                answered = true;
                out.lock().unwrap()[n].down.push((Instant::now(), answer.clone()));
                if client.write_all(&answer).is_err() {
                    break;
                }
            }
        }
    })
}

/// What the man in the middle does with a hello (`POST /api/v1/hello`).
/// Every other request is forwarded as it is.
#[derive(Clone)]
pub enum Play {
    /// Forwards it and its answer.
    Forward,
    /// Forwards it, and changes the server's answer in place with this
    /// function (which gets the whole answer: status line, headers, body;
    /// its length stays, as its Content-Length says).
    Tamper(fn(&mut [u8])),
    /// Answers it with these bytes (a recorded answer) without asking the server.
    Replay(Vec<u8>),
}

/// The man in the middle's side facing the guest.
#[derive(Clone)]
pub enum Front {
    /// Plain HTTP.
    Plain,
    /// TLS with a self-signed certificate for a fresh ed25519 key of its own
    /// (the proxy cannot hold the install server's private key).
    ForgedTls,
    /// TLS with the server's own certificate (it is public: see
    /// [`server_certificate`]), the handshake signed with a fresh key.
    CopiedCert(CertificateDer<'static>),
}

/// The man in the middle's side facing `lazare serve` (host:port).
#[derive(Clone)]
pub enum Upstream {
    Plain(String),
    /// HTTPS, the server checked against its pinned key as the agent does.
    Pinned(String, PublicKey),
}

/// What the man in the middle saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// The request lines the guest sent (`POST /api/v1/hello HTTP/1.1`).
    pub requests: Vec<String>,
    /// The server's answers to hellos, whole and as it sent them.
    pub hello_answers: Vec<Vec<u8>>,
    /// TLS handshakes with the guest that failed, with rustls's reason.
    pub refused_handshakes: Vec<String>,
}

/// An HTTP/1.1 man in the middle on 127.0.0.1:`port`. The guest's n-th
/// connection meets `fronts[n % fronts.len()]`.
pub fn mitm(
    port: u16,
    fronts: Vec<Front>,
    upstream: Upstream,
    play: Play,
) -> Proxy<Arc<Mutex<Seen>>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let tls: Vec<Option<Arc<rustls::ServerConfig>>> = fronts
        .into_iter()
        .map(|f| match f {
            Front::Plain => None,
            Front::ForgedTls => Some(forged_server_config()),
            Front::CopiedCert(cert) => Some(copied_cert_config(cert)),
        })
        .collect();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let out = seen.clone();
    listen(port, seen, move |tcp: TcpStream| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        let client: Box<dyn Stream> = match &tls[n % tls.len()] {
            None => Box::new(tcp),
            Some(config) => match accept_tls(tcp, config.clone()) {
                Ok(s) => Box::new(s),
                Err(e) => {
                    out.lock().unwrap().refused_handshakes.push(e.to_string());
                    return;
                }
            },
        };
        // A closed or broken connection ends this exchange: the guest's
        // view of it is what the tests check.
        let _ = exchange(client, &upstream, &play, &out);
    })
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A rustls server config with a certificate for a key made here and now.
fn forged_server_config() -> Arc<rustls::ServerConfig> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["lazare".to_string()])
        .unwrap()
        .self_signed(&pair)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    Arc::new(config)
}

/// The certificate a TLS server at `addr` shows to anyone who connects.
pub fn server_certificate(addr: &str) -> CertificateDer<'static> {
    let config = lazare_agent::tls::client_config(lazare_agent::tls::Trust::Anything, 0).unwrap();
    let name = ServerName::try_from("lazare").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    conn.peer_certificates().expect("the server's certificate")[0].clone().into_owned()
}

/// Shows `cert` and signs the handshake with a key made here and now.
fn copied_cert_config(cert: CertificateDer<'static>) -> Arc<rustls::ServerConfig> {
    #[derive(Debug)]
    struct Always(Arc<rustls::sign::CertifiedKey>);
    impl rustls::server::ResolvesServerCert for Always {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let der = PrivatePkcs8KeyDer::from(pair.serialize_der());
    let signer = rustls::crypto::ring::sign::any_eddsa_type(&der).unwrap();
    // with_single_cert would refuse a key that does not match the
    // certificate: a resolver hands the pair out as it is.
    let certified = rustls::sign::CertifiedKey::new(vec![cert], signer);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Always(Arc::new(certified))));
    Arc::new(config)
}

/// Completes the TLS handshake with the guest, or says why it failed.
fn accept_tls(
    mut tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> std::io::Result<rustls::StreamOwned<rustls::ServerConnection, TcpStream>> {
    tcp.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    Ok(rustls::StreamOwned::new(conn, tcp))
}

fn connect(upstream: &Upstream) -> std::io::Result<Box<dyn Stream>> {
    match upstream {
        Upstream::Plain(addr) => Ok(Box::new(TcpStream::connect(addr)?)),
        Upstream::Pinned(addr, key) => {
            let config =
                lazare_agent::tls::client_config(lazare_agent::tls::Trust::Pinned(key.clone()), 0)
                    .map_err(std::io::Error::other)?;
            let name = ServerName::try_from("lazare").unwrap();
            let conn =
                rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
            Ok(Box::new(rustls::StreamOwned::new(conn, TcpStream::connect(addr)?)))
        }
    }
}

/// Request after request from the guest: forwarded, changed or answered
/// here, as `play` says for hellos. The server connection is opened at the
/// first request that needs it.
fn exchange(
    client: Box<dyn Stream>,
    upstream: &Upstream,
    play: &Play,
    seen: &Mutex<Seen>,
) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    let mut server: Option<BufReader<Box<dyn Stream>>> = None;
    while let Some(request) = read_message(&mut client, None)? {
        let line = first_line(&request);
        seen.lock().unwrap().requests.push(line.clone());
        let hello = line.starts_with("POST /api/v1/hello ");
        if let (true, Play::Replay(recorded)) = (hello, play) {
            client.get_mut().write_all(recorded)?;
            client.get_mut().flush()?;
            continue;
        }
        let s = match &mut server {
            Some(s) => s,
            None => server.insert(BufReader::new(connect(upstream)?)),
        };
        s.get_mut().write_all(&request)?;
        s.get_mut().flush()?;
        let method = line.split(' ').next().unwrap_or("").to_string();
        let Some(mut answer) = read_message(s, Some(&method))? else { break };
        if hello {
            seen.lock().unwrap().hello_answers.push(answer.clone());
            if let Play::Tamper(change) = play {
                change(&mut answer);
            }
        }
        client.get_mut().write_all(&answer)?;
        client.get_mut().flush()?;
    }
    Ok(())
}

fn first_line(message: &[u8]) -> String {
    let end = message.iter().position(|&b| b == b'\r').unwrap_or(message.len());
    String::from_utf8_lossy(&message[..end]).into_owned()
}

/// Where an HTTP message's body starts (after the blank line).
pub fn body_start(message: &[u8]) -> Option<usize> {
    message.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// One whole HTTP/1.1 message, as its bytes crossed: head, then a body
/// framed by Content-Length, chunked encoding, or (answers only) the end of
/// the connection. `request_method` is None for a request, else the method
/// of the request this answers. None when the peer closed between messages.
fn read_message(
    r: &mut BufReader<impl Read>,
    request_method: Option<&str>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut msg = Vec::new();
    let (mut length, mut chunked) = (None, false);
    loop {
        let start = msg.len();
        if r.read_until(b'\n', &mut msg)? == 0 {
            if msg.is_empty() {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = String::from_utf8_lossy(&msg[start..]).trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            chunked = true;
        }
    }
    let status: u16 = first_line(&msg).split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let bodiless = match request_method {
        None => length.is_none() && !chunked,
        Some(m) => m == "HEAD" || status / 100 == 1 || status == 204 || status == 304,
    };
    if bodiless {
        return Ok(Some(msg));
    }
    if chunked {
        loop {
            let start = msg.len();
            r.read_until(b'\n', &mut msg)?;
            let size_text = String::from_utf8_lossy(&msg[start..]).to_string();
            let hex = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16).map_err(std::io::Error::other)?;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    let start = msg.len();
                    r.read_until(b'\n', &mut msg)?;
                    if msg[start..].trim_ascii().is_empty() {
                        return Ok(Some(msg));
                    }
                }
            }
            let start = msg.len();
            msg.resize(start + size + 2, 0);
            r.read_exact(&mut msg[start..])?;
        }
    }
    match length {
        Some(n) => {
            let start = msg.len();
            msg.resize(start + n, 0);
            r.read_exact(&mut msg[start..])?;
        }
        None => {
            r.read_to_end(&mut msg)?;
        }
    }
    Ok(Some(msg))
}
