//! The install's memory on small PCs: swap on the new system's swap
//! partition while the install runs, and one log line of figures.
//!
//! Why swap: the agent's initramfs lives in RAM (~26 MB unpacked), and the
//! target's own tools (update-initramfs, grub-install, update-grub) run in a
//! chroot beside the agent. At 128 MB the guest had ~65 MB after the kernel,
//! and without swap it thrashed: kcompactd soft lockups for minutes during
//! grub-install. The swap partition is made before the download anyway.

use std::path::{Path, PathBuf};

use diskplan::Fs;

use super::{Made, Reporter};

/// Swaps on every swap partition just made; returns those now in use.
/// Not fatal when it fails: on a PC with enough RAM the install fits anyway.
pub fn swap_on(made: &[Made], r: &dyn Reporter) -> Vec<PathBuf> {
    let mut on = Vec::new();
    for m in made.iter().filter(|m| m.fs == Fs::Swap) {
        match crate::sys::swap_on(&m.device) {
            Ok(()) => {
                r.log(&format!("swapping on {} during the install", m.device.display()));
                on.push(m.device.clone());
            }
            Err(e) => r.log(&format!("could not swap on {}: {e}", m.device.display())),
        }
    }
    on
}

/// Stops the swap [`swap_on`] started, before the disks are unmounted and
/// the PC restarts (or the failed disks are disarmed).
pub fn swap_off(on: &[PathBuf], r: &dyn Reporter) {
    for dev in on {
        if let Err(e) = crate::sys::swap_off(dev) {
            r.log(&format!("could not stop swapping on {}: {e}", dev.display()));
        }
    }
}

/// `memory: agent peak 9.1 MB (VmHWM), now 6.0 MB (VmRSS), RAM 120.4 MB
/// (MemTotal), swap used 3.2 MB` from `/proc/self/status` and
/// `/proc/meminfo`: `make bench` reads it from the uploaded log.
pub fn report(status: &Path, meminfo: &Path) -> String {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let (status, meminfo) = (read(status), read(meminfo));
    let mb =
        |kb: Option<u64>| kb.map_or("?".to_string(), |k| format!("{:.1} MB", k as f64 / 1024.0));
    let swap = crate::procfs::swap_used_kib(&meminfo);
    format!(
        "memory: agent peak {} (VmHWM), now {} (VmRSS), RAM {} (MemTotal), swap used {}",
        mb(kb(&status, "VmHWM")),
        mb(kb(&status, "VmRSS")),
        mb(kb(&meminfo, "MemTotal")),
        mb(swap)
    )
}

use crate::procfs::kib as kb;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn figures_come_from_proc_files() {
        let d = tempfile::tempdir().unwrap();
        let (status, meminfo) = (d.path().join("status"), d.path().join("meminfo"));
        std::fs::write(&status, "VmPeak:\t 20000 kB\nVmHWM:\t    9216 kB\nVmRSS:\t 6144 kB\n")
            .unwrap();
        std::fs::write(&meminfo, "MemTotal: 122880 kB\nSwapTotal: 4096 kB\nSwapFree: 1024 kB\n")
            .unwrap();
        assert_eq!(
            report(&status, &meminfo),
            "memory: agent peak 9.0 MB (VmHWM), now 6.0 MB (VmRSS), RAM 120.0 MB (MemTotal), \
             swap used 3.0 MB"
        );
        let real = report(Path::new("/proc/self/status"), Path::new("/proc/meminfo"));
        assert!(!real.contains('?'), "{real}");
    }

    fn in_proc_swaps(p: &Path) -> bool {
        let swaps = std::fs::read_to_string("/proc/swaps").unwrap();
        swaps.lines().any(|l| l.split_whitespace().next() == Some(&*p.to_string_lossy()))
    }

    /// Swaps off on drop, so a failing test leaves no swap on this host.
    struct Off<'a>(&'a Path);
    impl Drop for Off<'_> {
        fn drop(&mut self) {
            let _ = crate::sys::swap_off(self.0);
        }
    }

    /// The header the agent writes (format::make) is one the kernel swaps
    /// on; a file without it is refused. Needs root, as the install does.
    #[test]
    fn the_agents_swap_header_is_accepted_by_the_kernel() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("swap");
        // Written out, not sparse: the kernel refuses swap files with holes.
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(&vec![0u8; 4 << 20]).unwrap();
        assert!(crate::sys::swap_on(&p).is_err(), "no header yet: refused");
        super::super::format::swap_header(&mut f, "swap", [7; 16]).unwrap();
        drop(f);
        let _off = Off(&p);
        crate::sys::swap_on(&p).unwrap();
        assert!(in_proc_swaps(&p));
        crate::sys::swap_off(&p).unwrap();
        assert!(!in_proc_swaps(&p));
    }
}
