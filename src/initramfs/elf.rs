//! Which files a dynamically linked host tool needs: its interpreter
//! (PT_INTERP) and the transitive closure of its DT_NEEDED libraries,
//! searched like glibc's ld.so does (DT_RPATH/DT_RUNPATH with $ORIGIN,
//! the ld.so.conf directories, then the system directories).
//!
//! In the initramfs there is no /etc/ld.so.cache, so ld.so only searches
//! RPATH/RUNPATH and its system directories: a library found elsewhere (e.g.
//! /usr/local/lib through ld.so.conf) is carried into the first system
//! directory instead of its host path.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use object::elf::{FileHeader64, DT_NEEDED, DT_RPATH, DT_RUNPATH};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::Endianness;

use super::{read_file, InitramfsError};

/// A file to carry: read from `source` on the host, written at `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedFile {
    pub source: PathBuf,
    pub dest: PathBuf,
}

/// Where shared libraries are looked for.
#[derive(Debug, Clone)]
pub struct LibSearch {
    /// From /etc/ld.so.conf (and its includes), in order.
    pub conf_dirs: Vec<PathBuf>,
    /// The directories ld.so searches without a cache (Debian's glibc: the
    /// multiarch ones first); a library found elsewhere is carried into the
    /// first. Hardware-capability subdirectories (glibc-hwcaps/x86-64-v3)
    /// are not searched on purpose: an old PC may lack those instructions.
    pub system_dirs: Vec<PathBuf>,
}

/// The x86-64 glibc dynamic linker, asked for its own search path.
const HOST_LD_SO: &str = "/lib64/ld-linux-x86-64.so.2";

impl LibSearch {
    /// This host's search path: ld.so.conf, and the system directories the
    /// host's ld.so reports (`ld.so --help`, glibc ≥ 2.33), else Debian's.
    pub fn host() -> Self {
        let mut conf_dirs = Vec::new();
        parse_ld_so_conf(Path::new("/etc/ld.so.conf"), &mut conf_dirs, 0);
        let reported = std::process::Command::new(HOST_LD_SO)
            .arg("--help")
            .output()
            .ok()
            .map(|out| system_dirs_from_help(&String::from_utf8_lossy(&out.stdout)))
            .unwrap_or_default();
        let system_dirs = if reported.is_empty() {
            ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"]
                .iter()
                .map(PathBuf::from)
                .collect()
        } else {
            reported
        };
        Self { conf_dirs, system_dirs }
    }
}

/// The `  /dir (system search path)` lines of `ld.so --help`.
fn system_dirs_from_help(help: &str) -> Vec<PathBuf> {
    help.lines()
        .filter_map(|l| l.trim().strip_suffix("(system search path)"))
        .map(|d| PathBuf::from(d.trim()))
        .collect()
}

/// Reads ld.so.conf lines: directories, `include GLOB` (a `*` in the last
/// component), comments; `hwcap` lines are obsolete and skipped. An absent
/// or unreadable file adds nothing, as for ldconfig.
fn parse_ld_so_conf(path: &Path, dirs: &mut Vec<PathBuf>, depth: u32) {
    let Ok(text) = std::fs::read_to_string(path) else { return };
    if depth > 8 {
        return;
    }
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = line.strip_prefix("include") {
            for pattern in pattern.split_whitespace() {
                for file in expand_glob(&path.parent().unwrap_or(Path::new("/")).join(pattern)) {
                    parse_ld_so_conf(&file, dirs, depth + 1);
                }
            }
        } else if line.starts_with('/') {
            let dir = PathBuf::from(line);
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
}

/// `dir/prefix*suffix` → the matching files, sorted (glob(3) sorts too).
fn expand_glob(pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name().and_then(|n| n.to_str()))
    else {
        return Vec::new();
    };
    let Some((prefix, suffix)) = name.split_once('*') else {
        return vec![pattern.to_path_buf()];
    };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(prefix) && n.ends_with(suffix) && n.len() >= name.len() - 1
            })
        })
        .collect();
    files.sort();
    files
}

