//! The agent's configuration: the kernel command line (`/proc/cmdline`) over
//! the one baked into the initramfs ([`lazare_cd::BakedConfig`]), resolved by
//! the `kernel-cmdline` crate. `lazare-agent config` prints it as JSON, so
//! the same resolution the agent does at boot can be checked on any host.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
pub use kernel_cmdline::{
    resolve, AgentConfig, BootAction, Cmdline, ConfigError, Host, Method, NetworkConfig, Scheme,
    Server, ServerSource, ServerUrl, DEFAULT_SERVER_PORT,
};
use lazare_cd::paths::{BAKED_CMDLINE, BAKED_KEY};
use lazare_cd::BakedConfig;

/// Where the kernel shows its command line.
pub const LIVE_CMDLINE: &str = "/proc/cmdline";

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
    /// The baked server key (default: /etc/lazare/server.pub when it exists).
    #[arg(long, value_name = "PATH")]
    baked_key: Option<PathBuf>,
}

/// `lazare-agent config`: print the resolved configuration as pretty JSON.
pub fn run(args: &ConfigArgs) -> anyhow::Result<()> {
    let live = match &args.cmdline {
        Some(s) => Cmdline::parse(s),
        None => Cmdline::parse(&required(&args.cmdline_file, "the kernel command line")?),
    };
    // A file named on the command line must exist; the defaults may not.
    let given_or_default = |given: &Option<PathBuf>, default: &str| match given {
        Some(p) => required(p, "the baked configuration").map(Some),
        None => read(Path::new(default)),
    };
    let cmdline = given_or_default(&args.baked, BAKED_CMDLINE)?;
    let key = given_or_default(&args.baked_key, BAKED_KEY)?;
    let baked = BakedConfig::parse(cmdline.as_deref(), key.as_deref())?;
    let config = with_baked(&baked, &live)?;
    let json =
        serde_json::to_string_pretty(&config).context("writing the configuration as JSON")?;
    println!("{json}");
    Ok(())
}

/// What the agent calls at boot: the live command line over the baked
/// configuration at `root` (`/` on the CD); absent baked files are empty.
pub fn load(live: &Path, root: &Path) -> anyhow::Result<AgentConfig> {
    let live = required(live, "the kernel command line")?;
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let (cmdline, key) = (read(&at(BAKED_CMDLINE))?, read(&at(BAKED_KEY))?);
    let baked = BakedConfig::parse(cmdline.as_deref(), key.as_deref())?;
    with_baked(&baked, &Cmdline::parse(&live))
}

/// The resolved configuration; the key plans must be signed with is
/// `lazare.key=` when given, else the baked one.
fn with_baked(baked: &BakedConfig, live: &Cmdline) -> anyhow::Result<AgentConfig> {
    let mut config = resolve(&baked.cmdline, live)?;
    config.key = config.key.or_else(|| baked.key.clone());
    Ok(config)
}

fn required(path: &Path, what: &str) -> anyhow::Result<String> {
    read(path)?.with_context(|| format!("reading {what} from {}: no such file", path.display()))
}

/// A file's text; `None` when it does not exist.
fn read(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}
