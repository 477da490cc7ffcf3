//! Kernel modules for the hardware present: every `modalias` under
//! `/sys/devices` is matched against `modules.alias` (shell globs), and the
//! matching modules are loaded with their `modules.dep` closure (and
//! `modules.softdep` pre/post modules) through init_module. The indexes are
//! parsed by `lazare_cd::kmod`, the parser the builder wrote them with; the
//! module files come out of the CD's two packs (`lazare_cd::modpack`).
//! Resolution is a function of a root directory, so tests run it on a fake
//! tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use lazare_cd::kmod::{LoadError, ModuleIndex};
use lazare_cd::modpack::{self, PackError, PACKS};

/// Where to look: `root` is `/` on the CD, a temp dir in tests.
#[derive(Debug, Clone)]
pub struct ProbeOpts {
    pub root: PathBuf,
    /// Kernel release whose modules to use (`uname -r`).
    pub kver: String,
}

impl ProbeOpts {
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.kver)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    #[error("this CD carries no modules for the running kernel {kver}: {dir} is missing (the CD has modules for: {found})")]
    WrongKernel { kver: String, dir: String, found: String },
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("no module or alias named {0:?}")]
    Unknown(String),
    #[error("this CD's module index is damaged: {0}")]
    Index(String),
    #[error("this CD's module packs are damaged: {0}")]
    Pack(#[from] PackError),
    #[error("module file {0} is in none of this CD's packs")]
    NotInPacks(String),
}

/// The parsed module indexes of the running kernel on the CD, and its
/// module packs.
#[derive(Debug)]
pub struct ModuleDb {
    dir: PathBuf,
    index: ModuleIndex,
    /// The packs' archives decompressed so far (by [`PACKS`] index): kept
    /// between calls while [`ModuleDb::hold`] is on (coldplug loads dozens
    /// of modules from them, 17 MB decompressed), else dropped after each.
    archives: Mutex<Vec<Vec<u8>>>,
    hold: AtomicBool,
}

impl ModuleDb {
    pub fn load(opts: &ProbeOpts) -> Result<ModuleDb, ModuleError> {
        let dir = opts.modules_dir();
        if !dir.is_dir() {
            let found: Vec<String> = std::fs::read_dir(opts.root.join("lib/modules"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            return Err(ModuleError::WrongKernel {
                kver: opts.kver.clone(),
                dir: dir.display().to_string(),
                found: if found.is_empty() { "none".into() } else { found.join(", ") },
            });
        }
        let read = |name: &str| match std::fs::read(dir.join(name)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            r => r.map(Some).map_err(|source| ModuleError::Read {
                path: dir.join(name).display().to_string(),
                source,
            }),
        };
        let index = ModuleIndex::load(read).map_err(|e| match e {
            LoadError::Read(e) => e,
            e => ModuleError::Index(e.to_string()),
        })?;
        Ok(ModuleDb { dir, index, archives: Mutex::new(Vec::new()), hold: AtomicBool::new(false) })
    }

    /// Keeps the packs decompressed between [`ModuleDb::images`] calls
    /// (`true`), or drops them now and after each call (`false`).
    pub fn hold(&self, on: bool) {
        self.hold.store(on, Ordering::SeqCst);
        if !on {
            release(&mut self.archives.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    /// The bytes of the module files `paths` (as [`ModuleDb::closure`]
    /// gives them), in order: each is looked for in the first pack, then
    /// in the second. The first is read only as far as needed, unless it
    /// is held already; the second needs all of the first (its dictionary).
    pub fn images(&self, paths: &[String]) -> Result<Vec<Vec<u8>>, ModuleError> {
        let mut archives = self.archives.lock().unwrap_or_else(|e| e.into_inner());
        let mut found: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for i in 0..PACKS.len() {
            let missing: Vec<String> =
                paths.iter().filter(|p| !found.contains_key(*p)).cloned().collect();
            if missing.is_empty() {
                break;
            }
            if i == 0 && archives.is_empty() {
                found.extend(modpack::find(0, &self.pack(0)?, &[], &missing)?);
                continue;
            }
            while archives.len() <= i {
                let j = archives.len();
                let first = archives.first().map_or(&[][..], Vec::as_slice);
                let archive = modpack::unpack(j, &self.pack(j)?, first)?;
                archives.push(archive);
            }
            found.extend(modpack::members(i, &archives[i], |n| missing.iter().any(|m| m == n))?);
        }
        if !self.hold.load(Ordering::SeqCst) {
            release(&mut archives);
        }
        paths
            .iter()
            .map(|p| found.remove(p).ok_or_else(|| ModuleError::NotInPacks(p.clone())))
            .collect()
    }

    /// The compressed bytes of pack `i`.
    fn pack(&self, i: usize) -> Result<Vec<u8>, ModuleError> {
        let file = self.dir.join(PACKS[i]);
        std::fs::read(&file)
            .map_err(|source| ModuleError::Read { path: file.display().to_string(), source })
    }

    /// Modules whose alias glob matches `modalias` (deduplicated, file order).
    pub fn matching(&self, modalias: &str) -> Vec<String> {
        self.index.matching(modalias)
    }

    /// A module name, or an alias such as `fs-ext4`, resolved to module names.
    pub fn resolve(&self, name: &str) -> Vec<String> {
        self.index.resolve(name)
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.index.is_builtin(name)
    }

    /// Module files to load for `module`, in load order (see
    /// [`ModuleIndex::closure`]), as modules.dep names them.
    pub fn closure(&self, module: &str) -> Vec<String> {
        self.index.closure(module).into_iter().map(str::to_string).collect()
    }
}

/// Drops the decompressed packs and gives the allocator's free pages back
/// to the kernel: the coldplug threads' arenas keep what they freed (what
/// kept the most was glibc's moving mmap threshold, which
/// `sys::fix_malloc_thresholds` pins).
fn release(archives: &mut Vec<Vec<u8>>) {
    if archives.is_empty() {
        return;
    }
    *archives = Vec::new();
    crate::sys::trim_heap();
}

/// Every device's modalias under `<root>/sys/devices`.
pub fn modaliases(root: &Path) -> BTreeSet<String> {
    // sysfs has symlink loops (subsystem, driver, device): links are not
    // followed, and depth is bounded.
    walkdir::WalkDir::new(root.join("sys/devices"))
        .max_depth(25)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name() == "modalias")
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Modules needed for a set of modaliases: modalias → module names.
pub fn plan(db: &ModuleDb, aliases: &BTreeSet<String>) -> BTreeMap<String, Vec<String>> {
    aliases.iter().map(|a| (a.clone(), db.matching(a))).filter(|(_, m)| !m.is_empty()).collect()
}

/// PCI network controllers (class 0x02xxxx) that no driver claimed, as
/// `vendor:device` ids (`8086:10d3`).
pub fn unsupported_nics(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root.join("sys/bus/pci/devices")) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        let read =
            |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default().trim().to_string();
        if read("class").starts_with("0x02") && !p.join("driver").exists() {
            let id = |s: String| s.trim_start_matches("0x").to_string();
            out.push(format!("{}:{}", id(read("vendor")), id(read("device"))));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
#[path = "modules_tests.rs"]
mod tests;
