//! Wake-on-LAN: when the admin orders a reinstall, a PC that is switched off
//! would only see the order at its next boot. The server wakes it with a
//! magic packet (6 × 0xff, then the MAC 16 times) for each of its MACs, sent
//! as a UDP broadcast to port 9 on each IPv4 LAN it serves: the interface
//! holding its listening address, or every broadcast-capable interface when
//! it listens on 0.0.0.0. A server on loopback sends nothing.

use std::io;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use kernel_cmdline::MacAddr;
use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;

use super::Server;

/// The discard port, where NIC firmware listens for magic packets.
pub const PORT: u16 = 9;

/// The magic packet that wakes the NIC with `mac`.
pub fn magic_packet(mac: MacAddr) -> [u8; 102] {
    let mut p = [0xffu8; 102];
    for chunk in p[6..].chunks_exact_mut(6) {
        chunk.copy_from_slice(&mac.0);
    }
    p
}

/// One LAN to wake PCs on: the server's address there and its broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lan {
    pub local: Ipv4Addr,
    pub broadcast: Ipv4Addr,
}

/// The LANs a server listening on `listen` serves (see the module comment).
pub fn lans(listen: IpAddr) -> io::Result<Vec<Lan>> {
    let mut out = Vec::new();
    for ifa in getifaddrs().map_err(io::Error::from)? {
        let wanted = InterfaceFlags::IFF_UP | InterfaceFlags::IFF_BROADCAST;
        if !ifa.flags.contains(wanted) || ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK) {
            continue;
        }
        let local = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()).map(|a| a.ip());
        let broadcast = ifa.broadcast.as_ref().and_then(|a| a.as_sockaddr_in()).map(|a| a.ip());
        let (Some(local), Some(broadcast)) = (local, broadcast) else { continue };
        let serves = match listen {
            IpAddr::V4(l) => l.is_unspecified() || l == local,
            // An IPv6 wildcard socket also takes IPv4 on Linux by default.
            IpAddr::V6(l) => l.is_unspecified(),
        };
        if serves && !out.iter().any(|l: &Lan| l.local == local) {
            out.push(Lan { local, broadcast });
        }
    }
    Ok(out)
}

/// Sends one magic packet per MAC on each LAN; returns how many went out.
/// A LAN that fails is skipped (the others may still wake the PC); the
/// first error is returned only when nothing could be sent.
pub fn wake(macs: &[MacAddr], lans: &[Lan]) -> io::Result<usize> {
    let mut sent = 0;
    let mut first_err = None;
    for lan in lans {
        let result = (|| {
            // Bound to the LAN's own address so the packet leaves there.
            let sock = UdpSocket::bind((lan.local, 0))?;
            sock.set_broadcast(true)?;
            for mac in macs {
                sock.send_to(&magic_packet(*mac), (lan.broadcast, PORT))?;
                sent += 1;
            }
            io::Result::Ok(())
        })();
        if let Err(e) = result {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) if sent == 0 && !macs.is_empty() => Err(e),
        _ => Ok(sent),
    }
}

/// A NIC's MAC as the inventory writes it (`52:54:00:12:34:56`).
fn mac_of(s: &str) -> Option<MacAddr> {
    let mut b = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut b {
        let p = parts.next().filter(|p| p.len() == 2)?;
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(MacAddr(b))
}

/// Wakes machine `id` by every MAC of its last inventory, on the LANs the
/// server serves. Best effort: the reinstall order stands without it (the
/// PC may be on, or wake by other means), so failures are only logged.
pub fn wake_machine(s: &Server, id: &str) {
    let macs: Vec<MacAddr> = match s.store.machine(id) {
        Ok(Some(m)) => m.inventory.nics.iter().filter_map(|n| mac_of(&n.mac)).collect(),
        Ok(None) => return,
        Err(e) => {
            eprintln!("lazare: wake-on-lan for {}: {e:#}", &id[..12.min(id.len())]);
            return;
        }
    };
    let short = &id[..12.min(id.len())];
    match lans(s.listen.ip()).and_then(|l| Ok((wake(&macs, &l)?, l.len()))) {
        Ok((n, l)) => eprintln!("lazare: wake-on-lan: {n} magic packets for {short} on {l} LANs"),
        Err(e) => eprintln!("lazare: wake-on-lan for {short}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packet_is_six_ff_then_the_mac_sixteen_times() {
        let mac = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        let p = magic_packet(mac);
        assert_eq!(&p[..6], &[0xff; 6]);
        assert_eq!(p.len(), 6 + 16 * 6);
        for i in 0..16 {
            assert_eq!(&p[6 + i * 6..12 + i * 6], &mac.0, "repeat {i}");
        }
    }

    #[test]
    fn macs_parse_as_the_inventory_writes_them() {
        assert_eq!(mac_of("52:54:00:ab:cd:ef"), Some(MacAddr([0x52, 0x54, 0, 0xab, 0xcd, 0xef])));
        for bad in
            ["", "52:54:00:ab:cd", "52:54:00:ab:cd:ef:01", "52:54:00:ab:cd:eg", "5:54:00:ab:cd:ef"]
        {
            assert_eq!(mac_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_loopback_server_serves_no_lan() {
        assert_eq!(lans("127.0.0.1".parse().unwrap()).unwrap(), []);
        // No interface holds this address: nothing to wake on.
        assert_eq!(lans("192.0.2.77".parse().unwrap()).unwrap(), []);
    }
}
