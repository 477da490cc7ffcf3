//! Loading what [`super::modules`] resolved: coldplug at boot (repeat until
//! no new device appears, then wait for disks to settle) and the `modprobe`
//! the kernel calls for its own requests (`fs-ext4`, `crypto-crc32c`).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::modules::{modaliases, plan, unsupported_nics, ModuleDb, ModuleError, ProbeOpts};

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

/// Loads one module file; errors carry the file name.
fn insmod(path: &Path) -> Result<(), String> {
    let f = File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    crate::sys::finit_module(&f, "").map_err(|e| format!("loading {}: {e}", path.display()))
}

fn module_of(path: &Path) -> String {
    lazare_cd::kmod::name_of(&path.to_string_lossy()).unwrap_or_default()
}

/// Loads a module with its closure unless it is loaded already.
pub fn load(db: &ModuleDb, root: &Path, name: &str, report: &mut Report) {
    for file in db.closure(name) {
        let m = module_of(&file);
        if root.join("sys/module").join(&m).exists() {
            continue;
        }
        match insmod(&file) {
            Ok(()) => report.loaded.push(m),
            Err(e) => {
                if !report.failed.iter().any(|(f, _)| *f == m) {
                    report.failed.push((m, e));
                }
            }
        }
    }
}

/// Loads drivers for every device, again for devices that appear after
/// (a PCI bridge driver reveals more devices, USB enumerates later). The
/// wait for disks to settle is [`DiskWatch`]'s, later, so it overlaps DHCP.
pub fn coldplug(opts: &ProbeOpts) -> Result<Report, ModuleError> {
    let db = ModuleDb::load(opts)?;
    let mut report = Report::default();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut quiet_rounds = 0;
    while quiet_rounds < 3 && report.rounds < 40 {
        report.rounds += 1;
        let all = modaliases(&opts.root);
        let new: BTreeSet<String> = all.difference(&done).cloned().collect();
        if new.is_empty() {
            quiet_rounds += 1;
        } else {
            quiet_rounds = 0;
            for modules in plan(&db, &new).values() {
                for m in modules {
                    load(&db, &opts.root, m, &mut report);
                }
            }
            done.extend(new);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    report.unsupported_nics = unsupported_nics(&opts.root);
    Ok(report)
}

fn block_devices(root: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(root.join("sys/block"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// The block devices since coldplug ended. Disks on slow controllers and
/// USB sticks appear late; rather than wait for them before the network
/// (a fixed 1.5 s or more at every boot), the agent starts this watch after
/// coldplug and [`DiskWatch::settle`]s it before it looks at the disks: the
/// DHCP exchange has usually covered the wait by then.
pub struct DiskWatch {
    root: PathBuf,
    started: Instant,
    last: BTreeSet<PathBuf>,
    stable_since: Instant,
}

impl DiskWatch {
    pub fn start(root: &Path) -> DiskWatch {
        let now = Instant::now();
        DiskWatch {
            root: root.to_path_buf(),
            started: now,
            last: block_devices(root),
            stable_since: now,
        }
    }

    /// Waits until the block devices have not changed for 1.5 s (counted
    /// from the last change seen since [`DiskWatch::start`]), at most
    /// `limit` after the start. Changes in between are caught by the
    /// first look: a set that differs restarts the 1.5 s.
    pub fn settle(mut self, limit: Duration) {
        loop {
            let now = block_devices(&self.root);
            if now != self.last {
                self.last = now;
                self.stable_since = Instant::now();
            } else if self.stable_since.elapsed() >= Duration::from_millis(1500) {
                return;
            }
            if self.started.elapsed() >= limit {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
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
