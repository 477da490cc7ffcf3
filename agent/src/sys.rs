//! Every system call the agent makes that std does not wrap. The only module
//! allowed to use `unsafe`: the safe `nix` wrappers come first, raw `libc`
//! ioctls only where nix has none (entropy, interface addresses, routes).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::mount::MsFlags;

pub use nix::errno::Errno;

/// Mounts `fstype` from `src` on `target`; "already mounted" counts as done.
pub fn mount(
    src: &str,
    target: &str,
    fstype: &str,
    flags: u64,
    data: Option<&str>,
) -> io::Result<()> {
    let flags = MsFlags::from_bits_truncate(flags as libc::c_ulong);
    match nix::mount::mount(Some(src), target, Some(fstype), flags, data) {
        Ok(()) | Err(Errno::EBUSY) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Mount flags the init steps use, re-exported so callers need no nix.
pub const MS_NOSUID: u64 = libc::MS_NOSUID;
pub const MS_NODEV: u64 = libc::MS_NODEV;
pub const MS_NOEXEC: u64 = libc::MS_NOEXEC;
pub const MS_RDONLY: u64 = libc::MS_RDONLY;

/// Flushes filesystems and powers the machine off. Never returns on success.
pub fn power_off() -> io::Error {
    nix::unistd::sync();
    match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF) {
        Err(e) => io::Error::from(e),
    }
}

/// Flushes filesystems and restarts the machine. Never returns on success.
pub fn restart() -> io::Error {
    nix::unistd::sync();
    match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT) {
        Err(e) => io::Error::from(e),
    }
}

/// Loads a kernel module from the bytes of its `.ko` file (signature
/// included). `EEXIST` (already loaded) is success.
pub fn init_module(image: &[u8], params: &str) -> io::Result<()> {
    let params = CString::new(params).map_err(io::Error::other)?;
    match nix::kmod::init_module(image, &params) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Fixes glibc's mmap threshold at 1 MiB (allocations from there on get
/// their own mapping, unmapped when freed), which also stops it moving:
/// by default each freed mapping raises it to that size (and the heap's
/// trim threshold to twice that), so after coldplug freed the module
/// packs (6 and 10.6 MB) every later buffer under 10 MB stayed in the
/// heap once freed. At 128 MB the install's lowest MemAvailable was
/// 15 MiB instead of 25 MiB (`make bench`, issue 17).
pub fn fix_malloc_thresholds() {
    // SAFETY: mallopt only sets the allocator's parameters.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
}

/// Gives the allocator's free pages back to the kernel (glibc's
/// malloc_trim, all arenas).
pub fn trim_heap() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe { libc::malloc_trim(0) };
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Sets the system clock (CLOCK_REALTIME) to `secs` since the epoch.
pub fn set_clock(secs: i64) -> io::Result<()> {
    let ts = nix::sys::time::TimeSpec::new(secs, 0);
    nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, ts).map_err(io::Error::from)
}

/// Reaps one exited child, blocking. Returns its pid and a wait status code
/// (exit code, or 128 + signal) or `None` when there are no children left.
pub fn wait_any() -> Option<(u32, i32)> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) => return Some((pid.as_raw() as u32, code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                return Some((pid.as_raw() as u32, 128 + sig as i32))
            }
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Credits `seed` to the kernel's entropy pool (RNDADDENTROPY), counting
/// `bits` of entropy, so that getrandom() stops blocking in early boot.
pub fn add_entropy(seed: &[u8], bits: u32) -> io::Result<()> {
    // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
    let words = seed.len().div_ceil(4);
    let mut buf = vec![0u32; 2 + words];
    buf[0] = bits;
    buf[1] = seed.len() as u32;
    for (i, chunk) in seed.chunks(4).enumerate() {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        buf[2 + i] = u32::from_ne_bytes(w);
    }
    let f = OpenOptions::new().write(true).open("/dev/urandom")?;
    // _IOW('R', 0x03, int[2])
    const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;
    // SAFETY: buf outlives the call and has the layout of rand_pool_info
    // with buf_size bytes of payload after the two header ints.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), RNDADDENTROPY as _, buf.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A datagram socket for interface ioctls.
fn ioctl_socket() -> io::Result<OwnedFd> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)
        .map_err(io::Error::from)
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

fn ioctl_ifreq(fd: &impl AsFd, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: req is a valid, initialised ifreq that lives across the call.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), request as _, req as *mut libc::ifreq) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets IFF_UP on an interface (carrier detection starts then); nothing
/// when it is up already. Every SIOCSIFFLAGS makes the kernel reprogram the
/// NIC's receive filter (dev_set_rx_mode), and qemu's e1000 then holds
/// every frame it receives for 1 s (its RCTL flush timer): a second "up"
/// after the DHCP lease held the server's ARP reply for 0.7 s (issue 17).
pub fn link_up(name: &str) -> io::Result<()> {
    let s = ioctl_socket()?;
    let mut req = ifreq(name)?;
    ioctl_ifreq(&s, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short != 0 {
        return Ok(());
    }
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    ioctl_ifreq(&s, libc::SIOCSIFFLAGS, &mut req)
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(addr.octets()) },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size on Linux; the
    // kernel reads the family to interpret it.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Gives an interface an IPv4 address and netmask (SIOCSIFADDR/SIOCSIFNETMASK).
pub fn set_ipv4(name: &str, addr: Ipv4Addr, netmask: Ipv4Addr) -> io::Result<()> {
    let s = ioctl_socket()?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_addr = sockaddr_in(addr);
    ioctl_ifreq(&s, libc::SIOCSIFADDR, &mut req)?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_netmask = sockaddr_in(netmask);
    ioctl_ifreq(&s, libc::SIOCSIFNETMASK, &mut req)
}

/// Adds a default route via `gateway` on `dev` (SIOCADDRT). An existing
/// identical route counts as done.
pub fn add_default_route(dev: &str, gateway: Ipv4Addr) -> io::Result<()> {
    let s = ioctl_socket()?;
    let dev = CString::new(dev).map_err(io::Error::other)?;
    // SAFETY: rtentry is plain old data; all-zero is a valid value.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr_in(gateway);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    rt.rt_dev = dev.as_ptr() as *mut libc::c_char;
    // SAFETY: rt and the device name it points to live across the call.
    let r =
        unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCADDRT as _, &mut rt as *mut libc::rtentry) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    Ok(())
}

