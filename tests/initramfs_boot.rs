//! Boots the installed kernel with a default initramfs in qemu (TCG, 256 MB,
//! an e1000 NIC): the kernel must unpack our zstd frame (made by two
//! workers), run `/init` = the real static agent
//! with `/dev/console`, the agent must read the baked `/etc/lazare/cmdline`,
//! load the carried modules and get a DHCP lease through the e1000 NIC.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lazare::initramfs::{write_initramfs, ExtraFile, InitramfsSpec};

/// The static agent built by `make agent` (or LAZARE_AGENT).
fn agent() -> PathBuf {
    let path = std::env::var_os("LAZARE_AGENT").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/x86_64-unknown-linux-gnu/agent/lazare-agent")
    });
    assert!(path.is_file(), "{} missing: run `make agent` or set LAZARE_AGENT", path.display());
    path
}

fn release() -> String {
    let mut releases: Vec<String> = std::fs::read_dir("/lib/modules")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    releases.sort();
    releases.remove(0)
}

#[test]
fn kernel_unpacks_it_and_the_agent_runs_with_its_modules() {
    let tmp = tempfile::tempdir().unwrap();
    let release = release();
    let mut spec = InitramfsSpec::new(agent(), format!("/lib/modules/{release}"), 1_700_000_000);
    spec.files.push(ExtraFile {
        path: "/etc/lazare/cmdline".into(),
        data: b"lazare.server=http://10.0.2.100:8080/ lazare.action=inventory\n".to_vec(),
        mode: 0o644,
    });
    let image = tmp.path().join("initrd.img");
    write_initramfs(&spec, std::fs::File::create(&image).unwrap(), &mut |_| {}).unwrap();

    // The guest may try the server: it reaches this listener, nothing else.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let serial = tmp.path().join("serial.log");
    let mut qemu = Command::new("timeout")
        .args(["-k", "5", "240", "qemu-system-x86_64", "-machine", "pc", "-m", "256"])
        .args(["-display", "none", "-no-reboot", "-serial"])
        .arg(format!("file:{}", serial.display()))
        .arg("-kernel")
        .arg(format!("/boot/vmlinuz-{release}"))
        .arg("-initrd")
        .arg(&image)
        .args(["-append", "console=ttyS0 panic=-1"])
        .arg("-netdev")
        .arg(format!(
            "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8080-cmd:socat - TCP:127.0.0.1:{port}"
        ))
        .args(["-device", "e1000,netdev=n0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Everything before the agent contacts the server is final by then.
    let wanted = "Contacting the install server";
    let start = Instant::now();
    let mut log = String::new();
    while start.elapsed() < Duration::from_secs(200) {
        log = String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
        if log.contains(wanted) || qemu.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let boot_time = start.elapsed();
    // Stop our qemu (by its PID, through timeout's process) and reap it.
    let _ = Command::new("kill").arg(qemu.id().to_string()).status();
    let _ = qemu.wait();
    let mut stderr = String::new();
    qemu.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let from_init = log.find("Run /init").map_or(&log[..], |i| &log[i..]);
    let shown: String = from_init.chars().take(1500).collect();
    println!("serial console after {boot_time:.1?}:\n{shown}\nqemu stderr: {stderr}");

    assert!(!log.contains("Initramfs unpacking failed"), "kernel rejected the image");
    assert!(!log.contains("Kernel panic"), "kernel panicked");
    assert!(
        log.contains("lazare-agent ")
            // The URL's type drops the trailing `/` once, when parsed.
            && log.contains("server=http://10.0.2.100:8080 ")
            && log.contains("action=inventory"),
        "no agent banner with the baked config"
    );
    // The agent's progress lines end in "done" once a step succeeded: the
    // carried modules loaded (incl. e1000 for the NIC, or no lease).
    let step = |name: &str| {
        let at = log.find(name).unwrap_or_else(|| panic!("no {name:?} step"));
        log[at..].lines().next().unwrap().to_string()
    };
    assert!(step("Finding hardware").contains("done ("), "{}", step("Finding hardware"));
    let network = step("Connecting to the network");
    assert!(network.contains("done"), "no DHCP lease through the e1000 module: {network}");
}
