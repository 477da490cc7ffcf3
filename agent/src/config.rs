//! The agent's configuration: the kernel command line (`/proc/cmdline`) over
//! the one baked into the initramfs (`/etc/lazare/cmdline`), resolved by the
//! `kernel-cmdline` crate. `lazare-agent config` prints it as JSON, so the
//! same resolution the agent does at boot can be checked on any host.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
pub use kernel_cmdline::{
    resolve, Action, AgentConfig, Cmdline, ConfigError, Method, NetworkConfig, Server,
    ServerSource, DEFAULT_SERVER_PORT,
};

/// Where the kernel shows its command line.
pub const LIVE_CMDLINE: &str = "/proc/cmdline";
/// Where `lazare build` bakes the command line into the initramfs.
pub const BAKED_CMDLINE: &str = "/etc/lazare/cmdline";

#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    /// The kernel command line to resolve, as one string.
    #[arg(long, value_name = "STRING", conflicts_with = "cmdline_file")]
    cmdline: Option<String>,
    /// Read the kernel command line from this file.
    #[arg(long, value_name = "PATH", default_value = LIVE_CMDLINE)]
    cmdline_file: PathBuf,
    /// The baked command line (default: /etc/lazare/cmdline when it exists).
    #[arg(long, value_name = "PATH")]
    baked: Option<PathBuf>,
}

/// `lazare-agent config`: print the resolved configuration as pretty JSON.
pub fn run(args: &ConfigArgs) -> anyhow::Result<()> {
    let live = match &args.cmdline {
        Some(s) => Cmdline::parse(s),
        None => read_cmdline(&args.cmdline_file)?,
    };
    let baked = match &args.baked {
        Some(p) => read_cmdline(p)?,
        None => read_optional(Path::new(BAKED_CMDLINE))?,
    };
    let config = resolve(&baked, &live)?;
    let json =
        serde_json::to_string_pretty(&config).context("writing the configuration as JSON")?;
    println!("{json}");
    Ok(())
}

/// What the agent calls at boot: the live command line over the baked one
/// (a missing baked file is an empty command line).
pub fn load(live: &Path, baked: &Path) -> anyhow::Result<AgentConfig> {
    let live = read_cmdline(live)?;
    let baked = read_optional(baked)?;
    Ok(resolve(&baked, &live)?)
}

fn read_cmdline(path: &Path) -> anyhow::Result<Cmdline> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the kernel command line from {}", path.display()))?;
    Ok(Cmdline::parse(&text))
}

fn read_optional(path: &Path) -> anyhow::Result<Cmdline> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Cmdline::parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cmdline::new()),
        Err(e) => {
            Err(e).with_context(|| format!("reading the baked command line {}", path.display()))
        }
    }
}
