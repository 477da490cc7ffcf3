//! Host name → IPv4 address with a plain DNS A query over UDP to the
//! lease's name servers: the static agent has no glibc NSS (getaddrinfo).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error("no DNS server is known (the DHCP lease or ip= gave none) to look up {0}")]
    NoServer(String),
    #[error("{name} has no IPv4 address (asked {servers})")]
    NotFound { name: String, servers: String },
    #[error("bad host name {0:?}")]
    BadName(String),
}

/// Looks `name` up at each server in turn (2 tries of 2 s each).
pub fn resolve(name: &str, servers: &[Ipv4Addr], id: u16) -> Result<Vec<Ipv4Addr>, DnsError> {
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Ok(vec![ip]);
    }
    if servers.is_empty() {
        return Err(DnsError::NoServer(name.into()));
    }
    let query = build_query(name, id)?;
    for _ in 0..2 {
        for s in servers {
            if let Some(found) = ask(&query, *s, id) {
                if !found.is_empty() {
                    return Ok(found);
                }
            }
        }
    }
    let servers = servers.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
    Err(DnsError::NotFound { name: name.into(), servers })
}

fn ask(query: &[u8], server: Ipv4Addr, id: u16) -> Option<Vec<Ipv4Addr>> {
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    sock.send_to(query, SocketAddr::from((server, 53))).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    parse_answer(&buf[..n], id)
}

/// A recursive query for the A record of `name`.
pub fn build_query(name: &str, id: u16) -> Result<Vec<u8>, DnsError> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; 1 question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::BadName(name.into()));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]); // root, type A, class IN
    Ok(q)
}

/// The A records of an answer to our query `id`; `None` if it is not one.
pub fn parse_answer(msg: &[u8], id: u16) -> Option<Vec<Ipv4Addr>> {
    if msg.len() < 12 || u16::from_be_bytes([msg[0], msg[1]]) != id || msg[2] & 0x80 == 0 {
        return None;
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        pos = skip_name(msg, pos)?;
        let rr = msg.get(pos..pos + 10)?;
        let (rtype, len) =
            (u16::from_be_bytes([rr[0], rr[1]]), u16::from_be_bytes([rr[8], rr[9]]) as usize);
        let data = msg.get(pos + 10..pos + 10 + len)?;
        if rtype == 1 && len == 4 {
            out.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        pos += 10 + len;
    }
    Some(out)
}

/// Position after a (possibly compressed) name.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)? as usize;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xc0 == 0xc0 => return Some(pos + 2),
            l => pos += 1 + l,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_compressed_answer_to_our_query() {
        let mut msg = build_query("install.lan", 0x1234).unwrap();
        msg[2] = 0x81;
        msg[3] = 0x80;
        msg[7] = 2; // two answers: a CNAME (skipped) and an A
        msg.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12]);
        msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 2, 100]);
        assert_eq!(parse_answer(&msg, 0x1234), Some(vec![Ipv4Addr::new(10, 0, 2, 100)]));
        assert_eq!(parse_answer(&msg, 0x9999), None, "another query's answer");
    }

    #[test]
    fn ip_literals_need_no_server() {
        assert_eq!(resolve("10.0.2.100", &[], 1).unwrap(), vec![Ipv4Addr::new(10, 0, 2, 100)]);
        assert!(matches!(resolve("x.lan", &[], 1), Err(DnsError::NoServer(_))));
    }
}
