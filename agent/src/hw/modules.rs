//! Kernel modules for the hardware present: every `modalias` under
//! `/sys/devices` is matched against `modules.alias` (shell globs), and the
//! matching modules are loaded with their `modules.dep` closure (and
//! `modules.softdep` pre/post modules) through finit_module. Resolution is
//! a pure function of a root directory, so tests run it on a fake tree.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

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
}

/// The kernel treats `-` and `_` in module names alike.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

fn name_of(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|s| base.strip_suffix(s))
        .unwrap_or(base);
    normalize(stem)
}

/// The parsed module indexes of one kernel.
#[derive(Debug, Default)]
pub struct ModuleDb {
    dir: PathBuf,
    /// (glob, module name) in file order.
    aliases: Vec<(String, String)>,
    /// module name → (path relative to dir, dependency names).
    deps: HashMap<String, (String, Vec<String>)>,
    /// module name → (pre, post) names or aliases.
    softdeps: HashMap<String, (Vec<String>, Vec<String>)>,
    builtin: BTreeSet<String>,
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
        let read = |name: &str, required: bool| -> Result<String, ModuleError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                    Ok(String::new())
                }
                r => r.map_err(|source| ModuleError::Read {
                    path: path.display().to_string(),
                    source,
                }),
            }
        };
        let mut db = ModuleDb { dir: dir.clone(), ..Default::default() };
        db.parse_dep(&read("modules.dep", true)?);
        db.parse_alias(&read("modules.alias", false)?);
        db.parse_softdep(&read("modules.softdep", false)?);
        db.builtin = read("modules.builtin", false)?.lines().map(name_of).collect();
        Ok(db)
    }

    fn parse_dep(&mut self, text: &str) {
        for line in text.lines() {
            let Some((path, deps)) = line.split_once(':') else { continue };
            let deps = deps.split_whitespace().map(name_of).collect();
            self.deps.insert(name_of(path), (path.trim().to_string(), deps));
        }
    }

    fn parse_alias(&mut self, text: &str) {
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(pattern), Some(module)) =
                (words.next(), words.next(), words.next())
            {
                self.aliases.push((pattern.to_string(), normalize(module)));
            }
        }
    }

    fn parse_softdep(&mut self, text: &str) {
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(module) = words.next() else { continue };
            let (mut pre, mut post, mut into_post) = (Vec::new(), Vec::new(), false);
            for w in words {
                match w {
                    "pre:" => into_post = false,
                    "post:" => into_post = true,
                    w if into_post => post.push(w.to_string()),
                    w => pre.push(w.to_string()),
                }
            }
            self.softdeps.insert(normalize(module), (pre, post));
        }
    }

    /// Modules whose alias glob matches `modalias` (deduplicated, file order).
    pub fn matching(&self, modalias: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (pattern, module) in &self.aliases {
            if fnmatch(pattern.as_bytes(), modalias.as_bytes()) && !out.contains(module) {
                out.push(module.clone());
            }
        }
        out
    }

    /// A module name, or an alias such as `fs-ext4`, resolved to module names.
    pub fn resolve(&self, name: &str) -> Vec<String> {
        let n = normalize(name);
        if self.deps.contains_key(&n) || self.builtin.contains(&n) {
            return vec![n];
        }
        self.matching(name)
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    /// Files to load for `module`, dependencies first, soft `pre:` modules
    /// before and `post:` ones after; builtins and unknown names are skipped.
    pub fn closure(&self, module: &str) -> Vec<PathBuf> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        self.visit(&normalize(module), &mut seen, &mut order);
        order.into_iter().map(|p| self.dir.join(p)).collect()
    }

    fn visit(&self, name: &str, seen: &mut BTreeSet<String>, order: &mut Vec<String>) {
        if !seen.insert(name.to_string()) {
            return;
        }
        let (pre, post) = self.softdeps.get(name).cloned().unwrap_or_default();
        for p in pre.iter().flat_map(|p| self.resolve(p)) {
            self.visit(&p, seen, order);
        }
        if let Some((path, deps)) = self.deps.get(name) {
            // modules.dep lists the full transitive set; visiting each one
            // still orders a dependency's own dependencies before it.
            for d in deps.iter().rev() {
                self.visit(d, seen, order);
            }
            order.push(path.clone());
        }
        for p in post.iter().flat_map(|p| self.resolve(p)) {
            self.visit(&p, seen, order);
        }
    }
}

/// Shell-style glob match (`*`, `?`, `[...]` with ranges and `!`/`^`), as
/// modules.alias uses.
pub fn fnmatch(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star_p, mut star_t) = (None, 0);
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star_p = Some(p);
                    star_t = t;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(&pattern[p..], text[t]) {
                        if matched {
                            p += next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star_p {
            Some(sp) => {
                p = sp + 1;
                star_t += 1;
                t = star_t;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against a bracket expression at the start of `pat`; returns
/// (matched, length of the expression), or None when it is not closed.
fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pat.len() {
        if pat[i] == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pat.get(i + 1) == Some(&b'-') && pat.get(i + 2).is_some_and(|&e| e != b']') {
            matched |= (pat[i]..=pat[i + 2]).contains(&c);
            i += 3;
        } else {
            matched |= pat[i] == c;
            i += 1;
        }
    }
    None
}

/// Every device's modalias under `<root>/sys/devices`.
pub fn modaliases(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    walk(&root.join("sys/devices"), 0, &mut out);
    out
}

fn walk(dir: &Path, depth: usize, out: &mut BTreeSet<String>) {
    // sysfs has symlink loops (subsystem, driver, device); only real
    // directories are followed, and depth is bounded.
    if depth > 24 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&e.path(), depth + 1, out);
        } else if ft.is_file() && e.file_name() == "modalias" {
            if let Ok(s) = std::fs::read_to_string(e.path()) {
                let s = s.trim();
                if !s.is_empty() {
                    out.insert(s.to_string());
                }
            }
        }
    }
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
