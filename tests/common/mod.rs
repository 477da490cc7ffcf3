//! Helpers shared by the integration tests: find the static agent, run the
//! `lazare` binary, build ISOs into temp dirs, and check what a booted
//! kernel received. The qemu harness itself is `lazare::vm`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The static lazare-agent: `$LAZARE_AGENT` (set by the Makefile), else the
/// workspace's `make agent` output. Panics with the command that builds it.
pub fn agent_path() -> PathBuf {
    let p = std::env::var_os("LAZARE_AGENT").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/x86_64-unknown-linux-gnu/agent/lazare-agent")
    });
    assert!(
        p.is_file(),
        "static agent {} missing: run `make agent` (or set LAZARE_AGENT)",
        p.display()
    );
    p
}

/// Run `lazare ARGS`, capturing its output.
pub fn lazare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lazare")).args(args).output().expect("running lazare")
}

/// `lazare build` with a fixed SOURCE_DATE_EPOCH; panics with stderr on failure.
pub fn build_iso(out: &Path, args: &[&str]) -> Output {
    let agent = agent_path();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lazare"));
    cmd.env("SOURCE_DATE_EPOCH", "1700000000")
        .arg("build")
        .arg("--agent")
        .arg(&agent)
        .arg("--output")
        .arg(out)
        .args(args);
    let o = cmd.output().expect("running lazare build");
    assert!(o.status.success(), "lazare build failed: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// The command line the kernel printed (`Command line: ...` on the serial
/// console), minus what the boot loader itself adds: GRUB and ISOLINUX put
/// `BOOT_IMAGE=<kernel>` in front, ISOLINUX may add `initrd=<file>`.
pub fn strip_loader_params(received: &str) -> String {
    let mut s = received.trim();
    if let Some(rest) = s.strip_prefix("BOOT_IMAGE=") {
        s = rest.split_once(' ').map_or("", |(_, r)| r);
    }
    let mut words: Vec<&str> = s.split(' ').collect();
    if words.last().is_some_and(|w| w.starts_with("initrd=")) {
        words.pop();
    }
    words.join(" ")
}

/// A free TCP port on 127.0.0.1 (for a test server the guest reaches through guestfwd).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An ISO for a VM test whose install server is guest 10.0.2.100:`port`
/// (the harness's guestfwd to 127.0.0.1): DHCP, a one-second menu, no key
/// to pin (no server that signs answers these tests), and `args`. Returns
/// the baked command line, as `lazare inspect` reads it from the ISO.
pub fn vm_iso(iso: &Path, port: u16, args: &[&str]) -> String {
    let server = format!("http://10.0.2.100:{port}");
    let common = ["--server", &server, "--ip", "dhcp", "--timeout", "1", "--insecure"];
    build_iso(iso, &[&common[..], args].concat());
    let out = lazare(&["inspect", "--json", iso.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let baked = v["baked_cmdline"].as_str().expect("baked cmdline in the initramfs").to_string();
    assert!(baked.contains(&format!("lazare.server={server}")), "{baked}");
    baked
}

/// Takes a screenshot of the VM's display into `png` (what the staff see,
/// as `lazare vm --screenshots` does) and checks it is a real screen.
pub fn screenshot(vm: &lazare::vm::Vm, png: &Path) {
    vm.screenshot(png).unwrap();
    let size = lazare::vm::png_size(&std::fs::read(png).unwrap());
    assert!(size.is_some_and(|(w, h)| w >= 640 && h >= 400), "screen {size:?}");
}
