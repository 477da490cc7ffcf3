//! PID 1 of the boot CD. It sets up the basics as a declarative list of
//! steps (u-root libinit style, each printable), prints the banner, then
//! runs the agent's work in a child process and reaps every process that
//! ends (orphans are re-parented to PID 1). When the agent fails or dies it
//! offers retry, shell, reboot or power off. It never returns: the kernel
//! panics when PID 1 exits.

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::i18n::t;
use crate::screen::{self, Screen};
use crate::{config, sys};

/// One setup step of PID 1.
#[derive(Debug, Clone, Copy)]
pub enum InitStep {
    Dir(&'static str),
    /// Mount, making the target directory first.
    Mount {
        src: &'static str,
        target: &'static str,
        fstype: &'static str,
        flags: u64,
        data: Option<&'static str>,
    },
    /// Mount only when the target directory exists (e.g. efivarfs on UEFI).
    MountIfPresent {
        src: &'static str,
        target: &'static str,
        fstype: &'static str,
    },
    Symlink {
        target: &'static str,
        link: &'static str,
    },
    /// Write a kernel setting; skipped when the file does not exist.
    Write {
        path: &'static str,
        contents: &'static str,
    },
}

const NOSUID_NODEV_NOEXEC: u64 = sys::MS_NOSUID | sys::MS_NODEV | sys::MS_NOEXEC;

/// A mount step; its target directory is made first.
const fn mount(
    src: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: u64,
    data: Option<&'static str>,
) -> InitStep {
    InitStep::Mount { src, target, fstype, flags, data }
}

/// Everything PID 1 sets up before the agent runs.
pub const STEPS: &[InitStep] = &[
    mount("proc", "/proc", "proc", NOSUID_NODEV_NOEXEC, None),
    mount("sysfs", "/sys", "sysfs", NOSUID_NODEV_NOEXEC, None),
    mount("devtmpfs", "/dev", "devtmpfs", sys::MS_NOSUID, Some("mode=0755")),
    mount(
        "devpts",
        "/dev/pts",
        "devpts",
        sys::MS_NOSUID | sys::MS_NOEXEC,
        Some("gid=5,mode=620,ptmxmode=666"),
    ),
    mount("tmpfs", "/run", "tmpfs", sys::MS_NOSUID | sys::MS_NODEV, Some("mode=0755")),
    mount("tmpfs", "/tmp", "tmpfs", sys::MS_NOSUID | sys::MS_NODEV, Some("mode=1777")),
    InitStep::MountIfPresent {
        src: "efivarfs",
        target: "/sys/firmware/efi/efivars",
        fstype: "efivarfs",
    },
    // The kernel runs its module requests (fs-ext4, crypto-crc32c…) through
    // this helper: point it at ourselves, `main` dispatches on argv[0].
    InitStep::Dir("/sbin"),
    InitStep::Symlink { target: "/init", link: "/sbin/modprobe" },
    InitStep::Write { path: "/proc/sys/kernel/modprobe", contents: "/sbin/modprobe\n" },
    // Kernel chatter (driver probes, link up, filesystem mounts) would bury
    // the agent's sentences on the PC's screen: the console shows only
    // errors and worse (OOM kills, I/O errors); the rest stays in dmesg.
    InitStep::Write { path: "/proc/sys/kernel/printk", contents: "4\n" },
];

impl fmt::Display for InitStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitStep::Dir(d) => write!(f, "mkdir {d}"),
            InitStep::Mount { src, target, fstype, data, .. } => {
                write!(f, "mount -t {fstype} {src} {target}")?;
                data.map_or(Ok(()), |d| write!(f, " -o {d}"))
            }
            InitStep::MountIfPresent { src, target, fstype } => {
                write!(f, "mount -t {fstype} {src} {target} (if present)")
            }
            InitStep::Symlink { target, link } => write!(f, "ln -s {target} {link}"),
            InitStep::Write { path, contents } => {
                write!(f, "echo {:?} > {path}", contents.trim_end())
            }
        }
    }
}

impl InitStep {
    pub fn apply(&self) -> std::io::Result<()> {
        match *self {
            InitStep::Dir(d) => std::fs::create_dir_all(d),
            InitStep::Mount { src, target, fstype, flags, data } => {
                std::fs::create_dir_all(target)?;
                sys::mount(src, target, fstype, flags, data)
            }
            InitStep::MountIfPresent { src, target, fstype } => {
                if Path::new(target).is_dir() && !sys::is_mounted(Path::new(target)) {
                    sys::mount(
                        src,
                        target,
                        fstype,
                        sys::MS_NOSUID | sys::MS_NODEV | sys::MS_NOEXEC,
                        None,
                    )?;
                }
                Ok(())
            }
            InitStep::Symlink { target, link } => sys::symlink(target, link),
            InitStep::Write { path, contents } => match std::fs::write(path, contents) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            },
        }
    }
}

