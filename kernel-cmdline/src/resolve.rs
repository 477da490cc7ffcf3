//! The agent's configuration, resolved from the command line baked into the
//! initramfs (`/etc/lazare/cmdline`) and the live one (`/proc/cmdline`).
//! The live command line wins: key by key for single keys (its last
//! occurrence), and as a whole for `ip=` (if it has any `ip=`, the baked ones
//! are ignored).

use std::net::{IpAddr, Ipv4Addr};

use crate::cmdline::{keys_equal, Cmdline, Param};
use crate::ip::{Autoconf, ClientId, IpConfig, IpError, MacAddr};
use crate::lazare::{
    parse_key, BootAction, Host, Insecure, Lang, Retries, Scheme, Server, ServerUrl, ValueError,
    DEFAULT_SERVER_PORT, KEY_ACTION, KEY_INSECURE, KEY_KEY, KEY_LANG, KEY_RETRIES, KEY_SERVER,
    KNOWN_KEYS,
};

/// What the agent does at boot, as `lazare-agent config` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgentConfig {
    pub server: Server,
    pub action: BootAction,
    pub insecure: bool,
    /// One entry per `ip=`; without any `ip=`, DHCP on every NIC.
    pub network: Vec<NetworkConfig>,
    /// `lazare.key`, when given on a command line (else the baked key file).
    pub key: Option<lazare_proto::PublicKey>,
    /// `lazare.retries`; `None` = unlimited with backoff.
    pub retries: Option<u32>,
    /// Where the server came from: `lazare.server` or `ip=`.
    pub server_source: ServerSource,
    /// The live command line as parsed (`console=` and friends untouched).
    pub cmdline: Cmdline,
    /// `lazare.lang`; `None`: English until the plan names a locale.
    pub lang: Option<Lang>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ServerSource {
    /// `lazare.server=` on the live command line.
    Live,
    /// `lazare.server=` baked into the initramfs.
    Baked,
    /// The `<server-ip>` field of an `ip=`, on port [`DEFAULT_SERVER_PORT`].
    IpServerField,
}

/// How one interface (or every interface, `device: None`) gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Method {
    Dhcp,
    Static,
    Off,
}

/// One network setting. Field order is the JSON contract; extras come last.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NetworkConfig {
    /// `None`: every NIC (DHCP: first lease wins; static: the first NIC with carrier).
    pub device: Option<String>,
    pub method: Method,
    pub address: Option<IpAddr>,
    /// Given, or the classful default the kernel uses when `<netmask>` is empty.
    pub netmask: Option<Ipv4Addr>,
    pub gateway: Option<IpAddr>,
    pub hostname: Option<String>,
    pub dns: Vec<IpAddr>,
    pub ntp: Option<IpAddr>,
    pub mtu: Option<u16>,
    #[serde(serialize_with = "ser_mac")]
    pub mac: Option<MacAddr>,
    /// The kernel's `ip=dhcp,<type>,<value>` DHCP client identifier.
    pub client_id: Option<ClientId>,
    /// The `ip=` value this came from; `None` for the default.
    pub source: Option<String>,
}

fn ser_mac<S: serde::Serializer>(mac: &Option<MacAddr>, s: S) -> Result<S::Ok, S::Error> {
    match mac {
        Some(m) => s.collect_str(m),
        None => s.serialize_none(),
    }
}

impl NetworkConfig {
    /// The default without `ip=`: DHCP on every NIC.
    pub fn dhcp_all() -> NetworkConfig {
        NetworkConfig {
            device: None,
            method: Method::Dhcp,
            address: None,
            netmask: None,
            gateway: None,
            hostname: None,
            dns: Vec::new(),
            ntp: None,
            mtu: None,
            mac: None,
            client_id: None,
            source: None,
        }
    }
}

