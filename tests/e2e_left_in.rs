//! No accidental reinstall: a PC is installed from the CD, then boots again
//! with the CD left in (the CD boots first). The server shows it installed
//! and its disk holds its system, so the agent writes nothing: it says so in
//! the staff's words (the plan's locale, French here), ejects the CD and
//! restarts. Then the same PC boots from the same image on a USB stick left
//! in (first in the boot order): a stick cannot be ejected, so the staff are
//! asked to pull it out, and as nobody does, the PC switches itself off. The
//! disk image is byte-for-byte the same afterwards, and the server still
//! counts one install. Needs the `test` image: `make e2e-more`.

#[path = "common/e2e.rs"]
mod e2e;

use e2e::{disk, installed_machine, tail, wait_install_end};
use e2e::{GIB, MIN};
use lazare::vm::{BootFrom, DiskInterface, DiskSpec, Vm, VmSpec};
use std::path::Path;

fn pc(iso: &Path, disk: &Path, work: &Path, port: u16, log: &str) -> VmSpec {
    let mut spec = VmSpec::new(Some(iso.to_path_buf()), work.join(log));
    spec.memory_mb = 256;
    let fmt = DiskSpec::new(disk, DiskInterface::Ide).format;
    spec.extra_args.push("-drive".into());
    spec.extra_args.push(format!("if=none,id=e2e0,format={fmt},file={}", disk.display()));
    spec.extra_args.push("-device".into());
    spec.extra_args.push("ide-hd,drive=e2e0,bus=ide.0,unit=0".into());
    spec.guestfwd_port = Some(port);
    spec.max_runtime = 40 * MIN;
    spec
}

/// The whole disk file's sha256.
fn sha256(path: &Path) -> String {
    e2e::sha256_of(path, 0, std::fs::metadata(path).unwrap().len())
}

#[test]
fn an_installed_pc_booted_with_the_cd_left_in_is_not_reinstalled() {
    let (f, _one, work, _data, server) = e2e::start("e2e-left-in");
    let a = disk(work.path(), "a.qcow2", 8 * GIB);
    let mut vm = Vm::start(&pc(&f.iso, &a, work.path(), f.port, "install.log")).unwrap();
    wait_install_end(&mut vm);
    drop(vm);
    let first = installed_machine(&server);
    let before = sha256(&a);

    // The CD is still in the drive, first in the boot order.
    let mut vm = Vm::start(&pc(&f.iso, &a, work.path(), f.port, "again.log")).unwrap();
    let said = vm.wait_for("Cet ordinateur est déjà installé", 20 * MIN).unwrap_or_else(|e| {
        panic!("no 'already installed' sentence: {e}\n{}", tail(&vm.output(), 40))
    });
    vm.wait_for_text("Le CD sort et l'ordinateur redémarre", MIN).unwrap();
    let st = vm.wait_exit(2 * MIN).expect("the PC did not restart");
    assert!(st.success(), "qemu: {st}");
    let again = vm.output();
    drop(vm);
    println!("{said}");
    for written in ["writing partition tables", "making filesystems", "downloading"] {
        assert!(!again.contains(written), "the second boot wrote: {written}\n{}", tail(&again, 40));
    }
    assert_eq!(sha256(&a), before, "the disk was rewritten");

    let list = server.get("/api/v1/machines");
    let m = &list[0];
    assert_eq!(m["status"], "installed", "{list:#}");
    assert_eq!(m["install"], first["install"], "a second install was counted: {list:#}");
    let id = m["id"].as_str().unwrap();
    let events = server.get(&format!("/api/v1/machines/{id}"))["events"].to_string();
    assert!(events.contains("left in"), "the dashboard does not say why it came by: {events}");

    // The same CD written to a USB stick, left in and booted first.
    let mut stick = pc(&f.iso, &a, work.path(), f.port, "stick.log");
    stick.boot_from = BootFrom::Usb;
    let mut vm = Vm::start(&stick).unwrap();
    vm.wait_for("Cet ordinateur est déjà installé", 20 * MIN).unwrap_or_else(|e| {
        panic!("no 'already installed' sentence from the stick: {e}\n{}", tail(&vm.output(), 40))
    });
    vm.wait_for_text("Retirez la clé USB", MIN).unwrap();
    // Nobody pulls it out: after the agent's wait, it switches the PC off.
    vm.wait_for_text("La clé USB est toujours là", 3 * MIN).unwrap();
    let st = vm.wait_exit(2 * MIN).expect("the PC did not switch off");
    assert!(st.success(), "qemu: {st}");
    let from_stick = vm.output();
    drop(vm);
    for written in ["writing partition tables", "making filesystems", "downloading"] {
        assert!(
            !from_stick.contains(written),
            "the boot from the stick wrote: {written}\n{}",
            tail(&from_stick, 40)
        );
    }
    assert!(!from_stick.contains("Le CD sort"), "a stick was treated as a CD");
    assert_eq!(sha256(&a), before, "the disk was rewritten from the stick");
    let list = server.get("/api/v1/machines");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}");
    assert_eq!(list[0]["status"], "installed", "{list:#}");
    assert_eq!(list[0]["install"], first["install"], "a second install was counted: {list:#}");
}
