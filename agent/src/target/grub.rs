//! GRUB on the installed system, the "Reinstall from server" entry, and the
//! boot-time service that asks the server whether to reinstall.

use super::chroot::{run_in_chroot, BindMounts};
use super::system::write_file;
use super::{at, io_err, Boot, Firmware, Mounts, Reinstall, Result, TargetError};
use kernel_cmdline::{Scheme, ServerUrl};
use lazare_cd::paths::installed;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The GRUB menu entry id `grub-reboot` selects.
pub const REINSTALL_ENTRY_ID: &str = "lazare-reinstall";

/// Put into GRUB's core image whatever grub-probe sees: finding /boot/grub
/// by UUID must not depend on the probe having guessed the partition table
/// (it cannot when the root is on a device without a parent disk in sysfs).
const MODULES: &str = "--modules=part_msdos part_gpt ext2";

const REINSTALL_SCRIPT: &str = include_str!("42_lazare_reinstall");
const NEXT_SCRIPT: &str = include_str!("lazare-next");
const NEXT_UNIT: &str = include_str!("lazare-next.service");
const NEXT_TIMER: &str = include_str!("lazare-next.timer");
const WOL_LINK: &str = include_str!("80-lazare-wol.link");

/// Sets the keys lazare needs in `/etc/default/grub`, keeping the others:
/// `GRUB_DEFAULT=saved` (for `grub-reboot`), the console command line, and
/// GRUB itself on screen and serial.
pub fn write_grub_defaults(root: &Path) -> Result<()> {
    let path = at(root, "/etc/default/grub");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_err("reading", &path)(e)),
    };
    // The CD's consoles (screen and first serial port), so a VM test and a
    // staff member both see the installed system boot.
    let consoles = lazare_cd::console::cmdline(true);
    let want = [
        ("GRUB_DEFAULT", "saved".to_string()),
        ("GRUB_CMDLINE_LINUX", format!("\"{consoles}\"")),
        ("GRUB_TERMINAL", "\"console serial\"".into()),
        ("GRUB_SERIAL_COMMAND", format!("\"serial --speed={}\"", lazare_cd::console::SERIAL_SPEED)),
    ];
    let mut out = String::new();
    let mut done = [false; 4];
    for line in text.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        match want.iter().position(|(k, _)| *k == key) {
            Some(i) if !done[i] => {
                done[i] = true;
                out.push_str(&format!("{}={}\n", want[i].0, want[i].1));
            }
            Some(_) => {} // a duplicate would override ours: drop it
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (i, (k, v)) in want.iter().enumerate() {
        if !done[i] {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    if !text.contains("GRUB_TIMEOUT=") {
        out.push_str("GRUB_TIMEOUT=5\n");
    }
    write_file(root, "/etc/default/grub", &out)
}

/// Characters that would change the meaning of the generated grub.cfg.
fn check_cmdline(c: &str) -> Result<()> {
    match c.chars().find(|ch| "'\\$;{}|&<>`\n\r".contains(*ch)) {
        Some(ch) => Err(TargetError::Invalid(format!(
            "the CD command line has {ch:?}, which lazare does not put in a GRUB menu entry"
        ))),
        None => Ok(()),
    }
}

/// Copies the CD's kernel and initramfs to `/boot/lazare/` and adds
/// `/etc/grub.d/42_lazare_reinstall`, which makes the menu entry
/// `lazare-reinstall` at the next `update-grub`.
pub fn install_reinstall_entry(root: &Path, r: &Reinstall) -> Result<()> {
    check_cmdline(&r.cmdline)?;
    let dir = at(root, installed::REINSTALL_DIR);
    std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
    for (src, name) in [(&r.kernel, "vmlinuz"), (&r.initrd, "initrd.img")] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::copy(src, &tmp).map_err(io_err("copying the CD's boot file", src))?;
        std::fs::rename(&tmp, dir.join(name)).map_err(io_err("renaming", &tmp))?;
    }
    let secret_initrd = dir.join(SECRET_INITRD);
    match &r.secret {
        Some(secret) => write_secret_initrd(&secret_initrd, secret)?,
        None => {
            let _ = std::fs::remove_file(&secret_initrd);
        }
    }
    let script = REINSTALL_SCRIPT
        .replace("@CMDLINE@", r.cmdline.trim())
        .replace("@ID@", REINSTALL_ENTRY_ID)
        .replace("@DIR@", installed::REINSTALL_DIR);
    write_file(root, "/etc/grub.d/42_lazare_reinstall", &script)?;
    chmod(&at(root, "/etc/grub.d/42_lazare_reinstall"), 0o755)
}

/// In `/boot/lazare/`: the machine secret as an extra initramfs. The
/// reinstall entry loads it after the CD's; the kernel unpacks both, so the
/// CD's agent finds `/etc/lazare/machine-secret` and proves this PC to the
/// server. Root only, like the secret itself.
pub const SECRET_INITRD: &str = "secret.cpio";

fn write_secret_initrd(path: &Path, secret: &str) -> Result<()> {
    if !lazare_proto::valid_token_hex(secret) {
        return Err(TargetError::Invalid("the machine secret is not lowercase hex".into()));
    }
    let file = format!("{secret}\n");
    let inside = installed::MACHINE_SECRET.trim_start_matches('/');
    let mut entries: Vec<(&str, u32, &[u8])> = Vec::new();
    // Its directories first (`etc`, `etc/lazare`), as the kernel unpacks in order.
    for (i, _) in inside.match_indices('/') {
        entries.push((&inside[..i], 0o040755, b""));
    }
    entries.push((inside, 0o100600, file.as_bytes()));
    let mut out = Vec::new();
    let io = |e: std::io::Error| io_err("writing", path)(e);
    for (name, mode, data) in entries {
        let mut w = cpio::newc::Builder::new(name).mode(mode).write(&mut out, data.len() as u32);
        std::io::Write::write_all(&mut w, data).map_err(io)?;
        w.finish().map_err(io)?;
    }
    cpio::newc::trailer(&mut out).map_err(io)?;
    write_private(path, &out)
}

/// Temp file (created 0600) + rename.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("creating", &tmp))?;
    f.write_all(bytes).map_err(io_err("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("renaming", &tmp))
}

fn chmod(p: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(io_err("chmod", p))
}

/// Installs `lazare-next.service` (enabled) and `/usr/local/sbin/lazare-next`,
/// which at boot, then every `orders_every_secs` (`lazare-next.timer`), asks
/// `GET <server>/api/v1/machines/<id>/next` and, on `{"action":"reinstall"}`,
/// runs `grub-reboot lazare-reinstall` and reboots; and Wake-on-LAN on the
/// wired NICs (`80-lazare-wol.link`) so the server can switch the PC on.
/// The URL is checked by its type (http or https, no space, quote, query
/// or trailing `/`): the script appends the route to it, in double quotes.
pub fn install_next_service(
    root: &Path,
    server: &ServerUrl,
    machine_id: &str,
    orders_every_secs: u32,
) -> Result<()> {
    // https means the pinned channel, which only curl speaks (lazare-next).
    let (tools, what): (&[&str], _) = match server.scheme() {
        Scheme::Https => (&["/usr/bin/curl"], "curl (to reach an https install server)"),
        Scheme::Http => (&["/usr/bin/wget", "/usr/bin/curl"], "wget or curl"),
    };
    if resolve_any(root, tools).is_none() {
        return Err(TargetError::MissingInImage { root: root.into(), what: what.into() });
    }
    write_file(root, installed::SERVER, &format!("{server}\n"))?;
    if !at(root, installed::MACHINE_ID).exists() {
        write_file(root, installed::MACHINE_ID, &format!("{machine_id}\n"))?;
    }
    write_file(root, "/usr/local/sbin/lazare-next", NEXT_SCRIPT)?;
    chmod(&at(root, "/usr/local/sbin/lazare-next"), 0o755)?;
    enable_unit(root, "lazare-next.service", NEXT_UNIT, "multi-user.target")?;
    enable_unit(root, "lazare-next.timer", &next_timer(orders_every_secs), "timers.target")?;
    write_file(root, "/etc/systemd/network/80-lazare-wol.link", WOL_LINK)
}

/// The timer unit for a period of `every` seconds. Its random delay, and
/// the accuracy systemd may round its wake-ups to, are 2/15 of the period
/// each (2 minutes of 15, the delay before the period was a rule), so an
/// order waits at most 19/15 of the period.
fn next_timer(every: u32) -> String {
    let jitter = u64::from(every) * 2 / 15;
    NEXT_TIMER.replace("@EVERY@", &every.to_string()).replace("@JITTER@", &jitter.to_string())
}

/// Writes `/etc/systemd/system/UNIT` and enables it as `systemctl enable`
/// would for `WantedBy=TARGET` (a link in `TARGET.wants`), without systemd.
fn enable_unit(root: &Path, unit: &str, body: &str, target: &str) -> Result<()> {
    let path = format!("/etc/systemd/system/{unit}");
    write_file(root, &path, body)?;
    let wants = at(root, &format!("/etc/systemd/system/{target}.wants"));
    std::fs::create_dir_all(&wants).map_err(io_err("creating", &wants))?;
    let link = wants.join(unit);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&path, &link).map_err(io_err("linking", &link))
}

/// Writes `/etc/lazare/server.pin`, the server key's pin in curl's
/// `sha256//BASE64` form, which `lazare-next` passes to `--pinnedpubkey`.
pub fn write_server_pin(root: &Path, pin: &str) -> Result<()> {
    let ok = pin.strip_prefix("sha256//").is_some_and(|b| {
        !b.is_empty() && b.bytes().all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
    });
    if !ok {
        return Err(TargetError::Invalid(format!("server key pin {pin:?} is not sha256//BASE64")));
    }
    write_file(root, installed::SERVER_PIN, &format!("{pin}\n"))
}

/// Writes `/etc/lazare/machine-secret`, readable by root only: whoever
/// reads it can speak for this PC to the install server.
pub fn write_machine_secret(root: &Path, secret: &str) -> Result<()> {
    if !lazare_proto::valid_token_hex(secret) {
        return Err(TargetError::Invalid("the machine secret is not lowercase hex".into()));
    }
    let path = at(root, installed::MACHINE_SECRET);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    }
    write_private(&path, format!("{secret}\n").as_bytes())
}

