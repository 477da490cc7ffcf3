//! Our DHCPv4 client: DISCOVER → OFFER → REQUEST → ACK over a UDP socket on
//! port 68 bound to one interface (SO_BINDTODEVICE + SO_BROADCAST). dhcproto
//! writes and reads the packets; the transaction id comes from us, never
//! from its random constructor (getrandom can block in early boot). The
//! protocol only returns a [`Lease`]; applying it is [`super::apply_lease`].

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use serde::Serialize;

/// What a DHCP server gave us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub iface: String,
    pub address: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    /// BOOTP `siaddr`, when not 0.0.0.0.
    pub next_server: Option<Ipv4Addr>,
    /// Option 66 (TFTP server name), which PXE setups use for "the server".
    pub tftp_server: Option<String>,
    pub lease_secs: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DhcpError {
    #[error("opening a DHCP socket on {iface}: {source}")]
    Socket { iface: String, source: std::io::Error },
    #[error("no DHCP answer on {iface} after {tries} tries")]
    NoAnswer { iface: String, tries: u32 },
    #[error("the DHCP server on {iface} refused our request (DHCPNAK)")]
    Nak { iface: String },
    #[error("encoding a DHCP packet: {0}")]
    Encode(String),
}

/// Runs DHCP on `iface` whose hardware address is `mac`; `xid` must differ
/// per interface and boot. Each try waits longer (2, 4, 8… s, at most 16).
pub fn obtain(iface: &str, mac: [u8; 6], xid: u32, tries: u32) -> Result<Lease, DhcpError> {
    let sock = socket(iface).map_err(|source| DhcpError::Socket { iface: iface.into(), source })?;
    let start = Instant::now();
    for attempt in 0..tries {
        let wait = Duration::from_secs(2u64 << attempt.min(3));
        let secs = start.elapsed().as_secs().min(u16::MAX as u64) as u16;
        let discover = discover(xid, mac, secs);
        send(&sock, &discover)?;
        let Some(offer) = receive(&sock, xid, mac, MessageType::Offer, wait) else { continue };
        let request = request(xid, mac, secs, &offer);
        send(&sock, &request)?;
        match receive_ack(&sock, xid, mac, wait) {
            Some(Ok(ack)) => return Ok(lease_from(iface, &ack)),
            Some(Err(())) => return Err(DhcpError::Nak { iface: iface.into() }),
            None => continue,
        }
    }
    Err(DhcpError::NoAnswer { iface: iface.into(), tries })
}

fn socket(iface: &str) -> std::io::Result<UdpSocket> {
    crate::sys::dhcp_socket(iface)
}

fn base(xid: u32, mac: [u8; 6], secs: u16, kind: MessageType) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(xid, z, z, z, z, &mac);
    m.set_opcode(Opcode::BootRequest);
    m.set_secs(secs);
    // Ask for broadcast answers: we have no address to receive unicast on.
    m.set_flags(Flags::default().set_broadcast());
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    let mut client_id = vec![1u8];
    client_id.extend_from_slice(&mac);
    opts.insert(DhcpOption::ClientIdentifier(client_id));
    opts.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::TFTPServerName,
        OptionCode::AddressLeaseTime,
    ]));
    m
}

fn discover(xid: u32, mac: [u8; 6], secs: u16) -> Message {
    base(xid, mac, secs, MessageType::Discover)
}

fn request(xid: u32, mac: [u8; 6], secs: u16, offer: &Message) -> Message {
    let mut m = base(xid, mac, secs, MessageType::Request);
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
    if let Some(DhcpOption::ServerIdentifier(id)) = offer.opts().get(OptionCode::ServerIdentifier) {
        m.opts_mut().insert(DhcpOption::ServerIdentifier(*id));
    }
    m
}

fn send(sock: &UdpSocket, m: &Message) -> Result<(), DhcpError> {
    let mut buf = Vec::with_capacity(576);
    m.encode(&mut Encoder::new(&mut buf)).map_err(|e| DhcpError::Encode(e.to_string()))?;
    // BOOTP relays and old servers drop packets under 300 bytes.
    if buf.len() < 300 {
        buf.resize(300, 0);
    }
    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    sock.send_to(&buf, to).map_err(|e| DhcpError::Encode(format!("sending: {e}")))?;
    Ok(())
}

/// Waits up to `wait` for a reply of `kind` to our xid and MAC.
fn receive(
    sock: &UdpSocket,
    xid: u32,
    mac: [u8; 6],
    kind: MessageType,
    wait: Duration,
) -> Option<Message> {
    match receive_any(sock, xid, mac, wait, &[kind])? {
        m if m.opts().has_msg_type(kind) => Some(m),
        _ => None,
    }
}

/// An ACK (`Ok`) or a NAK (`Err`), or nothing in time.
fn receive_ack(
    sock: &UdpSocket,
    xid: u32,
    mac: [u8; 6],
    wait: Duration,
) -> Option<Result<Message, ()>> {
    let m = receive_any(sock, xid, mac, wait, &[MessageType::Ack, MessageType::Nak])?;
    Some(if m.opts().has_msg_type(MessageType::Ack) { Ok(m) } else { Err(()) })
}

