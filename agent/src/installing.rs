//! From a verified plan to an installed PC: plan the disks, show the plan
//! with a countdown, then hand over to [`crate::install`] with the agent's
//! screen, server connection and the CD's kernel for the reinstall entry.

use std::path::{Path, PathBuf};

use lazare_proto::{Event, Inventory, Phase, Plan, PublicKey, Room, ENGINE_PATH};

use crate::failure::Failure;
use crate::http::Client as Server;
use crate::i18n::t;
use crate::install::room::RoomSetup;
use crate::install::{self, InstallCtx, Reporter, Retry, UreqFetch};
use crate::screen::Screen;
use crate::target::Reinstall;
use diskplan::Layout;
use kernel_cmdline::{Cmdline, ServerUrl};
use lazare_cd::paths::{BAKED_CMDLINE, CD_INITRD, CD_KERNEL};

/// Where the boot CD (or USB stick) is mounted to copy its kernel.
const CD_MOUNT: &str = "/run/lazare/cd";
/// Where the new system is mounted while it is written.
pub const TARGET: &str = "/target";

/// Screen lines plus events to the server; lost events stop nothing.
pub struct ScreenReporter<'a> {
    pub screen: &'a Screen,
    pub server: &'a Server,
    pub machine_id: &'a str,
}

impl Reporter for ScreenReporter<'_> {
    fn event(&self, phase: Phase, percent: Option<u8>, message: &str) {
        show_event(self.screen, phase, percent, message);
        let ev = Event { phase, percent, message: message.to_string(), from_peers: None };
        if let Err(e) = self.server.event(self.machine_id, &ev) {
            self.screen.note(&format!("event not sent: {e}"));
        }
    }

    fn log(&self, line: &str) {
        self.screen.note(line);
    }

    fn room(&self, line: &str, from_peers: u64) {
        self.screen.note(line);
        let message = line.to_string();
        let ev =
            Event { phase: Phase::Download, percent: None, message, from_peers: Some(from_peers) };
        if let Err(e) = self.server.event(self.machine_id, &ev) {
            self.screen.note(&format!("event not sent: {e}"));
        }
    }
}

/// An install event on the PC's screen: the staff's words, the detail in
/// the log.
pub fn show_event(screen: &Screen, phase: Phase, percent: Option<u8>, message: &str) {
    screen.phase(&format!("{phase:?}").to_lowercase());
    let shown = staff_words(phase, percent).unwrap_or_else(|| message.to_string());
    match percent {
        Some(p) => screen.progress(&shown, message, p),
        None => screen.event_line(&shown, message),
    }
}

/// Runs the install; on success restarts into the new system (never
/// returns Ok).
pub fn install(
    screen: &Screen,
    server: &Server,
    inv: &Inventory,
    plan: &Plan,
    cmdline: &Cmdline,
    key: Option<&PublicKey>,
) -> Result<(), Failure> {
    let layout = plan_and_show(screen, inv, plan)?;
    let reporter = ScreenReporter { screen, server, machine_id: &inv.machine_id };
    let reinstall = reinstall_entry(screen, inv, &server.base, cmdline, server.secret(), key);
    let image_url = server.url(&plan.setup.image.url);
    let fetch = UreqFetch::new(server.agent.clone());
    let room = plan.setup.room.as_ref().and_then(|room| room_setup(screen, server, room));
    let upload = || {
        let _ = server.log(&inv.machine_id, &screen.log_text());
    };
    let source = Source {
        reporter: &reporter,
        fetch: &fetch,
        image_url: &image_url,
        reinstall: reinstall.as_ref(),
        upload_log: &upload,
        keep: &|_| {},
        room: room.as_ref(),
    };
    run(screen, inv, plan, &layout, &source)
}

