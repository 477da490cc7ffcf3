//! The desktops the staff get, on the PCs they are meant for: the real
//! `light` and `standard` images (`lazare image build`, cached in
//! ~/.cache/lazare/images), installed by the CD from a `lazare serve` that
//! runs the default rules a first start writes (only the countdown set to
//! 0), then booted from the disk alone:
//! - `light` on a 256 MB PC with a Cirrus card (`-vga cirrus`);
//! - `standard` on a 1 GB PC with plain VGA (`-vga std`).
//!
//! The default rules give `utilisateur` autologin: the test checks that its
//! desktop session runs (its session process, as that user), that the
//! programs drawing its desktop run (XFCE's panel and background: its
//! session manager alone leaves a black screen), and takes a screenshot. Then it ends the session, as a log-out does: the login
//! screen must list `utilisateur` and let it in with no password (one Enter
//! on the list), and the session runs again. Last, autologin is turned off
//! as the rules' `autologin = false` does, and the next power-on must stop
//! at the login screen: the time to it is the figure of a site with
//! personal accounts.
//!
//! Checks go through the serial console, logged in as a second account the
//! test adds to the rules (`volontaire`, with a password and sudo). The
//! login screen lists accounts by name, so "Utilisateur" comes first and is
//! the one selected, as on a site's PC where it is the only account.
//!
//! Heavy (two full installs under TCG, 21 min measured on 2 shared cores):
//! `make e2e-desktop`.
//! LAZARE_DESKTOP_SCREENS=DIR keeps the screenshots (the README's come from
//! there); the timings are printed as `desktop PROFILE: ...` lines, which
//! `make bench` (bench/desktop.sh) shows.

#[path = "common/e2e.rs"]
mod e2e;

use e2e::{disk, installed_machine, log_in, run, say, wait_install_end, Fixture, GIB, MIN};
use lazare::vm::{Vm, VmSpec};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The volunteer's account the test logs in with on the serial console.
const ADMIN: &str = "volontaire";
const ADMIN_PASSWORD: &str = "motdepasse-e2e";

/// The default rules of a first `lazare serve` start, with no countdown,
/// and the test's admin account (its hash from `openssl passwd -6`, as the
/// rules file's comment tells a volunteer to make one).
fn rules(default: &str) -> String {
    assert!(default.contains("\ncountdown_secs = 10\n"), "{default}");
    let hash = run(Command::new("openssl").args(["passwd", "-6", ADMIN_PASSWORD]));
    format!(
        "{}\n[[user]]\nname = \"{ADMIN}\"\nfull_name = \"Volontaire\"\nadmin = true\n\
         password_hash = \"{}\"\n",
        default.replace("\ncountdown_secs = 10\n", "\ncountdown_secs = 0\n"),
        hash.trim()
    )
}

/// The server holds the one image the default rules pick for this PC.
fn fixture(profile: &str) -> &'static Fixture {
    e2e::fixture_with(&format!("e2e-desktop-{profile}"), &[profile], rules)
}

/// One desktop PC: RAM, graphics card, and the process that shows its
/// session runs (LightDM's default session starts the desktop's session
/// manager through Xsession).
struct Desktop {
    profile: &'static str,
    memory_mb: u32,
    vga: &'static str,
    session_process: &'static str,
    /// The programs that draw the desktop (panel, background): the session
    /// manager may run on a black screen while they fail or are still
    /// starting.
    drawn_by: &'static [&'static str],
}

/// An i440FX PC with SeaBIOS, an e1000, the card `d.vga` and one IDE disk.
fn pc(d: &Desktop, iso: Option<&Path>, disk: &Path, work: &Path, port: u16) -> VmSpec {
    let mut spec = VmSpec::new(iso.map(Path::to_path_buf), work.join("serial.log"));
    spec.memory_mb = d.memory_mb;
    spec.disks = vec![lazare::vm::DiskSpec::new(disk, lazare::vm::DiskInterface::Ide)];
    // The last -vga on qemu's command line wins over the harness's `std`.
    spec.extra_args = vec!["-vga".into(), d.vga.into()];
    spec.guestfwd_port = Some(port);
    spec.max_runtime = 60 * MIN;
    spec
}

