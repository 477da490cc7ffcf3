//! One `ip=` value: the kernel's grammar (Documentation/admin-guide/nfs/nfsroot.rst)
//! and dracut's (dracut.cmdline(7)), which extends it.
//!
//! ```text
//! ip=<autoconf>[,<autoconf>...]                                    (Short)
//! ip=<device>:<autoconf>[:[<mtu>][:<macaddr>]]                       (Device, dracut)
//! ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>
//!    [:<dns0-ip>[:<dns1-ip>[:<ntp0-ip>]]]                              (Full, kernel)
//!    [:[<mtu>][:<macaddr>]]                                           (Full, dracut)
//! ```
//! IPv6 addresses are written in brackets (`[2001:db8::1]`), as dracut wants.
//! Parsing is total over the documented forms, including ones lazare cannot
//! carry out (rarp, ibft, dhcp6): deciding that is `resolve`'s job.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

mod values;

use values::AUTOCONF_EXPECTED;
pub use values::{Autoconf, ClientId, MacAddr, Netmask};

/// Which spelling an `ip=` used; kept so that formatting gives the same form back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IpForm {
    /// `ip=dhcp`, `ip=off`, `ip=dhcp,dhcp6`
    Short,
    /// dracut's `ip=<device>:<autoconf>[:[mtu][:mac]]`
    Device,
    /// the kernel's colon separated fields (with dracut's extensions)
    Full,
}

/// One `ip=` value. Empty fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpConfig {
    pub form: IpForm,
    pub client: Option<IpAddr>,
    /// `<server-ip>` (dracut's `<peer>`): the NFS server for the kernel, the
    /// install server for lazare.
    pub server: Option<IpAddr>,
    /// dracut's `<peer>/<prefix>` for point-to-point links.
    pub server_prefix: Option<u8>,
    pub gateway: Option<IpAddr>,
    pub netmask: Option<Netmask>,
    pub hostname: Option<String>,
    pub device: Option<String>,
    /// Empty when the field is empty (the kernel then tries any protocol).
    pub autoconf: Vec<Autoconf>,
    /// `dhcp,<type>,<value>`: the DHCP client identifier (autoconf is `[Dhcp]`).
    pub client_id: Option<ClientId>,
    /// `<dns0-ip>`, `<dns1-ip>` (empty ones skipped).
    pub dns: Vec<IpAddr>,
    pub ntp: Option<IpAddr>,
    pub mtu: Option<u16>,
    pub mac: Option<MacAddr>,
}

/// An `ip=` value that cannot be read; names the field and what it expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ip={value}: {field}: {reason}")]
#[non_exhaustive]
pub struct IpError {
    /// The whole `ip=` value.
    pub value: String,
    /// The field of the grammar, e.g. `client-ip`, `netmask`, `autoconf`.
    pub field: &'static str,
    pub reason: String,
}

/// One colon separated field; `bracketed` when written as `[...]`, and then
/// `suffix` is what follows the `]` (dracut's `[<peer>]/<prefix>`).
#[derive(Debug, Clone, Copy, Default)]
struct Field<'a> {
    text: &'a str,
    bracketed: bool,
    suffix: &'a str,
}

/// Split on `:` except inside `[...]`, as dracut's `ip_to_var` does.
fn split_fields(s: &str) -> Vec<Field<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        if let Some(inner) = rest.strip_prefix('[') {
            if let Some(close) = inner.find(']') {
                let after = &inner[close + 1..];
                let end = after.find(':').unwrap_or(after.len());
                let suffix = &after[..end];
                let after = &after[end..];
                if suffix.is_empty() || is_prefix_suffix(suffix) {
                    out.push(Field { text: &inner[..close], bracketed: true, suffix });
                    match after.strip_prefix(':') {
                        Some(r) => {
                            rest = r;
                            continue;
                        }
                        None => return out,
                    }
                }
            }
        }
        match rest.split_once(':') {
            Some((f, r)) => {
                out.push(Field { text: f, ..Field::default() });
                rest = r;
            }
            None => {
                out.push(Field { text: rest, ..Field::default() });
                return out;
            }
        }
    }
}

fn is_prefix_suffix(s: &str) -> bool {
    s.strip_prefix('/').is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

struct Ctx<'a> {
    value: &'a str,
}

