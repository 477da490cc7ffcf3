//! The typed `lazare.*` keys of the kernel command line contract (DESIGN.md).
//! Each value type parses with `FromStr`; errors name the key and say what is expected.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use lazare_proto::PublicKey;

pub const KEY_SERVER: &str = "lazare.server";
pub const KEY_ACTION: &str = "lazare.action";
pub const KEY_KEY: &str = "lazare.key";
pub const KEY_INSECURE: &str = "lazare.insecure";
pub const KEY_RETRIES: &str = "lazare.retries";

/// Every `lazare.*` key this crate knows; others are typos and are refused.
pub const KNOWN_KEYS: [&str; 5] = [KEY_SERVER, KEY_ACTION, KEY_KEY, KEY_INSECURE, KEY_RETRIES];

/// `lazare serve`'s default port, used for a server taken from `ip=`.
pub const DEFAULT_SERVER_PORT: u16 = 8470;

/// A `lazare.*` value that does not parse: `{key}={value}: {expected}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}={value}: {expected}")]
#[non_exhaustive]
pub struct ValueError {
    pub key: &'static str,
    pub value: String,
    pub expected: String,
}

impl ValueError {
    pub fn new(key: &'static str, value: &str, expected: impl Into<String>) -> Self {
        ValueError { key, value: value.to_string(), expected: expected.into() }
    }
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The host part of a server URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Host {
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

impl FromStr for Host {
    type Err = ValueError;

    /// A DNS name, a dotted IPv4 address or an IPv6 address (bare or in
    /// brackets), as a DHCP lease's option 66 or a URL's host gives it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v6 = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
        if let Ok(a) = v6.parse::<Ipv6Addr>() {
            return Ok(Host::V6(a));
        }
        parse_host(s).map_err(|e| ValueError::new(KEY_SERVER, s, e))
    }
}

/// An install server base URL: `http[s]://host[:port][/path]`, parsed once
/// and kept typed from `lazare build --server` to the agent's requests. The
/// path never ends in `/`, so [`ServerUrl::join`] and everything that
/// appends to the printed URL (lazare-next) need no trimming.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerUrl {
    scheme: Scheme,
    host: Host,
    port: Option<u16>,
    /// Empty, or starting with `/` and not ending with it.
    path: String,
}

impl ServerUrl {
    /// The root of `host` (no base path).
    pub fn new(scheme: Scheme, host: Host, port: Option<u16>) -> ServerUrl {
        ServerUrl { scheme, host, port, path: String::new() }
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The base path: empty, or `/a/b` (no trailing `/`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The port, or the scheme's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        })
    }

    /// `reference` resolved against this base, as the agent requests it: a
    /// path (`/api/v1/hello`, `images/a.tar.zst`) goes under the base path;
    /// an absolute `http(s)://` URL (a plan's image on a mirror) stays as it
    /// is.
    pub fn join(&self, reference: &str) -> String {
        let absolute = reference.split_once("://").is_some_and(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
        });
        if absolute {
            return reference.to_string();
        }
        format!("{self}/{}", reference.trim_start_matches('/'))
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        f.write_str(&self.path)
    }
}

impl FromStr for ServerUrl {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |what: String| ValueError::new(KEY_SERVER, s, what);
        let (scheme, rest) = s.split_once("://").ok_or_else(|| err(EXPECTED_URL.into()))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => {
                return Err(err(format!(
                    "scheme {other}: only http and https are supported ({EXPECTED_URL})"
                )))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        check_path(path).map_err(err)?;
        let (host, port) = split_authority(authority).map_err(err)?;
        // `http://srv/lazare/` and `http://srv/lazare` are one base.
        let path = path.trim_end_matches('/').to_string();
        Ok(ServerUrl { scheme, host, port, path })
    }
}

const EXPECTED_URL: &str = "expected http://HOST[:PORT][/PATH] or https://..., or dhcp";

fn check_path(path: &str) -> Result<(), String> {
    let bad =
        path.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '"'));
    match bad {
        Some(c) => {
            Err(format!("{c:?} in the path: expected a plain base path (no query or fragment)"))
        }
        None => Ok(()),
    }
}

