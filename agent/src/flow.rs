//! The agent's work after PID 1 set up the basics: hardware, network,
//! server, then the action. Runs in a child of PID 1 (`lazare-agent agent`);
//! on failure it shows a plain sentence and the detail and exits with
//! [`crate::init::EXIT_FAILED`] so PID 1 offers retry/shell/reboot.

use std::path::Path;
use std::time::Duration;

use lazare_proto::{Action, Event, Inventory, Phase};

use crate::config::{self, BootAction, Server, ServerUrl};
use crate::failure::Failure;
use crate::hw::coldplug;
use crate::hw::modules::ProbeOpts;
use crate::screen::Screen;
use crate::{entropy, http, installing, inventory, net, verify};
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
        .map_err(|e| Failure::new("The CD's settings are wrong; the CD must be rebuilt.", e))?;
    screen.note(&format!("config: {}", serde_json::to_string(&cfg).unwrap_or_default()));
    find_hardware(screen)?;
    let net = with_retries(screen, cfg.retries, "Connecting to the network", |_| {
        net::bring_up(&cfg.network, 3).map_err(|e| Failure::new(NO_NETWORK, e))
    })?;
    screen.note(&format!("network: {}", serde_json::to_string(&net).unwrap_or_default()));
    if cfg.action == BootAction::Rescue {
        crate::init::run_shell(screen);
        return Ok(());
    }
    let base = server_url(&cfg.server, &net)?;
    let server = http::Client::new(http::agent(net.dns.clone()), base.clone());
    // Booted from an installed disk's reinstall entry: the disk's secret
    // came in a second initramfs and proves this PC (see target::grub).
    if let Ok(secret) = std::fs::read_to_string(installed::MACHINE_SECRET) {
        if server.set_secret(secret.trim()) {
            screen.note("machine secret from the installed system found");
        }
    }
    let step = screen.step("Looking at this computer");
    let inv = inventory::collect(Path::new("/"));
    step.done("done");
    let hello = || {
        with_retries(screen, cfg.retries, &format!("Contacting the install server {base}"), |_| {
            server.hello(&inv).map_err(|e| match e {
                // The server knows this PC's id but the CD holds no proof of it.
                http::HttpError::Status { status: 401 | 403, .. } => {
                    Failure::new(NOT_RECOGNISED, e)
                }
                e => Failure::new(NO_SERVER, e),
            })
        })
    };
    let mut answer = hello()?;
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
        events
            .send(Phase::Plan, &format!("plan verified: {} on {}", plan.image.name, plan.hostname));
        match plan.action {
            Action::Install => {
                return installing::install(screen, &server, &inv, &plan, &cfg.cmdline)
            }
            Action::Inventory => return report_and_power_off(screen, &events, &inv),
            Action::Wait => {
                screen.line("The install server has not accepted this computer yet: ask the volunteer to accept new PCs on the dashboard. Asking again in 60 seconds.");
                std::thread::sleep(Duration::from_secs(60));
                answer = hello()?;
            }
        }
    }
}

const NO_NETWORK: &str =
    "This computer could not connect to the network. Check that the network cable is plugged in.";
const NO_SERVER: &str = "This computer could not reach the install server.";
const NOT_RECOGNISED: &str = "The install server already knows a computer with this identity: ask the volunteer to let this PC enrol again on the dashboard.";

/// A clock before this (2026-01-01, before this agent was written) is
/// certainly wrong: the RTC battery of an old PC died.
const BUILD_FLOOR: u64 = 1_767_225_600;

fn find_hardware(screen: &Screen) -> Result<(), Failure> {
    let step = screen.step("Finding hardware");
    let opts = ProbeOpts { root: "/".into(), kver: crate::sys::kernel_release() };
    let report = coldplug::coldplug(&opts).map_err(|e| {
        Failure::new("This CD does not match its own kernel; the CD must be rebuilt.", e)
    })?;
    step.done(&format!("done ({} drivers)", report.loaded.len()));
    screen.note(&format!("modules loaded: {}", report.loaded.join(" ")));
    for (m, e) in &report.failed {
        screen.note(&format!("module {m} failed: {e}"));
    }
    for id in &report.unsupported_nics {
        screen.warn(&format!("This CD has no driver for the network card with PCI id {id}."));
    }
    Ok(())
}

/// Runs `f` until it works, waiting longer after each failure (2 s … 60 s),
/// at most `retries` extra times when set.
fn with_retries<T>(
    screen: &Screen,
    retries: Option<u32>,
    words: &str,
    mut f: impl FnMut(u32) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let mut attempt = 0u32;
    loop {
        let step = screen.step(words);
        match f(attempt) {
            Ok(v) => {
                step.done("done");
                return Ok(v);
            }
            Err(e) => {
                step.skipped("not yet");
                screen.failure(&e.plain, &e.detail);
                if retries.is_some_and(|r| attempt >= r) {
                    return Err(e);
                }
                let wait = (2u64 << attempt.min(5)).min(60);
                screen.line(&format!("Trying again in {wait} seconds..."));
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
            Failure::new(NO_SERVER, format!("lazare.server=dhcp: the lease's option 66: {e}"))
        })?,
        (None, Some(addr)) => config::Host::V4(addr),
        (None, None) => return Err(Failure::new(
            NO_SERVER,
            "lazare.server=dhcp but the DHCP lease names no server (no next-server, no option 66)",
        )),
    };
    Ok(ServerUrl::new(config::Scheme::Http, host, Some(config::DEFAULT_SERVER_PORT)))
}

/// Best-effort progress events to the server (a lost event stops nothing).
struct Events<'a> {
    server: &'a http::Client,
    machine_id: &'a str,
    screen: &'a Screen,
}

impl Events<'_> {
    fn send(&self, phase: Phase, message: &str) {
        let ev = Event { phase, percent: None, message: message.to_string() };
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

fn report_and_power_off(screen: &Screen, events: &Events, inv: &Inventory) -> Result<(), Failure> {
    screen.line("");
    for l in inventory::summary(inv) {
        screen.line(&l);
    }
    screen.line("");
    screen.line("The server has this computer's details. Powering off.");
    events.upload_log();
    std::thread::sleep(Duration::from_secs(2));
    Err(Failure::new(
        "Could not power off; you may switch the computer off.",
        crate::sys::power_off(),
    ))
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
        assert_eq!(url(&dhcp, &both).unwrap(), "http://install.lan:8470");
        let next = state(Some(Ipv4Addr::new(10, 0, 2, 2)), None);
        assert_eq!(url(&dhcp, &next).unwrap(), "http://10.0.2.2:8470");
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
}
