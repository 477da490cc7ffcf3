//! The whole remote reinstall, as an admin and a PC left on live it: the
//! real `test` image, the real `lazare serve` and CD. A blank PC is
//! installed from the CD, then runs from its disk alone; a user writes a
//! file in their home; the admin orders a reinstall through the API (the
//! dashboard's button makes the same call). Nobody touches the PC: its
//! `lazare-next.timer` asks the server for orders, here every
//! `orders_every_secs = 60` (a rule, 900 by default), picks the order up
//! and restarts into its disk's "Reinstall from server" entry (there is no
//! CD in the drive), whose agent installs again. The server counts a second
//! install, and the new system reaches its login with the user's file kept.
//!
//! qemu runs with `-no-reboot`: each restart of the PC ends qemu, and the
//! test powers the same disk on again, as the PC's reset would.
//! Two installs under TCG: `make e2e-more`.

#[path = "common/e2e.rs"]
mod e2e;

use e2e::{disk, installed_machine, log_in, run, say, wait_install_end, RULES};
use e2e::{GIB, MIN};
use lazare::vm::{DiskInterface, DiskSpec, Vm, VmSpec};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The rules' period between the installed system's asks for orders.
const EVERY_SECS: u32 = 60;
/// The shared account of the test rules, given a password so the test can
/// log in on the serial console as that user.
const USER: &str = "utilisateur";
const PASSWORD: &str = "motdepasse-e2e";
/// What the user writes in their home before the reinstall.
const LETTER: &str = "lettre a garder, ecrite avant la reinstallation";

/// The test rules with a short orders period and a password for `USER`.
fn rules(_default: &str) -> String {
    let hash = run(Command::new("openssl").args(["passwd", "-6", PASSWORD]));
    // Top-level keys go before the first table; the rules end with USER's
    // [[user]] table, so a key appended lands in it.
    assert!(RULES.trim_end().ends_with("admin = false"), "{RULES}");
    format!("orders_every_secs = {EVERY_SECS}\n{RULES}password_hash = \"{}\"\n", hash.trim())
}

/// A 1 GB i440FX PC with SeaBIOS, an e1000 and one IDE disk; the CD only
/// for the first install.
fn pc(iso: Option<&Path>, disk: &Path, work: &Path, port: u16, log: &str) -> VmSpec {
    let mut spec = VmSpec::new(iso.map(Path::to_path_buf), work.join(log));
    spec.memory_mb = 1024;
    spec.disks = vec![DiskSpec::new(disk, DiskInterface::Ide)];
    spec.guestfwd_port = Some(port);
    spec.max_runtime = 40 * MIN;
    spec
}

/// Powers the installed disk on (no CD) up to the serial login prompt of
/// host `e2e-001`.
fn boot(disk: &Path, work: &Path, port: u16, log: &str) -> Vm {
    let mut vm = Vm::start(&pc(None, disk, work, port, log)).expect("starting qemu");
    vm.wait_for_text("e2e-001 login:", 15 * MIN)
        .unwrap_or_else(|e| panic!("the installed system did not reach its login: {e}"));
    vm
}

#[test]
fn an_ordered_reinstall_reaches_a_running_pc_and_keeps_its_home() {
    let began = Instant::now();
    let f = e2e::fixture_with("e2e-remote", &["test"], rules);
    let (f, _one, work, _data, server) = e2e::start_in(f);
    let w = work.path();
    let disk = disk(w, "a.qcow2", 8 * GIB);

    // 1. A blank PC installed from the CD.
    let mut vm = Vm::start(&pc(Some(&f.iso), &disk, w, f.port, "install.log")).unwrap();
    wait_install_end(&mut vm);
    drop(vm);
    let first = installed_machine(&server);
    let id = first["id"].as_str().unwrap().to_string();
    let installed_at = began.elapsed().as_secs();

    // 2. It runs from its disk alone. Its boot's own ask (lazare-next.service,
    // on the console) found no order: from here only the timer can bring one.
    let mut vm = boot(&disk, w, f.port, "running.log");
    vm.wait_for("lazare-next: nothing to do", 10 * MIN)
        .unwrap_or_else(|e| panic!("the boot's ask for orders did not end: {e}"));
    // A user writes a file in their home.
    log_in(&mut vm, USER, PASSWORD);
    let write = format!("echo '{LETTER}' > ~/lettre.txt && sync && echo WRIT''TEN");
    say(&mut vm, &write, "WRITTEN", MIN);

    // 3. The admin orders the reinstall.
    vm.mark();
    let ordered = Instant::now();
    assert_eq!(server.post(&format!("/api/v1/machines/{id}/reinstall")), 204);
    assert_eq!(server.get(&format!("/api/v1/machines/{id}"))["reinstall_pending"], true);

    // 4. The running system picks it up from its timer, within two periods
    // (at most a period, its random delay and systemd's rounding of the
    // wake-up, 2/15 of it each, and the ask itself), and restarts.
    let every = Duration::from_secs(EVERY_SECS.into());
    vm.wait_for("lazare-next: the install server asks for a reinstall", 2 * every)
        .unwrap_or_else(|e| panic!("the running PC did not pick the order up: {e}"));
    let picked_up = ordered.elapsed().as_secs();
    let st = vm.wait_exit(3 * MIN).expect("the PC did not restart after the order");
    assert!(st.success(), "qemu: {st}");
    // Each ask of this run, with the kernel's time stamp: the boot's, then
    // the timer's, a period apart.
    let asks: Vec<String> =
        vm.output().lines().filter(|l| l.contains("lazare-next: ")).map(str::to_owned).collect();
    drop(vm);

    // 5. Powered on again: its disk's reinstall entry (no CD), whose agent
    // installs again.
    let mut vm = Vm::start(&pc(None, &disk, w, f.port, "reinstall.log")).unwrap();
    vm.wait_for("Loading the lazare installer", 5 * MIN)
        .unwrap_or_else(|e| panic!("GRUB did not boot the reinstall entry: {e}"));
    wait_install_end(&mut vm);
    drop(vm);
    let reinstalled_at = began.elapsed().as_secs();

    // 6. The server saw a second install, and the order is done.
    let second = installed_machine(&server);
    assert_eq!(second["id"], id.as_str());
    let count = |m: &serde_json::Value| m["install"].as_u64().unwrap();
    assert_eq!(count(&second), count(&first) + 1, "{second:#}");
    assert_eq!(second["reinstall_pending"], false, "{second:#}");
    let logs = second["logs"].as_array().unwrap();
    assert!(logs.len() >= 2, "one install log per install: {logs:#?}");

    // The new system reaches its login, with the user's file kept.
    let mut vm = boot(&disk, w, f.port, "after.log");
    log_in(&mut vm, USER, PASSWORD);
    // The pattern cannot match the typed command's echo (its `$(`).
    let kept = say(&mut vm, "echo \"KEPT:$(cat ~/lettre.txt):END\"", r"KEPT:[^$]*:END", MIN);
    assert_eq!(kept, format!("KEPT:{LETTER}:END"), "the user's file did not survive");
    drop(vm);
    eprintln!(
        "e2e_remote: first install done at {installed_at} s; order picked up after \
         {picked_up} s (orders every {EVERY_SECS} s); reinstall done at {reinstalled_at} s; \
         whole test {} s; the running PC's asks:\n{}",
        began.elapsed().as_secs(),
        asks.join("\n")
    );
}
