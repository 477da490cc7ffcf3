//! The small value types inside an `ip=`: autoconf words, netmasks, MAC
//! addresses, the kernel's DHCP client identifier.

use std::fmt;
use std::net::Ipv4Addr;

/// The `<autoconf>` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Autoconf {
    Off,
    None,
    On,
    Any,
    Dhcp,
    Bootp,
    Rarp,
    Both,
    Dhcp6,
    Auto6,
    Either6,
    Link6,
    SingleDhcp,
    Ibft,
}

const AUTOCONF_WORDS: [(&str, Autoconf); 14] = [
    ("off", Autoconf::Off),
    ("none", Autoconf::None),
    ("on", Autoconf::On),
    ("any", Autoconf::Any),
    ("dhcp", Autoconf::Dhcp),
    ("bootp", Autoconf::Bootp),
    ("rarp", Autoconf::Rarp),
    ("both", Autoconf::Both),
    ("dhcp6", Autoconf::Dhcp6),
    ("auto6", Autoconf::Auto6),
    ("either6", Autoconf::Either6),
    ("link6", Autoconf::Link6),
    ("single-dhcp", Autoconf::SingleDhcp),
    ("ibft", Autoconf::Ibft),
];

pub(super) const AUTOCONF_EXPECTED: &str =
    "expected off, none, on, any, dhcp, bootp, rarp, both, dhcp6, auto6, either6, link6, single-dhcp or ibft";

impl Autoconf {
    pub fn as_str(self) -> &'static str {
        AUTOCONF_WORDS.iter().find(|(_, a)| *a == self).map(|(w, _)| *w).unwrap_or("?")
    }

    fn from_word(w: &str) -> Option<Autoconf> {
        AUTOCONF_WORDS.iter().find(|(word, _)| *word == w).map(|(_, a)| *a)
    }

    /// A comma separated list (`dhcp,dhcp6`), as dracut accepts, or the
    /// kernel's `dhcp,<client-id-type>,<client-id-value>`.
    pub(super) fn parse_field(s: &str) -> Option<(Vec<Autoconf>, Option<ClientId>)> {
        if let Some(list) = s.split(',').map(Autoconf::from_word).collect::<Option<Vec<_>>>() {
            return Some((list, None));
        }
        let (kind, value) = s.strip_prefix("dhcp,")?.split_once(',')?;
        let kind = match kind.strip_prefix("0x") {
            Some(hex) if !hex.is_empty() && hex.len() <= 2 => u8::from_str_radix(hex, 16).ok()?,
            Some(_) => return None,
            None if kind.len() > 1 && kind.starts_with('0') => return None,
            None => kind.parse::<u8>().ok().filter(|_| kind.bytes().all(|b| b.is_ascii_digit()))?,
        };
        (!value.is_empty())
            .then(|| (vec![Autoconf::Dhcp], Some(ClientId { kind, value: value.to_string() })))
    }
}

/// The kernel's DHCP client identifier, `ip=dhcp,<type>,<value>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ClientId {
    /// The identifier type (RFC 2132 option 61; 0 = not a hardware address).
    #[serde(rename = "type")]
    pub kind: u8,
    pub value: String,
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dhcp,{},{}", self.kind, self.value)
    }
}

impl fmt::Display for Autoconf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A netmask, dotted (`255.255.255.0`, contiguous) or a prefix length (`24`, `64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Netmask {
    Dotted(Ipv4Addr),
    Prefix(u8),
}

impl Netmask {
    /// The prefix length (a dotted mask is contiguous by construction).
    pub fn prefix_len(self) -> u8 {
        match self {
            Netmask::Dotted(m) => u32::from(m).leading_ones() as u8,
            Netmask::Prefix(p) => p,
        }
    }

    /// The dotted IPv4 form, when the prefix fits IPv4.
    pub fn to_ipv4(self) -> Option<Ipv4Addr> {
        let p = u32::from(self.prefix_len());
        (p <= 32).then(|| Ipv4Addr::from(u32::MAX.checked_shl(32 - p).unwrap_or(0)))
    }
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netmask::Dotted(m) => write!(f, "{m}"),
            Netmask::Prefix(p) => write!(f, "{p}"),
        }
    }
}

/// A MAC address (`52:54:00:12:34:56`): proto's, the one parser for it.
pub use lazare_proto::MacAddr;