impl Ctx<'_> {
    fn err(&self, field: &'static str, reason: impl Into<String>) -> IpError {
        IpError { value: self.value.to_string(), field, reason: reason.into() }
    }

    fn addr(&self, f: Field<'_>, name: &'static str) -> Result<Option<IpAddr>, IpError> {
        if !f.suffix.is_empty() {
            return Err(self.err(
                name,
                format!("[{}]{}: only <server-ip> (peer) takes a /prefix", f.text, f.suffix),
            ));
        }
        if f.text.is_empty() && !f.bracketed {
            return Ok(None);
        }
        let parsed = f.text.parse::<IpAddr>().ok().filter(|a| a.is_ipv6() == f.bracketed);
        match parsed {
            Some(a) => Ok(Some(a)),
            None if f.bracketed => {
                Err(self.err(name, format!("[{}] is not an IPv6 address", f.text)))
            }
            None => {
                let hint = if f.text.contains('.') {
                    "four numbers from 0 to 255"
                } else {
                    "IPv6 addresses go in brackets"
                };
                Err(self.err(name, format!("{} is not an IPv4 address ({hint})", f.text)))
            }
        }
    }

    /// dracut's `<peer>`: an address, optionally followed by `/<prefix>`.
    fn peer(&self, f: Field<'_>) -> Result<(Option<IpAddr>, Option<u8>), IpError> {
        let (addr_text, prefix) = if f.bracketed {
            (f.text, f.suffix.strip_prefix('/'))
        } else {
            match f.text.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (f.text, None),
            }
        };
        let addr =
            self.addr(Field { text: addr_text, bracketed: f.bracketed, suffix: "" }, "server-ip")?;
        let Some(p) = prefix else { return Ok((addr, None)) };
        let max = if matches!(addr, Some(IpAddr::V4(_))) { 32 } else { 128 };
        match p.parse::<u8>() {
            Ok(n) if addr.is_some() && n <= max && p.bytes().all(|b| b.is_ascii_digit()) => {
                Ok((addr, Some(n)))
            }
            _ => Err(self.err(
                "server-ip",
                format!("/{p}: expected an address followed by a prefix length up to {max}"),
            )),
        }
    }

    fn plain<'b>(&self, f: Field<'b>, name: &'static str) -> Result<&'b str, IpError> {
        if f.bracketed {
            return Err(
                self.err(name, format!("[{}]: brackets are only for IPv6 addresses", f.text))
            );
        }
        Ok(f.text)
    }

    fn netmask(&self, f: Field<'_>, client: Option<IpAddr>) -> Result<Option<Netmask>, IpError> {
        let t = self.plain(f, "netmask")?;
        if t.is_empty() {
            return Ok(None);
        }
        let max = if matches!(client, Some(IpAddr::V4(_))) { 32 } else { 128 };
        if let Ok(p) = t.parse::<u8>() {
            if p <= max && t.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(Some(Netmask::Prefix(p)));
            }
            return Err(self.err("netmask", format!("prefix length {t} is larger than {max}")));
        }
        let m: Ipv4Addr = t.parse().map_err(|_| {
            self.err("netmask", format!("{t} is neither a dotted IPv4 netmask nor a prefix length"))
        })?;
        let bits = u32::from(m);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return Err(self.err("netmask", format!("{t} is not contiguous (ones then zeros)")));
        }
        Ok(Some(Netmask::Dotted(m)))
    }

    fn hostname(&self, f: Field<'_>) -> Result<Option<String>, IpError> {
        let t = self.plain(f, "hostname")?;
        if t.is_empty() {
            return Ok(None);
        }
        // The kernel keeps at most 64 bytes (__NEW_UTS_LEN).
        let ok_chars = t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if t.len() > 64 || !ok_chars {
            return Err(self.err(
                "hostname",
                format!("{t:?}: expected at most 64 letters, digits, '-', '_' or '.'"),
            ));
        }
        Ok(Some(t.to_string()))
    }

    fn device(&self, f: Field<'_>) -> Result<Option<String>, IpError> {
        let t = self.plain(f, "device")?;
        if t.is_empty() {
            return Ok(None);
        }
        // Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no '/' or blanks.
        let bad = t.len() > 15
            || t == "."
            || t == ".."
            || t.bytes().any(|b| b == b'/' || b <= b' ' || b == b',');
        if bad {
            return Err(self.err("device", format!("{t:?} is not a network interface name")));
        }
        Ok(Some(t.to_string()))
    }

    fn autoconf(&self, f: Field<'_>, ip: &mut IpConfig) -> Result<(), IpError> {
        let t = self.plain(f, "autoconf")?;
        if t.is_empty() {
            return Ok(());
        }
        let (list, id) = Autoconf::parse_field(t)
            .ok_or_else(|| self.err("autoconf", format!("{t}: {AUTOCONF_EXPECTED}")))?;
        ip.autoconf = list;
        ip.client_id = id;
        Ok(())
    }

    fn mtu(&self, f: Field<'_>) -> Result<Option<u16>, IpError> {
        let t = self.plain(f, "mtu")?;
        if t.is_empty() {
            return Ok(None);
        }
        match t.parse::<u16>() {
            Ok(m) if m >= 68 && t.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(m)),
            _ => Err(self.err("mtu", format!("{t}: expected a number from 68 to 65535"))),
        }
    }

    /// A MAC address spread over six fields (its colons split it), or none.
    fn mac(&self, fields: &[Field<'_>]) -> Result<Option<MacAddr>, IpError> {
        if fields.is_empty() || (fields.len() == 1 && fields[0].text.is_empty()) {
            return Ok(None);
        }
        let joined = fields.iter().map(|f| f.text).collect::<Vec<_>>().join(":");
        let plain = fields.len() == 6 && fields.iter().all(|f| !f.bracketed);
        match joined.parse::<MacAddr>() {
            Ok(mac) if plain => Ok(Some(mac)),
            _ => Err(self.err(
                "macaddr",
                format!("{joined}: expected six hex bytes like 52:54:00:12:34:56"),
            )),
        }
    }
}

