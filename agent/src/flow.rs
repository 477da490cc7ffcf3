//! The agent's work after PID 1 set up the basics: hardware, network,
//! server, then the action. Runs in a child of PID 1 (`lazare-agent agent`);
//! on failure it shows a plain sentence and the detail and exits with
//! [`crate::init::EXIT_FAILED`] so PID 1 offers retry/shell/reboot.

use std::cell::{Cell, OnceCell, RefCell};
use std::path::Path;
use std::time::Duration;

use lazare_proto::{valid_token_hex, Action, Event, Inventory, Phase};

use crate::config::{self, BootAction, Server, ServerUrl};
use crate::failure::Failure;
use crate::hw::coldplug;
use crate::hw::modules::ProbeOpts;
use crate::i18n::{t, t_with};
use crate::install::probe::Installed;
use crate::screen::Screen;
use crate::{entropy, http, i18n, installing, inventory, net, offline, tls, verify};
use lazare_cd::paths::installed;

/// The child's main. Never returns.
pub fn run() -> ! {
    let screen = Screen::open_console();
    let mut reached: Option<(http::Client, String)> = None;
    match work(&screen, &mut reached) {
        Ok(()) => std::process::exit(0),
        Err(f) => {
            screen.failure(&f.plain, &f.detail);
            // The admin sees why on the dashboard, not only the person at the PC.
            if let Some((server, id)) = &reached {
                let events = Events { server, machine_id: id, screen: &screen };
                events.send(Phase::Failed, &format!("{} ({})", f.plain, f.detail));
                events.upload_log();
            }
            std::process::exit(crate::init::EXIT_FAILED)
        }
    }
}

