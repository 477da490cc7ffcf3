//! The kernel's device events: the NETLINK_KOBJECT_UEVENT socket udev
//! listens on. Coldplug reads it instead of polling sysfs in rounds: a driver
//! that reveals more devices (a PCI bridge, virtio_pci, an ATA or USB host)
//! makes the kernel send an `add` event with the new device's MODALIAS, so
//! the agent knows at once what to load next, and knows it is done when the
//! socket stays quiet.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    bind, recv, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};

/// The kernel's multicast group (group 2 is udev's re-broadcast, which no
/// one sends here).
const KERNEL_GROUP: u32 = 1;

/// One event: `ACTION@DEVPATH` then `KEY=VALUE` fields, NUL-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    pub action: String,
    pub devpath: String,
    pub modalias: Option<String>,
}

impl Uevent {
    /// The modalias of a device that just appeared: what to load a driver for.
    pub fn added_modalias(&self) -> Option<&str> {
        (self.action == "add").then_some(self.modalias.as_deref()).flatten()
    }
}

/// Parses one kernel uevent datagram; `None` for anything else.
pub fn parse(msg: &[u8]) -> Option<Uevent> {
    let mut fields = msg.split(|b| *b == 0).filter(|f| !f.is_empty());
    let head = std::str::from_utf8(fields.next()?).ok()?;
    let (action, devpath) = head.split_once('@')?;
    let mut modalias = None;
    for f in fields {
        let Ok(f) = std::str::from_utf8(f) else { continue };
        if let Some(v) = f.strip_prefix("MODALIAS=") {
            modalias = Some(v.to_string()).filter(|v| !v.is_empty());
        }
    }
    Some(Uevent { action: action.to_string(), devpath: devpath.to_string(), modalias })
}

/// A bound uevent socket.
pub struct Uevents {
    fd: OwnedFd,
}

impl Uevents {
    /// Opens the socket. Done before the first sysfs scan, so a device that
    /// appears in between is seen by one or the other (both: deduplicated).
    pub fn open() -> io::Result<Uevents> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )?;
        // A burst (every USB and SCSI device of a PC at once) must not
        // overflow the default buffer; PID 1 may force a larger one.
        let _ = setsockopt(&fd, sockopt::RcvBufForce, &(4 << 20));
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, KERNEL_GROUP))?;
        Ok(Uevents { fd })
    }

    /// The next event, waiting at most `timeout` (`None`: forever); `Ok(None)`
    /// when the time ran out. ENOBUFS (events were lost to an overflow) is
    /// an error the caller answers with a sysfs scan.
    pub fn next(&self, timeout: Option<Duration>) -> io::Result<Option<Uevent>> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let wait = match timeout {
                None => PollTimeout::NONE,
                Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
            };
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, wait) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT)?;
            if let Some(ev) = parse(&buf[..n]) {
                return Ok(Some(ev));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_kernel_add_event() {
        let msg = b"add@/devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0\0\
ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0\0\
SUBSYSTEM=scsi\0MODALIAS=scsi:t-0x05\0DEVTYPE=scsi_device\0SEQNUM=1042\0";
        let ev = parse(msg).unwrap();
        assert_eq!(ev.action, "add");
        assert!(ev.devpath.ends_with("1:0:0:0"));
        assert_eq!(ev.added_modalias(), Some("scsi:t-0x05"));
    }

    #[test]
    fn only_add_events_ask_for_a_driver() {
        let ev = parse(b"remove@/devices/x\0ACTION=remove\0MODALIAS=pci:v1\0").unwrap();
        assert_eq!(ev.modalias.as_deref(), Some("pci:v1"));
        assert_eq!(ev.added_modalias(), None);
        let bound = parse(b"bind@/devices/x\0ACTION=bind\0MODALIAS=pci:v1\0").unwrap();
        assert_eq!(bound.added_modalias(), None);
        let net = parse(b"add@/devices/virtual/net/lo\0ACTION=add\0SUBSYSTEM=net\0").unwrap();
        assert_eq!(net.added_modalias(), None);
    }

    #[test]
    fn ignores_what_is_not_a_kernel_event() {
        // udev's re-broadcast starts with "libudev" and a binary header.
        assert_eq!(parse(b"libudev\0\xfe\xed\xca\xfe"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"MODALIAS=x\0"), None);
    }
}