/// Exit code of the agent child after it showed its own failure.
pub const EXIT_FAILED: i32 = 2;

/// PID 1's main: set up, banner, supervise. Never returns.
pub fn run() -> ! {
    let errors: Vec<String> =
        STEPS.iter().filter_map(|s| s.apply().err().map(|e| format!("{s}: {e}"))).collect();
    let screen = Screen::open_console();
    screen.clear();
    for s in STEPS {
        screen.note(&s.to_string());
    }
    for e in &errors {
        screen.warn(&format!("setup: {e}"));
    }
    if let Err(e) = crate::entropy::credit_boot_entropy() {
        screen.warn(&format!("crediting entropy: {e} (network encryption may stall)"));
    }
    banner(&screen);
    supervise(&screen)
}

/// The first lines a person (or a test on the serial console) sees.
fn banner(screen: &Screen) {
    use config::BootAction;
    let config = config::load(Path::new(config::LIVE_CMDLINE), Path::new("/"));
    match &config {
        Ok(c) => {
            screen.line(&format!(
                "lazare-agent {} server={} action={}",
                env!("CARGO_PKG_VERSION"),
                c.server,
                c.action.as_str()
            ));
            screen.line(&format!("cmdline: {}", c.cmdline));
        }
        Err(e) => {
            screen.line(&format!("lazare-agent {} config error: {e:#}", env!("CARGO_PKG_VERSION")))
        }
    }
    // The two lines above are for the volunteer; this one is for whoever
    // stands in front of the PC.
    if let Some(lang) = config.as_ref().ok().and_then(|c| c.lang) {
        crate::i18n::set(lang);
    }
    let plain = match config.map(|c| c.action) {
        Ok(BootAction::Install) => [t("banner-install"), t("banner-install-2")],
        Ok(BootAction::Inventory) => [t("banner-inventory"), t("banner-inventory-2")],
        _ => return,
    };
    // Two short lines: the console is 80 columns and wraps mid-word.
    screen.line("");
    for l in &plain {
        screen.line(l);
    }
    screen.line("");
}

/// Runs the agent as a child, reaps everything, handles its end.
fn supervise(screen: &Screen) -> ! {
    loop {
        let code = match spawn_self("agent") {
            Ok(pid) => wait_for(pid),
            Err(e) => {
                screen.failure(&t("fail-agent-start"), &format!("spawning the agent: {e}"));
                EXIT_FAILED
            }
        };
        if code == 0 {
            screen.line(&t("agent-finished"));
        } else if code != EXIT_FAILED {
            screen.failure(&t("fail-agent-stopped"), &format!("agent exit status {code}"));
        }
        offer_choices(screen);
    }
}

fn spawn_self(sub: &str) -> std::io::Result<u32> {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/init".into());
    let child = Command::new(exe).arg(sub).stdin(Stdio::null()).spawn()?;
    Ok(child.id())
}

/// Reaps children until `pid` ends; returns its status code.
fn wait_for(pid: u32) -> i32 {
    loop {
        match sys::wait_any() {
            Some((p, code)) if p == pid => return code,
            Some(_) => continue,
            None => return -1,
        }
    }
}

/// Retry, shell, reboot or power off; returns when the user asks to retry.
pub fn offer_choices(screen: &Screen) {
    loop {
        screen.line(&t("choices"));
        match screen::read_choice() {
            Some('r') | Some('\n') => return,
            Some('s') => run_shell(screen),
            Some('b') => screen.failure(&t("fail-restart"), &sys::restart().to_string()),
            Some('p') => screen.failure(&t("fail-power-off"), &sys::power_off().to_string()),
            Some(_) => continue,
            None => {
                // No keyboard to read from: wait and try again by itself.
                std::thread::sleep(std::time::Duration::from_secs(30));
                return;
            }
        }
    }
}

/// Runs /bin/sh on the console when the CD carries one.
pub fn run_shell(screen: &Screen) {
    if !Path::new("/bin/sh").exists() {
        screen.line(&t("no-shell"));
        return;
    }
    screen.line(&t("shell-start"));
    screen.show_cursor();
    // The agent child runs with stdin closed: give the shell the console.
    let console = std::fs::OpenOptions::new().read(true).write(true).open("/dev/console");
    let mut cmd = Command::new("/bin/sh");
    if let Ok(c) = console {
        if let (Ok(a), Ok(b)) = (c.try_clone(), c.try_clone()) {
            cmd.stdin(a).stdout(b).stderr(c);
        }
    }
    match cmd.spawn() {
        Ok(child) if std::process::id() == 1 => {
            wait_for(child.id());
        }
        Ok(mut child) => {
            let _ = child.wait();
        }
        Err(e) => screen.failure(&t("fail-shell"), &e.to_string()),
    }
}
