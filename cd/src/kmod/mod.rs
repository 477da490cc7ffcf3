//! The kernel's module indexes in `/lib/modules/<release>`, as depmod writes
//! them and kmod reads them. The builder reads the host's to choose modules
//! and writes trimmed copies into the initramfs; the agent reads those to
//! load drivers. Both go through this one parser.
//!
//! Parsing is faithful (each line's words as written, so a line formats back
//! to itself); meaning (`-` = `_`, globs, merged soft dependencies) is
//! [`ModuleIndex`]'s.
//!
//! `modules.softdep` lines are `softdep MODULE pre: A B post: C`. As kmod
//! does (libkmod-config.c, `kmod_config_add_softdep`), words before the
//! first `pre:` or `post:` belong to no list and are ignored: Debian 12's
//! `softdep cifs gcm` loads nothing more with `modprobe cifs`. depmod writes
//! one line per `MODULE_SOFTDEP()` of a module (ksmbd has twelve); kmod 30's
//! modprobe only honours the first (`modprobe -S 6.1.0-57-amd64
//! --show-depends ksmbd` loads crc32 but not gcm), while lazare merges them:
//! the agent is the CD's only modprobe, so a soft dependency it skips is
//! never loaded by anyone.

mod fnmatch;
mod index;

pub use fnmatch::fnmatch;
pub use index::{IndexFiles, LoadError, ModuleIndex};

use std::fmt;

pub const DEP: &str = "modules.dep";
pub const ALIAS: &str = "modules.alias";
pub const SOFTDEP: &str = "modules.softdep";
pub const BUILTIN: &str = "modules.builtin";
pub const BUILTIN_MODINFO: &str = "modules.builtin.modinfo";
pub const ORDER: &str = "modules.order";

/// A line of an index file that does not have the file's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} line {line}: {message}")]
#[non_exhaustive]
pub struct KmodError {
    pub file: &'static str,
    pub line: usize,
    pub message: String,
}

/// The kernel treats `-` and `_` in module names and aliases alike; `_` is
/// canonical. As kmod's `underscores()`, bracket expressions of alias globs
/// (`[0-9a-f]`) are left alone.
pub fn normalize(name: &str) -> String {
    let mut depth = 0u32;
    name.chars()
        .map(|c| match c {
            '[' => {
                depth += 1;
                c
            }
            ']' => {
                depth = depth.saturating_sub(1);
                c
            }
            '-' if depth == 0 => '_',
            c => c,
        })
        .collect()
}

const SUFFIXES: &[&str] = &[".ko", ".ko.xz", ".ko.zst", ".ko.gz"];

/// `kernel/drivers/net/ne2k-pci.ko.xz` → `ne2k_pci`; `None` for a path that
/// is not a module file.
pub fn name_of(path: &str) -> Option<String> {
    let base = path.rsplit('/').next()?;
    SUFFIXES.iter().find_map(|s| base.strip_suffix(s)).filter(|n| !n.is_empty()).map(normalize)
}

/// The path a module has once decompressed: `a.ko.xz` → `a.ko`.
pub fn plain_path(path: &str) -> &str {
    for suffix in [".xz", ".zst", ".gz"] {
        if let Some(stripped) = path.strip_suffix(suffix) {
            if stripped.ends_with(".ko") {
                return stripped;
            }
        }
    }
    path
}

/// Lines that carry data: not empty, not a `#` comment; numbered from 1.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// A module path with the module's name, checked.
fn module_path(file: &'static str, line: usize, path: &str) -> Result<String, KmodError> {
    match name_of(path) {
        Some(_) => Ok(path.to_string()),
        None => Err(KmodError { file, line, message: format!("{path:?} is not a .ko path") }),
    }
}

/// One `modules.dep` line: `PATH: DEP-PATH...` (the full transitive set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepLine {
    pub path: String,
    pub deps: Vec<String>,
}

impl DepLine {
    pub fn name(&self) -> String {
        name_of(&self.path).unwrap_or_default()
    }
}

