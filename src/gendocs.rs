//! `lazare completions SHELL` and `lazare man`: shell completions and the man
//! page, generated from the clap definitions so they never drift from `--help`.

use std::io::Write;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, ValueEnum};

/// Shells `lazare completions` writes a script for.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for (to stdout).
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Args)]
pub struct ManArgs {}

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(shell: Shell, out: &mut dyn Write) {
    let mut cmd = crate::cli::Cli::command();
    let gen = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(gen, &mut cmd, "lazare", out);
}

/// Writes the man page (roff): lazare(1) with every subcommand's options
/// inlined, so one page documents the whole tool.
pub fn write_man(out: &mut dyn Write) -> Result<()> {
    let cmd = crate::cli::Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out).context("writing the man page")?;
    man.render_name_section(out).context("writing the man page")?;
    man.render_synopsis_section(out).context("writing the man page")?;
    man.render_description_section(out).context("writing the man page")?;
    man.render_options_section(out).context("writing the man page")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_sub_section(out, &format!("lazare {}", sub.get_name()), sub)?;
    }
    man.render_version_section(out).context("writing the man page")?;
    Ok(())
}

/// One `.SH` per subcommand (and nested ones, e.g. `lazare key show`) with
/// its synopsis, description and options.
fn write_sub_section(out: &mut dyn Write, path: &str, sub: &clap::Command) -> Result<()> {
    let name = path.to_uppercase();
    writeln!(out, ".SH \"{name}\"").context("writing the man page")?;
    let sub = sub.clone().bin_name(path.to_string());
    let man = clap_mangen::Man::new(sub.clone());
    let mut buf = Vec::new();
    man.render_synopsis_section(&mut buf)?;
    man.render_description_section(&mut buf)?;
    if sub.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf)?;
    }
    // Nested sections become sub-headings of this subcommand's section.
    let text = String::from_utf8_lossy(&buf).replace(".SH ", ".SS ");
    out.write_all(text.as_bytes()).context("writing the man page")?;
    for nested in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_sub_section(out, &format!("{path} {}", nested.get_name()), nested)?;
    }
    Ok(())
}

pub fn run_completions(a: &CompletionsArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    write_completions(a.shell, &mut out);
    out.flush().context("writing the completions to stdout")
}

pub fn run_man(_a: &ManArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    write_man(&mut out)?;
    out.flush().context("writing the man page to stdout")
}
