//! What makes the installed desktop usable by the staff of a site: a login
//! that works (LightDM shows the accounts and opens the shared public one by
//! itself), no screen that goes black, a "safe graphics" boot entry for old
//! screens and cards, and a first boot that does not wait for a network.

use super::system::write_file;
use super::users::add_to_system_group;
use super::{at, Result, TargetError};
use lazare_proto::User;
use std::path::Path;

/// The GRUB menu entry id of the `nomodeset` entry.
pub const SAFE_GRAPHICS_ENTRY_ID: &str = "lazare-safe-graphics";

/// LightDM's drop-in. `/etc/lightdm/lightdm.conf.d` is read after Debian's
/// `/usr/share/lightdm/lightdm.conf.d/01_debian.conf`, which hides the users.
pub const LIGHTDM_CONF: &str = "/etc/lightdm/lightdm.conf.d/50-lazare.conf";

/// Members of this group log in on LightDM's screen without a password:
/// [`PAM_NO_PASSWORD`] goes into `/etc/pam.d/lightdm` (as Ubuntu and Arch
/// ship it; Debian's lacks it). Only LightDM reads that file: the console,
/// `su` and `sudo` still want a password.
pub const NO_PASSWORD_GROUP: &str = "nopasswdlogin";

/// The PAM rule, before `@include common-auth` (after pam_nologin, which
/// still applies).
pub const PAM_NO_PASSWORD: &str =
    "auth      sufficient pam_succeed_if.so user ingroup nopasswdlogin";
const PAM_LIGHTDM: &str = "/etc/pam.d/lightdm";

const SAFE_GRAPHICS_SCRIPT: &str = include_str!("41_lazare_safe_graphics");

/// Seconds a boot waits for a network before the units that want one start
/// anyway (NetworkManager's default is 60, systemd-networkd's 120): a PC
/// set up away from its network boots as fast as one on it.
pub const WAIT_ONLINE_SECS: u32 = 10;

/// Runs every desktop step. Images without LightDM (the `test` image) get
/// only the boot entry and the bounded wait for the network.
pub fn configure_desktop(root: &Path, users: &[User]) -> Result<()> {
    let auto: Vec<&User> = users.iter().filter(|u| u.autologin).collect();
    if auto.len() > 1 {
        let names: Vec<&str> = auto.iter().map(|u| u.name.as_str()).collect();
        return Err(TargetError::Invalid(format!(
            "several users have autologin ({}): a PC opens one session at power-on",
            names.join(", ")
        )));
    }
    bound_wait_online(root)?;
    install_safe_graphics_entry(root)?;
    if at(root, "/usr/sbin/lightdm").exists() {
        write_lightdm(root, auto.first().map(|u| u.name.as_str()))?;
    }
    Ok(())
}

/// The LightDM drop-in, and `autologin`'s user in [`NO_PASSWORD_GROUP`].
pub fn write_lightdm(root: &Path, autologin: Option<&str>) -> Result<()> {
    let mut conf = String::from(
        "# Written by the lazare agent.\n\
         [Seat:*]\n\
         # The login screen lists the accounts: the staff click a name.\n\
         greeter-hide-users=false\n\
         # X's screen saver (-s 0) and DPMS off, on the login screen and in the\n\
         # session: a black screen looks like a broken PC, and some old\n\
         # screens do not wake up from DPMS power saving.\n\
         xserver-command=X -s 0 -dpms\n",
    );
    if let Some(name) = autologin {
        conf.push_str(&format!(
            "# A shared public PC: this account's desktop opens at power-on.\n\
             autologin-user={name}\n\
             autologin-user-timeout=0\n"
        ));
        add_to_system_group(root, NO_PASSWORD_GROUP, name)?;
        pam_no_password(root)?;
    }
    write_file(root, LIGHTDM_CONF, &conf)
}

