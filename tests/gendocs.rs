//! `lazare completions` and `lazare man` through the real binary: the output
//! is non-empty and names every visible subcommand of the clap definition.

use std::process::Command;

use clap::CommandFactory;

fn run(args: &[&str]) -> String {
    let out =
        Command::new(env!("CARGO_BIN_EXE_lazare")).args(args).output().expect("running lazare");
    assert!(out.status.success(), "lazare {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn subcommands() -> Vec<String> {
    let cmd = lazare::cli::Cli::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    assert!(names.len() >= 8, "expected build..man, got {names:?}");
    names
}

#[test]
fn completions_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let text = run(&["completions", shell]);
        assert!(text.len() > 500, "{shell}: only {} bytes", text.len());
        for sub in subcommands() {
            assert!(text.contains(&sub), "{shell} completion does not mention {sub}");
        }
    }
}

#[test]
fn bash_completion_is_valid_bash() {
    let text = run(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lazare.bash");
    std::fs::write(&file, text).unwrap();
    let st = Command::new("bash").arg("-n").arg(&file).status().expect("running bash -n");
    assert!(st.success(), "bash -n rejects the completion script");
}

#[test]
fn man_page_is_roff_and_documents_every_subcommand() {
    let text = run(&["man"]);
    assert!(text.starts_with(".ie") || text.contains(".TH lazare"), "not a roff man page");
    for sub in subcommands() {
        let heading = format!(".SH \"LAZARE {}\"", sub.to_uppercase());
        assert!(text.contains(&heading), "man page has no section {heading}");
    }
    // A nested subcommand's options appear too (lazare build --server).
    assert!(text.contains("server"), "build's --server option missing");
}

#[test]
fn completions_refuse_an_unknown_shell() {
    let out = Command::new(env!("CARGO_BIN_EXE_lazare"))
        .args(["completions", "tcsh"])
        .output()
        .expect("running lazare");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}