impl fmt::Display for DepLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.path)?;
        self.deps.iter().try_for_each(|d| write!(f, " {d}"))
    }
}

pub fn parse_dep(text: &str) -> Result<Vec<DepLine>, KmodError> {
    data_lines(text)
        .map(|(n, line)| {
            let bad = |message: &str| KmodError { file: DEP, line: n, message: message.into() };
            let (path, deps) = line.split_once(':').ok_or_else(|| bad("no `:`"))?;
            Ok(DepLine {
                path: module_path(DEP, n, path.trim())?,
                deps: deps
                    .split_whitespace()
                    .map(|d| module_path(DEP, n, d))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// One `modules.alias` line: `alias PATTERN MODULE`; the pattern is a shell
/// glob (`pci:v00008086d*sv*`), matched against device modaliases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub pattern: String,
    pub module: String,
}

impl fmt::Display for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "alias {} {}", self.pattern, self.module)
    }
}

pub fn parse_alias(text: &str) -> Result<Vec<Alias>, KmodError> {
    data_lines(text)
        .map(|(n, line)| match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["alias", pattern, module] => {
                Ok(Alias { pattern: pattern.to_string(), module: module.to_string() })
            }
            _ => Err(KmodError {
                file: ALIAS,
                line: n,
                message: "expected `alias PATTERN MODULE`".into(),
            }),
        })
        .collect()
}

/// The aliases of built-in modules, from `modules.builtin.modinfo`
/// (NUL-separated `crc32c_generic.alias=crypto-crc32c` records): an alias
/// the kernel itself serves.
pub fn parse_builtin_aliases(modinfo: &[u8]) -> Vec<Alias> {
    modinfo
        .split(|&b| b == 0)
        .filter_map(|record| {
            let record = std::str::from_utf8(record).ok()?;
            let (module, pattern) = record.split_once(".alias=")?;
            Some(Alias { pattern: pattern.to_string(), module: module.to_string() })
        })
        .collect()
}

/// One `modules.softdep` line (see the module comment for its meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftDep {
    pub module: String,
    /// Names or aliases to load before the module.
    pub pre: Vec<String>,
    /// Names or aliases to load after it.
    pub post: Vec<String>,
}

impl fmt::Display for SoftDep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "softdep {}", self.module)?;
        for (word, list) in [("pre:", &self.pre), ("post:", &self.post)] {
            if !list.is_empty() {
                write!(f, " {word}")?;
                list.iter().try_for_each(|m| write!(f, " {m}"))?;
            }
        }
        Ok(())
    }
}

pub fn parse_softdep(text: &str) -> Result<Vec<SoftDep>, KmodError> {
    data_lines(text)
        .map(|(n, line)| {
            let mut words = line.split_whitespace();
            let (Some("softdep"), Some(module)) = (words.next(), words.next()) else {
                return Err(KmodError {
                    file: SOFTDEP,
                    line: n,
                    message: "expected `softdep MODULE pre: ... post: ...`".into(),
                });
            };
            let mut dep = SoftDep { module: module.to_string(), pre: vec![], post: vec![] };
            let mut list: Option<&mut Vec<String>> = None;
            for word in words {
                match word {
                    "pre:" => list = Some(&mut dep.pre),
                    "post:" => list = Some(&mut dep.post),
                    // Before any `pre:`/`post:`: no list, ignored as kmod does.
                    w => list.iter_mut().for_each(|l| l.push(w.to_string())),
                }
            }
            Ok(dep)
        })
        .collect()
}

/// The module names of `modules.builtin` (one `.ko` path a line).
pub fn parse_builtin(text: &str) -> Result<Vec<String>, KmodError> {
    data_lines(text)
        .map(|(n, line)| {
            name_of(line).ok_or_else(|| KmodError {
                file: BUILTIN,
                line: n,
                message: format!("{line:?} is not a .ko path"),
            })
        })
        .collect()
}
