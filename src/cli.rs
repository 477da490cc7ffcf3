//! The command line of `lazare` (clap structs only; each command's logic is
//! in its own module).

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lazare",
    version,
    about = "Turn old donated PCs into working ones: build a boot CD, run the install server",
    long_about = "lazare builds a small boot CD (or USB stick image) that reinstalls a PC over \
the network from a central install server, unattended.\n\nTypical use:\n  \
lazare serve --data /srv/lazare            # on the server, once\n  \
lazare build --server http://SERVER:8470 --key <(lazare key show --data /srv/lazare) -o lazare.iso\n  \
lazare vm --iso lazare.iso                  # try it in a VM before burning 40 CDs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Build the boot ISO (CD and USB stick) with the server baked in.
    Build(crate::build::BuildArgs),
    /// Show what is inside an ISO built by lazare: boot entries, command lines, initramfs.
    Inspect(crate::inspect::InspectArgs),
    /// Run the install server: API for the agents, dashboard, images.
    Serve(crate::serve::ServeArgs),
    /// Manage the server's signing key.
    Key(crate::key::KeyArgs),
    /// Server administration: rotate the admin token, accept or forget PCs.
    Admin(crate::serve::admin::AdminArgs),
    /// Build Debian root filesystem images and add them to a server.
    Image(crate::image::ImageArgs),
    /// Boot an ISO in a local qemu VM to try it against a server.
    Vm(crate::vm::VmArgs),
    /// Print a shell completion script (bash, zsh or fish) to stdout.
    Completions(crate::gendocs::CompletionsArgs),
    /// Print the man page lazare(1) (roff) to stdout.
    Man(crate::gendocs::ManArgs),
}

/// The command line, parsed. A value its type refuses (`--server ftp://x`)
/// is said in one line, as every other `lazare:` error; help, version and
/// usage errors are clap's.
pub fn parse() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation => {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or_default();
            eprintln!("lazare: {}", line.strip_prefix("error: ").unwrap_or(line));
            std::process::exit(2)
        }
        Err(e) => e.exit(),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Build(a) => crate::build::run(&a),
        Cmd::Inspect(a) => crate::inspect::run(&a),
        Cmd::Serve(a) => crate::serve::run(&a),
        Cmd::Key(a) => crate::key::run(&a),
        Cmd::Admin(a) => crate::serve::admin::run(&a),
        Cmd::Image(a) => crate::image::run(&a),
        Cmd::Vm(a) => crate::vm::run(&a),
        Cmd::Completions(a) => crate::gendocs::run_completions(&a),
        Cmd::Man(a) => crate::gendocs::run_man(&a),
    }
}
