//! An install with no server in reach: `lazare build --offline test --data
//! DATA` (the real `test` image, the server's key and rules), a qemu PC with
//! no network card at all (`-nodefaults`, no NIC: `-nic none`) installs from
//! the CD alone, then boots its disk with a network card, and its
//! `lazare-next` hands the offline events and log to the real `lazare serve`,
//! which shows them for that machine.

#[path = "common/e2e.rs"]
mod e2e;

use e2e::{disk, run, tail, wait_install_end, DONE, GIB, MIN};
use lazare::vm::{Vm, VmSpec};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A 512 MB PC with one 8 GiB disk, the ISO as its CD, and `nic` ("none":
/// no network card).
fn pc(iso: Option<&Path>, disks: &[PathBuf], work: &Path, nic: &str, port: u16) -> VmSpec {
    let mut spec = VmSpec::new(iso.map(Path::to_path_buf), work.join("serial.log"));
    spec.memory_mb = 512;
    for (i, d) in disks.iter().enumerate() {
        spec.extra_args.push("-drive".into());
        spec.extra_args.push(format!("if=none,id=off{i},format=qcow2,file={}", d.display()));
        spec.extra_args.push("-device".into());
        spec.extra_args.push(format!("ide-hd,drive=off{i},bus=ide.0,unit={i}"));
    }
    spec.nic_model = nic.into();
    spec.guestfwd_port = (nic != "none").then_some(port);
    spec.max_runtime = 40 * MIN;
    spec
}

#[test]
fn a_pc_with_no_network_installs_from_the_stick_and_reports_later() {
    let (f, _one, work, data, server) = e2e::start("e2e_offline");
    let iso = work.path().join("offline.iso");
    let out = run(e2e::lazare()
        .args(["build", "--server", &format!("https://10.0.2.100:{}", f.port)])
        .args(["--offline", "test", "--data"])
        .arg(&data)
        .arg("--output")
        .arg(&iso));
    assert!(out.contains("offline bundle: image test"), "{out}");

    let disks = [disk(work.path(), "a.qcow2", 8 * GIB)];
    let mut vm = Vm::start(&pc(Some(&iso), &disks, work.path(), "none", f.port)).unwrap();
    // Three tries of the network, each failure on screen; then the staff's
    // sentence (English: the plan's French locale takes over after it).
    let offline = "The install server cannot be reached";
    vm.wait_for(offline, 10 * MIN).unwrap_or_else(|e| panic!("no offline install: {e}"));
    vm.mark();
    wait_install_end(&mut vm);
    let serial = vm.output();
    // Tried three times: two waits in between, then the stick takes over.
    let waits = serial.matches("Trying again in").count();
    assert_eq!(waits, 2, "{}", tail(&serial, 80));
    assert!(serial.contains(DONE));
    let none = server.get("/api/v1/machines");
    assert_eq!(none.as_array().map(Vec::len), Some(0), "nothing reached the server: {none:#}");

    // Its disk alone, now with a network card that reaches the server.
    let spec = pc(None, &disks, work.path(), "e1000", f.port);
    let mut vm = Vm::start(&spec).unwrap();
    vm.wait_for_text("login:", 15 * MIN)
        .unwrap_or_else(|e| panic!("the installed system did not reach a login prompt: {e}"));
    let boot = vm.output();
    assert!(boot.contains("e2e-"), "no host name from the template:\n{}", tail(&boot, 30));
    // lazare-next runs once the network is online: wait for its report.
    let deadline = Instant::now() + 5 * MIN;
    let detail = loop {
        let list = server.get("/api/v1/machines");
        if let Some(id) = list.as_array().and_then(|l| l.first()).and_then(|m| m["id"].as_str()) {
            let detail = server.get(&format!("/api/v1/machines/{id}"));
            if detail["status"] == "installed" {
                break detail;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the installed system never reported: {list:#}\n{}",
            tail(&vm.output(), 40)
        );
        std::thread::sleep(Duration::from_secs(5));
    };
    let events = detail["events"].to_string();
    assert!(events.contains("offline plan verified"), "{events}");
    assert!(events.contains("installed from the offline bundle"), "{events}");
    let logs = detail["logs"].to_string();
    assert!(logs.contains("offline plan template signature verified"), "{logs}");
    assert!(logs.contains("chunks of the image matched the signed index"), "{logs}");
    assert!(detail["hostname"].as_str().is_some_and(|h| h.starts_with("e2e-")), "{detail:#}");
    drop(vm);
}