/// Digits and dots: meant as an IPv4 address (so `300.1.2.3` is a bad
/// address, not an interface name).
fn looks_like_ipv4(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn looks_numeric(f: Field<'_>) -> bool {
    !f.bracketed && !f.text.is_empty() && f.text.bytes().all(|b| b.is_ascii_digit())
}

impl IpConfig {
    fn empty(form: IpForm) -> IpConfig {
        IpConfig {
            form,
            client: None,
            server: None,
            server_prefix: None,
            gateway: None,
            netmask: None,
            hostname: None,
            device: None,
            autoconf: Vec::new(),
            client_id: None,
            dns: Vec::new(),
            ntp: None,
            mtu: None,
            mac: None,
        }
    }

    fn parse_device_form(cx: &Ctx<'_>, f: &[Field<'_>]) -> Result<IpConfig, IpError> {
        let mut ip = IpConfig::empty(IpForm::Device);
        ip.device = cx.device(f[0])?;
        cx.autoconf(f[1], &mut ip)?;
        if ip.autoconf.is_empty() {
            return Err(cx.err("autoconf", format!("empty: {AUTOCONF_EXPECTED}")));
        }
        if let Some(&m) = f.get(2) {
            ip.mtu = cx.mtu(m)?;
        }
        ip.mac = cx.mac(f.get(3..).unwrap_or_default())?;
        Ok(ip)
    }

    fn parse_full_form(cx: &Ctx<'_>, f: &[Field<'_>]) -> Result<IpConfig, IpError> {
        let get = |i: usize| f.get(i).copied().unwrap_or_default();
        let mut ip = IpConfig::empty(IpForm::Full);
        ip.client = cx.addr(get(0), "client-ip")?;
        (ip.server, ip.server_prefix) = cx.peer(get(1))?;
        ip.gateway = cx.addr(get(2), "gw-ip")?;
        ip.netmask = cx.netmask(get(3), ip.client)?;
        ip.hostname = cx.hostname(get(4))?;
        ip.device = cx.device(get(5))?;
        cx.autoconf(get(6), &mut ip)?;
        let rest = f.get(7..).unwrap_or_default();
        Self::parse_full_tail(cx, rest, &mut ip)?;
        Ok(ip)
    }

    /// After `<autoconf>`: the kernel's `dns0:dns1:ntp0`, or dracut's
    /// `[mtu][:macaddr]` (a number, or an empty field before six MAC fields).
    fn parse_full_tail(cx: &Ctx<'_>, rest: &[Field<'_>], ip: &mut IpConfig) -> Result<(), IpError> {
        let dracut_mac = rest.len() == 7 && rest[0].text.is_empty() && !rest[0].bracketed;
        if rest.first().is_some_and(|&f| looks_numeric(f)) || dracut_mac {
            ip.mtu = cx.mtu(rest[0])?;
            ip.mac = cx.mac(&rest[1..])?;
            return Ok(());
        }
        if rest.len() > 3 {
            return Err(cx.err("ntp0-ip", "too many fields: expected at most <dns0-ip>:<dns1-ip>:<ntp0-ip> or [<mtu>][:<macaddr>] after <autoconf>"));
        }
        let get = |i: usize| rest.get(i).copied().unwrap_or_default();
        ip.dns = [cx.addr(get(0), "dns0-ip")?, cx.addr(get(1), "dns1-ip")?]
            .into_iter()
            .flatten()
            .collect();
        ip.ntp = cx.addr(get(2), "ntp0-ip")?;
        Ok(())
    }

    /// The server field, when this `ip=` names one (FAI's `ip=:SERVER:::::dhcp`).
    pub fn server(&self) -> Option<IpAddr> {
        self.server
    }
}