fn resolve_any(root: &Path, paths: &[&str]) -> Option<std::path::PathBuf> {
    paths.iter().find_map(|p| super::chroot::resolve_in_root(root, p))
}

/// Installs GRUB for the firmware in a chroot (BIOS: the MBR of each boot
/// disk; UEFI: the ESP mounted at `root/boot/efi`, see [`install_efi`]),
/// then writes `/boot/grub/grub.cfg`.
pub fn install_bootloader(root: &Path, boot: &Boot, mounts: &Mounts) -> Result<()> {
    let _binds = BindMounts::new(root)?;
    match boot.firmware {
        Firmware::Bios => {
            if boot.disks.is_empty() {
                return Err(TargetError::Invalid("BIOS install with no boot disk".into()));
            }
            for d in &boot.disks {
                let disk =
                    d.to_str().ok_or_else(|| TargetError::Invalid(format!("disk path {d:?}")))?;
                run_in_chroot(root, &["grub-install", "--target=i386-pc", MODULES, disk])?;
            }
        }
        Firmware::Uefi => install_efi(root)?,
    }
    if !at(root, "/boot/grub/grubenv").exists() {
        run_in_chroot(root, &["grub-editenv", "/boot/grub/grubenv", "create"])?;
    }
    let link = uuid_link(root, mounts)?;
    let made = run_in_chroot(root, &["grub-mkconfig", "-o", "/boot/grub/grub.cfg"]);
    if let Some(l) = link {
        let _ = std::fs::remove_file(l);
    }
    made.map(|_| ())
}

