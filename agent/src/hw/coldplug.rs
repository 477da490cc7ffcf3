//! Loading what [`super::modules`] resolved: coldplug at boot (the network
//! drivers first, then one sysfs pass and the kernel's device events until
//! they stop, beside the network bring-up; a thread goes on with the
//! devices that come later), the wait for disks to settle, and the
//! `modprobe` the kernel calls for its own requests (`fs-ext4`,
//! `crypto-crc32c`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::modules::{modaliases, plan, unsupported_nics, ModuleDb, ModuleError, ProbeOpts};
use super::uevent::Uevents;

/// What coldplug did.
#[derive(Debug, Default)]
pub struct Report {
    pub loaded: Vec<String>,
    /// (module, error) for modules the kernel refused.
    pub failed: Vec<(String, String)>,
    /// PCI `vendor:device` of network controllers no driver took.
    pub unsupported_nics: Vec<String>,
    pub rounds: u32,
}

fn module_of(path: &str) -> String {
    lazare_cd::kmod::name_of(path).unwrap_or_default()
}

/// Loads a module with its closure unless it is loaded already.
pub fn load(db: &ModuleDb, root: &Path, name: &str, report: &mut Report) {
    let loaded = |file: &String| root.join("sys/module").join(module_of(file)).exists();
    let files: Vec<String> = db.closure(name).into_iter().filter(|f| !loaded(f)).collect();
    if files.is_empty() {
        return;
    }
    let mut fail = |m: String, e: String| {
        if !report.failed.iter().any(|(f, _)| *f == m) {
            report.failed.push((m, e));
        }
    };
    let images = match db.images(&files) {
        Ok(images) => images,
        Err(e) => return fail(lazare_cd::kmod::normalize(name), e.to_string()),
    };
    for (file, image) in files.iter().zip(images) {
        let m = module_of(file);
        match crate::sys::init_module(&image, "") {
            Ok(()) => report.loaded.push(m),
            Err(e) => fail(m, format!("loading {file}: {e}")),
        }
    }
}

/// How long the uevent socket must stay quiet after the first pass before
/// coldplug hands over to the network. Devices that a driver reveals
/// (virtio_pci's virtio devices, a bridge's children) are announced while
/// that driver loads, so their events are already queued; this only has to
/// outlast the kernel's own queueing, not a device's probe.
const QUIET: Duration = Duration::from_millis(150);
/// At most this long in the event loop: a PC whose devices keep coming
/// (a flapping USB port) still reaches the network.
const SETTLE_LIMIT: Duration = Duration::from_secs(4);

/// Loads drivers for every device, in two parts. The network devices'
/// first, alone: an old PC has one CPU, and e1000's probe took 0.45 s alone
/// but 0.59-0.85 s beside ata_piix's and sr_mod's (TCG, issue 17). The rest
/// goes on in [`Rest`] while the network comes up: one pass over sysfs, the
/// modules of each device loaded in parallel with the others' (a slow probe,
/// such as an ATA port's reset, overlaps the rest), then whatever the kernel
/// announces on the uevent socket until it stays quiet for [`QUIET`]; a
/// thread then keeps loading drivers for devices that come later (USB
/// devices enumerate for seconds; a stick plugged in later). Whoever needs
/// the disks waits for the rest ([`DiskWatch`] after it); a PC with no
/// network driver waits for it before its network step (a USB NIC appears
/// only with its host's driver).
pub fn start(opts: &ProbeOpts) -> Result<(Report, Rest), ModuleError> {
    let db = Arc::new(ModuleDb::load(opts)?);
    // Coldplug loads dozens of modules: the packs stay decompressed until
    // it ends (the network drivers' pack first, alone, the second one in
    // the rest's thread while the network comes up).
    db.hold(true);
    let events = Uevents::open();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut nics = Report::default();
    // A second look only after a virtio PCI device: virtio_pci registers
    // the network device itself on the virtio bus (virtio_net takes it)
    // before its probe returns. Each look walks sysfs: 40-90 ms under TCG.
    for _ in 0..2 {
        let new: BTreeSet<String> =
            modaliases(&opts.root).into_iter().filter(|a| is_nic(a) && !done.contains(a)).collect();
        let virtio = new.iter().any(|a| a.starts_with("pci:v00001AF4"));
        load_aliases(&db, &opts.root, new, &mut done, &mut nics);
        if !virtio {
            break;
        }
    }
    nics.unsupported_nics = unsupported_nics(&opts.root);
    let root = opts.root.clone();
    let rest = std::thread::spawn(move || {
        let mut report = Report::default();
        scan_and_load(&db, &root, &mut done, &mut report);
        settle_events(events.as_ref().ok(), &db, &root, &mut done, &mut report);
        // Later devices are few: their modules come out of the packs one
        // load at a time, and the 17 MB leave RAM before the install.
        db.hold(false);
        report.loaded.sort();
        report.loaded.dedup();
        if let Ok(events) = events {
            std::thread::spawn(move || hotplug(&events, &db, &root, done));
        }
        report
    });
    Ok((nics, Rest(Some(rest))))
}

