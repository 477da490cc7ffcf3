//! Kernel module selection: names → modules.dep entries (with `-`/`_`
//! equivalence and modules.alias for aliases such as `iso9660`), their full
//! dependency closure and modules.softdep pre/post soft dependencies; then
//! the `.ko` files as they are (an appended Secure Boot signature must stay;
//! compressed modules are decompressed, the signature is on the plain file)
//! and modules.{dep,alias,softdep,order} trimmed to what is carried.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use lazare_cd::kmod::{self, KmodError, LoadError, ModuleIndex};

use super::firmware::{add_firmware, firmware_dir, modinfo_firmware, FirmwareFound};
use super::tree::Tree;
use super::{read_file, InitramfsError, Phase, Progress};

/// The modules chosen for an initramfs.
#[derive(Debug, Clone, Default)]
pub struct ModuleSelection {
    /// Module name (`_` spelling) → its path as modules.dep writes it.
    pub modules: BTreeMap<String, String>,
    /// Requested names built into the kernel.
    pub builtin: Vec<String>,
    /// Requested names found nowhere.
    pub missing: Vec<String>,
}

fn read_text(path: &Path) -> Result<String, InitramfsError> {
    let bytes = read_file(path)?;
    String::from_utf8(bytes).map_err(|_| InitramfsError::ModulesFile {
        path: path.to_path_buf(),
        line: 0,
        message: "not UTF-8".into(),
    })
}

/// Reads an optional index file: absent is empty, unreadable is an error.
fn read_optional(path: &Path) -> Result<String, InitramfsError> {
    if path.exists() {
        read_text(path)
    } else {
        Ok(String::new())
    }
}

fn index_error(dir: &Path) -> impl Fn(KmodError) -> InitramfsError + '_ {
    move |e| InitramfsError::ModulesFile {
        path: dir.join(e.file),
        line: e.line,
        message: e.message,
    }
}

/// The host's index files of the kernel at `dir`, parsed.
fn load_index(dir: &Path) -> Result<ModuleIndex, InitramfsError> {
    let read = |name: &str| {
        let path = dir.join(name);
        if path.exists() {
            read_file(&path).map(Some)
        } else {
            Ok(None)
        }
    };
    ModuleIndex::load(read).map_err(|e| match e {
        LoadError::Read(e) => e,
        LoadError::Index(e) => index_error(dir)(e),
        e => {
            InitramfsError::ModulesFile { path: dir.to_path_buf(), line: 0, message: e.to_string() }
        }
    })
}

/// Adds `name` and what it loads with (dependencies, soft dependencies).
fn include(index: &ModuleIndex, name: &str, chosen: &mut BTreeMap<String, String>) {
    for path in index.closure(name) {
        if let Some(module) = kmod::name_of(path) {
            chosen.insert(module, path.to_string());
        }
    }
}

/// Chooses the modules for `wanted` names from the tree at `modules_dir`.
/// A name ending in `*` takes every module with that prefix; other names
/// resolve as `modprobe NAME` does (module, alias, built in).
pub fn resolve_modules(
    modules_dir: &Path,
    wanted: &[String],
) -> Result<ModuleSelection, InitramfsError> {
    let index = load_index(modules_dir)?;
    let mut selection = ModuleSelection::default();
    for name in wanted {
        let found: Vec<String> = match name.strip_suffix('*') {
            Some(prefix) => {
                let prefix = kmod::normalize(prefix);
                index.names().filter(|m| m.starts_with(&prefix)).map(str::to_string).collect()
            }
            None => index.resolve(name),
        };
        let loadable: Vec<&String> = found.iter().filter(|m| index.path(m).is_some()).collect();
        if found.is_empty() {
            selection.missing.push(name.clone());
        } else if loadable.is_empty() {
            selection.builtin.push(kmod::normalize(name));
        }
        for module in loadable {
            include(&index, module, &mut selection.modules);
        }
    }
    selection.builtin.sort();
    selection.builtin.dedup();
    Ok(selection)
}

