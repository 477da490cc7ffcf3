//! The initramfs as an in-memory tree, turned into a reproducible cpio newc
//! archive: entries sorted by path (a parent sorts before its children since
//! it is their prefix), parents created, uid/gid 0, inodes numbered in order.

use std::collections::BTreeMap;

use super::{EntryInfo, InitramfsError};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

#[derive(Debug)]
enum Node {
    Dir { perm: u32 },
    File { data: Vec<u8>, perm: u32 },
    Symlink { target: String },
    CharDev { perm: u32, major: u32, minor: u32 },
}

/// Paths are stored relative (`dev/console`), as the kernel and gen_init_cpio
/// write them; the report shows them absolute.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    nodes: BTreeMap<String, Node>,
}

/// Checks an absolute initramfs path and returns it relative, without `.`,
/// `..`, empty components or a trailing slash.
fn relative(path: &str) -> Result<String, InitramfsError> {
    let bad = |reason: &str| InitramfsError::BadPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let rest = path.strip_prefix('/').ok_or_else(|| bad("not absolute"))?;
    if rest.is_empty() {
        return Err(bad("is the root"));
    }
    if rest.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(bad("has an empty, `.` or `..` component"));
    }
    if rest.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    Ok(rest.to_string())
}

impl Tree {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Inserts a node after creating its parents; two different nodes at the
    /// same path are an error (a caller's file must not silently replace a
    /// library or `/init`).
    fn insert(&mut self, path: &str, node: Node) -> Result<(), InitramfsError> {
        let rel = relative(path)?;
        let mut parent = String::new();
        for component in rel.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(component);
            match self.nodes.get(&parent) {
                None => {
                    self.nodes.insert(parent.clone(), Node::Dir { perm: 0o755 });
                }
                Some(Node::Dir { .. }) => {}
                Some(_) => {
                    return Err(InitramfsError::BadPath {
                        path: path.to_string(),
                        reason: format!("its parent /{parent} is not a directory"),
                    })
                }
            }
        }
        match (self.nodes.get(&rel), &node) {
            (None, _) => {}
            (Some(Node::Dir { .. }), Node::Dir { .. }) => {}
            (Some(_), _) => {
                return Err(InitramfsError::BadPath {
                    path: path.to_string(),
                    reason: "given twice".to_string(),
                })
            }
        }
        self.nodes.insert(rel, node);
        Ok(())
    }

    pub(crate) fn contains(&self, path: &str) -> bool {
        relative(path).is_ok_and(|rel| self.nodes.contains_key(&rel))
    }

    pub(crate) fn add_dir(&mut self, path: &str) -> Result<(), InitramfsError> {
        self.insert(path, Node::Dir { perm: 0o755 })
    }

    pub(crate) fn add_file(
        &mut self,
        path: &str,
        data: Vec<u8>,
        perm: u32,
    ) -> Result<(), InitramfsError> {
        self.insert(path, Node::File { data, perm: perm & 0o7777 })
    }

    pub(crate) fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), InitramfsError> {
        self.insert(path, Node::Symlink { target: target.to_string() })
    }

    fn add_char_dev(&mut self, path: &str, major: u32, minor: u32) -> Result<(), InitramfsError> {
        self.insert(path, Node::CharDev { perm: 0o600, major, minor })
    }

    /// Serialises the tree as one cpio newc archive (with its trailer),
    /// inodes numbered from `first_ino`, and lists it. The tree is one part
    /// of an initramfs unpacked after the parts in `before`: a directory
    /// they already made is left out, and any other path they hold is an
    /// error (a caller's file must not replace `/init` or a module).
    pub(crate) fn to_cpio(
        &self,
        mtime: u64,
        first_ino: u32,
        before: &[&Tree],
    ) -> Result<(Vec<u8>, Vec<EntryInfo>), InitramfsError> {
        // newc stores mtime in 32 bits; later dates clamp rather than wrap.
        let mtime = u32::try_from(mtime).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(self.data_size() + self.nodes.len() * 160);
        let mut entries = Vec::with_capacity(self.nodes.len());
        for (path, node) in &self.nodes {
            match (before.iter().find_map(|t| t.nodes.get(path)), node) {
                (None, _) => {}
                (Some(Node::Dir { .. }), Node::Dir { .. }) => continue,
                (Some(_), _) => {
                    return Err(InitramfsError::BadPath {
                        path: format!("/{path}"),
                        reason: "given twice".to_string(),
                    })
                }
            }
            let (mode, data, rdev, nlink): (u32, &[u8], (u32, u32), u32) = match node {
                Node::Dir { perm } => (S_IFDIR | perm, &[], (0, 0), 2),
                Node::File { data, perm } => (S_IFREG | perm, data, (0, 0), 1),
                Node::Symlink { target } => (S_IFLNK | 0o777, target.as_bytes(), (0, 0), 1),
                Node::CharDev { perm, major, minor } => (S_IFCHR | perm, &[], (*major, *minor), 1),
            };
            let size = u32::try_from(data.len()).map_err(|_| InitramfsError::TooLarge {
                path: format!("/{path}"),
                size: data.len() as u64,
            })?;
            let header = ::cpio::newc::Builder::new(path)
                .ino(first_ino + entries.len() as u32)
                .mode(mode)
                .uid(0)
                .gid(0)
                .nlink(nlink)
                .mtime(mtime)
                .rdev_major(rdev.0)
                .rdev_minor(rdev.1);
            super::cpio::write_entry(&mut out, header, data)?;
            entries.push(EntryInfo { path: format!("/{path}"), size: size.into(), mode });
        }
        ::cpio::newc::trailer(&mut out).map_err(InitramfsError::Write)?;
        Ok((out, entries))
    }

    fn data_size(&self) -> usize {
        self.nodes
            .values()
            .map(|n| match n {
                Node::File { data, .. } => data.len(),
                _ => 0,
            })
            .sum()
    }
}