/// Why a command line does not give a usable agent configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error(transparent)]
    Ip(#[from] IpError),
    #[error("{key}: expected a value ({key}=...)")]
    MissingValue { key: &'static str },
    #[error("unknown key {key}: the lazare keys are lazare.server, lazare.action, lazare.key, lazare.insecure, lazare.retries and lazare.lang")]
    UnknownKey { key: String },
    #[error("ip={value}: {what} is not supported by lazare ({hint})")]
    Unsupported { value: String, what: String, hint: &'static str },
    #[error("ip= given twice for {device}: ip={first} and ip={second}")]
    DuplicateDevice { device: String, first: String, second: String },
    #[error("no install server: add lazare.server=URL or ip=:SERVER-IP:::::dhcp to the kernel command line")]
    NoServer,
    #[error("in the baked command line: {0}")]
    Baked(Box<ConfigError>),
}

/// Resolve the agent's configuration; `live` (/proc/cmdline) wins over `baked`.
pub fn resolve(baked: &Cmdline, live: &Cmdline) -> Result<AgentConfig, ConfigError> {
    check_keys(live)?;
    check_keys(baked).map_err(in_baked)?;
    let (ip_params, ip_from_baked) = match live.get_all("ip").next() {
        Some(_) => (live.get_all("ip").collect::<Vec<_>>(), false),
        None => (baked.get_all("ip").collect(), true),
    };
    let ips = parse_ips(&ip_params).map_err(|e| if ip_from_baked { in_baked(e) } else { e })?;
    let network = network_of(&ips).map_err(|e| if ip_from_baked { in_baked(e) } else { e })?;
    let (server, server_source) = server_of(baked, live, &ips)?;
    let action = typed(baked, live, KEY_ACTION, |v| v.parse::<BootAction>())?.unwrap_or_default();
    let key = typed(baked, live, KEY_KEY, parse_key)?;
    let retries = typed(baked, live, KEY_RETRIES, |v| v.parse::<Retries>())?.map(|r| r.0);
    let lang = typed(baked, live, KEY_LANG, |v| v.parse::<Lang>())?;
    let insecure = match pick(baked, live, KEY_INSECURE) {
        Some((p, from_baked)) => {
            Insecure::from_value(p.value.as_deref()).map_err(|e| origin(e.into(), from_baked))?.0
        }
        None => false,
    };
    Ok(AgentConfig {
        server,
        action,
        insecure,
        network,
        key,
        retries,
        server_source,
        cmdline: live.clone(),
        lang,
    })
}

fn in_baked(e: ConfigError) -> ConfigError {
    ConfigError::Baked(Box::new(e))
}

fn origin(e: ConfigError, from_baked: bool) -> ConfigError {
    if from_baked {
        in_baked(e)
    } else {
        e
    }
}

/// A `lazare.*` key that is not ours is a typo that would otherwise be ignored.
fn check_keys(c: &Cmdline) -> Result<(), ConfigError> {
    let unknown = c.iter().find(|p| {
        p.key.starts_with("lazare.") && !KNOWN_KEYS.iter().any(|k| keys_equal(k, &p.key))
    });
    match unknown {
        Some(p) => Err(ConfigError::UnknownKey { key: p.key.clone() }),
        None => Ok(()),
    }
}

/// The live occurrence of `key`, else the baked one; `true` when baked.
fn pick<'a>(baked: &'a Cmdline, live: &'a Cmdline, key: &str) -> Option<(&'a Param, bool)> {
    live.get(key).map(|p| (p, false)).or_else(|| baked.get(key).map(|p| (p, true)))
}

/// The value of a key that needs one, parsed.
fn typed<T>(
    baked: &Cmdline,
    live: &Cmdline,
    key: &'static str,
    parse: impl Fn(&str) -> Result<T, ValueError>,
) -> Result<Option<T>, ConfigError> {
    let Some((p, from_baked)) = pick(baked, live, key) else { return Ok(None) };
    let v = p
        .value
        .as_deref()
        .ok_or(ConfigError::MissingValue { key })
        .map_err(|e| origin(e, from_baked))?;
    parse(v).map(Some).map_err(|e| origin(e.into(), from_baked))
}

fn parse_ips(params: &[&Param]) -> Result<Vec<(String, IpConfig)>, ConfigError> {
    params
        .iter()
        .map(|p| {
            let v = p.value.as_deref().unwrap_or("");
            Ok((v.to_string(), v.parse::<IpConfig>()?))
        })
        .collect()
}

fn server_of(
    baked: &Cmdline,
    live: &Cmdline,
    ips: &[(String, IpConfig)],
) -> Result<(Server, ServerSource), ConfigError> {
    if let Some(s) = typed(baked, live, KEY_SERVER, |v| v.parse::<Server>())? {
        let source =
            if live.contains(KEY_SERVER) { ServerSource::Live } else { ServerSource::Baked };
        return Ok((s, source));
    }
    // The kernel ignores 0.0.0.0 in ip= fields ("not given").
    let from_ip = ips.iter().rev().find_map(|(_, ip)| ip.server.filter(|a| !a.is_unspecified()));
    let addr = from_ip.ok_or(ConfigError::NoServer)?;
    let host = match addr {
        IpAddr::V4(a) => Host::V4(a),
        IpAddr::V6(a) => Host::V6(a),
    };
    // `lazare serve` speaks https unless told otherwise.
    let url = ServerUrl::new(Scheme::Https, host, Some(DEFAULT_SERVER_PORT));
    Ok((Server::Url(url), ServerSource::IpServerField))
}

fn network_of(ips: &[(String, IpConfig)]) -> Result<Vec<NetworkConfig>, ConfigError> {
    if ips.is_empty() {
        return Ok(vec![NetworkConfig::dhcp_all()]);
    }
    let mut out: Vec<NetworkConfig> = Vec::new();
    for (value, ip) in ips {
        let net = network_entry(value, ip)?;
        if let Some(prev) = out.iter().find(|n| n.device == net.device) {
            return Err(ConfigError::DuplicateDevice {
                device: net
                    .device
                    .clone()
                    .unwrap_or_else(|| "every interface (no <device>)".into()),
                first: prev.source.clone().unwrap_or_default(),
                second: value.clone(),
            });
        }
        out.push(net);
    }
    Ok(out)
}

/// What an `<autoconf>` list asks of an IPv4-only agent.
enum Wanted {
    Dhcp,
    Off,
    Default,
}

fn wanted(value: &str, list: &[Autoconf]) -> Result<Wanted, ConfigError> {
    use Autoconf as A;
    let any = |set: &[Autoconf]| list.iter().any(|a| set.contains(a));
    // BOOTP and "both" (BOOTP + RARP) are answered by DHCP servers, and
    // single-dhcp is what lazare does anyway (first lease on any NIC wins).
    if any(&[A::Dhcp, A::On, A::Any, A::Bootp, A::Both, A::SingleDhcp]) {
        return Ok(Wanted::Dhcp);
    }
    if any(&[A::Off, A::None]) {
        return Ok(Wanted::Off);
    }
    let unsupported = |what: &str, hint| ConfigError::Unsupported {
        value: value.into(),
        what: what.into(),
        hint,
    };
    match list.first() {
        None => Ok(Wanted::Default),
        Some(A::Rarp) => Err(unsupported("autoconf rarp", "use dhcp or a static IPv4 address")),
        Some(A::Ibft) => Err(unsupported(
            "autoconf ibft (iSCSI boot firmware)",
            "use dhcp or a static IPv4 address",
        )),
        Some(a) => Err(unsupported(
            &format!("autoconf {a} (IPv6 without IPv4)"),
            "the agent configures IPv4 only: add dhcp, e.g. ip=dhcp,dhcp6",
        )),
    }
}

fn network_entry(value: &str, ip: &IpConfig) -> Result<NetworkConfig, ConfigError> {
    let want = wanted(value, &ip.autoconf)?;
    let mut net = NetworkConfig::dhcp_all();
    net.device = ip.device.clone();
    net.hostname = ip.hostname.clone();
    net.dns = ip.dns.clone();
    net.ntp = ip.ntp;
    net.mtu = ip.mtu;
    net.mac = ip.mac;
    net.client_id = ip.client_id.clone();
    net.source = Some(value.to_string());
    match (want, ip.client.filter(|a| !a.is_unspecified())) {
        // An explicit DHCP word wins over a client address, as in dracut.
        (Wanted::Dhcp, _) | (Wanted::Default, None) => net.method = Method::Dhcp,
        (Wanted::Off, None) => net.method = Method::Off,
        (Wanted::Off | Wanted::Default, Some(IpAddr::V6(_))) => {
            return Err(ConfigError::Unsupported {
                value: value.into(),
                what: "a static IPv6 address".into(),
                hint: "the agent configures IPv4 only: use dhcp or a static IPv4 address",
            })
        }
        (Wanted::Off | Wanted::Default, Some(IpAddr::V4(a))) => {
            net.method = Method::Static;
            net.address = Some(IpAddr::V4(a));
            net.netmask = Some(ip.netmask.and_then(|m| m.to_ipv4()).unwrap_or_else(|| classful(a)));
            net.gateway = ip.gateway;
            check_static(value, ip)?;
        }
    }
    Ok(net)
}

fn check_static(value: &str, ip: &IpConfig) -> Result<(), ConfigError> {
    let err = |field: &'static str, reason: &str| {
        ConfigError::Ip(IpError { value: value.into(), field, reason: reason.into() })
    };
    if ip.netmask.is_some_and(|m| m.prefix_len() > 32) {
        return Err(err("netmask", "a prefix longer than 32 bits for an IPv4 address"));
    }
    if matches!(ip.gateway, Some(IpAddr::V6(_))) {
        return Err(err("gw-ip", "an IPv6 gateway for an IPv4 address"));
    }
    Ok(())
}

/// The kernel's default when `<netmask>` is empty: the address's class.
fn classful(a: Ipv4Addr) -> Ipv4Addr {
    match a.octets()[0] {
        0..=127 => Ipv4Addr::new(255, 0, 0, 0),
        128..=191 => Ipv4Addr::new(255, 255, 0, 0),
        _ => Ipv4Addr::new(255, 255, 255, 0),
    }
}
