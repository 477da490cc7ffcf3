//! Getting on the LAN: every `ip=` form the command line resolved to
//! (static, per-device DHCP, off) or by default DHCP on every NIC that has a
//! cable, first lease wins, so an uncabled port never stalls the boot.

pub mod cli;
pub mod dhcp;
pub mod dns;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kernel_cmdline::{Method, NetworkConfig};
use serde::Serialize;

pub use dhcp::Lease;

/// The network the agent ended up with.
#[derive(Debug, Clone, Serialize)]
pub struct NetState {
    pub iface: String,
    pub address: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// The DHCP lease, when the address came from one.
    pub lease: Option<Lease>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    #[error("no network card found (none of /sys/class/net has a device behind it)")]
    NoNic,
    #[error("no network cable is plugged in (checked {0})")]
    NoCarrier(String),
    #[error("{0}")]
    Dhcp(#[from] dhcp::DhcpError),
    #[error("no DHCP server answered on {0}")]
    NoLease(String),
    #[error("ip={entry}: network card {device} not found (have {have})")]
    NoSuchDevice { entry: String, device: String, have: String },
    #[error("ip={0}: only IPv4 addresses are supported")]
    NotIpv4(String),
    #[error("configuring {iface}: {source}")]
    Configure { iface: String, source: std::io::Error },
    #[error("every ip= entry is off: no network")]
    AllOff,
}

/// NICs with a device behind them (no lo, bridges, tunnels), sorted.
pub fn physical_nics(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root.join("sys/class/net"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("device").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The current MAC of `name` as bytes.
pub fn mac_of(root: &Path, name: &str) -> Option<[u8; 6]> {
    let s = std::fs::read_to_string(root.join("sys/class/net").join(name).join("address")).ok()?;
    s.trim().parse::<lazare_proto::MacAddr>().ok().map(|m| m.0)
}

/// True when the NIC reports a cable (reading fails while it is down).
pub fn carrier(root: &Path, name: &str) -> bool {
    std::fs::read_to_string(root.join("sys/class/net").join(name).join("carrier"))
        .is_ok_and(|s| s.trim() == "1")
}

/// Drivers that check the link only at their watchdog round, every 2 s
/// once the interface is open: e1000 arms that round at open and drops the
/// PHY's link interrupt while it is armed (schedule_delayed_work on a
/// pending work is a no-op), so a NIC opened while its PHY still
/// negotiates (qemu's e1000: 0.5 s after the reset at the end of the
/// probe) gets its carrier up to 2 s late (issue 17). Its MAC reports the
/// link while the interface is down (ETHTOOL_GSET reads STATUS.LU): such
/// a NIC is opened once that shows, and its carrier comes at once.
const OPEN_AT_LINK: &[&str] = &["e1000"];
/// How long such a NIC stays down waiting for its link: past one watchdog
/// round, opening it later gains nothing.
const OPEN_AT_LINK_LIMIT: Duration = Duration::from_secs(2);
/// How often the carriers are read while waiting.
const POLL: Duration = Duration::from_millis(20);

fn opens_at_link(root: &Path, nic: &str) -> bool {
    std::fs::read_link(root.join("sys/class/net").join(nic).join("device/driver"))
        .ok()
        .and_then(|p| p.file_name().map(|d| OPEN_AT_LINK.iter().any(|o| d == *o)))
        .unwrap_or(false)
}

/// Brings NICs up (an [`OPEN_AT_LINK`] one once its MAC sees the link) and
/// waits (at most `limit`) until at least one has a carrier and a short
/// grace period passed for the others. An [`OPEN_AT_LINK`] NIC without a
/// link by then may stay down: it has no cable.
pub fn up_and_wait(nics: &[String], limit: Duration) -> Vec<String> {
    let _ = crate::sys::link_up("lo");
    let root = Path::new("/");
    let (mut later, now): (Vec<String>, Vec<String>) =
        nics.iter().cloned().partition(|n| opens_at_link(root, n));
    for n in &now {
        let _ = crate::sys::link_up(n);
    }
    let start = Instant::now();
    let mut first_seen: Option<Instant> = None;
    loop {
        later.retain(|n| {
            let open = crate::sys::link_speed(n).is_some() || start.elapsed() > OPEN_AT_LINK_LIMIT;
            if open {
                let _ = crate::sys::link_up(n);
            }
            !open
        });
        let with: Vec<String> = nics.iter().filter(|n| carrier(root, n)).cloned().collect();
        if with.len() == nics.len() {
            return with;
        }
        if !with.is_empty()
            && first_seen.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(1)
        {
            return with;
        }
        if start.elapsed() > limit {
            return with;
        }
        std::thread::sleep(POLL);
    }
}

/// A transaction id from the MAC and the clock: unique per NIC and boot,
/// without getrandom.
fn xid_for(mac: [u8; 6]) -> u32 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(mac);
    h.update(format!("{:?}", Instant::now()));
    h.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_le_bytes(),
    );
    let d = h.finalize();
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

/// DHCP on every interface of `nics` in parallel; the first lease wins.
pub fn dhcp_first(nics: &[String], tries: u32) -> Result<Lease, NetError> {
    dhcp_first_in(Path::new("/"), nics, tries)
}

/// [`dhcp_first`] with MACs read under `root`.
pub fn dhcp_first_in(root: &Path, nics: &[String], tries: u32) -> Result<Lease, NetError> {
    let (tx, rx) = mpsc::channel();
    for n in nics {
        let Some(mac) = mac_of(root, n) else { continue };
        let (tx, n) = (tx.clone(), n.clone());
        std::thread::spawn(move || {
            let _ = tx.send(dhcp::obtain(&n, mac, xid_for(mac), tries));
        });
    }
    drop(tx);
    let mut last = None;
    for result in rx {
        match result {
            Ok(lease) => return Ok(lease),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map(NetError::Dhcp).unwrap_or_else(|| NetError::NoLease(nics.join(", "))))
}

/// Gives `lease.iface` its address and default route.
pub fn apply_lease(lease: &Lease) -> Result<NetState, NetError> {
    apply(
        &lease.iface,
        lease.address,
        lease.netmask,
        lease.router,
        lease.dns.clone(),
        Some(lease.clone()),
    )
}

fn apply(
    iface: &str,
    address: Ipv4Addr,
    netmask: Ipv4Addr,
    gateway: Option<Ipv4Addr>,
    dns: Vec<Ipv4Addr>,
    lease: Option<Lease>,
) -> Result<NetState, NetError> {
    let err = |source| NetError::Configure { iface: iface.to_string(), source };
    crate::sys::set_ipv4(iface, address, netmask).map_err(err)?;
    crate::sys::link_up(iface).map_err(err)?;
    if let Some(gw) = gateway {
        crate::sys::add_default_route(iface, gw).map_err(err)?;
    }
    Ok(NetState { iface: iface.to_string(), address, netmask, gateway, dns, lease })
}

fn v4(a: Option<IpAddr>, source: &str) -> Result<Option<Ipv4Addr>, NetError> {
    match a {
        None => Ok(None),
        Some(IpAddr::V4(a)) => Ok(Some(a)),
        Some(IpAddr::V6(_)) => Err(NetError::NotIpv4(source.to_string())),
    }
}

/// The NICs one `ip=` entry applies to.
fn targets(cfg: &NetworkConfig, nics: &[String]) -> Result<Vec<String>, NetError> {
    let source = cfg.source.clone().unwrap_or_else(|| "dhcp".into());
    if let Some(mac) = &cfg.mac {
        let found = nics.iter().find(|n| mac_of(Path::new("/"), n) == Some(mac.0));
        return found.map(|n| vec![n.clone()]).ok_or(NetError::NoSuchDevice {
            entry: source,
            device: mac.to_string(),
            have: nics.join(", "),
        });
    }
    match &cfg.device {
        None => Ok(nics.to_vec()),
        Some(d) if nics.contains(d) => Ok(vec![d.clone()]),
        Some(d) => {
            Err(NetError::NoSuchDevice { entry: source, device: d.clone(), have: nics.join(", ") })
        }
    }
}

/// Configures the network from the resolved `ip=` entries (one DHCP-on-all
/// entry by default). The first entry that works is the one the agent uses;
/// later entries configure their devices too.
pub fn bring_up(configs: &[NetworkConfig], dhcp_tries: u32) -> Result<NetState, NetError> {
    let nics = physical_nics(Path::new("/"));
    if nics.is_empty() {
        return Err(NetError::NoNic);
    }
    let mut primary: Option<NetState> = None;
    let mut last_err = None;
    for cfg in configs.iter().filter(|c| c.method != Method::Off) {
        match configure_one(cfg, &nics, dhcp_tries) {
            Ok(state) => {
                primary.get_or_insert(state);
            }
            Err(e) => last_err = Some(e),
        }
    }
    primary.ok_or_else(|| last_err.unwrap_or(NetError::AllOff))
}

fn configure_one(
    cfg: &NetworkConfig,
    nics: &[String],
    dhcp_tries: u32,
) -> Result<NetState, NetError> {
    let source = cfg.source.clone().unwrap_or_else(|| "dhcp".into());
    let wanted = targets(cfg, nics)?;
    let cabled = up_and_wait(&wanted, Duration::from_secs(6));
    if cabled.is_empty() {
        return Err(NetError::NoCarrier(wanted.join(", ")));
    }
    match cfg.method {
        Method::Static => {
            let address = v4(cfg.address, &source)?.ok_or(NetError::NotIpv4(source.clone()))?;
            let netmask = cfg.netmask.unwrap_or(Ipv4Addr::new(255, 255, 255, 0));
            let gateway = v4(cfg.gateway, &source)?;
            let dns = cfg
                .dns
                .iter()
                .filter_map(|d| match d {
                    IpAddr::V4(a) => Some(*a),
                    _ => None,
                })
                .collect();
            apply(&cabled[0], address, netmask, gateway, dns, None)
        }
        _ => {
            let mut lease = dhcp_first(&cabled, dhcp_tries)?;
            // ip=...:dns0:dns1 adds to what the lease gave.
            for d in &cfg.dns {
                if let IpAddr::V4(a) = d {
                    if !lease.dns.contains(a) {
                        lease.dns.push(*a);
                    }
                }
            }
            apply_lease(&lease)
        }
    }
}
