//! The agent embedded in `lazare` by build.rs: a copy of the binary alone in
//! an empty directory, run from another empty directory with no
//! LAZARE_AGENT, builds an ISO whose /init is the embedded agent — what
//! `cargo install --path .` and the Debian package rely on.

use std::path::Path;
use std::process::{Command, Output};

/// Whether build.rs was asked to embed an agent in this build:
/// LAZARE_EMBED_AGENT=PATH or `build` (the Makefile sets a path), or unset in
/// a release build; not with `none` or in a plain debug build.
fn embedding_expected() -> bool {
    match option_env!("LAZARE_EMBED_AGENT") {
        Some("none") => false,
        Some(v) if !v.is_empty() => true,
        _ => !cfg!(debug_assertions),
    }
}

fn run(exe: &Path, cwd: &Path, agent_env: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.current_dir(cwd).env("SOURCE_DATE_EPOCH", "1700000000").args(args);
    match agent_env {
        Some(v) => cmd.env("LAZARE_AGENT", v),
        None => cmd.env_remove("LAZARE_AGENT"),
    };
    cmd.output().expect("running the copied lazare")
}

#[test]
fn lazare_alone_builds_with_its_embedded_agent() {
    let expected = embedding_expected();
    assert_eq!(
        cfg!(lazare_embedded_agent),
        expected,
        "whether build.rs embedded an agent does not match LAZARE_EMBED_AGENT={:?} and the profile",
        option_env!("LAZARE_EMBED_AGENT")
    );
    if !expected {
        eprintln!("no agent embedded (LAZARE_EMBED_AGENT=none or a debug build): nothing to run");
        return;
    }
    let bin_dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let exe = bin_dir.path().join("lazare");
    std::fs::copy(env!("CARGO_BIN_EXE_lazare"), &exe).unwrap();
    let iso = work.path().join("x.iso");
    let iso_s = iso.to_str().unwrap();

    let o = run(
        &exe,
        work.path(),
        None,
        &["build", "--server", "http://10.0.2.100:8470", "--insecure", "-o", iso_s],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "build failed: {}{stdout}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("agent: embedded in lazare "), "progress does not say so: {stdout}");

    let o = run(&exe, work.path(), None, &["inspect", "--json", iso_s]);
    assert!(o.status.success(), "inspect failed: {}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let agent = &v["build"]["agent"];
    assert_eq!(agent["origin"], "embedded", "{agent}");
    let size = agent["bytes"].as_u64().unwrap();
    assert!(size > 1_000_000, "embedded agent of {size} bytes");
    let init = v["initramfs"].as_array().unwrap().iter().find(|e| e["path"] == "/init");
    assert_eq!(init.map(|e| e["size"].as_u64()), Some(Some(size)), "/init is not the agent");

    // An explicit LAZARE_AGENT still wins over the embedded copy.
    let o = run(
        &exe,
        work.path(),
        Some("/nonexistent/agent"),
        &["build", "--server", "http://a", "-o", iso_s],
    );
    assert!(!o.status.success(), "LAZARE_AGENT=/nonexistent/agent was ignored");
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/agent"));
}