/// What the install makes the kernel ask for (mounting the target's ext4
/// and its ESP, an offline bundle's CD). Asked for by the kernel during the
/// install, its modprobe (this agent, another process) would decompress
/// both packs beside the install: at 128 MB the OOM killer took it (issue
/// 17, `make bench`). Loaded by [`preload`] when the install starts, not
/// in coldplug: there they held the PC's inventory back 0.47 s.
const PRELOAD: &[&str] =
    &["ext4", "vfat", "nls_cp437", "nls_ascii", "nls_iso8859-1", "nls_utf8", "isofs"];

/// Loads [`PRELOAD`], the packs decompressed once for all of it and let go
/// after.
pub fn preload(opts: &ProbeOpts) -> Result<Report, ModuleError> {
    let db = ModuleDb::load(opts)?;
    let mut report = Report::default();
    db.hold(true);
    for m in PRELOAD {
        load(&db, &opts.root, m, &mut report);
    }
    db.hold(false);
    Ok(report)
}

/// The part of coldplug after the network drivers: running, or (`None`)
/// already waited for and reported.
pub struct Rest(Option<std::thread::JoinHandle<Report>>);

impl Rest {
    /// One already waited for (and reported): nothing more to say.
    pub fn done() -> Rest {
        Rest(None)
    }

    /// Waits for it; a panicked thread loaded what it loaded, said nothing.
    pub fn wait(self) -> Report {
        self.0.map_or_else(Report::default, |h| h.join().unwrap_or_default())
    }
}

/// A network device: PCI class 0x02 (`bc02` in its modalias), or a virtio
/// device of id 1 (a virtio-net behind virtio_pci).
fn is_nic(alias: &str) -> bool {
    (alias.starts_with("pci:") && alias.contains("bc02")) || alias.starts_with("virtio:d00000001v")
}

/// The kernel's device events until they stop for [`QUIET`], loading what
/// they announce (at most [`SETTLE_LIMIT`]); without the event socket,
/// sysfs scans until two in a row find nothing new.
fn settle_events(
    events: Option<&Uevents>,
    db: &ModuleDb,
    root: &Path,
    done: &mut BTreeSet<String>,
    report: &mut Report,
) {
    let Some(events) = events else {
        // It cannot fail on the kernels the CD carries, but a missed driver
        // is a PC that goes to the dump.
        let mut quiet = 0;
        while quiet < 2 && report.rounds < 20 {
            std::thread::sleep(Duration::from_millis(200));
            let before = done.len();
            scan_and_load(db, root, done, report);
            quiet = if done.len() == before { quiet + 1 } else { 0 };
        }
        return;
    };
    let start = Instant::now();
    loop {
        let left = SETTLE_LIMIT.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        match events.next(Some(QUIET.min(left))) {
            Ok(Some(ev)) => {
                if let Some(alias) = ev.added_modalias() {
                    if done.insert(alias.to_string()) {
                        report.rounds += 1;
                        load_for(db, root, alias, report);
                    }
                }
            }
            Ok(None) => break,
            // Events were lost (ENOBUFS): a scan finds what they said.
            Err(_) => scan_and_load(db, root, done, report),
        }
    }
}