/// The directories and device nodes PID 1 needs before it mounts devtmpfs:
/// the kernel opens `/dev/console` for PID 1's stdio before running `/init`.
pub(crate) fn add_skeleton(tree: &mut Tree) -> Result<(), InitramfsError> {
    for dir in ["/proc", "/sys", "/dev", "/run", "/tmp", "/mnt", "/etc/lazare", "/root"] {
        tree.add_dir(dir)?;
    }
    tree.add_char_dev("/dev/console", 5, 1)?;
    tree.add_char_dev("/dev/null", 1, 3)?;
    // mke2fs (the image's, see agent/src/install/tools.rs) checks whether
    // the target is mounted through /etc/mtab.
    tree.add_symlink("/etc/mtab", "/proc/self/mounts")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_checked() {
        assert_eq!(relative("/etc/lazare/cmdline").unwrap(), "etc/lazare/cmdline");
        for bad in ["etc/x", "/", "/a//b", "/a/../b", "/a/./b", "/a/"] {
            assert!(relative(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn parents_are_created_and_sorted_first() {
        let mut tree = Tree::new();
        tree.add_file("/a/b/c", b"x".to_vec(), 0o644).unwrap();
        tree.add_file("/a-b", b"y".to_vec(), 0o644).unwrap();
        let (_, entries) = tree.to_cpio(0, 1, &[]).unwrap();
        let paths: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/a", "/a-b", "/a/b", "/a/b/c"]);
        assert_eq!(entries[0].mode, S_IFDIR | 0o755);
    }

    #[test]
    fn a_path_given_twice_is_refused() {
        let mut tree = Tree::new();
        tree.add_file("/init", b"x".to_vec(), 0o755).unwrap();
        let err = tree.add_file("/init", b"y".to_vec(), 0o644).unwrap_err();
        assert!(err.to_string().contains("/init"), "{err}");
        let err = tree.add_file("/init/x", b"y".to_vec(), 0o644).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn a_later_part_skips_the_directories_of_earlier_parts_and_refuses_their_files() {
        let mut system = Tree::new();
        add_skeleton(&mut system).unwrap();
        system.add_file("/lib/x.ko", b"m".to_vec(), 0o644).unwrap();
        let (_, first) = system.to_cpio(0, 1, &[]).unwrap();
        let mut late = Tree::new();
        late.add_file("/etc/lazare/cmdline", b"c".to_vec(), 0o644).unwrap();
        late.add_file("/etc/new/file", b"n".to_vec(), 0o644).unwrap();
        let next = first.len() as u32 + 1;
        let (_, entries) = late.to_cpio(0, next, &[&system]).unwrap();
        let paths: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/etc/lazare/cmdline", "/etc/new", "/etc/new/file"]);

        let mut clash = Tree::new();
        clash.add_file("/lib/x.ko", b"other".to_vec(), 0o644).unwrap();
        let err = clash.to_cpio(0, next, &[&system]).unwrap_err();
        assert!(
            err.to_string().contains("/lib/x.ko") && err.to_string().contains("twice"),
            "{err}"
        );
    }
}