/// Adds [`PAM_NO_PASSWORD`] to LightDM's PAM file, once.
fn pam_no_password(root: &Path) -> Result<()> {
    let path = at(root, PAM_LIGHTDM);
    let text = std::fs::read_to_string(&path).map_err(super::io_err("reading", &path))?;
    let words = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.lines().any(|l| words(l) == words(PAM_NO_PASSWORD)) {
        return Ok(());
    }
    let mut out = String::new();
    let mut added = false;
    for line in text.lines() {
        if !added && line.trim() == "@include common-auth" {
            out.push_str(&format!(
                "# Added by the lazare agent: the shared public account ({NO_PASSWORD_GROUP}) \
                 needs no password here.\n{PAM_NO_PASSWORD}\n"
            ));
            added = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !added {
        return Err(TargetError::Invalid(format!(
            "no `@include common-auth` in {PAM_LIGHTDM}: cannot let the autologin user in \
             without a password"
        )));
    }
    write_file(root, PAM_LIGHTDM, &out)
}

/// `/etc/grub.d/41_lazare_safe_graphics`, run by the next `update-grub`.
pub fn install_safe_graphics_entry(root: &Path) -> Result<()> {
    let inside = "/etc/grub.d/41_lazare_safe_graphics";
    write_file(root, inside, &SAFE_GRAPHICS_SCRIPT.replace("@ID@", SAFE_GRAPHICS_ENTRY_ID))?;
    use std::os::unix::fs::PermissionsExt;
    let p = at(root, inside);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
        .map_err(super::io_err("chmod", &p))
}

/// Drop-ins giving NetworkManager's and systemd-networkd's wait-online
/// [`WAIT_ONLINE_SECS`], for the ones the image has.
pub fn bound_wait_online(root: &Path) -> Result<()> {
    let secs = WAIT_ONLINE_SECS;
    let units = [
        (
            "NetworkManager-wait-online.service",
            // nm-online reads its timeout from this variable in Debian's unit.
            format!("[Service]\nEnvironment=NM_ONLINE_TIMEOUT={secs}\n"),
        ),
        (
            "systemd-networkd-wait-online.service",
            // One link up is enough (the default waits for every link
            // networkd manages, unplugged ones too).
            format!(
                "[Service]\nExecStart=\n\
                 ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout={secs}\n"
            ),
        ),
    ];
    for (unit, body) in units {
        let shipped = ["/lib/systemd/system", "/usr/lib/systemd/system"]
            .iter()
            .any(|d| at(root, &format!("{d}/{unit}")).exists());
        if shipped {
            let text = format!(
                "# Written by the lazare agent: a PC away from its network \
                 boots without a long wait.\n{body}"
            );
            write_file(root, &format!("/etc/systemd/system/{unit}.d/50-lazare.conf"), &text)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, autologin: bool) -> User {
        User {
            name: name.into(),
            full_name: String::new(),
            password_hash: None,
            admin: false,
            autologin,
        }
    }

    /// A root with LightDM, NetworkManager and a passwd/group as an image has.
    fn desktop_root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in ["etc", "usr/sbin", "lib/systemd/system", "etc/skel"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("usr/sbin/lightdm"), "").unwrap();
        std::fs::write(r.join("lib/systemd/system/NetworkManager-wait-online.service"), "")
            .unwrap();
        std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\nusers:x:100:\nlightdm:x:999:\n").unwrap();
        std::fs::write(r.join("etc/gshadow"), "root:*::\nusers:*::\nlightdm:!::\n").unwrap();
        std::fs::write(r.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
        std::fs::create_dir_all(r.join("etc/pam.d")).unwrap();
        std::fs::write(r.join("etc/pam.d/lightdm"), DEBIAN_PAM).unwrap();
        t
    }

    /// The start of bookworm's /etc/pam.d/lightdm.
    const DEBIAN_PAM: &str = "#%PAM-1.0\n\nauth      requisite pam_nologin.so\n\n\
        session      required pam_env.so readenv=1\n\n@include common-auth\n\n\
        -auth  optional pam_gnome_keyring.so\n\n@include common-account\n";

    fn read(r: &Path, p: &str) -> String {
        std::fs::read_to_string(at(r, p)).unwrap()
    }

    #[test]
    fn the_shared_user_is_logged_in_by_itself_and_listed() {
        let t = desktop_root();
        let r = t.path();
        let users = [user("benevole", false), user("utilisateur", true)];
        super::super::add_users(r, &users).unwrap();
        configure_desktop(r, &users).unwrap();
        let conf = read(r, LIGHTDM_CONF);
        let lines: Vec<&str> = conf.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "[Seat:*]",
                "greeter-hide-users=false",
                "xserver-command=X -s 0 -dpms",
                "autologin-user=utilisateur",
                "autologin-user-timeout=0"
            ]
        );
        // A new system group below 1000 (999 is lightdm's), with only the
        // shared user in it.
        let group = read(r, "/etc/group");
        assert!(group.lines().any(|l| l == "nopasswdlogin:x:998:utilisateur"), "{group}");
        assert!(read(r, "/etc/gshadow").lines().any(|l| l == "nopasswdlogin:!::utilisateur"));
        // Its password stays locked for everything but LightDM.
        assert!(read(r, "/etc/shadow").lines().any(|l| l.starts_with("utilisateur:!:")));
        // LightDM's PAM lets that group in, after pam_nologin.
        let pam = read(r, PAM_LIGHTDM);
        let at_line = |needle: &str| pam.lines().position(|l| l.starts_with(needle)).unwrap();
        assert!(at_line("auth      requisite pam_nologin.so") < at_line(PAM_NO_PASSWORD), "{pam}");
        assert_eq!(at_line(PAM_NO_PASSWORD) + 1, at_line("@include common-auth"), "{pam}");
        // Again (a second configure): nothing doubled.
        configure_desktop(r, &users).unwrap();
        let group = read(r, "/etc/group");
        assert_eq!(group.matches("nopasswdlogin").count(), 1, "{group}");
        assert_eq!(group.matches("nopasswdlogin:x:998:utilisateur\n").count(), 1, "{group}");
        assert_eq!(read(r, PAM_LIGHTDM).matches("nopasswdlogin").count(), 2, "comment + rule");
    }

    #[test]
    fn without_autologin_the_accounts_are_listed_and_nobody_is_let_in() {
        let t = desktop_root();
        let r = t.path();
        let users = [user("marie", false)];
        super::super::add_users(r, &users).unwrap();
        configure_desktop(r, &users).unwrap();
        let conf = read(r, LIGHTDM_CONF);
        assert!(conf.contains("\ngreeter-hide-users=false\n"), "{conf}");
        assert!(!conf.contains("autologin"), "{conf}");
        assert!(!read(r, "/etc/group").contains("nopasswdlogin"));
        assert_eq!(read(r, PAM_LIGHTDM), DEBIAN_PAM);
    }

    #[test]
    fn two_autologin_users_are_refused() {
        let t = desktop_root();
        let users = [user("a", true), user("b", true)];
        let e = configure_desktop(t.path(), &users).unwrap_err().to_string();
        assert!(e.contains("a, b"), "{e}");
    }

    #[test]
    fn wait_online_is_bounded_for_the_network_stack_the_image_has() {
        let t = desktop_root();
        let r = t.path();
        configure_desktop(r, &[]).unwrap();
        let nm = read(r, "/etc/systemd/system/NetworkManager-wait-online.service.d/50-lazare.conf");
        assert!(nm.contains("\nEnvironment=NM_ONLINE_TIMEOUT=10\n"), "{nm}");
        // No networkd unit in this image: no drop-in for it.
        assert!(!at(r, "/etc/systemd/system/systemd-networkd-wait-online.service.d").exists());
    }

    #[test]
    fn an_image_without_lightdm_gets_no_lightdm_file() {
        let t = desktop_root();
        let r = t.path();
        std::fs::remove_file(r.join("usr/sbin/lightdm")).unwrap();
        configure_desktop(r, &[user("u", true)]).unwrap();
        assert!(!at(r, LIGHTDM_CONF).exists());
        // The boot entry is for every image: a garbled text console too.
        let script = read(r, "/etc/grub.d/41_lazare_safe_graphics");
        assert!(script.contains("--id lazare-safe-graphics"), "{script}");
        assert!(script.contains(" nomodeset\""), "{script}");
    }
}
