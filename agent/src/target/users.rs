//! The plan's user accounts, written straight into the passwd files (no
//! useradd: it may not be in the image, and this way nothing runs in the
//! target).

use super::system::write_file;
use super::{at, io_err, Result, TargetError};
use lazare_proto::User;
use std::io::ErrorKind::NotFound;
use std::path::Path;

/// Groups a desktop user of a Debian system is in (as the Debian installer
/// does); those the image lacks are skipped.
const DESKTOP_GROUPS: &[&str] = &[
    "cdrom",
    "floppy",
    "audio",
    "dip",
    "video",
    "plugdev",
    "users",
    "netdev",
    "lpadmin",
    "scanner",
    "bluetooth",
];

/// Adds each user: a personal group, a home from `/etc/skel`, the crypt hash
/// in `/etc/shadow` (or a locked password), the desktop groups, and `sudo`
/// for admins. A user that already exists is left alone.
pub fn add_users(root: &Path, users: &[User]) -> Result<()> {
    for u in users {
        add_user(root, u)?;
    }
    Ok(())
}

fn read(root: &Path, inside: &str) -> Result<String> {
    let p = at(root, inside);
    std::fs::read_to_string(&p).map_err(io_err("reading", &p))
}

fn read_opt(root: &Path, inside: &str) -> Result<Option<String>> {
    match std::fs::read_to_string(at(root, inside)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("reading", &at(root, inside))(e)),
    }
}

fn field(line: &str, n: usize) -> Option<&str> {
    line.split(':').nth(n)
}

fn add_user(root: &Path, u: &User) -> Result<()> {
    let bad = |what: &str| TargetError::Invalid(format!("user {:?}: {what}", u.name));
    let name_ok = !u.name.is_empty()
        && u.name.len() <= 32
        && u.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !name_ok || u.name.starts_with('-') {
        return Err(bad("not a valid user name"));
    }
    if u.full_name.contains([':', '\n', ',']) {
        return Err(bad("full name has ':', ',' or a newline"));
    }
    let hash = u.password_hash.as_deref().unwrap_or("!");
    if hash.contains([':', '\n']) || hash.is_empty() {
        return Err(bad("password hash has ':' or a newline, or is empty"));
    }
    let passwd = read(root, "/etc/passwd")?;
    if passwd.lines().any(|l| field(l, 0) == Some(&u.name)) {
        return Ok(());
    }
    let group = read(root, "/etc/group")?;
    let id = free_id(&passwd, &group);
    let home = format!("/home/{}", u.name);
    append(
        root,
        "/etc/passwd",
        &format!("{}:x:{id}:{id}:{}:{home}:/bin/bash", u.name, u.full_name),
    )?;
    append(root, "/etc/group", &format!("{}:x:{id}:", u.name))?;
    // 19000 days since 1970: "changed in 2022", so no forced change at login.
    let shadow = format!("{}:{hash}:19000:0:99999:7:::", u.name);
    append_opt(root, "/etc/shadow", &shadow)?;
    append_opt(root, "/etc/gshadow", &format!("{}:!::", u.name))?;
    let mut groups: Vec<&str> = DESKTOP_GROUPS.to_vec();
    if u.admin {
        groups.push("sudo");
    }
    add_to_groups(root, &u.name, &groups, u.admin)?;
    make_home(root, &home, id)
}

/// Makes `user` a member of the group `name`, creating it as a system
/// group (the highest free id below 1000, as Debian's addgroup --system
/// picks) when the image lacks it.
pub(super) fn add_to_system_group(root: &Path, name: &str, user: &str) -> Result<()> {
    let group = read(root, "/etc/group")?;
    if !group.lines().any(|l| field(l, 0) == Some(name)) {
        let used: Vec<u32> = group.lines().filter_map(|l| field(l, 2)?.parse().ok()).collect();
        let gid = (100..1000)
            .rev()
            .find(|i| !used.contains(i))
            .ok_or_else(|| TargetError::Invalid(format!("no free system group id for {name:?}")))?;
        append(root, "/etc/group", &format!("{name}:x:{gid}:"))?;
        append_opt(root, "/etc/gshadow", &format!("{name}:!::"))?;
    }
    add_to_groups(root, user, &[name], false)
}

/// First id ≥ 1000 that no user and no group has.
fn free_id(passwd: &str, group: &str) -> u32 {
    let used: Vec<u32> =
        passwd.lines().chain(group.lines()).filter_map(|l| field(l, 2)?.parse().ok()).collect();
    (1000..60000).find(|i| !used.contains(i)).unwrap_or(60000)
}

fn append(root: &Path, inside: &str, line: &str) -> Result<()> {
    let mut text = read(root, inside)?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    write_file(root, inside, &text)?;
    if inside.ends_with("shadow") {
        let p = at(root, inside);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640))
            .map_err(io_err("chmod", &p))?;
    }
    Ok(())
}

fn append_opt(root: &Path, inside: &str, line: &str) -> Result<()> {
    match read_opt(root, inside)? {
        Some(_) => append(root, inside, line),
        None => Ok(()),
    }
}