/// Microsoft-signed shim and Debian-signed GRUB in the image (packages
/// shim-signed and grub-efi-amd64-signed, in every profile's base).
const SIGNED_EFI: [&str; 2] =
    ["/usr/lib/shim/shimx64.efi.signed", "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"];

/// The ESP's two boot paths, written without touching NVRAM (the agent has
/// no efibootmgr, and old PCs lose or ignore their boot entries):
/// `EFI/debian/` as Debian itself installs it, and the removable-media path
/// `EFI/BOOT/BOOTX64.EFI` that firmware boots when it has no entry, which
/// is the case for the first boot after the CD is ejected.
///
/// With the signed binaries in the image, both paths get shim (as
/// `shimx64.efi` / `BOOTX64.EFI`), the signed GRUB as `grubx64.efi` and the
/// small grub.cfg that finds `/boot/grub` by UUID: the PC then boots with
/// Secure Boot on or off. An image without them (built before they were in
/// base.toml) gets an unsigned GRUB, which boots only with Secure Boot off.
fn install_efi(root: &Path) -> Result<()> {
    if !at(root, "/boot/efi").is_dir() {
        return Err(TargetError::Invalid("UEFI install but no ESP at /boot/efi".into()));
    }
    let signed = SIGNED_EFI.iter().all(|f| at(root, f).is_file());
    let chain = if signed { "--uefi-secure-boot" } else { "--no-uefi-secure-boot" };
    run_in_chroot(
        root,
        &[
            "grub-install",
            "--target=x86_64-efi",
            "--efi-directory=/boot/efi",
            "--bootloader-id=debian",
            "--no-nvram",
            "--force-extra-removable",
            chain,
            MODULES,
        ],
    )?;
    check_esp(root, signed)
}

