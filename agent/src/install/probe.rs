//! Does an existing filesystem look like a /home? For the inventory's
//! `looks_like_home`: Debian's installer does not label /home, so the label
//! alone misses most old installs.

use std::io;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Mounts `dev` (an ext2/3/4 `fs_type`) read-only on `scratch`, looks, and
/// unmounts. `noload` keeps ext3/4 from replaying a dirty journal, so the
/// look writes nothing: a kept /home stays byte-for-byte.
pub fn looks_like_home(dev: &Path, fs_type: &str, scratch: &Path) -> io::Result<bool> {
    read_only(dev, fs_type, scratch, is_home_tree)
}

/// A system lazare installed: its machine id, and the secret that proves
/// the machine to the server (mode 0600 on that disk; absent on systems
/// installed before enrolment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub id: String,
    pub secret: Option<String>,
}

/// The lazare system installed on `dev`, read the same write-nothing way.
pub fn installed(dev: &Path, fs_type: &str, scratch: &Path) -> io::Result<Option<Installed>> {
    use lazare_cd::paths::installed::{MACHINE_ID, MACHINE_SECRET};
    let read = |root: &Path, file: &str| {
        let text = std::fs::read_to_string(root.join(file.trim_start_matches('/'))).ok()?;
        Some(text.trim().to_string()).filter(|t| !t.is_empty())
    };
    read_only(dev, fs_type, scratch, |root| {
        let id = read(root, MACHINE_ID)?;
        Some(Installed { id, secret: read(root, MACHINE_SECRET) })
    })
}

/// Mounts `dev` read-only on `scratch`, runs `look` on it, unmounts.
fn read_only<T>(
    dev: &Path,
    fs_type: &str,
    scratch: &Path,
    look: impl Fn(&Path) -> T,
) -> io::Result<T> {
    std::fs::create_dir_all(scratch)?;
    let data = if fs_type == "ext2" { None } else { Some("noload") };
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some(dev), scratch, Some(fs_type), flags, data).map_err(io::Error::from)?;
    let found = look(scratch);
    umount2(scratch, MntFlags::empty()).map_err(io::Error::from)?;
    Ok(found)
}

/// A /home has user directories holding dotfiles (`alice/.bashrc`), and is
/// not a root filesystem (no `etc`, `usr`, `bin` at its top).
pub fn is_home_tree(root: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(root) else { return false };
    let mut users = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if matches!(name.as_ref(), "etc" | "usr" | "bin" | "boot" | "var") {
            return false;
        }
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && name != "lost+found" && has_dotfile(&e.path()) {
            users += 1;
        }
    }
    users > 0
}

fn has_dotfile(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .is_ok_and(|rd| rd.flatten().any(|e| e.file_name().to_string_lossy().starts_with('.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_dirs_with_dotfiles_are_a_home() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("lost+found")).unwrap();
        assert!(!is_home_tree(d.path()), "empty filesystem");
        std::fs::create_dir_all(d.path().join("alice")).unwrap();
        assert!(!is_home_tree(d.path()), "no dotfile yet");
        std::fs::write(d.path().join("alice/.bashrc"), "").unwrap();
        assert!(is_home_tree(d.path()));
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        assert!(!is_home_tree(d.path()), "a root filesystem is not a /home");
    }
}