/// Where the room's engine and tracker are: the tracker by address, since
/// the engine has no resolver of its own.
fn room_setup<'a>(screen: &Screen, server: &Server, room: &'a Room) -> Option<RoomSetup<'a>> {
    match server.server_addr(room.tracker_port) {
        Ok(addr) => Some(RoomSetup {
            room,
            engine_url: server.url(ENGINE_PATH),
            tracker: format!("http://{addr}/announce"),
        }),
        Err(e) => {
            screen.note(&format!("not sharing the image: the server's address: {e}"));
            None
        }
    }
}

/// The disk layout of `plan` on this PC, shown with its countdown.
pub fn plan_and_show(screen: &Screen, inv: &Inventory, plan: &Plan) -> Result<Layout, Failure> {
    let layout =
        diskplan::plan(inv, &plan.setup.disks).map_err(|e| Failure::new(&t("fail-disks"), e))?;
    install::show::show_and_count_down(
        &layout,
        plan.setup.countdown_secs,
        screen,
        &std::thread::sleep,
    );
    Ok(layout)
}

/// Where an install's bytes come from and where it tells what it does: the
/// server, or an offline bundle (see [`crate::offline`]).
pub struct Source<'a> {
    pub reporter: &'a dyn Reporter,
    pub fetch: &'a dyn install::Fetch,
    pub image_url: &'a str,
    pub reinstall: Option<&'a Reinstall>,
    pub upload_log: &'a dyn Fn(),
    /// Called once the new system is written and unmounted, before the
    /// restart (the offline agent keeps its record on it).
    pub keep: &'a dyn Fn(&[install::Made]),
    /// The room to share the image with, if any.
    pub room: Option<&'a RoomSetup<'a>>,
}

/// Runs the pipeline from `source`; on success restarts into the new system
/// (never returns Ok).
pub fn run(
    screen: &Screen,
    inv: &Inventory,
    plan: &Plan,
    layout: &Layout,
    source: &Source,
) -> Result<(), Failure> {
    // The filesystems the install mounts, loaded now: asked for later, the
    // kernel's modprobe would decompress the module packs beside the
    // install (coldplug.rs PRELOAD).
    let opts =
        crate::hw::modules::ProbeOpts { root: "/".into(), kver: crate::sys::kernel_release() };
    match crate::hw::coldplug::preload(&opts) {
        Ok(r) if r.failed.is_empty() => screen.note(&format!("loaded {}", r.loaded.join(" "))),
        Ok(r) => {
            let failed: Vec<String> = r.failed.iter().map(|(m, e)| format!("{m}: {e}")).collect();
            screen.note(&format!(
                "loaded {}; not loaded: {}",
                r.loaded.join(" "),
                failed.join("; ")
            ))
        }
        Err(e) => screen.note(&format!("filesystem modules not loaded: {e}")),
    }
    let _ = std::fs::create_dir_all(TARGET);
    let ctx = InstallCtx {
        plan,
        layout,
        image_url: source.image_url,
        dev: Path::new("/dev"),
        target: Path::new(TARGET),
        fetch: source.fetch,
        reporter: source.reporter,
        retry: Retry::default(),
        reinstall: source.reinstall,
        room: source.room,
    };
    let made = match install::run(&ctx) {
        Ok(made) => made,
        Err(e) => {
            source.reporter.event(Phase::Failed, None, &format!("install failed: {e}"));
            (source.upload_log)();
            return Err(Failure::new(&t("fail-install"), e));
        }
    };
    screen.note_timeline();
    (source.keep)(&made);
    let e = install::finish(
        source.reporter,
        source.upload_log,
        Path::new("/dev"),
        inv.boot_device.as_deref(),
    );
    Err(Failure::new(&t("fail-no-restart"), e))
}

/// The staff's words for an install event on the PC's screen; `None` keeps
/// the event's own (English, technical) message. The events sent to the
/// server, the log and the serial port keep their English wording: the
/// dashboard, the volunteer and the tests read them.
fn staff_words(phase: Phase, percent: Option<u8>) -> Option<String> {
    let id = match phase {
        Phase::Partition => "event-partition",
        Phase::Format => "event-format",
        Phase::Download if percent.is_some() => "event-download",
        Phase::Configure => "event-configure",
        Phase::Installed => "event-installed",
        _ => return None,
    };
    Some(t(id))
}

