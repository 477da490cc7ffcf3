//! Kernel module selection: names → modules.dep entries (with `-`/`_`
//! equivalence and modules.alias for aliases such as `iso9660`), their full
//! dependency closure and modules.softdep pre/post soft dependencies; then
//! the `.ko` files as they are (an appended Secure Boot signature must stay;
//! compressed modules are decompressed, the signature is on the plain file)
//! and modules.{dep,alias,softdep,order} trimmed to what is carried.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

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

#[derive(Debug)]
struct Module {
    path: String,
    deps: Vec<String>,
}

/// The text indexes of `/lib/modules/<release>` that selection needs.
#[derive(Debug, Default)]
struct Index {
    modules: BTreeMap<String, Module>,
    /// modules.dep order, kept when writing the trimmed copy.
    order: Vec<String>,
    builtin: BTreeSet<String>,
    /// Normalised alias → module names (modules.alias and builtin aliases).
    aliases: BTreeMap<String, Vec<String>>,
    softdeps: BTreeMap<String, Vec<String>>,
}

/// The kernel treats `-` and `_` in module names alike; `_` is canonical.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

const SUFFIXES: &[&str] = &[".ko", ".ko.xz", ".ko.zst", ".ko.gz"];

/// `kernel/drivers/net/ne2k-pci.ko.xz` → `ne2k_pci`.
fn name_of(path: &str) -> Option<String> {
    let base = path.rsplit('/').next()?;
    SUFFIXES.iter().find_map(|s| base.strip_suffix(s)).map(normalize)
}