fn work(screen: &Screen, reached: &mut Option<(http::Client, String)>) -> Result<(), Failure> {
    let cfg = config::load(Path::new(config::LIVE_CMDLINE), Path::new("/"))
        .map_err(|e| Failure::new(&t("fail-settings"), e))?;
    if let Some(lang) = cfg.lang {
        i18n::set(lang);
    }
    screen.note(&format!("config: {}", serde_json::to_string(&cfg).unwrap_or_default()));
    let rest = find_hardware(screen)?;
    let disks = Disks::start(screen, rest);
    // An offline bundle on the boot medium takes over when neither the
    // network nor the server answers after a few tries. Looked for only
    // then: it needs the disks settled, which the DHCP exchange covers
    // when all goes well.
    let bundle: OnceCell<Option<offline::Bundle>> = OnceCell::new();
    let find = || {
        bundle
            .get_or_init(|| {
                if cfg.action != BootAction::Install {
                    return None;
                }
                let boot = disks.looked().0.boot_device.clone();
                offline::Bundle::find(boot.as_deref(), screen)
            })
            .as_ref()
    };
    let net_give_up = |attempt: u32| attempt >= offline::RETRIES && find().is_some();
    let net = with_retries(screen, cfg.retries, false, &t("step-network"), &net_give_up, |_| {
        net::bring_up(&cfg.network, 3).map_err(|e| Failure::new(&t("fail-network"), e))
    });
    let net = match net {
        Ok(net) => net,
        Err(why) => match find() {
            Some(b) => return install_offline(screen, &disks, &cfg, b, &why),
            None => return Err(why),
        },
    };
    screen.note(&format!("network: {}", serde_json::to_string(&net).unwrap_or_default()));
    if cfg.action == BootAction::Rescue {
        crate::init::run_shell(screen);
        return Ok(());
    }
    if cfg.insecure {
        screen.warn(&t("warn-insecure-cd"));
    }
    let trust = tls::Trust::for_cd(cfg.key.as_ref(), cfg.insecure);
    let tls = tls::client_config(trust, BUILD_FLOOR)
        .map_err(|e| Failure::new(&t("fail-tls-setup"), e))?;
    let base = server_url(&cfg.server, &net)?;
    let server =
        http::Client::new(http::agent(net.dns.clone(), tls), base.clone(), net.dns.clone());
    let (inv, kept) = look(screen, &disks);
    if let Some((secret, from)) = kept {
        server.set_secret(&secret);
        screen.note(&format!("machine secret from {from} found"));
    }
    // Set when the server answered at all (even to refuse): then it is
    // reachable and its word holds, the bundle is not used.
    let answered = Cell::new(false);
    let hello_give_up =
        |attempt: u32| !answered.get() && attempt >= offline::RETRIES && find().is_some();
    let hello = |give_up: &dyn Fn(u32) -> bool| {
        let words = t_with("step-server", &[("server", base.to_string().into())]);
        with_retries(screen, cfg.retries, true, &words, give_up, |_| {
            server.hello(&inv).map_err(|e| {
                answered.set(answered.get() || matches!(e, http::HttpError::Status { .. }));
                match e {
                    // The server knows this PC's id and wants its secret: 401,
                    // none was found (a new disk); 403, the one found is not
                    // this PC's (its disk is from before a re-enrolment).
                    http::HttpError::Status { status: 401 | 403, .. } => {
                        Failure::new(&t("fail-not-recognised"), e)
                    }
                    // Reached, but not the server this CD belongs to.
                    http::HttpError::NotPinned { .. } => Failure::new(&t("fail-not-pinned"), e),
                    e => Failure::new(&t("fail-server"), e),
                }
            })
        })
    };
    let mut answer = match hello(&hello_give_up) {
        Ok(a) => a,
        Err(why) => match find().filter(|_| !answered.get()) {
            Some(b) => return install_offline(screen, &disks, &cfg, b, &why),
            None => return Err(why),
        },
    };
    if let Some(date) = &answer.date {
        if let Some(t) = http::fix_clock(date, BUILD_FLOOR) {
            screen.note(&format!("clock was wrong; set to {t} from the server's Date header"));
        }
    }
    *reached = Some((server.clone(), inv.machine_id.clone()));
    let events = Events { server: &server, machine_id: &inv.machine_id, screen };
    events.send(
        Phase::Hardware,
        &format!("{} disks, {} network cards", inv.disks.len(), inv.nics.len()),
    );
    events.send(
        Phase::Network,
        &format!("{} {}/{} via {:?}", net.iface, net.address, net.netmask, net.gateway),
    );
    events.send(Phase::Hello, &format!("hello from agent {}", env!("CARGO_PKG_VERSION")));
    if cfg.action == BootAction::Inventory {
        return report_and_power_off(screen, &events, &inv);
    }
    loop {
        let plan = verify::plan(&answer, cfg.key.as_ref(), cfg.insecure, &inv.machine_id, screen)?;
        entropy::mix(plan.nonce.as_bytes());
        let lang = i18n::follow_locale(&plan.setup.locale);
        screen.note(&format!("speaking {lang} (plan locale {})", plan.setup.locale));
        events.send(
            Phase::Plan,
            &format!("plan verified: {} on {}", plan.setup.image.name, plan.hostname),
        );
        match plan.action {
            Action::Install => {
                return installing::install(
                    screen,
                    &server,
                    &inv,
                    &plan,
                    &cfg.cmdline,
                    cfg.key.as_ref(),
                )
            }
            Action::Inventory => return report_and_power_off(screen, &events, &inv),
            Action::Local => return start_installed(screen, &events, &inv),
            Action::Wait => {
                screen.line(&t("not-approved"));
                std::thread::sleep(Duration::from_secs(60));
                answer = hello(&|_| false)?;
            }
        }
    }
}

type Looked = (Inventory, Option<Installed>);

/// The rest of coldplug, the disks settled, then the inventory and the
/// installed system found on them (if any), on a thread: the disk drivers'
/// probes, the wait for late disks and the mount of an installed system
/// overlap the network bring-up instead of preceding it (issue 17).
/// Joined by whoever needs the disks first (the search for an offline
/// bundle, or the inventory).
struct Disks {
    running: RefCell<Option<std::thread::JoinHandle<Looked>>>,
    looked: OnceCell<Looked>,
}

impl Disks {
    fn start(screen: &Screen, coldplug: coldplug::Rest) -> Disks {
        let screen = screen.clone();
        let running = std::thread::spawn(move || {
            note_modules(&screen, &coldplug.wait());
            let watch = coldplug::DiskWatch::start(Path::new("/"));
            watch.settle(Duration::from_secs(8));
            let inv = inventory::collect(Path::new("/"));
            let installed =
                inventory::installed(Path::new("/dev"), &inv.disks, &|l| screen.note(l));
            (inv, installed)
        });
        Disks { running: RefCell::new(Some(running)), looked: OnceCell::new() }
    }

    fn looked(&self) -> &Looked {
        self.looked.get_or_init(|| {
            let running = self.running.borrow_mut().take();
            // The thread only reads sysfs and disks; should it panic, the
            // same look is taken here.
            running.and_then(|h| h.join().ok()).unwrap_or_else(|| {
                let inv = inventory::collect(Path::new("/"));
                let installed = inventory::installed(Path::new("/dev"), &inv.disks, &|_| {});
                (inv, installed)
            })
        })
    }
}