/// What one ELF object asks of the dynamic linker.
#[derive(Debug, Default)]
struct ElfDeps {
    machine: u16,
    interpreter: Option<String>,
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
}

fn elf_error(path: &Path, message: impl Into<String>) -> InitramfsError {
    InitramfsError::Elf { path: path.to_path_buf(), message: message.into() }
}

fn parse_elf(path: &Path, data: &[u8]) -> Result<ElfDeps, InitramfsError> {
    let bad = |e: object::Error| elf_error(path, format!("malformed ELF: {e}"));
    if !data.starts_with(b"\x7fELF") {
        return Err(elf_error(path, "not an ELF executable (scripts cannot be carried)"));
    }
    if data.get(4) != Some(&2) {
        return Err(elf_error(path, "32-bit ELF: only 64-bit tools are supported"));
    }
    let header = FileHeader64::<Endianness>::parse(data).map_err(bad)?;
    let endian = header.endian().map_err(bad)?;
    let mut deps = ElfDeps { machine: header.e_machine(endian), ..ElfDeps::default() };
    for segment in header.program_headers(endian, data).map_err(bad)? {
        if let Some(interp) = segment.interpreter(endian, data).map_err(bad)? {
            deps.interpreter = Some(String::from_utf8_lossy(interp).into_owned());
        }
    }
    let sections = header.sections(endian, data).map_err(bad)?;
    let Some((entries, strings_index)) = sections.dynamic(endian, data).map_err(bad)? else {
        return Ok(deps); // statically linked
    };
    let strings = sections.strings(endian, data, strings_index).map_err(bad)?;
    for entry in entries {
        let list = match entry.tag32(endian) {
            Some(DT_NEEDED) => &mut deps.needed,
            Some(DT_RPATH) => &mut deps.rpath,
            Some(DT_RUNPATH) => &mut deps.runpath,
            _ => continue,
        };
        let value = entry.string(endian, strings).map_err(bad)?;
        list.push(String::from_utf8_lossy(value).into_owned());
    }
    Ok(deps)
}

/// `$ORIGIN`/`${ORIGIN}` expanded, `:`-separated lists split.
fn expand_paths(lists: &[String], origin: &Path) -> Vec<PathBuf> {
    let origin = origin.to_string_lossy();
    lists
        .iter()
        .flat_map(|l| l.split(':'))
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin)))
        .collect()
}

/// True when `path` is an ELF file ld.so would accept for `machine`.
fn matches_machine(path: &Path, machine: u16) -> bool {
    let Ok(data) = std::fs::read(path) else { return false };
    FileHeader64::<Endianness>::parse(&data[..])
        .ok()
        .and_then(|h| h.endian().ok().map(|e| h.e_machine(e)))
        == Some(machine)
        && data.get(4) == Some(&2)
}

/// Finds one DT_NEEDED library for `object` (at `object_path` on the host).
fn find_library(
    name: &str,
    object_path: &Path,
    deps: &ElfDeps,
    search: &LibSearch,
) -> Result<CarriedFile, InitramfsError> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return Ok(CarriedFile { source: path.clone(), dest: path });
    }
    let origin = object_path.parent().unwrap_or(Path::new("/"));
    // glibc ignores DT_RPATH when DT_RUNPATH is present.
    let own_dirs = if deps.runpath.is_empty() {
        expand_paths(&deps.rpath, origin)
    } else {
        expand_paths(&deps.runpath, origin)
    };
    let dirs = own_dirs.iter().chain(&search.conf_dirs).chain(&search.system_dirs);
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() && matches_machine(&candidate, deps.machine) {
            let reachable = own_dirs.contains(dir) || search.system_dirs.contains(dir);
            let dest = if reachable {
                candidate.clone()
            } else {
                search.system_dirs.first().map_or(candidate.clone(), |d| d.join(name))
            };
            return Ok(CarriedFile { source: candidate, dest });
        }
    }
    let searched: Vec<String> = own_dirs
        .iter()
        .chain(&search.conf_dirs)
        .chain(&search.system_dirs)
        .map(|d| d.display().to_string())
        .collect();
    Err(InitramfsError::LibraryNotFound {
        library: name.to_string(),
        needed_by: object_path.to_path_buf(),
        searched: searched.join(":"),
    })
}