impl FromStr for IpConfig {
    type Err = IpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let cx = Ctx { value: s };
        if s.is_empty() {
            return Err(cx.err(
                "autoconf",
                format!("empty value: {AUTOCONF_EXPECTED}, or the colon separated fields"),
            ));
        }
        // The kernel tries the whole value as <autoconf> first, so a client
        // id may contain colons here.
        if let Some((list, id)) = Autoconf::parse_field(s) {
            let mut ip = IpConfig::empty(IpForm::Short);
            ip.autoconf = list;
            ip.client_id = id;
            return Ok(ip);
        }
        let f = split_fields(s);
        // dracut's `<device>:<autoconf>`: the first field is a name, not an
        // address, or is empty and the second is an autoconf word (never an address).
        let first_is_addr = f[0].bracketed || looks_like_ipv4(f[0].text);
        let second_is_word =
            f.len() > 1 && !f[1].bracketed && Autoconf::parse_field(f[1].text).is_some();
        let device_form = (!f[0].text.is_empty() && !first_is_addr)
            || (f[0].text.is_empty() && !f[0].bracketed && second_is_word);
        if f.len() == 1 && device_form {
            let expected = "or <client-ip>:<server-ip>:... or <device>:<autoconf>";
            return Err(cx.err("autoconf", format!("{s}: {AUTOCONF_EXPECTED}, {expected}")));
        }
        if device_form && f.len() >= 2 {
            Self::parse_device_form(&cx, &f)
        } else if device_form {
            Err(cx.err("autoconf", format!("{s}: {AUTOCONF_EXPECTED}")))
        } else {
            Self::parse_full_form(&cx, &f)
        }
    }
}

fn addr_field(a: &Option<IpAddr>) -> String {
    match a {
        Some(IpAddr::V6(v6)) => format!("[{v6}]"),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        None => String::new(),
    }
}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

impl IpConfig {
    fn autoconf_text(&self) -> String {
        match &self.client_id {
            Some(id) => id.to_string(),
            None => self.autoconf.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(","),
        }
    }
}

impl IpConfig {
    fn full_fields(&self) -> Vec<String> {
        let mut f = vec![
            addr_field(&self.client),
            addr_field(&self.server)
                + &self.server_prefix.map(|p| format!("/{p}")).unwrap_or_default(),
            addr_field(&self.gateway),
            opt(&self.netmask),
            opt(&self.hostname),
            opt(&self.device),
            self.autoconf_text(),
        ];
        if self.mtu.is_some() || self.mac.is_some() {
            f.push(opt(&self.mtu));
            f.push(opt(&self.mac));
        } else {
            let dns = |i: usize| addr_field(&self.dns.get(i).copied());
            f.extend([dns(0), dns(1), addr_field(&self.ntp)]);
        }
        while f.len() > 2 && f.last().is_some_and(String::is_empty) {
            f.pop();
        }
        // A lone client address, or two empty fields (`:`), still reads as Full.
        if f.len() == 2 && f[1].is_empty() && !f[0].is_empty() {
            f.pop();
        }
        f
    }
}

impl fmt::Display for IpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.form {
            IpForm::Short => f.write_str(&self.autoconf_text()),
            IpForm::Device => {
                write!(f, "{}:{}", opt(&self.device), self.autoconf_text())?;
                match (&self.mtu, &self.mac) {
                    (_, Some(mac)) => write!(f, ":{}:{mac}", opt(&self.mtu)),
                    (Some(mtu), None) => write!(f, ":{mtu}"),
                    (None, None) => Ok(()),
                }
            }
            IpForm::Full => f.write_str(&self.full_fields().join(":")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_fields_keeps_brackets_whole() {
        type Fields = &'static [(&'static str, bool, &'static str)];
        let cases: &[(&str, Fields)] = &[
            ("a:b", &[("a", false, ""), ("b", false, "")]),
            ("::", &[("", false, ""), ("", false, ""), ("", false, "")]),
            ("[::1]:x", &[("::1", true, ""), ("x", false, "")]),
            ("[fd00::2]/64:", &[("fd00::2", true, "/64"), ("", false, "")]),
            ("[::1]", &[("::1", true, "")]),
            // Not a bracketed field: split as usual.
            (
                "[::1]x:y",
                &[("[", false, ""), ("", false, ""), ("1]x", false, ""), ("y", false, "")],
            ),
        ];
        for (input, want) in cases {
            let got: Vec<_> =
                split_fields(input).iter().map(|f| (f.text, f.bracketed, f.suffix)).collect();
            assert_eq!(got, *want, "{input:?}");
        }
    }
}