/// The look at this computer [`Disks`] took, with the network cards read
/// again (their carriers changed since), and the machine secret kept on
/// this PC.
fn look(screen: &Screen, disks: &Disks) -> (Inventory, Option<(String, &'static str)>) {
    let step = screen.step(&t("step-looking"));
    let (inv, installed) = disks.looked();
    let mut inv = inv.clone();
    inv.nics = inventory::nics(Path::new("/"));
    let kept =
        kept_secret(Path::new(installed::MACHINE_SECRET), installed.as_ref(), &inv.machine_id);
    inv.installed_id = installed.as_ref().map(|i| i.id.clone());
    step.done(&t("step-done"));
    (inv, kept)
}

/// No server in reach, an offline bundle on the boot medium: install from
/// it (see [`offline`]).
fn install_offline(
    screen: &Screen,
    disks: &Disks,
    cfg: &config::AgentConfig,
    bundle: &offline::Bundle,
    why: &Failure,
) -> Result<(), Failure> {
    screen.line("");
    screen.line(&t("offline-no-server"));
    let (inv, kept) = look(screen, disks);
    let plan = bundle.plan(cfg.key.as_ref(), &inv)?;
    screen.note("offline plan template signature verified with the baked server key");
    let lang = i18n::follow_locale(&plan.setup.locale);
    screen.note(&format!("speaking {lang} (plan locale {})", plan.setup.locale));
    let server = match &cfg.server {
        Server::Url(url) => Some(url),
        Server::Dhcp => None,
    };
    let o = offline::Offline {
        inv: &inv,
        cmdline: &cfg.cmdline,
        key: cfg.key.as_ref(),
        server,
        secret: kept.map(|(s, _)| s),
        why,
    };
    offline::install(screen, bundle, &plan, &o)
}

/// A clock before this (2026-01-01, before this agent was written) is
/// certainly wrong: the RTC battery of an old PC died.
const BUILD_FLOOR: u64 = 1_767_225_600;

/// The machine secret that proves this PC to the server, and where it was
/// found; the first of: the file `entry` (booted from the installed disk's
/// reinstall entry, whose second initramfs carries the disk's secret: see
/// target::grub), then a CD or stick left in an installed PC: the disk's
/// own secret (the server then answers `local` rather than refusing a known
/// id without proof), only when the disk is this PC's (a donated disk may
/// carry another machine's files). Anything not shaped like a secret is
/// passed over.
fn kept_secret(
    entry: &Path,
    installed: Option<&Installed>,
    machine_id: &str,
) -> Option<(String, &'static str)> {
    let from_entry = std::fs::read_to_string(entry)
        .ok()
        .map(|s| (s.trim().to_string(), "the installed system's reinstall entry"));
    let from_disk = installed
        .filter(|i| i.id == machine_id)
        .and_then(|i| i.secret.clone())
        .map(|s| (s, "the installed disk"));
    [from_entry, from_disk].into_iter().flatten().find(|(s, _)| valid_token_hex(s))
}

/// The network drivers, then the rest of coldplug on its own (see
/// [`coldplug::start`]); a PC without a PCI network driver waits for all
/// of it, since its NIC may sit behind a driver of the rest (USB).
fn find_hardware(screen: &Screen) -> Result<coldplug::Rest, Failure> {
    let step = screen.step(&t("step-hardware"));
    let opts = ProbeOpts { root: "/".into(), kver: crate::sys::kernel_release() };
    let (nics, rest) = coldplug::start(&opts).map_err(|e| Failure::new(&t("fail-kernel"), e))?;
    let (rest, count) = match nics.loaded.is_empty() {
        true => {
            let report = rest.wait();
            let count = report.loaded.len();
            note_modules(screen, &report);
            (coldplug::Rest::done(), count)
        }
        false => (rest, nics.loaded.len()),
    };
    step.done(&t_with("step-drivers", &[("count", count.into())]));
    note_modules(screen, &nics);
    for id in &nics.unsupported_nics {
        screen.warn(&t_with("no-nic-driver", &[("id", id.as_str().into())]));
    }
    Ok(rest)
}

fn note_modules(screen: &Screen, report: &coldplug::Report) {
    if !report.loaded.is_empty() {
        screen.note(&format!("modules loaded: {}", report.loaded.join(" ")));
    }
    for (m, e) in &report.failed {
        screen.note(&format!("module {m} failed: {e}"));
    }
}

/// Runs `f` until it works, waiting longer after each failure (2 s … 60 s),
/// at most `retries` extra times when set, or until `give_up(attempt)` says
/// something else can take over. With `timeline`, the first
/// attempt's end notes the boot timeline (boot to the first request: what
/// `make bench` splits, issue 17), whether the server answered or not.
fn with_retries<T>(
    screen: &Screen,
    retries: Option<u32>,
    timeline: bool,
    words: &str,
    give_up: &dyn Fn(u32) -> bool,
    mut f: impl FnMut(u32) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let mut attempt = 0u32;
    loop {
        let step = screen.step(words);
        let got = f(attempt);
        match got {
            Ok(v) => {
                step.done(&t("step-done"));
                if timeline && attempt == 0 {
                    screen.note_timeline();
                }
                return Ok(v);
            }
            Err(e) => {
                step.skipped(&t("step-not-yet"));
                if timeline && attempt == 0 {
                    screen.note_timeline();
                }
                screen.failure(&e.plain, &e.detail);
                if retries.is_some_and(|r| attempt >= r) || give_up(attempt) {
                    return Err(e);
                }
                let wait = (2u64 << attempt.min(5)).min(60);
                screen.line(&t_with("retry-in", &[("secs", wait.into())]));
                std::thread::sleep(Duration::from_secs(wait));
                attempt += 1;
            }
        }
    }
}

/// The server's base URL: the configured one, or from the DHCP lease
/// (option 66, else next-server) for `lazare.server=dhcp`, on lazare's port.
fn server_url(server: &Server, net: &net::NetState) -> Result<ServerUrl, Failure> {
    let dhcp = match server {
        Server::Url(url) => return Ok(url.clone()),
        Server::Dhcp => net.lease.as_ref(),
    };
    let host = match (dhcp.and_then(|l| l.tftp_server.as_deref()), dhcp.and_then(|l| l.next_server))
    {
        (Some(name), _) => name.parse().map_err(|e| {
            Failure::new(
                &t("fail-server"),
                format!("lazare.server=dhcp: the lease's option 66: {e}"),
            )
        })?,
        (None, Some(addr)) => config::Host::V4(addr),
        (None, None) => return Err(Failure::new(
            &t("fail-server"),
            "lazare.server=dhcp but the DHCP lease names no server (no next-server, no option 66)",
        )),
    };
    // `lazare serve` speaks https unless told otherwise: plain http is only
    // for a URL that says so.
    Ok(ServerUrl::new(config::Scheme::Https, host, Some(config::DEFAULT_SERVER_PORT)))
}

/// Best-effort progress events to the server (a lost event stops nothing).
struct Events<'a> {
    server: &'a http::Client,
    machine_id: &'a str,
    screen: &'a Screen,
}