/// One pass over sysfs: the modules for every modalias not seen yet.
fn scan_and_load(db: &ModuleDb, root: &Path, done: &mut BTreeSet<String>, report: &mut Report) {
    let new: BTreeSet<String> = modaliases(root).difference(done).cloned().collect();
    load_aliases(db, root, new, done, report);
}

/// The modules of `new` (modaliases not in `done`), each device on its own
/// thread. Two devices sharing a dependency may race to load it:
/// init_module makes the second wait for the first and answer EEXIST,
/// which counts as loaded. The modules of ONE device stay in their order,
/// so the preferred driver of a device still binds it first.
fn load_aliases(
    db: &ModuleDb,
    root: &Path,
    new: BTreeSet<String>,
    done: &mut BTreeSet<String>,
    report: &mut Report,
) {
    report.rounds += 1;
    let planned = plan(db, &new);
    done.extend(new);
    let reports: Vec<Report> = std::thread::scope(|scope| {
        let handles: Vec<_> = planned
            .values()
            .map(|modules| {
                scope.spawn(move || {
                    let mut r = Report::default();
                    for m in modules {
                        load(db, root, m, &mut r);
                    }
                    r
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for r in reports {
        report.loaded.extend(r.loaded);
        for (m, e) in r.failed {
            if !report.failed.iter().any(|(f, _)| *f == m) {
                report.failed.push((m, e));
            }
        }
    }
}

/// The modules matching one modalias, in order.
fn load_for(db: &ModuleDb, root: &Path, modalias: &str, report: &mut Report) {
    for m in db.matching(modalias) {
        load(db, root, &m, report);
    }
}

/// For the rest of the agent's life: a driver for each device that appears
/// (USB devices enumerate late; a stick is plugged in for an offline
/// install). What it loads goes to the kernel log, which the agent's log
/// upload carries.
fn hotplug(events: &Uevents, db: &ModuleDb, root: &Path, mut done: BTreeSet<String>) {
    loop {
        let alias = match events.next(None) {
            Ok(Some(ev)) => match ev.added_modalias() {
                Some(a) if done.insert(a.to_string()) => a.to_string(),
                _ => continue,
            },
            Ok(None) => continue,
            Err(_) => {
                // Lost events: catch up from sysfs, then go on listening.
                let mut r = Report::default();
                scan_and_load(db, root, &mut done, &mut r);
                kmsg(&format!("rescan loaded {}", r.loaded.join(" ")));
                continue;
            }
        };
        let mut r = Report::default();
        load_for(db, root, &alias, &mut r);
        if !r.loaded.is_empty() || !r.failed.is_empty() {
            let failed: Vec<String> = r.failed.iter().map(|(m, e)| format!("{m}: {e}")).collect();
            kmsg(&format!("{alias}: loaded {} {}", r.loaded.join(" "), failed.join("; ")));
        }
    }
}

fn kmsg(line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = writeln!(f, "lazare-agent: hotplug: {line}");
    }
}

fn block_devices(root: &Path) -> BTreeSet<PathBuf> {
    entries(&root.join("sys/block"))
}

fn entries(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect()
}

/// Where the devices of the buses that find their disks after their
/// driver loaded are listed: USB (the hub enumerates its ports in a work
/// queue, then usb-storage waits 1 s before it scans a stick), NVMe
/// (namespaces are scanned in a work queue after the controller reset),
/// MMC/SD readers (card detection in a work queue), PC Cards (the socket
/// thread finds them) and FireWire. A disk on any other controller (ATA,
/// SCSI, virtio) is there when coldplug ends: init_module returns only
/// once the asynchronous probes and scans are done (the kernel's
/// async_synchronize_full after a module's init).
const LATE_BUSES: &[&str] = &[
    "sys/bus/usb/devices",
    "sys/class/nvme",
    "sys/class/mmc_host",
    "sys/class/pcmcia_socket",
    "sys/bus/firewire/devices",
];
/// How long the disks (and the devices of [`LATE_BUSES`]) must stay the
/// same when one of those buses has a device: a stick shows up about 1 s
/// after its USB device does.
const LATE_QUIET: Duration = Duration::from_millis(1500);
/// The same without any: nothing is on its way (coldplug ended after 150 ms
/// without a device event), one more look only.
const QUIET_NO_LATE: Duration = Duration::from_millis(100);

fn late_devices(root: &Path) -> BTreeSet<PathBuf> {
    LATE_BUSES.iter().flat_map(|b| entries(&root.join(b))).collect()
}

/// The block devices since coldplug ended. Disks on USB and the other
/// [`LATE_BUSES`] appear late; rather than wait for them before the network
/// (a fixed 1.5 s or more at every boot), the agent starts this watch after
/// coldplug and [`DiskWatch::settle`]s it before it looks at the disks: the
/// DHCP exchange has usually covered the wait by then.
pub struct DiskWatch {
    root: PathBuf,
    started: Instant,
    last: (BTreeSet<PathBuf>, BTreeSet<PathBuf>),
    stable_since: Instant,
}

impl DiskWatch {
    pub fn start(root: &Path) -> DiskWatch {
        let now = Instant::now();
        DiskWatch {
            root: root.to_path_buf(),
            started: now,
            last: (block_devices(root), late_devices(root)),
            stable_since: now,
        }
    }

    /// Waits until the block devices and the devices of [`LATE_BUSES`] have
    /// not changed for [`LATE_QUIET`] ([`QUIET_NO_LATE`] when the PC has no
    /// such device), counted from the last change seen since
    /// [`DiskWatch::start`], at most `limit` after the start. Changes in
    /// between are caught by the first look: a set that differs restarts
    /// the count.
    pub fn settle(mut self, limit: Duration) {
        loop {
            let now = (block_devices(&self.root), late_devices(&self.root));
            let quiet = if now.1.is_empty() { QUIET_NO_LATE } else { LATE_QUIET };
            if now != self.last {
                self.last = now;
                self.stable_since = Instant::now();
            } else if self.stable_since.elapsed() >= quiet {
                return;
            }
            if self.started.elapsed() >= limit {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `modprobe [-q] [--] NAME...` as the kernel calls it for its own module
/// requests (via /proc/sys/kernel/modprobe). Returns the exit code.
pub fn modprobe_main(args: &[String]) -> i32 {
    let names: Vec<&String> = args.iter().skip(1).filter(|a| !a.starts_with('-')).collect();
    let quiet = args.iter().any(|a| a == "-q");
    let opts = ProbeOpts { root: PathBuf::from("/"), kver: crate::sys::kernel_release() };
    let db = match ModuleDb::load(&opts) {
        Ok(db) => db,
        Err(e) => {
            if !quiet {
                eprintln!("modprobe: {e}");
            }
            return 1;
        }
    };
    let mut code = 0;
    for name in names {
        let modules = db.resolve(name);
        if modules.is_empty() {
            if !quiet {
                eprintln!("modprobe: {}", ModuleError::Unknown(name.clone()));
            }
            code = 1;
            continue;
        }
        let mut report = Report::default();
        for m in &modules {
            load(&db, &opts.root, m, &mut report);
        }
        // Success when one of the modules the name stands for is there: an
        // alias such as crypto-crc32c names alternatives (crc32c_intel fails
        // on a CPU without SSE4.2, crc32c_generic works), and the kernel only
        // looks for the filesystem again after a zero exit.
        let present =
            |m: &String| db.is_builtin(m) || opts.root.join("sys/module").join(m).exists();
        if !modules.iter().any(present) {
            if !quiet {
                for (m, e) in &report.failed {
                    eprintln!("modprobe: {m}: {e}");
                }
            }
            code = 1;
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settle_time(root: &Path) -> Duration {
        let t = Instant::now();
        DiskWatch::start(root).settle(Duration::from_secs(8));
        t.elapsed()
    }

    #[test]
    fn disks_settle_after_a_short_margin_when_no_bus_finds_disks_late() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("sys/block/sda")).unwrap();
        let took = settle_time(root.path());
        assert!(took >= QUIET_NO_LATE && took < LATE_QUIET, "{took:?}");
    }

    #[test]
    fn a_usb_bus_makes_the_disks_settle_for_the_long_quiet() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("sys/block/sda")).unwrap();
        std::fs::create_dir_all(root.path().join("sys/bus/usb/devices/usb1")).unwrap();
        let took = settle_time(root.path());
        assert!(took >= LATE_QUIET && took < Duration::from_secs(8), "{took:?}");
    }
}