/// Adds the chosen `.ko` files as the two packs ([`lazare_cd::modpack`]:
/// the network drivers with what they load with, then the rest, compressed
/// with the first's archive as its dictionary; frames cached in `cache`),
/// the trimmed indexes under `/lib/modules/<release>/`, where `<release>`
/// is the directory's name, and the firmware the chosen modules ask for
/// that the host has.
pub(crate) fn add_to_tree(
    tree: &mut Tree,
    modules_dir: &Path,
    selection: &ModuleSelection,
    mtime: u64,
    cache: Option<&Path>,
    progress: &mut dyn FnMut(Progress),
) -> Result<FirmwareFound, InitramfsError> {
    let release = modules_dir.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        InitramfsError::BadPath {
            path: modules_dir.display().to_string(),
            reason: "the modules directory must be named after the kernel release".into(),
        }
    })?;
    let base = lazare_cd::paths::modules_dir(release);
    tree.add_dir(&base)?;
    let index = load_index(modules_dir)?;
    let network: std::collections::BTreeSet<String> = selection
        .modules
        .iter()
        .filter(|(_, path)| lazare_cd::modpack::is_network_driver(kmod::plain_path(path)))
        .flat_map(|(name, _)| index.closure(name))
        .filter_map(kmod::name_of)
        .collect();
    // In each pack the paths are as modules.dep writes them (`kernel/...`).
    let mut packs = [Tree::new(), Tree::new()];
    let total = selection.modules.len() as u64;
    let mut firmware = Vec::new();
    for (done, (name, path)) in selection.modules.iter().enumerate() {
        let data = module_data(&modules_dir.join(path))?;
        firmware.extend(modinfo_firmware(&data).into_iter().map(|f| (f, name.clone())));
        let pack = &mut packs[usize::from(!network.contains(name))];
        pack.add_file(&format!("/{}", kmod::plain_path(path)), data, 0o644)?;
        progress(Progress { phase: Phase::Modules, done: done as u64 + 1, total });
    }
    for (name, text) in trimmed_indexes(modules_dir, selection)? {
        tree.add_file(&format!("{base}/{name}"), text.into_bytes(), 0o644)?;
    }
    for name in [kmod::BUILTIN, kmod::BUILTIN_MODINFO] {
        let path = modules_dir.join(name);
        if path.exists() {
            tree.add_file(&format!("{base}/{name}"), read_file(&path)?, 0o644)?;
        }
    }
    // The kernel copies the packs; the agent decompresses what it loads.
    let mut first = Vec::new();
    for (i, pack) in packs.iter().enumerate() {
        let (archive, _) = pack.to_cpio(mtime, 1, &[])?;
        let mut frame = Vec::new();
        super::zstd::compress_cached(&archive, &first, cache, &mut frame, progress)?;
        tree.add_file(&format!("{base}/{}", lazare_cd::modpack::PACKS[i]), frame, 0o644)?;
        if i == 0 {
            first = archive;
        }
    }
    add_firmware(tree, firmware_dir(modules_dir).as_deref(), firmware)
}

/// A module file's contents, decompressed if it is `.ko.{xz,zst,gz}`.
fn module_data(path: &Path) -> Result<Vec<u8>, InitramfsError> {
    let data = read_file(path)?;
    let name = path.to_string_lossy();
    let fail = |e: String| InitramfsError::Decompress { path: path.to_path_buf(), message: e };
    let mut out = Vec::new();
    if name.ends_with(".ko.xz") {
        lzma_rs::xz_decompress(&mut &data[..], &mut out).map_err(|e| fail(e.to_string()))?;
    } else if name.ends_with(".ko.zst") {
        ruzstd::decoding::StreamingDecoder::new(&data[..])
            .map_err(|e| fail(e.to_string()))?
            .read_to_end(&mut out)
            .map_err(|e| fail(e.to_string()))?;
    } else if name.ends_with(".ko.gz") {
        flate2::read::GzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .map_err(|e| fail(e.to_string()))?;
    } else {
        return Ok(data);
    }
    Ok(out)
}

/// modules.dep, modules.alias, modules.softdep and modules.order keeping
/// only the lines of carried modules (the full alias file alone is ~1.3 MB
/// of RAM on a PC that may have 256 MB), formatted by the parser that reads
/// them back on the CD, with the paths the modules have there.
fn trimmed_indexes(
    dir: &Path,
    selection: &ModuleSelection,
) -> Result<Vec<(&'static str, String)>, InitramfsError> {
    let carried = |name: &str| selection.modules.contains_key(&kmod::normalize(name));
    let carried_path = |path: &str| kmod::name_of(path).is_some_and(|n| carried(&n));
    let lines = |items: Vec<String>| items.into_iter().map(|l| l + "\n").collect::<String>();
    let plain = |path: &str| kmod::plain_path(path).to_string();
    let bad = index_error(dir);

    let dep = kmod::parse_dep(&read_text(&dir.join(kmod::DEP))?).map_err(&bad)?;
    let dep = dep.into_iter().filter(|l| carried_path(&l.path)).map(|l| kmod::DepLine {
        path: plain(&l.path),
        deps: l.deps.iter().map(|d| plain(d)).collect(),
    });
    let alias = kmod::parse_alias(&read_optional(&dir.join(kmod::ALIAS))?).map_err(&bad)?;
    let alias = alias.into_iter().filter(|a| carried(&a.module));
    let softdep = kmod::parse_softdep(&read_optional(&dir.join(kmod::SOFTDEP))?).map_err(&bad)?;
    // A line whose words are all before `pre:`/`post:` means nothing.
    let softdep = softdep
        .into_iter()
        .filter(|s| carried(&s.module) && !(s.pre.is_empty() && s.post.is_empty()));
    let order = read_optional(&dir.join(kmod::ORDER))?;
    let order = order.lines().map(str::trim).filter(|p| carried_path(p)).map(plain);
    Ok(vec![
        (kmod::DEP, lines(dep.map(|l| l.to_string()).collect())),
        (kmod::ALIAS, lines(alias.map(|a| a.to_string()).collect())),
        (kmod::SOFTDEP, lines(softdep.map(|s| s.to_string()).collect())),
        (kmod::ORDER, lines(order.collect())),
    ])
}