impl Events<'_> {
    fn send(&self, phase: Phase, message: &str) {
        let ev = Event { phase, percent: None, message: message.to_string(), from_peers: None };
        if let Err(e) = self.server.event(self.machine_id, &ev) {
            self.screen.note(&format!("event not sent: {e}"));
        }
    }

    fn upload_log(&self) {
        if let Err(e) = self.server.log(self.machine_id, &self.screen.log_text()) {
            self.screen.note(&format!("log not uploaded: {e}"));
        }
    }
}

/// The server says this PC is installed and its disk still holds that
/// system (a CD or stick left in): write nothing and start it. A CD is
/// ejected and the PC restarts; a USB stick cannot be ejected, so the staff
/// are asked to pull it out (then the PC restarts), else it powers off.
fn start_installed(screen: &Screen, events: &Events, inv: &Inventory) -> Result<(), Failure> {
    screen.line("");
    screen.line(&t("installed-already"));
    // Installed stays the machine's status on the dashboard, with why it came by.
    events.send(
        Phase::Installed,
        "booted again from a CD or stick left in: starting its installed system",
    );
    let boot = inv.boot_device.as_deref();
    if boot.is_some_and(|d| d.starts_with("sr")) {
        screen.line(&t("installed-cd"));
        events.upload_log();
        std::thread::sleep(Duration::from_secs(3));
        let reporter = installing::ScreenReporter {
            screen,
            server: events.server,
            machine_id: events.machine_id,
        };
        crate::install::eject_cd(&reporter, Path::new("/dev"), boot);
        return Err(Failure::new(&t("fail-restart"), crate::sys::restart()));
    }
    screen.line(&t("installed-usb"));
    events.upload_log();
    if let Some(stick) = boot {
        let node = Path::new("/sys/block").join(stick);
        for _ in 0..STICK_WAIT_SECS {
            if !node.exists() {
                screen.note(&format!("{stick} was removed: restarting"));
                return Err(Failure::new(&t("fail-restart"), crate::sys::restart()));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    screen.line(&t("installed-usb-off"));
    std::thread::sleep(Duration::from_secs(5));
    Err(Failure::new(&t("fail-power-off-switch"), crate::sys::power_off()))
}

/// How long a left-in USB stick may take to be pulled out before the PC
/// powers off instead of restarting.
const STICK_WAIT_SECS: u32 = 60;

fn report_and_power_off(screen: &Screen, events: &Events, inv: &Inventory) -> Result<(), Failure> {
    screen.line("");
    for l in inventory::summary(inv) {
        screen.line(&l);
    }
    screen.line("");
    screen.line(&t("details-sent"));
    events.upload_log();
    std::thread::sleep(Duration::from_secs(2));
    Err(Failure::new(&t("fail-power-off-switch"), crate::sys::power_off()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn state(next: Option<Ipv4Addr>, tftp: Option<&str>) -> net::NetState {
        let lease = net::Lease {
            iface: "eth0".into(),
            address: Ipv4Addr::new(10, 0, 2, 15),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            router: None,
            dns: vec![],
            server_id: None,
            next_server: next,
            tftp_server: tftp.map(str::to_string),
            lease_secs: None,
        };
        net::NetState {
            iface: "eth0".into(),
            address: lease.address,
            netmask: lease.netmask,
            gateway: None,
            dns: vec![],
            lease: Some(lease),
        }
    }

    #[test]
    fn server_from_the_lease_prefers_option_66_then_next_server() {
        let url =
            |server: &Server, net: &net::NetState| server_url(server, net).map(|u| u.to_string());
        let dhcp = Server::Dhcp;
        let both = state(Some(Ipv4Addr::new(10, 0, 2, 2)), Some("install.lan"));
        assert_eq!(url(&dhcp, &both).unwrap(), "https://install.lan:8470");
        let next = state(Some(Ipv4Addr::new(10, 0, 2, 2)), None);
        assert_eq!(url(&dhcp, &next).unwrap(), "https://10.0.2.2:8470");
        let v4 = state(None, Some("10.0.2.3"));
        assert_eq!(server_url(&dhcp, &v4).unwrap().host(), &config::Host::V4([10, 0, 2, 3].into()));
        let none = state(None, None);
        assert!(url(&dhcp, &none).unwrap_err().detail.contains("names no server"));
        // Option 66 is free text: what is no host name is said, not requested.
        let junk = state(None, Some("a b/c"));
        assert!(url(&dhcp, &junk).unwrap_err().detail.contains("option 66"));
        let given: Server = "http://10.0.2.100:9000/".parse().unwrap();
        assert_eq!(url(&given, &none).unwrap(), "http://10.0.2.100:9000");
    }

    fn disk(id: &str, secret: &str) -> Installed {
        Installed { id: id.into(), secret: Some(secret.into()) }
    }

    #[test]
    fn the_kept_secret_comes_from_the_reinstall_entry_then_this_pcs_disk() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("machine-secret");
        let (me, other) = ("a".repeat(64), "b".repeat(64));
        let (s1, s2) = ("1".repeat(64), "2".repeat(64));
        let found = |i: Option<&Installed>| kept_secret(&entry, i, &me);
        assert_eq!(found(None), None);
        assert_eq!(found(Some(&disk(&me, &s2))), Some((s2.clone(), "the installed disk")));
        // A donated disk's secret is another machine's.
        assert_eq!(found(Some(&disk(&other, &s2))), None);
        std::fs::write(&entry, format!("{s1}\n")).unwrap();
        let from_entry = Some((s1.clone(), "the installed system's reinstall entry"));
        assert_eq!(found(Some(&disk(&me, &s2))), from_entry);
        assert_eq!(found(None), from_entry);
        // A damaged file is passed over for the disk's own.
        std::fs::write(&entry, "not a secret\n").unwrap();
        assert_eq!(found(Some(&disk(&me, &s2))), Some((s2, "the installed disk")));
    }
}
