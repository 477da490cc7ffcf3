//! Plain files of the installed system: fstab, hostname, locale, keyboard,
//! timezone, machine ids.

use super::{at, io_err, Mounts, Result, TargetError};
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

/// Writes `path` (inside `root`) through a temp file and a rename, creating
/// its directory.
pub(crate) fn write_file(root: &Path, inside: &str, text: &str) -> Result<()> {
    let path = at(root, inside);
    let dir = path.parent().expect("inside paths are absolute files");
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let tmp = path.with_extension("lazare-tmp");
    std::fs::write(&tmp, text).map_err(io_err("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err("renaming into", &path))
}

/// `/etc/fstab` with every filesystem by UUID. The root is checked first
/// (pass 1), other filesystems after (pass 2), swap never.
pub fn write_fstab(root: &Path, mounts: &Mounts) -> Result<()> {
    let mut s = String::from(
        "# /etc/fstab: written by the lazare agent at install time.\n\
         # <file system> <mount point> <type> <options> <dump> <pass>\n",
    );
    if !mounts.entries.iter().any(|e| e.mountpoint == "/") {
        return Err(TargetError::Invalid("the layout has no root (/) filesystem".into()));
    }
    let mut entries = mounts.entries.clone();
    // Parents before children (/ before /boot before /boot/efi).
    entries.sort_by_key(|e| {
        (e.fstype == "swap", e.mountpoint.matches('/').count(), e.mountpoint.clone())
    });
    for e in &entries {
        let ok = |s: &str| !s.is_empty() && !s.bytes().any(|b| b.is_ascii_whitespace());
        if !ok(&e.uuid) || !ok(&e.fstype) {
            return Err(TargetError::Invalid(format!("bad fstab entry {e:?}")));
        }
        let swap = e.fstype == "swap";
        let mp = if swap { "none" } else { e.mountpoint.as_str() };
        if !swap && !mp.starts_with('/') {
            return Err(TargetError::Invalid(format!("mount point {mp:?} is not absolute")));
        }
        let opts = match (e.options.as_str(), e.fstype.as_str(), mp) {
            ("", "swap", _) => "sw",
            ("", "vfat", _) => "umask=0077",
            ("", "ext4" | "ext3" | "ext2", "/") => "errors=remount-ro",
            ("", _, _) => "defaults",
            (o, _, _) => o,
        };
        let pass = match (swap, mp) {
            (true, _) => 0,
            (_, "/") => 1,
            _ => 2,
        };
        let _ = writeln!(s, "UUID={} {} {} {} 0 {}", e.uuid, mp, e.fstype, opts, pass);
    }
    write_file(root, "/etc/fstab", &s)
}

/// `/etc/hostname` and `/etc/hosts` (the name on 127.0.1.1, as Debian does
/// without a fixed address).
pub fn write_hostname(root: &Path, hostname: &str) -> Result<()> {
    if !lazare_proto::valid_hostname(hostname) {
        return Err(TargetError::Invalid(format!("{hostname:?} is not a valid host name")));
    }
    let short = hostname.split('.').next().unwrap_or(hostname);
    let names =
        if short == hostname { hostname.to_string() } else { format!("{hostname} {short}") };
    write_file(root, "/etc/hostname", &format!("{hostname}\n"))?;
    write_file(
        root,
        "/etc/hosts",
        &format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{names}\n\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
        ),
    )
}

fn plain(what: &str, v: &str) -> Result<()> {
    let ok =
        !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+/@".contains(&b));
    if ok && !v.contains("..") {
        Ok(())
    } else {
        Err(TargetError::Invalid(format!("{what} {v:?} has characters lazare does not accept")))
    }
}

/// `/etc/default/locale`; the locale is enabled in `/etc/locale.gen` and
/// generated (locale-gen in a chroot) when the image has `locales` and did
/// not already have it.
pub fn write_locale(root: &Path, locale: &str) -> Result<()> {
    plain("locale", locale)?;
    write_file(root, "/etc/default/locale", &format!("LANG={locale}\n"))?;
    let gen = at(root, "/etc/locale.gen");
    let Ok(text) = std::fs::read_to_string(&gen) else {
        return Ok(()); // no `locales` package: C.UTF-8 only, nothing to generate
    };
    let charset = locale.split_once('.').map_or("UTF-8", |(_, c)| c);
    let line = format!("{locale} {charset}");
    if text.lines().any(|l| l.trim() == line) {
        return Ok(());
    }
    let mut out = String::new();
    let mut found = false;
    for l in text.lines() {
        // Uncomment "# fr_FR.UTF-8 UTF-8" rather than add a duplicate.
        if l.trim_start_matches('#').trim() == line && !found {
            found = true;
            out.push_str(&line);
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    if !found {
        out.push_str(&line);
        out.push('\n');
    }
    write_file(root, "/etc/locale.gen", &out)?;
    if at(root, "/usr/sbin/locale-gen").exists() {
        super::run_in_chroot(root, &["locale-gen"])?;
    }
    Ok(())
}

/// `/etc/default/keyboard` (read by X and by console-setup for the text
/// console). `keymap` is an XKB layout with an optional `-variant`: `fr`,
/// `ch-fr`, `fr-bepo`.
pub fn write_keymap(root: &Path, keymap: &str) -> Result<()> {
    plain("keymap", keymap)?;
    let (layout, variant) = keymap.split_once('-').unwrap_or((keymap, ""));
    write_file(
        root,
        "/etc/default/keyboard",
        &format!(
            "# Written by the lazare agent.\nXKBMODEL=\"pc105\"\nXKBLAYOUT=\"{layout}\"\n\
             XKBVARIANT=\"{variant}\"\nXKBOPTIONS=\"\"\nBACKSPACE=\"guess\"\n"
        ),
    )?;
    // console-setup caches the compiled console keymap; drop it so the
    // next boot compiles the new layout.
    let cached = at(root, "/etc/console-setup/cached_setup_keyboard.sh");
    match std::fs::remove_file(&cached) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("removing", &cached)(e)),
        _ => Ok(()),
    }
}

/// `/etc/timezone` and the `/etc/localtime` symlink; the zone must exist in
/// the image's tzdata.
pub fn write_timezone(root: &Path, tz: &str) -> Result<()> {
    plain("timezone", tz)?;
    let zone = format!("/usr/share/zoneinfo/{tz}");
    if !at(root, &zone).is_file() {
        return Err(TargetError::Invalid(format!(
            "unknown timezone {tz:?} (no {zone} in the image)"
        )));
    }
    write_file(root, "/etc/timezone", &format!("{tz}\n"))?;
    let link = at(root, "/etc/localtime");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&zone, &link).map_err(io_err("linking", &link))
}

/// A fresh `/etc/machine-id` (systemd's id, new for every install) and
/// `/etc/lazare/machine-id` (lazare's stable id of the hardware, from the plan).
pub fn write_machine_ids(root: &Path, lazare_id: &str) -> Result<()> {
    plain("machine id", lazare_id)?;
    let mut bytes = [0u8; 16];
    let urandom = Path::new("/dev/urandom");
    std::fs::File::open(urandom)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io_err("reading", urandom))?;
    // A version-4 UUID's bits, as systemd-id128 makes them.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let id = lazare_proto::hex(&bytes);
    write_file(root, "/etc/machine-id", &format!("{id}\n"))?;
    write_file(root, lazare_cd::paths::installed::MACHINE_ID, &format!("{lazare_id}\n"))
}