fn split_authority(a: &str) -> Result<(Host, Option<u16>), String> {
    if a.contains('@') {
        return Err("user names or passwords in the URL are not supported".into());
    }
    let (host, port) = if let Some(inner) = a.strip_prefix('[') {
        let (v6, after) = inner.split_once(']').ok_or("unclosed [ in the host")?;
        let addr: Ipv6Addr = v6.parse().map_err(|_| format!("[{v6}] is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(format!("{after:?} after the IPv6 address"))?),
        };
        (Host::V6(addr), port)
    } else {
        let (h, p) = match a.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        };
        (parse_host(h)?, p)
    };
    let port = port.map(parse_port).transpose()?;
    Ok((host, port))
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("port {p:?}: expected a number from 1 to 65535")),
    }
}

/// A DNS name (RFC 1123 labels) or a dotted IPv4 address; all-numeric names
/// must be valid addresses so that `300.1.2.3` is refused, not looked up.
fn parse_host(h: &str) -> Result<Host, String> {
    if h.is_empty() {
        return Err("empty host".into());
    }
    let labels: Vec<&str> = h.strip_suffix('.').unwrap_or(h).split('.').collect();
    let numeric = labels.iter().all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    if numeric
        || labels.last().is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
    {
        return h
            .parse::<Ipv4Addr>()
            .map(Host::V4)
            .map_err(|_| format!("{h} is not an IPv4 address"));
    }
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if h.len() > 253 || !labels.iter().all(label_ok) {
        return Err(format!("{h:?} is not a host name (letters, digits, '-' between dots)"));
    }
    Ok(Host::Name(h.to_string()))
}

/// `lazare.server=`: a URL, or `dhcp` (next-server / option 66 of the lease).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Server {
    Url(ServerUrl),
    Dhcp,
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Server::Url(u) => write!(f, "{u}"),
            Server::Dhcp => f.write_str("dhcp"),
        }
    }
}

impl FromStr for Server {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "dhcp" {
            return Ok(Server::Dhcp);
        }
        s.parse().map(Server::Url)
    }
}

/// As the text the command line has (`lazare-agent config`, build.json,
/// `lazare build --config`).
impl serde::Serialize for Server {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Server {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for ServerUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ServerUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// `lazare.action=`: what the agent on the CD does once it boots. Not the
/// plan's `lazare_proto::Action` (install, inventory, wait), which is the
/// server's answer: `rescue` needs no server and `wait` comes only from one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BootAction {
    #[default]
    Install,
    /// Report the inventory and power off.
    Inventory,
    /// Bring the network up and open a shell.
    Rescue,
}

impl BootAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BootAction::Install => "install",
            BootAction::Inventory => "inventory",
            BootAction::Rescue => "rescue",
        }
    }
}

impl fmt::Display for BootAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BootAction {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "install" => Ok(BootAction::Install),
            "inventory" => Ok(BootAction::Inventory),
            "rescue" => Ok(BootAction::Rescue),
            _ => Err(ValueError::new(KEY_ACTION, s, "expected install, inventory or rescue")),
        }
    }
}

/// `lazare.key=ed25519:BASE64`: the server's public key, as proto's
/// [`PublicKey`] (the one type for it), with the error naming the key.
pub fn parse_key(s: &str) -> Result<PublicKey, ValueError> {
    s.parse().map_err(|e| {
        ValueError::new(
            KEY_KEY,
            s,
            format!("expected ed25519: followed by the base64 of a 32-byte public key ({e})"),
        )
    })
}

/// `lazare.insecure`: a flag, or `=1/0/yes/no/true/false/on/off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Insecure(pub bool);

impl Insecure {
    /// From the parameter's value: a bare flag means on.
    pub fn from_value(value: Option<&str>) -> Result<Insecure, ValueError> {
        value.map_or(Ok(Insecure(true)), str::parse)
    }
}

impl FromStr for Insecure {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "1" | "yes" | "true" | "on" => Ok(Insecure(true)),
            "0" | "no" | "false" | "off" => Ok(Insecure(false)),
            _ => Err(ValueError::new(
                KEY_INSECURE,
                s,
                "expected no value, or 1, 0, yes, no, true, false, on or off",
            )),
        }
    }
}

impl fmt::Display for Insecure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "1" } else { "0" })
    }
}

/// `lazare.retries=N`: network/server attempts before asking the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Retries(pub u32);

impl FromStr for Retries {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<u32>() {
            Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => Ok(Retries(n)),
            _ => Err(ValueError::new(KEY_RETRIES, s, "expected a whole number (0 to 4294967295)")),
        }
    }
}

impl fmt::Display for Retries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