/// The permanent (burnt-in) MAC of a NIC via ETHTOOL_GPERMADDR, when the
/// driver reports one that is not all zeroes.
pub fn permanent_mac(name: &str) -> Option<[u8; 6]> {
    #[repr(C)]
    struct PermAddr {
        cmd: u32,
        size: u32,
        data: [u8; 32],
    }
    const ETHTOOL_GPERMADDR: u32 = 0x20;
    let s = ioctl_socket().ok()?;
    let mut pa = PermAddr { cmd: ETHTOOL_GPERMADDR, size: 32, data: [0; 32] };
    let mut req = ifreq(name).ok()?;
    req.ifr_ifru.ifru_data = &mut pa as *mut PermAddr as *mut libc::c_char;
    ioctl_ifreq(&s, libc::SIOCETHTOOL, &mut req).ok()?;
    let mac: [u8; 6] = pa.data[..6].try_into().ok()?;
    (pa.size == 6 && mac != [0; 6]).then_some(mac)
}

/// The link speed in Mb/s the driver reports (ETHTOOL_GSET), None when it
/// reports none (no link) or cannot answer. Some drivers (e1000) read it
/// from the MAC even while the interface is down.
pub fn link_speed(name: &str) -> Option<u32> {
    // struct ethtool_cmd: the fields up to speed_hi; the rest is padding.
    #[repr(C)]
    struct EthtoolCmd {
        cmd: u32,
        supported: u32,
        advertising: u32,
        speed: u16,
        duplex: u8,
        port: u8,
        phy_address: u8,
        transceiver: u8,
        autoneg: u8,
        mdio_support: u8,
        maxtxpkt: u32,
        maxrxpkt: u32,
        speed_hi: u16,
        rest: [u8; 14],
    }
    const ETHTOOL_GSET: u32 = 0x1;
    let s = ioctl_socket().ok()?;
    // SAFETY: EthtoolCmd is plain old data; all-zero is a valid value.
    let mut cmd: EthtoolCmd = unsafe { std::mem::zeroed() };
    cmd.cmd = ETHTOOL_GSET;
    let mut req = ifreq(name).ok()?;
    req.ifr_ifru.ifru_data = &mut cmd as *mut EthtoolCmd as *mut libc::c_char;
    ioctl_ifreq(&s, libc::SIOCETHTOOL, &mut req).ok()?;
    let speed = u32::from(cmd.speed) | u32::from(cmd.speed_hi) << 16;
    // SPEED_UNKNOWN is all ones.
    (speed != 0 && speed != u32::MAX).then_some(speed)
}

/// A UDP socket on port 68 bound to one interface (SO_BINDTODEVICE) with
/// broadcasts allowed: what a DHCP client needs before it has an address.
/// SO_REUSEADDR comes before bind so every NIC can have its own.
pub fn dhcp_socket(iface: &str) -> io::Result<std::net::UdpSocket> {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let fd = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(iface))?;
    setsockopt(&fd, sockopt::Broadcast, &true)?;
    bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, 68))?;
    Ok(std::net::UdpSocket::from(fd))
}

/// Creates a symlink `link` → `target`; an existing one is left alone.
pub fn symlink(target: &str, link: &str) -> io::Result<()> {
    match std::os::unix::fs::symlink(target, link) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

/// True when `path` is a mount point distinct from its parent.
pub fn is_mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(me), Some(parent)) = (std::fs::metadata(path), path.parent()) else {
        return false;
    };
    std::fs::metadata(parent).is_ok_and(|p| p.dev() != me.dev())
}

/// Blocks until one of `files` is readable; returns its index.
pub fn poll_readable(files: &[File]) -> Option<usize> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds: Vec<PollFd> =
        files.iter().map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN)).collect();
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
        let ready = fds.iter().position(|f| {
            f.revents().is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
        });
        if ready.is_some() {
            return ready;
        }
    }
}

/// Starts swapping to `dev` (a partition or file with a swap header).
pub fn swap_on(dev: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(dev.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `path` is a valid NUL-terminated string for the whole call.
    match unsafe { libc::swapon(path.as_ptr(), 0) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Stops swapping to `dev` (its pages are read back into RAM first).
pub fn swap_off(dev: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(dev.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `path` is a valid NUL-terminated string for the whole call.
    match unsafe { libc::swapoff(path.as_ptr()) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