/// The path a module has in the initramfs: compressed ones are stored plain.
fn plain_path(path: &str) -> &str {
    for suffix in [".xz", ".zst", ".gz"] {
        if let Some(stripped) = path.strip_suffix(suffix) {
            if stripped.ends_with(".ko") {
                return stripped;
            }
        }
    }
    path
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

impl Index {
    fn load(dir: &Path) -> Result<Self, InitramfsError> {
        let mut index = Index::default();
        index.load_dep(dir)?;
        for line in read_optional(&dir.join("modules.builtin"))?.lines() {
            if let Some(name) = name_of(line.trim()) {
                index.builtin.insert(name);
            }
        }
        index.load_aliases(dir)?;
        index.load_softdeps(dir)?;
        Ok(index)
    }

    fn load_dep(&mut self, dir: &Path) -> Result<(), InitramfsError> {
        let path = dir.join("modules.dep");
        let text = read_text(&path)?;
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |message: &str| InitramfsError::ModulesFile {
                path: path.clone(),
                line: number + 1,
                message: message.into(),
            };
            let (module, deps) = line.split_once(':').ok_or_else(|| bad("no `:`"))?;
            let name = name_of(module).ok_or_else(|| bad("not a .ko path"))?;
            let deps = deps
                .split_whitespace()
                .map(|d| name_of(d).ok_or_else(|| bad("dependency is not a .ko path")))
                .collect::<Result<Vec<_>, _>>()?;
            self.order.push(name.clone());
            self.modules.insert(name, Module { path: module.to_string(), deps });
        }
        Ok(())
    }

    fn load_aliases(&mut self, dir: &Path) -> Result<(), InitramfsError> {
        for line in read_optional(&dir.join("modules.alias"))?.lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(alias), Some(module)) =
                (words.next(), words.next(), words.next())
            {
                self.add_alias(alias, module);
            }
        }
        // Builtin aliases (`crc32c_generic.alias=crypto-crc32c`) say an alias
        // is served by the kernel itself.
        let modinfo = dir.join("modules.builtin.modinfo");
        if modinfo.exists() {
            let bytes = read_file(&modinfo)?;
            for record in bytes.split(|&b| b == 0) {
                let record = String::from_utf8_lossy(record);
                if let Some((module, alias)) = record.split_once(".alias=") {
                    self.add_alias(alias, module);
                }
            }
        }
        Ok(())
    }

    fn add_alias(&mut self, alias: &str, module: &str) {
        let targets = self.aliases.entry(normalize(alias)).or_default();
        let module = normalize(module);
        if !targets.contains(&module) {
            targets.push(module);
        }
    }

    /// `softdep NAME pre: A B post: C`; like kmod, words before `pre:` or
    /// `post:` are ignored.
    fn load_softdeps(&mut self, dir: &Path) -> Result<(), InitramfsError> {
        for line in read_optional(&dir.join("modules.softdep"))?.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(module) = words.next() else { continue };
            let mut in_list = false;
            for word in words {
                match word {
                    "pre:" | "post:" => in_list = true,
                    _ if in_list => {
                        self.softdeps.entry(normalize(module)).or_default().push(word.to_string())
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// A name → the modules it stands for: itself, or an alias's targets.
    /// `None` when found nowhere; `Some(empty)` when built in.
    fn lookup(&self, name: &str) -> Option<Vec<String>> {
        let key = normalize(name);
        if self.modules.contains_key(&key) {
            return Some(vec![key]);
        }
        if self.builtin.contains(&key) {
            return Some(Vec::new());
        }
        let targets = self.aliases.get(&key)?;
        Some(targets.iter().filter(|t| self.modules.contains_key(*t)).cloned().collect())
    }

    fn include(&self, name: &str, chosen: &mut BTreeMap<String, String>) {
        let Some(module) = self.modules.get(name) else { return };
        if chosen.insert(name.to_string(), module.path.clone()).is_some() {
            return;
        }
        for dep in &module.deps {
            self.include(dep, chosen);
        }
        // A soft dependency that this kernel lacks is not an error for kmod
        // either (often it is built in).
        for soft in self.softdeps.get(name).into_iter().flatten() {
            for target in self.lookup(soft).unwrap_or_default() {
                self.include(&target, chosen);
            }
        }
    }
}

/// Chooses the modules for `wanted` names from the tree at `modules_dir`.
/// A name ending in `*` takes every module with that prefix.
pub fn resolve_modules(
    modules_dir: &Path,
    wanted: &[String],
) -> Result<ModuleSelection, InitramfsError> {
    let index = Index::load(modules_dir)?;
    let mut selection = ModuleSelection::default();
    for name in wanted {
        let found = match name.strip_suffix('*') {
            Some(prefix) => {
                let prefix = normalize(prefix);
                let all: Vec<String> =
                    index.modules.keys().filter(|m| m.starts_with(&prefix)).cloned().collect();
                Some(all).filter(|a| !a.is_empty())
            }
            None => index.lookup(name),
        };
        match found {
            None => selection.missing.push(name.clone()),
            Some(modules) if modules.is_empty() => selection.builtin.push(normalize(name)),
            Some(modules) => {
                for module in modules {
                    index.include(&module, &mut selection.modules);
                }
            }
        }
    }
    selection.builtin.sort();
    selection.builtin.dedup();
    Ok(selection)
}

/// Adds the chosen `.ko` files and the trimmed indexes under
/// `/lib/modules/<release>/`, where `<release>` is the directory's name,
/// and the firmware they ask for that the host has.
pub(crate) fn add_to_tree(
    tree: &mut Tree,
    modules_dir: &Path,
    selection: &ModuleSelection,
    progress: &mut dyn FnMut(Progress),
) -> Result<FirmwareFound, InitramfsError> {
    let release = modules_dir.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        InitramfsError::BadPath {
            path: modules_dir.display().to_string(),
            reason: "the modules directory must be named after the kernel release".into(),
        }
    })?;
    let base = format!("/lib/modules/{release}");
    tree.add_dir(&base)?;
    let total = selection.modules.len() as u64;
    let mut firmware = Vec::new();
    for (done, (name, path)) in selection.modules.iter().enumerate() {
        let data = module_data(&modules_dir.join(path))?;
        firmware.extend(modinfo_firmware(&data).into_iter().map(|f| (f, name.clone())));
        tree.add_file(&format!("{base}/{}", plain_path(path)), data, 0o644)?;
        progress(Progress { phase: Phase::Modules, done: done as u64 + 1, total });
    }
    for (name, text) in trimmed_indexes(modules_dir, selection)? {
        tree.add_file(&format!("{base}/{name}"), text.into_bytes(), 0o644)?;
    }
    for name in ["modules.builtin", "modules.builtin.modinfo"] {
        let path = modules_dir.join(name);
        if path.exists() {
            tree.add_file(&format!("{base}/{name}"), read_file(&path)?, 0o644)?;
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
/// of RAM on a PC that may have 256 MB).
fn trimmed_indexes(
    dir: &Path,
    selection: &ModuleSelection,
) -> Result<Vec<(&'static str, String)>, InitramfsError> {
    let carried = |name: &str| selection.modules.contains_key(&normalize(name));
    let carried_path = |path: &str| name_of(path).is_some_and(|n| carried(&n));
    let keep = |file: &str, test: &dyn Fn(&str) -> bool| -> Result<String, InitramfsError> {
        let mut out = String::new();
        for line in read_optional(&dir.join(file))?.lines() {
            if line.starts_with('#') || test(line) {
                out.push_str(line);
                out.push('\n');
            }
        }
        Ok(out)
    };
    let dep =
        keep("modules.dep", &|line| line.split_once(':').is_some_and(|(m, _)| carried_path(m)))?;
    let dep = rewrite_paths(&dep);
    let alias = keep("modules.alias", &|line| line.split_whitespace().nth(2).is_some_and(carried))?;
    let softdep =
        keep("modules.softdep", &|line| line.split_whitespace().nth(1).is_some_and(carried))?;
    let order = rewrite_paths(&keep("modules.order", &|line| carried_path(line.trim()))?);
    Ok(vec![
        ("modules.dep", dep),
        ("modules.alias", alias),
        ("modules.softdep", softdep),
        ("modules.order", order),
    ])
}

/// Compressed module paths become the plain paths they have in the image.
fn rewrite_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let words: Vec<String> = line
            .split(' ')
            .map(|w| match w.strip_suffix(':') {
                Some(path) => format!("{}:", plain_path(path)),
                None => plain_path(w).to_string(),
            })
            .collect();
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_paths() {
        assert_eq!(name_of("kernel/drivers/net/ne2k-pci.ko").as_deref(), Some("ne2k_pci"));
        assert_eq!(name_of("kernel/a/b.ko.zst").as_deref(), Some("b"));
        assert_eq!(name_of("kernel/a/b.o"), None);
        assert_eq!(plain_path("kernel/a/b.ko.xz"), "kernel/a/b.ko");
        assert_eq!(plain_path("kernel/a/b.ko"), "kernel/a/b.ko");
    }

    #[test]
    fn rewritten_dep_lines_point_at_plain_files() {
        assert_eq!(
            rewrite_paths("kernel/a.ko.xz: kernel/b.ko.zst kernel/c.ko\n"),
            "kernel/a.ko: kernel/b.ko kernel/c.ko\n"
        );
    }
}
