//! Embeds the static install agent in the `lazare` CLI, so that
//! `cargo install --path .` gives a `lazare build` that needs no `--agent`.
//!
//! `LAZARE_EMBED_AGENT` decides where the agent comes from:
//! - a path: that file (the Makefile passes the agent `make agent` just built
//!   and stripped, so `make` never builds the agent twice);
//! - `none`: nothing is embedded (`lazare build` then looks for the agent on
//!   disk only);
//! - `build`, or unset in a release build (`cargo install`): a nested
//!   `cargo build` of `lazare-agent`, static, in its own target directory
//!   under OUT_DIR, then `strip --strip-all`;
//! - unset in a debug build (`cargo build`, `cargo test`, `cargo clippy`):
//!   nothing, because a nested release build of the agent takes minutes and
//!   a checkout finds its `make agent` output on disk anyway.
//!
//! The embedded file is OUT_DIR/lazare-agent and the cfg `lazare_embedded_agent`
//! says it exists.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const AGENT_TARGET: &str = "x86_64-unknown-linux-gnu";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(lazare_embedded_agent)");
    println!("cargo::rerun-if-env-changed=LAZARE_EMBED_AGENT");
    println!("cargo::rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let embedded = out_dir.join("lazare-agent");
    let choice = env::var_os("LAZARE_EMBED_AGENT").filter(|v| !v.is_empty());
    let release = env::var("PROFILE").as_deref() == Ok("release");
    let result = match choice {
        Some(v) if v == "none" => Ok(false),
        Some(v) if v == "build" => build_agent(&out_dir, &embedded).map(|()| true),
        Some(path) => copy_agent(Path::new(&path), &embedded),
        None if release => build_agent(&out_dir, &embedded).map(|()| true),
        None => Ok(false),
    };
    match result {
        Ok(true) => {
            if let Err(e) = check_static_elf(&embedded) {
                fail(&e);
            }
            println!("cargo::rustc-cfg=lazare_embedded_agent");
        }
        Ok(false) => {
            // A stale copy must not be mistaken for this build's agent.
            let _ = fs::remove_file(&embedded);
        }
        Err(e) => fail(&e),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: embedding lazare-agent: {msg}");
    std::process::exit(1);
}

fn copy_agent(from: &Path, to: &Path) -> Result<bool, String> {
    println!("cargo::rerun-if-changed={}", from.display());
    fs::copy(from, to).map_err(|e| {
        format!(
            "LAZARE_EMBED_AGENT={}: {e} (build it with `make agent`, or set \
             LAZARE_EMBED_AGENT=build or none)",
            from.display()
        )
    })?;
    Ok(true)
}

/// The nested `cargo build -p lazare-agent`, static, into its own target
/// directory (the outer build holds the lock on its own), then stripped.
fn build_agent(out_dir: &Path, to: &Path) -> Result<(), String> {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    for watched in ["agent", "proto", "kernel-cmdline", "diskplan", "Cargo.toml", "Cargo.lock"] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let target_dir = out_dir.join("agent-target");
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .args(["--profile", "agent"])
        .args(["-p", "lazare-agent", "--target", AGENT_TARGET])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The checkout's lock file: the versions the agent was tested with, and
    // the nested build never rewrites a file in the source tree.
    if root.join("Cargo.lock").is_file() {
        cmd.arg("--locked");
    }
    scrub_env(&mut cmd);
    cmd.env("RUSTFLAGS", "-C target-feature=+crt-static");
    println!(
        "cargo::warning=building the static lazare-agent to embed it (a few minutes; \
         set LAZARE_EMBED_AGENT=PATH to embed a built one, or none to skip)"
    );
    let status = cmd.status().map_err(|e| format!("running {cargo:?}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo build -p lazare-agent --target {AGENT_TARGET}` failed ({status})"
        ));
    }
    let built = target_dir.join(AGENT_TARGET).join("agent/lazare-agent");
    strip_into(&built, to)
}

/// What cargo sets for this build script that would leak into the nested
/// build: this package's flags, target dir and target, the wrapper, the
/// jobserver of the outer build. The rest (RUSTUP_TOOLCHAIN, CARGO_HOME,
/// proxies) is the user's and stays.
fn scrub_env(cmd: &mut Command) {
    const VARS: &[&str] = &[
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "TARGET",
        "HOST",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
        "OUT_DIR",
        "RUSTC_LINKER",
        "CARGO_PRIMARY_PACKAGE",
    ];
    for v in VARS {
        cmd.env_remove(v);
    }
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_CFG_") || k.starts_with("CARGO_FEATURE_") {
            cmd.env_remove(&*k);
        }
    }
    // A nested build of the root package would embed again, forever.
    cmd.env("LAZARE_EMBED_AGENT", "none");
}

/// `strip --strip-all` (cargo's `strip = true` leaves the static-pie's
/// symbol table in: 7.4 MB -> 6.0 MB); without `strip`, the unstripped copy.
fn strip_into(from: &Path, to: &Path) -> Result<(), String> {
    let stripped = Command::new("strip").arg("--strip-all").arg("-o").arg(to).arg(from).status();
    match stripped {
        Ok(s) if s.success() => Ok(()),
        other => {
            println!(
                "cargo::warning=strip failed or missing ({other:?}): embedding the unstripped \
                 agent (about 1.4 MB larger)"
            );
            fs::copy(from, to).map(|_| ()).map_err(|e| format!("copying {}: {e}", from.display()))
        }
    }
}

/// The agent runs as PID 1 with no libraries around it: an x86-64 ELF
/// executable without a PT_INTERP program header. Checked here so that a
/// wrong LAZARE_EMBED_AGENT fails the build, not the user's first ISO.
fn check_static_elf(path: &Path) -> Result<(), String> {
    let data = fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let name = path.display();
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return Err(format!("{name} is not a 64-bit little-endian ELF file"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u64_at = |o: usize| {
        data.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
    };
    let (phoff, phentsize, phnum) = (u64_at(32).unwrap_or(0), u16_at(54), u16_at(56));
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let p_type = data.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4")));
        match p_type {
            Some(3) => return Err(format!("{name} is dynamically linked (has PT_INTERP)")),
            Some(_) => {}
            None => return Err(format!("{name}: program headers truncated")),
        }
    }
    Ok(())
}
