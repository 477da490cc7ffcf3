//! The plan's user accounts, written straight into the passwd files (no
//! useradd: it may not be in the image, and this way nothing runs in the
//! target).

use super::system::write_file;
use super::{at, io_err, Result, TargetError};
use lazare_proto::User;
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

/// Copies `/etc/skel` into the new home, owned by the user.
fn make_home(root: &Path, home: &str, id: u32) -> Result<()> {
    let dst = at(root, home);
    std::fs::create_dir_all(&dst).map_err(io_err("creating", &dst))?;
    copy_tree(&at(root, "/etc/skel"), &dst, id)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o750))
        .map_err(io_err("chmod", &dst))?;
    std::os::unix::fs::lchown(&dst, Some(id), Some(id)).map_err(io_err("chown", &dst))
}

fn copy_tree(src: &Path, dst: &Path, id: u32) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(src) else { return Ok(()) };
    for e in rd {
        let e = e.map_err(io_err("listing", src))?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let ft = e.file_type().map_err(io_err("reading", &from))?;
        if ft.is_dir() {
            std::fs::create_dir_all(&to).map_err(io_err("creating", &to))?;
            copy_tree(&from, &to, id)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&from).map_err(io_err("reading", &from))?;
            let _ = std::fs::remove_file(&to);
            std::os::unix::fs::symlink(target, &to).map_err(io_err("linking", &to))?;
        } else {
            std::fs::copy(&from, &to).map_err(io_err("copying to", &to))?;
        }
        std::os::unix::fs::lchown(&to, Some(id), Some(id)).map_err(io_err("chown", &to))?;
    }
    Ok(())
}
