//! Talking to the install server (DESIGN.md "Server API"): ureq with rustls
//! (no OpenSSL in a static binary) and our own resolver (no glibc NSS).

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kernel_cmdline::ServerUrl;
use lazare_proto::{
    machine_auth, valid_token_hex, Event, Inventory, CHALLENGE_BYTES, CHALLENGE_HEADER,
    SECRET_HEADER, SIGNATURE_HEADER,
};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error("{url}: the server answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
    /// ureq's message already names the URL.
    #[error("{message}")]
    Transport { url: String, message: String },
    /// The TLS handshake met a certificate that is not for the CD's pinned
    /// key (see [`crate::tls::is_not_pinned`]).
    #[error("{message}")]
    NotPinned { url: String, message: String },
    #[error("{url}: reading the answer: {source}")]
    Read { url: String, source: std::io::Error },
}

/// The raw answer to a hello: the plan's exact bytes and its signature.
#[derive(Debug, Clone)]
pub struct SignedAnswer {
    pub body: Vec<u8>,
    pub signature: Option<String>,
    /// The `Date` header, to fix a wrong clock.
    pub date: Option<String>,
    /// The random challenge this hello sent: the plan must echo it.
    pub challenge: String,
    /// When the hello was sent, on the monotonic clock: the plan's validity
    /// counts from here (the wall clock of an old PC may be years off).
    pub sent: Instant,
}

/// A fresh random challenge in hex. PID 1 credited the kernel's pool at
/// boot (`entropy::credit_boot_entropy`), so this never blocks.
pub fn new_challenge() -> std::io::Result<String> {
    let mut raw = [0u8; CHALLENGE_BYTES];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut raw)?;
    Ok(lazare_proto::hex(&raw))
}

