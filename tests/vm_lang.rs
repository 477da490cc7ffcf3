//! The staff's language on a real boot: an ISO built with `lazare build
//! --lang fr` boots in qemu (TCG), its boot menu and the agent's sentences
//! come out in French on the serial console (the agent cannot reach a
//! server here, so its failure sentence and the choices show too), and a
//! screenshot of the PC's screen is taken as `lazare vm --screenshots` does.

mod common;

use lazare::vm::{BootFrom, Firmware, Machine, Vm, VmSpec};
use std::path::PathBuf;
use std::time::Duration;

#[test]
fn a_french_cd_speaks_french_on_the_screen_and_the_serial_console() {
    let tmp =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("vm_lang-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let iso = tmp.join("lazare-fr.iso");
    let port = common::free_port();
    let baked = common::vm_iso(
        &iso,
        port,
        // Two tries at the (absent) server, then the failure and the choices.
        &["--lang", "fr", "--cmdline", "lazare.retries=1 no_timer_check"],
    );
    assert!(baked.contains("lazare.lang=fr"), "{baked}");

    let mut spec = VmSpec::new(Some(iso.clone()), tmp.join("serial.log"));
    spec.boot_from = BootFrom::Cdrom;
    spec.firmware = Firmware::Bios;
    spec.machine = Machine::Pc;
    spec.memory_mb = 256;
    // Nothing listens on the port: the guest's connection is refused.
    spec.guestfwd_port = Some(port);
    let mut vm = Vm::start(&spec).unwrap();
    let t = Duration::from_secs(300);
    let wait = |vm: &mut Vm, text: &str| {
        vm.wait_for_text(text, t)
            .unwrap_or_else(|e| panic!("no {text:?} on the serial console: {e}\n{}", vm.output()))
    };
    // The ISOLINUX menu on the serial port.
    wait(&mut vm, "Installer (efface ce PC)");
    // The agent's banner and steps.
    wait(&mut vm, "Cet ordinateur est en cours d'installation. Vous pouvez le laisser :");
    wait(&mut vm, "il redémarre tout seul quand c'est fini.");
    // Whole lines: each step with its result.
    let hw = vm.wait_for("Recherche du matériel", t).unwrap();
    assert!(hw.contains("fait ("), "{hw}");
    let net = vm.wait_for("Connexion au réseau", t).unwrap();
    assert!(net.contains("fait"), "{net}");
    wait(&mut vm, "Contact du serveur d'installation http://10.0.2.100:");
    // Plural from Fluent: the first retry waits 2 seconds.
    wait(&mut vm, "Nouvel essai dans 2 secondes...");
    wait(&mut vm, "Cet ordinateur n'a pas pu joindre le serveur d'installation.");
    wait(&mut vm, "Détail technique / Technical detail: ");
    wait(&mut vm, "Tapez une lettre puis Entrée :  r = réessayer");
    let shot = tmp.join("screen-fr.png");
    common::screenshot(&vm, &shot);
    drop(vm);
    let all = std::fs::read_to_string(tmp.join("serial.log")).unwrap_or_default();
    println!("{hw}\n{net}\nscreenshot: {}", shot.display());
    assert!(!all.contains("This computer"), "English sentence on a French CD:\n{all}");
    let _ = std::fs::remove_dir_all(&tmp);
}