fn receive_any(
    sock: &UdpSocket,
    xid: u32,
    mac: [u8; 6],
    wait: Duration,
    kinds: &[MessageType],
) -> Option<Message> {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1)))).ok()?;
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            if Instant::now() >= deadline {
                return None;
            }
            continue;
        };
        let Ok(m) = Message::decode(&mut Decoder::new(&buf[..n])) else { continue };
        let ours = m.opcode() == Opcode::BootReply
            && m.xid() == xid
            && m.chaddr().get(..6) == Some(&mac[..]);
        if ours && kinds.iter().any(|k| m.opts().has_msg_type(*k)) {
            return Some(m);
        }
    }
}

/// Reads a lease out of an ACK.
pub fn lease_from(iface: &str, ack: &Message) -> Lease {
    let opts = ack.opts();
    let netmask = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(m)) => *m,
        _ => classful_mask(ack.yiaddr()),
    };
    let router = match opts.get(OptionCode::Router) {
        Some(DhcpOption::Router(r)) => r.first().copied(),
        _ => None,
    };
    let dns = match opts.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(d)) => d.clone(),
        _ => Vec::new(),
    };
    let server_id = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => Some(*s),
        _ => None,
    };
    let tftp_server = match opts.get(OptionCode::TFTPServerName) {
        Some(DhcpOption::TFTPServerName(n)) => {
            let s = String::from_utf8_lossy(n).trim_end_matches('\0').trim().to_string();
            (!s.is_empty()).then_some(s)
        }
        _ => None,
    };
    let lease_secs = match opts.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => Some(*t),
        _ => None,
    };
    let siaddr = ack.siaddr();
    Lease {
        iface: iface.to_string(),
        address: ack.yiaddr(),
        netmask,
        router,
        dns,
        server_id,
        next_server: (!siaddr.is_unspecified()).then_some(siaddr),
        tftp_server,
        lease_secs,
    }
}

fn classful_mask(a: Ipv4Addr) -> Ipv4Addr {
    match a.octets()[0] {
        0..=127 => Ipv4Addr::new(255, 0, 0, 0),
        128..=191 => Ipv4Addr::new(255, 255, 0, 0),
        _ => Ipv4Addr::new(255, 255, 255, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discover_carries_our_xid_mac_and_broadcast_flag() {
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        let m = discover(0xdead_beef, mac, 3);
        let mut buf = Vec::new();
        m.encode(&mut Encoder::new(&mut buf)).unwrap();
        let back = Message::decode(&mut Decoder::new(&buf)).unwrap();
        assert_eq!(back.xid(), 0xdead_beef);
        assert_eq!(&back.chaddr()[..6], &mac);
        assert!(back.flags().broadcast());
        assert!(back.opts().has_msg_type(MessageType::Discover));
    }

    #[test]
    fn lease_reads_next_server_and_option_66() {
        let z = Ipv4Addr::UNSPECIFIED;
        let mut ack = Message::new_with_id(
            1,
            z,
            Ipv4Addr::new(10, 0, 2, 15),
            Ipv4Addr::new(10, 0, 2, 2),
            z,
            &[1, 2, 3, 4, 5, 6],
        );
        ack.set_opcode(Opcode::BootReply);
        let o = ack.opts_mut();
        o.insert(DhcpOption::MessageType(MessageType::Ack));
        o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        o.insert(DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 2, 2)]));
        o.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(10, 0, 2, 3)]));
        o.insert(DhcpOption::TFTPServerName(b"install.lan\0".to_vec()));
        let l = lease_from("eth0", &ack);
        assert_eq!(l.address, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(l.next_server, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(l.tftp_server.as_deref(), Some("install.lan"));
        assert_eq!(l.dns, vec![Ipv4Addr::new(10, 0, 2, 3)]);
        assert_eq!(l.router, Some(Ipv4Addr::new(10, 0, 2, 2)));
    }

    /// Found by `make fuzz` (target `dhcp`): a reply whose Client FQDN
    /// option (81) is shorter than its 3 fixed bytes. dhcproto 0.15 has only
    /// a `debug_assert!` for that length, which panics in a build with debug
    /// assertions; the agent is built `--release` (without them), where the
    /// option is an error and dhcproto stops reading options there. So the
    /// reply has no message type and `receive_any` drops it. Only that build
    /// is checked: with debug assertions on, this is dhcproto's panic.
    #[cfg(not(debug_assertions))]
    #[test]
    fn a_reply_with_a_short_client_fqdn_option_is_dropped_not_a_panic() {
        let bytes = include_bytes!("../../tests/fixtures/dhcp-short-client-fqdn.bin");
        let m = Message::decode(&mut Decoder::new(bytes)).expect("the header decodes");
        assert!(m.opts().get(OptionCode::MessageType).is_none(), "{:?}", m.opts());
        assert!(m.opts().get(OptionCode::ClientFQDN).is_none(), "{:?}", m.opts());
    }
}