/// An HTTP agent that resolves names through `dns` (the lease's servers)
/// and checks https servers with `tls` ([`crate::tls::client_config`]).
pub fn agent(dns: Vec<Ipv4Addr>, tls: Arc<rustls::ClientConfig>) -> ureq::Agent {
    let resolver = move |netloc: &str| resolve(netloc, &dns);
    ureq::AgentBuilder::new()
        .resolver(resolver)
        .tls_config(tls)
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(60))
        .user_agent(concat!("lazare-agent/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// `host:port` to addresses: literals as they are, names through `dns`
/// (the lease's servers) with the agent's own resolver.
pub fn resolve(netloc: &str, dns: &[Ipv4Addr]) -> std::io::Result<Vec<SocketAddr>> {
    // Literal addresses never need a lookup.
    if let Ok(addrs) = netloc.parse::<SocketAddr>() {
        return Ok(vec![addrs]);
    }
    let (host, port) = netloc
        .rsplit_once(':')
        .ok_or_else(|| std::io::Error::other(format!("no port in {netloc}")))?;
    let port: u16 = port.parse().map_err(std::io::Error::other)?;
    if host == "localhost" {
        return ("127.0.0.1", port).to_socket_addrs().map(Iterator::collect);
    }
    let id = (std::process::id() as u16) ^ (port.rotate_left(7));
    let ips = crate::net::dns::resolve(host, dns, id).map_err(std::io::Error::other)?;
    Ok(ips.into_iter().map(|ip| SocketAddr::from((ip, port))).collect())
}

/// A client of the install server at `base` (`http://10.0.2.100:8470`).
#[derive(Clone)]
pub struct Client {
    pub agent: ureq::Agent,
    pub base: ServerUrl,
    /// The lease's name servers (the room's engine is given the server's
    /// address, resolved here: it has no resolver of its own).
    pub dns: Vec<Ipv4Addr>,
    /// This machine's enrolment secret, from the hello that enrolled it:
    /// every later call proves the machine with it.
    secret: Arc<Mutex<Option<String>>>,
}

impl Client {
    pub fn new(agent: ureq::Agent, base: ServerUrl, dns: Vec<Ipv4Addr>) -> Client {
        Client { agent, base, dns, secret: Arc::new(Mutex::new(None)) }
    }

    /// The server's address (the first its name resolves to), at `port`.
    pub fn server_addr(&self, port: u16) -> std::io::Result<SocketAddr> {
        let netloc = format!("{}:{port}", self.base.host());
        resolve(&netloc, &self.dns)?
            .into_iter()
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{netloc}: no address")))
    }

    /// The machine secret, once the server gave one.
    pub fn secret(&self) -> Option<String> {
        self.secret.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Uses `secret` (a kept one); false when it is not a secret's shape.
    pub fn set_secret(&self, secret: &str) -> bool {
        let ok = valid_token_hex(secret);
        if ok {
            *self.secret.lock().unwrap_or_else(|e| e.into_inner()) = Some(secret.to_string());
        }
        ok
    }

    fn auth(&self, req: ureq::Request) -> ureq::Request {
        match self.secret() {
            Some(s) => req.set("Authorization", &machine_auth(&s)),
            None => req,
        }
    }

    /// A route (`/api/v1/hello`) or a plan's URL, resolved against the base.
    pub fn url(&self, reference: &str) -> String {
        self.base.join(reference)
    }

    fn post(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<ureq::Response, HttpError> {
        self.post_with(path, content_type, body, &[])
    }

    fn post_with(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<ureq::Response, HttpError> {
        let url = self.url(path);
        let mut req = self.auth(self.agent.post(&url)).set("Content-Type", content_type);
        for (name, value) in headers {
            req = req.set(name, value);
        }
        match req.send_bytes(body) {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(status, r)) => {
                let body = r.into_string().unwrap_or_default().chars().take(300).collect();
                Err(HttpError::Status { url, status, body })
            }
            Err(e) if crate::tls::is_not_pinned(&e) => {
                Err(HttpError::NotPinned { url, message: e.to_string() })
            }
            Err(e) => Err(HttpError::Transport { url, message: e.to_string() }),
        }
    }

    /// `POST /api/v1/hello` with the inventory and a fresh challenge (and the
    /// machine secret once it has one); returns the signed plan bytes and
    /// keeps the secret the server gives at enrolment.
    pub fn hello(&self, inv: &Inventory) -> Result<SignedAnswer, HttpError> {
        let url = self.url("/api/v1/hello");
        let challenge =
            new_challenge().map_err(|source| HttpError::Read { url: url.clone(), source })?;
        let json = serde_json::to_vec(inv).unwrap_or_default();
        let sent = Instant::now();
        let r = self.post_with(
            "/api/v1/hello",
            "application/json",
            &json,
            &[(CHALLENGE_HEADER, &challenge)],
        )?;
        let signature = r.header(SIGNATURE_HEADER).map(str::to_string);
        let date = r.header("Date").map(str::to_string);
        if let Some(secret) = r.header(SECRET_HEADER) {
            self.set_secret(secret);
        }
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut r.into_reader(), &mut body)
            .map_err(|source| HttpError::Read { url, source })?;
        Ok(SignedAnswer { body, signature, date, challenge, sent })
    }

    /// `POST /api/v1/machines/{id}/events`.
    pub fn event(&self, machine_id: &str, event: &Event) -> Result<(), HttpError> {
        let json = serde_json::to_vec(event).unwrap_or_default();
        self.post(&format!("/api/v1/machines/{machine_id}/events"), "application/json", &json)
            .map(drop)
    }

    /// `POST /api/v1/machines/{id}/log` with the whole log so far.
    pub fn log(&self, machine_id: &str, text: &str) -> Result<(), HttpError> {
        self.post(
            &format!("/api/v1/machines/{machine_id}/log"),
            "text/plain; charset=utf-8",
            text.as_bytes(),
        )
        .map(drop)
    }
}

/// Sets the clock from an HTTP `Date` header when the clock is before
/// `floor` (the agent's build time): TLS certificates need a sane clock.
/// Returns the new time when it changed the clock.
pub fn fix_clock(date: &str, floor: u64) -> Option<u64> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    if now >= floor {
        return None;
    }
    let server =
        httpdate::parse_http_date(date).ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    crate::sys::set_clock(server as i64).ok()?;
    Some(server)
}