/// Adds `user` to each existing group in /etc/group (and /etc/gshadow).
/// `need_sudo`: a missing `sudo` group is an error, not a skip.
fn add_to_groups(root: &Path, user: &str, groups: &[&str], need_sudo: bool) -> Result<()> {
    for file in ["/etc/group", "/etc/gshadow"] {
        let Some(text) = read_opt(root, file)? else { continue };
        let mut out = String::new();
        let mut found_sudo = false;
        for line in text.lines() {
            let mut f: Vec<&str> = line.split(':').collect();
            if f.len() == 4 && groups.contains(&f[0]) {
                found_sudo |= f[0] == "sudo";
                let members: Vec<&str> = f[3].split(',').filter(|m| !m.is_empty()).collect();
                let joined = if members.contains(&user) {
                    f[3].to_string()
                } else {
                    members.iter().copied().chain([user]).collect::<Vec<_>>().join(",")
                };
                f[3] = &joined;
                out.push_str(&f.join(":"));
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        if need_sudo && !found_sudo && file == "/etc/group" {
            return Err(TargetError::MissingInImage {
                root: root.into(),
                what: "sudo group (package sudo)".into(),
            });
        }
        write_file(root, file, &out)?;
    }
    Ok(())
}

/// Copies `/etc/skel` into the user's home, owned by the user. A home
/// kept from the last install only gets what it lacks: nothing the user
/// has is overwritten, and no symlink in it is followed (a
/// `~/.profile -> ../../etc/passwd` stays a link, /etc/passwd untouched).
fn make_home(root: &Path, home: &str, id: u32) -> Result<()> {
    let dst = at(root, home);
    match std::fs::symlink_metadata(&dst) {
        Ok(m) if m.is_dir() => {}
        // A link or a file where the home should be is the user's: left as is.
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == NotFound => {
            let parent = dst.parent().expect("homes are below /home");
            std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
            std::fs::create_dir(&dst).map_err(io_err("creating", &dst))?;
        }
        Err(e) => return Err(io_err("reading", &dst)(e)),
    }
    copy_tree(&at(root, "/etc/skel"), &dst, id)?;
    // `dst` is a real directory (checked above): these do not follow a link.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o750))
        .map_err(io_err("chmod", &dst))?;
    std::os::unix::fs::lchown(&dst, Some(id), Some(id)).map_err(io_err("chown", &dst))
}

/// Copies what `dst` lacks from `src`. Whatever exists at a name in `dst`
/// (file, link, directory) is the user's and is never written through; an
/// existing real directory is filled in. No link is followed in `src`
/// either, `src` itself included (a skel that is a link would point into
/// the host, not the new system).
fn copy_tree(src: &Path, dst: &Path, id: u32) -> Result<()> {
    let mut entries = walkdir::WalkDir::new(src).min_depth(1).follow_root_links(false).into_iter();
    while let Some(e) = entries.next() {
        let e = match e {
            Ok(e) => e,
            // No skel in the image: nothing to copy.
            Err(e) if e.depth() == 0 && e.io_error().is_some_and(|e| e.kind() == NotFound) => {
                return Ok(())
            }
            Err(e) => {
                let at = e.path().unwrap_or(src).to_path_buf();
                return Err(io_err("listing", &at)(e.into()));
            }
        };
        let from = e.path();
        let to = dst.join(from.strip_prefix(src).expect("walkdir stays below its root"));
        let ft = e.file_type();
        // Every directory above `to` is a real one (made here, or checked
        // below before walkdir descends into it).
        match std::fs::symlink_metadata(&to) {
            Ok(m) if ft.is_dir() && m.is_dir() => continue,
            Ok(_) => {
                if ft.is_dir() {
                    entries.skip_current_dir();
                }
                continue;
            }
            Err(e) if e.kind() == NotFound => {}
            Err(e) => return Err(io_err("reading", &to)(e)),
        }
        if ft.is_dir() {
            std::fs::create_dir(&to).map_err(io_err("creating", &to))?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(from).map_err(io_err("reading", from))?;
            std::os::unix::fs::symlink(target, &to).map_err(io_err("linking", &to))?;
        } else if ft.is_file() {
            copy_new(from, &to)?;
        } else {
            continue;
        }
        std::os::unix::fs::lchown(&to, Some(id), Some(id)).map_err(io_err("chown", &to))?;
    }
    Ok(())
}

/// Copies a file to a name that must not exist yet: `create_new` is
/// O_EXCL, which neither follows a symlink nor opens an existing file.
fn copy_new(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut src = std::fs::File::open(from).map_err(io_err("reading", from))?;
    let mode = src.metadata().map_err(io_err("reading", from))?.permissions().mode() & 0o777;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(to)
        .map_err(io_err("creating", to))?;
    std::io::copy(&mut src, &mut out).map_err(io_err("copying to", to))?;
    out.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io_err("chmod", to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A new system with a skel, and a home kept from the last install
    /// whose `.profile` points at the new system's passwd file.
    fn system_with_kept_home() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in ["etc/skel/.config", "home/alice/.config"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\nusers:x:100:\n").unwrap();
        std::fs::write(r.join("etc/skel/.profile"), "SKEL PROFILE\n").unwrap();
        std::fs::write(r.join("etc/skel/.bashrc"), "SKEL BASHRC\n").unwrap();
        std::fs::write(r.join("etc/skel/.config/app.conf"), "SKEL CONF\n").unwrap();
        std::fs::write(r.join("etc/skel/.config/new.conf"), "SKEL NEW\n").unwrap();
        symlink("../../etc/passwd", r.join("home/alice/.profile")).unwrap();
        symlink("/etc/group", r.join("home/alice/.config/app.conf")).unwrap();
        std::fs::write(r.join("home/alice/.bashrc"), "alias ll='ls -l'\n").unwrap();
        t
    }

    fn alice() -> User {
        User {
            name: "alice".into(),
            full_name: String::new(),
            password_hash: None,
            admin: false,
            autologin: false,
        }
    }

    #[test]
    fn skel_into_a_kept_home_follows_no_symlink_and_overwrites_nothing() {
        let t = system_with_kept_home();
        let r = t.path();
        add_users(r, &[alice()]).unwrap();
        let passwd = std::fs::read_to_string(r.join("etc/passwd")).unwrap();
        assert!(passwd.starts_with("root:x:0:0:"), "passwd overwritten: {passwd}");
        assert!(passwd.contains("\nalice:x:1000:1000:"), "{passwd}");
        assert!(!passwd.contains("SKEL"), "{passwd}");
        let group = std::fs::read_to_string(r.join("etc/group")).unwrap();
        assert!(!group.contains("SKEL"), "{group}");
        let home = r.join("home/alice");
        assert_eq!(
            std::fs::read_link(home.join(".profile")).unwrap(),
            Path::new("../../etc/passwd")
        );
        assert_eq!(std::fs::read_to_string(home.join(".bashrc")).unwrap(), "alias ll='ls -l'\n");
        // What the home lacked is added.
        assert_eq!(std::fs::read_to_string(home.join(".config/new.conf")).unwrap(), "SKEL NEW\n");
    }

    #[test]
    fn a_new_home_gets_all_of_skel() {
        let t = system_with_kept_home();
        let r = t.path();
        let bob = User { name: "bob".into(), ..alice() };
        add_users(r, &[bob]).unwrap();
        let home = r.join("home/bob");
        assert_eq!(std::fs::read_to_string(home.join(".profile")).unwrap(), "SKEL PROFILE\n");
        assert_eq!(std::fs::read_to_string(home.join(".config/app.conf")).unwrap(), "SKEL CONF\n");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&home).unwrap().mode() & 0o777, 0o750);
    }

    #[test]
    fn a_home_that_is_a_symlink_is_left_alone() {
        let t = system_with_kept_home();
        let r = t.path();
        std::fs::create_dir(r.join("elsewhere")).unwrap();
        symlink("../elsewhere", r.join("home/carol")).unwrap();
        let carol = User { name: "carol".into(), ..alice() };
        add_users(r, &[carol]).unwrap();
        assert_eq!(std::fs::read_dir(r.join("elsewhere")).unwrap().count(), 0);
    }

    /// A directory of skel where the kept home has a link (to a directory
    /// outside it): nothing is copied through the link, nor below it.
    #[test]
    fn a_skel_directory_where_the_home_has_a_link_is_skipped_whole() {
        let t = system_with_kept_home();
        let r = t.path();
        std::fs::create_dir_all(r.join("etc/skel/.local/share")).unwrap();
        std::fs::write(r.join("etc/skel/.local/share/f"), "SKEL\n").unwrap();
        std::fs::create_dir(r.join("elsewhere")).unwrap();
        symlink("../../elsewhere", r.join("home/alice/.local")).unwrap();
        add_users(r, &[alice()]).unwrap();
        assert_eq!(std::fs::read_dir(r.join("elsewhere")).unwrap().count(), 0);
        assert!(r.join("home/alice/.config/new.conf").exists(), "the rest of skel is copied");
    }

    /// A skel that is itself a link is not followed (it would lead out of
    /// the new system), and a system without skel still gets its users.
    #[test]
    fn a_skel_that_is_a_link_or_missing_gives_an_empty_home() {
        let t = system_with_kept_home();
        let r = t.path();
        std::fs::rename(r.join("etc/skel"), r.join("skel-elsewhere")).unwrap();
        symlink("../skel-elsewhere", r.join("etc/skel")).unwrap();
        add_users(r, &[User { name: "dave".into(), ..alice() }]).unwrap();
        assert_eq!(std::fs::read_dir(r.join("home/dave")).unwrap().count(), 0);
        std::fs::remove_file(r.join("etc/skel")).unwrap();
        add_users(r, &[User { name: "erin".into(), ..alice() }]).unwrap();
        assert_eq!(std::fs::read_dir(r.join("home/erin")).unwrap().count(), 0);
    }
}