/// grub-install exits 0 in cases where a path is missing (it prints a
/// warning about the removable path, for one): check the files a firmware
/// and shim will look for.
fn check_esp(root: &Path, signed: bool) -> Result<()> {
    let mut want = vec!["/boot/efi/EFI/BOOT/BOOTX64.EFI", "/boot/efi/EFI/debian/grubx64.efi"];
    if signed {
        want.extend(["/boot/efi/EFI/BOOT/grubx64.efi", "/boot/efi/EFI/debian/grub.cfg"]);
    }
    match want.iter().find(|f| !at(root, f).is_file()) {
        Some(f) => Err(TargetError::Invalid(format!("grub-install did not write {f} on the ESP"))),
        None => Ok(()),
    }
}

/// GRUB's 10_linux writes `root=UUID=...` only if `/dev/disk/by-uuid/<uuid>`
/// exists, else `root=/dev/sdX1`, which changes when disks are added. The
/// agent has no udev: make that one link (in the bound /dev) while
/// grub-mkconfig runs. Returns the link made, if any.
fn uuid_link(root: &Path, mounts: &Mounts) -> Result<Option<std::path::PathBuf>> {
    let Some(e) = mounts.entries.iter().find(|e| e.mountpoint == "/") else {
        return Err(TargetError::Invalid("the layout has no root (/) filesystem".into()));
    };
    let link = at(root, &format!("/dev/disk/by-uuid/{}", e.uuid));
    if link.exists() {
        return Ok(None);
    }
    let dev = run_in_chroot(root, &["grub-probe", "--target=device", "/"])?;
    let dev = dev.lines().next().unwrap_or("").trim().to_string();
    if !dev.starts_with("/dev/") {
        return Err(TargetError::Invalid(format!("grub-probe found no device for / ({dev:?})")));
    }
    let dir = link.parent().expect("link has a parent");
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    std::os::unix::fs::symlink(&dev, &link).map_err(io_err("linking", &link))?;
    Ok(Some(link))
}

/// Rebuilds the initramfs with only the drivers this PC needs
/// (`MODULES=dep`, detected in the chroot on the real hardware): the image's
/// generic one (`MODULES=most`, ~36 MB) does not boot with 256 MB of RAM.
/// The target's root filesystem must be mounted at `root`.
pub fn regenerate_initramfs(root: &Path) -> Result<()> {
    write_file(
        root,
        "/etc/initramfs-tools/conf.d/lazare.conf",
        "# Written by the lazare agent: drivers of this PC only (small, boots in 256 MB).\nMODULES=dep\n",
    )?;
    let _binds = BindMounts::new(root)?;
    run_in_chroot(root, &["update-initramfs", "-u", "-k", "all"])?;
    Ok(())
}