impl install::show::Say for Screen {
    fn say(&self, line: &str) {
        self.line(line);
    }
}

/// The CD's kernel and initramfs for the "Reinstall from server" entry,
/// when the boot device can be mounted; else the entry is left out.
pub fn reinstall_entry(
    screen: &Screen,
    inv: &Inventory,
    server: &ServerUrl,
    live: &Cmdline,
    secret: Option<String>,
    key: Option<&PublicKey>,
) -> Option<Reinstall> {
    let Some(dev) = inv.boot_device.as_deref() else {
        screen.note("no boot CD/USB found: the reinstall entry is left out");
        return None;
    };
    let _ = std::fs::create_dir_all(CD_MOUNT);
    let src = format!("/dev/{dev}");
    if let Err(e) = crate::sys::mount(&src, CD_MOUNT, "iso9660", crate::sys::MS_RDONLY, None) {
        screen.note(&format!("mounting {src}: {e}: the reinstall entry is left out"));
        return None;
    }
    let on_cd = |p: &str| PathBuf::from(CD_MOUNT).join(p.trim_start_matches('/'));
    let (kernel, initrd) = (on_cd(CD_KERNEL), on_cd(CD_INITRD));
    if !kernel.exists() || !initrd.exists() {
        screen.note(&format!(
            "the boot CD has no {CD_KERNEL} or {CD_INITRD}: the reinstall entry is left out"
        ));
        return None;
    }
    let cmdline = match entry_cmdline(Path::new(BAKED_CMDLINE), live) {
        Ok((c, ignored)) => {
            if !ignored.is_empty() {
                screen.note(&format!(
                    "the reinstall entry leaves out what was typed at the boot menu: {}",
                    ignored.join(" ")
                ));
            }
            c
        }
        Err(e) => {
            screen.note(&format!("{e}: the reinstall entry is left out"));
            return None;
        }
    };
    let pin = key.map(PublicKey::tls_pin);
    Some(Reinstall { kernel, initrd, cmdline, server: server.clone(), secret, pin })
}

/// The reinstall entry's command line: the one `lazare build` baked into the
/// CD, never the `live` one (/proc/cmdline), where someone at the boot menu
/// may have typed `lazare.insecure` or another `lazare.key=` that the
/// installed system would then keep for every later reinstall. Also returns
/// the live `lazare.*` parameters left out, to say so on screen.
pub fn entry_cmdline(baked: &Path, live: &Cmdline) -> Result<(String, Vec<String>), String> {
    let text = std::fs::read_to_string(baked)
        .map_err(|e| format!("reading the CD's command line {}: {e}", baked.display()))?;
    let mut cmdline = Cmdline::parse(&text);
    cmdline.remove("BOOT_IMAGE");
    let ignored = live
        .iter()
        .filter(|p| p.key.starts_with("lazare.") && !cmdline.iter().any(|b| b == *p))
        .map(ToString::to_string)
        .collect();
    Ok((cmdline.to_string(), ignored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_insecure_or_key_does_not_reach_the_reinstall_entry() {
        let dir = tempfile::tempdir().unwrap();
        let baked = dir.path().join("cmdline");
        std::fs::write(&baked, "lazare.server=http://10.0.2.100:8470 console=tty0\n").unwrap();
        let live = Cmdline::parse(
            "BOOT_IMAGE=/boot/vmlinuz lazare.server=http://10.0.2.100:8470 console=tty0 \
             lazare.insecure lazare.key=ed25519:AAAA",
        );
        let (entry, ignored) = entry_cmdline(&baked, &live).unwrap();
        assert_eq!(entry, "lazare.server=http://10.0.2.100:8470 console=tty0");
        assert_eq!(ignored, ["lazare.insecure", "lazare.key=ed25519:AAAA"]);
        let missing = entry_cmdline(&dir.path().join("none"), &live).unwrap_err();
        assert!(missing.contains("the CD's command line"), "{missing}");
    }
}
