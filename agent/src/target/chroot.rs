//! Running the target's own programs (grub-install, update-grub, locale-gen)
//! in a chroot, from a static agent that has no shell, no `chroot` binary
//! and no libc of its own on disk.
//!
//! How: the target's dynamic loader runs the target's `chroot` with the
//! target's libraries (`ld.so --library-path ROOT/usr/lib/... ROOT/usr/sbin/chroot
//! ROOT cmd...`). `chroot(2)` then `exec`s `cmd` inside, where everything is
//! the target's own. No `unsafe` `pre_exec` needed in the agent.

use super::{at, Result, TargetError};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// `/dev`, `/proc`, `/sys` bind-mounted into a target root; unmounted (lazily,
/// in reverse order) when dropped.
#[derive(Debug)]
pub struct BindMounts {
    mounted: Vec<PathBuf>,
}

impl BindMounts {
    /// Binds the agent's `/dev`, `/proc`, `/sys` under `root`.
    pub fn new(root: &Path) -> Result<Self> {
        let mut me = BindMounts { mounted: Vec::new() };
        for d in ["/dev", "/proc", "/sys"] {
            let target = at(root, d);
            std::fs::create_dir_all(&target).map_err(super::io_err("creating", &target))?;
            let fail = |e: nix::Error| TargetError::Io {
                what: "bind-mounting onto",
                path: target.clone(),
                source: e.into(),
            };
            mount(Some(d), &target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                .map_err(fail)?;
            me.mounted.push(target.clone());
            // Slave, so unmounting these never propagates back to the
            // host's own /sys/fs/cgroup & co. (shared propagation on systemd).
            mount(
                None::<&str>,
                &target,
                None::<&str>,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(fail)?;
        }
        Ok(me)
    }
}

impl Drop for BindMounts {
    fn drop(&mut self) {
        for t in self.mounted.iter().rev() {
            if let Err(e) = umount2(t, MntFlags::MNT_DETACH) {
                eprintln!("lazare-agent: unmounting {}: {e}", t.display());
            }
        }
    }
}

/// Resolves `inside` (absolute, in the target) to a host path, following
/// symlinks as the target would see them: absolute link targets are taken
/// relative to `root`, never to the agent's own `/`.
pub fn resolve_in_root(root: &Path, inside: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = Vec::new();
    let mut todo: Vec<String> = inside.split('/').rev().map(String::from).collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                parts.pop();
                continue;
            }
            _ => {}
        }
        parts.push(c);
        let host = parts.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        if let Ok(link) = std::fs::read_link(&host) {
            hops += 1;
            if hops > 40 {
                return None;
            }
            parts.pop();
            if link.is_absolute() {
                parts.clear();
            }
            let comps: Vec<String> = link
                .components()
                .filter_map(|c| match c {
                    Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    Component::ParentDir => Some("..".into()),
                    _ => None,
                })
                .collect();
            todo.extend(comps.into_iter().rev());
        }
    }
    let host = parts.iter().fold(root.to_path_buf(), |p, c| p.join(c));
    host.exists().then_some(host)
}

/// Where an x86-64 Debian system has its dynamic loader: the agent runs the
/// image's programs through it, as it is static itself and has none.
pub const LOADERS: &[&str] =
    &["/lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"];
/// Where that loader finds the libraries (no ld.so.cache is read then).
pub const LIB_DIRS: &[&str] = &["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"];

/// Runs `argv` inside the target root (its PATH, its libraries) and returns
/// its output. The caller binds /dev /proc /sys first when `argv` needs them.
pub fn run_in_chroot(root: &Path, argv: &[&str]) -> Result<String> {
    let missing = |what: &str| TargetError::MissingInImage { root: root.into(), what: what.into() };
    let loader = LOADERS
        .iter()
        .find_map(|p| resolve_in_root(root, p))
        .ok_or_else(|| missing("x86_64 dynamic loader"))?;
    let chroot =
        resolve_in_root(root, "/usr/sbin/chroot").ok_or_else(|| missing("/usr/sbin/chroot"))?;
    let libs: Vec<String> = LIB_DIRS
        .iter()
        .filter_map(|p| resolve_in_root(root, p))
        .map(|p| p.display().to_string())
        .collect();
    let out = Command::new(&loader)
        .arg("--library-path")
        .arg(libs.join(":"))
        .arg(&chroot)
        .arg(root)
        .args(argv)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .map_err(super::io_err("running the target's chroot through", &loader))?;
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(TargetError::Command {
            cmd: argv.join(" "),
            status: out.status.to_string(),
            output: text
                .trim()
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect(),
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::write(r.join("usr/lib/x86_64-linux-gnu/ld.so"), b"").unwrap();
        std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
        std::fs::create_dir_all(r.join("usr/lib64")).unwrap();
        // Absolute, as in Debian: must not escape to the host's /lib.
        std::os::unix::fs::symlink("/lib/x86_64-linux-gnu/ld.so", r.join("usr/lib64/ld")).unwrap();
        std::os::unix::fs::symlink("usr/lib64", r.join("lib64")).unwrap();
        assert_eq!(resolve_in_root(r, "/lib64/ld"), Some(r.join("usr/lib/x86_64-linux-gnu/ld.so")));
        assert_eq!(resolve_in_root(r, "/lib64/nope"), None);
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert_eq!(resolve_in_root(r, "/loop"), None);
    }
}