/// The interpreters and libraries `tools` need, transitively, sorted by
/// destination; the tools themselves are not included.
pub fn elf_closure(
    tools: &[PathBuf],
    search: &LibSearch,
) -> Result<Vec<CarriedFile>, InitramfsError> {
    let mut carried: BTreeMap<PathBuf, CarriedFile> = BTreeMap::new();
    let mut queue: VecDeque<PathBuf> = tools.iter().cloned().collect();
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut interpreters: Vec<PathBuf> = Vec::new();
    while let Some(object) = queue.pop_front() {
        if seen.contains(&object) {
            continue;
        }
        seen.push(object.clone());
        let deps = parse_elf(&object, &read_file(&object)?)?;
        let mut wanted = Vec::new();
        if let Some(interp) = &deps.interpreter {
            let path = PathBuf::from(interp);
            if !interpreters.contains(&path) {
                interpreters.push(path.clone());
            }
            wanted.push(CarriedFile { source: path.clone(), dest: path });
        }
        for name in &deps.needed {
            // libc names ld-linux-x86-64.so.2 as NEEDED: ld.so satisfies it
            // with itself (matched by soname), no second copy is loaded.
            if interpreters.iter().any(|i| i.file_name() == Some(OsStr::new(name))) {
                continue;
            }
            wanted.push(find_library(name, &object, &deps, search)?);
        }
        for file in wanted {
            if !carried.contains_key(&file.dest) {
                queue.push_back(file.source.clone());
                carried.insert(file.dest.clone(), file);
            }
        }
    }
    Ok(carried.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_is_expanded_in_rpath_lists() {
        let dirs = expand_paths(&["$ORIGIN/../lib:/opt/x:${ORIGIN}".into()], Path::new("/usr/bin"));
        assert_eq!(dirs, [PathBuf::from("/usr/bin/../lib"), "/opt/x".into(), "/usr/bin".into()]);
    }

    #[test]
    fn ld_so_conf_includes_are_followed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let conf_d = dir.path().join("ld.so.conf.d");
        std::fs::create_dir(&conf_d).unwrap();
        std::fs::write(conf_d.join("b.conf"), "/opt/b\n").unwrap();
        std::fs::write(conf_d.join("a.conf"), "# comment\n/opt/a # trailing\n").unwrap();
        std::fs::write(conf_d.join("c.txt"), "/opt/ignored\n").unwrap();
        let main = dir.path().join("ld.so.conf");
        std::fs::write(&main, "/opt/first\ninclude ld.so.conf.d/*.conf\n").unwrap();
        let mut dirs = Vec::new();
        parse_ld_so_conf(&main, &mut dirs, 0);
        assert_eq!(dirs, [PathBuf::from("/opt/first"), "/opt/a".into(), "/opt/b".into()]);
    }

    #[test]
    fn system_dirs_come_from_ld_so_help() {
        let help = "Shared library search path:\n  (libraries located via /etc/ld.so.cache)\n  \
                    /lib64 (system search path)\n  /usr/lib64 (system search path)\n\n\
                    Subdirectories of glibc-hwcaps directories, in priority order:\n";
        assert_eq!(system_dirs_from_help(help), [PathBuf::from("/lib64"), "/usr/lib64".into()]);
        // This Debian host's ld.so answers with its multiarch directories.
        let host = LibSearch::host();
        assert_eq!(host.system_dirs.first(), Some(&PathBuf::from("/lib/x86_64-linux-gnu")));
        assert!(host.conf_dirs.contains(&PathBuf::from("/usr/lib/x86_64-linux-gnu")));
    }

    #[test]
    fn scripts_are_refused_by_name() {
        let err = parse_elf(Path::new("/usr/bin/x"), b"#!/bin/sh\n").unwrap_err();
        assert!(err.to_string().contains("/usr/bin/x"), "{err}");
    }
}