/// Waits until `user` runs `process`; returns the seconds since that
/// process started (ps's etimes), read on the serial shell.
fn wait_session(vm: &mut Vm, user: &str, process: &str, timeout: Duration) -> u64 {
    let cmd = format!(
        "until pid=$(pgrep -n -u {user} -x {process}); do sleep 1; done; \
         echo \"SESSION $(ps -o etimes= -p $pid | tr -d ' ') UP\""
    );
    let line = say(vm, &cmd, r"SESSION \d+ UP", timeout);
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits until `user` runs every one of `programs`; panics with the user's
/// processes if one is still missing after `timeout`.
fn wait_drawn(vm: &mut Vm, user: &str, programs: &[&str], timeout: Duration) {
    let cmd = format!(
        "for i in $(seq {}); do m=; for p in {}; do pgrep -u {user} -x $p >/dev/null || \
         m=\"$m $p\"; done; [ -z \"$m\" ] && break; sleep 1; done; echo PRO''CS; \
         ps -u {user} -o etimes=,comm=; echo DRA''WN:\"${{m:-none}}\"",
        timeout.as_secs(),
        programs.join(" ")
    );
    let out = say(vm, &cmd, r"(?s)PROCS\n.*DRAWN:[^\n]*\n", timeout + MIN);
    assert!(out.contains("DRAWN:none"), "the desktop of {user} is not drawn:\n{out}");
}

/// Starts the installed PC (no CD) and logs in as [`ADMIN`] on its serial
/// console; returns the power-on instant with the VM.
fn power_on(d: &Desktop, disk: &Path, work: &Path, port: u16) -> (Instant, Vm) {
    let on = Instant::now();
    let mut vm = Vm::start(&pc(d, None, disk, work, port)).expect("starting qemu");
    vm.wait_for_text("login:", 20 * MIN)
        .unwrap_or_else(|e| panic!("no login prompt on the serial console: {e}"));
    log_in(&mut vm, ADMIN, ADMIN_PASSWORD);
    (on, vm)
}

fn screenshot(vm: &Vm, work: &Path, name: &str) -> PathBuf {
    let dir = std::env::var_os("LAZARE_DESKTOP_SCREENS")
        .map(PathBuf::from)
        .unwrap_or_else(|| work.to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    vm.screenshot(&path).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn install_log_in_and_out(d: &Desktop) {
    let (f, _one, work, _data, server) = e2e::start_in(fixture(d.profile));
    let w = work.path();
    let disk = disk(w, "a.qcow2", 16 * GIB);
    let installing = Instant::now();
    let mut vm = Vm::start(&pc(d, Some(&f.iso), &disk, w, f.port)).expect("starting qemu");
    wait_install_end(&mut vm);
    drop(vm);
    let install_secs = installing.elapsed().as_secs();
    installed_machine(&server);

    // Power-on of the installed PC.
    let (on, mut vm) = power_on(d, &disk, w, f.port);
    let age = wait_session(&mut vm, "utilisateur", d.session_process, 20 * MIN);
    let session_at = on.elapsed().as_secs().saturating_sub(age);
    // X started for the session (autologin): when the screen left the console.
    let x =
        say(&mut vm, "echo \"XORG $(ps -o etimes= -C Xorg | tr -d ' ') UP\"", r"XORG \d+ UP", MIN);
    let x_age: u64 = x.split_whitespace().nth(1).unwrap().parse().unwrap();
    let x_at = on.elapsed().as_secs().saturating_sub(x_age);
    wait_drawn(&mut vm, "utilisateur", d.drawn_by, 10 * MIN);
    let drawn_at = on.elapsed().as_secs();
    // The desktop draws itself slowly under TCG: let it settle.
    std::thread::sleep(Duration::from_secs(45));
    let desktop = screenshot(&vm, w, &format!("{}-desktop", d.profile));

    // Ending the session (as a log-out does) shows the login screen, which
    // lists the shared account and opens it with no password.
    say(
        &mut vm,
        &format!(
            "echo {ADMIN_PASSWORD} | sudo -S loginctl terminate-user utilisateur; echo END''ED"
        ),
        "ENDED",
        2 * MIN,
    );
    wait_session(&mut vm, "lightdm", "lightdm-gtk-gre", 10 * MIN);
    std::thread::sleep(Duration::from_secs(30));
    let greeter = screenshot(&vm, w, &format!("{}-greeter", d.profile));
    vm.monitor("sendkey ret").unwrap();
    // A new session: started after the greeter's Enter (no password typed).
    let again = wait_session(&mut vm, "utilisateur", d.session_process, 10 * MIN);
    assert!(again < 120, "the session found ({again} s old) is not the one after the Enter");

    // A site without autologin (personal accounts, `autologin = false`):
    // the agent writes the same LightDM drop-in without the autologin lines,
    // and a power-on stops at the login screen.
    let off = format!(
        "echo {ADMIN_PASSWORD} | sudo -S sed -i /^autologin-user/d {}; sudo poweroff\n",
        lazare_agent::target::LIGHTDM_CONF
    );
    vm.send(&off).unwrap();
    vm.wait_exit(5 * MIN).expect("the PC did not power off");
    drop(vm);
    let (on, mut vm) = power_on(d, &disk, w, f.port);
    let age = wait_session(&mut vm, "lightdm", "lightdm-gtk-gre", 20 * MIN);
    let login_screen_at = on.elapsed().as_secs().saturating_sub(age);
    // pgrep -c prints 0 when nothing matches. No `^` in the pattern: bash
    // ends its bracketed-paste mode (an escape sequence) before the output.
    let sessions = say(
        &mut vm,
        &format!("echo \"SESSIONS $(pgrep -c -u utilisateur -x {})\"", d.session_process),
        r"SESSIONS \d+",
        MIN,
    );
    assert_eq!(sessions, "SESSIONS 0", "a session opened with autologin off");
    eprintln!(
        "desktop {}: install {install_secs} s; power-on to X {x_at} s, to the {} session {session_at} s \
         ({} MB, -vga {}), desktop drawn {drawn_at} s; without autologin, power-on to the \
         login screen {login_screen_at} s; screenshots {} {}",
        d.profile,
        d.session_process,
        d.memory_mb,
        d.vga,
        desktop.display(),
        greeter.display()
    );
}

#[test]
fn light_on_256_mb_with_a_cirrus_card() {
    install_log_in_and_out(&Desktop {
        profile: "light",
        memory_mb: 256,
        vga: "cirrus",
        session_process: "icewm",
        // IceWM draws its taskbar itself.
        drawn_by: &["icewm"],
    });
}

#[test]
fn standard_on_1_gb_with_plain_vga() {
    install_log_in_and_out(&Desktop {
        profile: "standard",
        memory_mb: 1024,
        vga: "std",
        session_process: "xfce4-session",
        drawn_by: &["xfce4-panel", "xfdesktop"],
    });
}
