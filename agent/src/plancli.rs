//! `lazare-agent plan --inventory inv.json --policy policy.json`: the disk
//! layout as JSON, runnable on any host. `--text` prints what the PC's
//! screen would say instead.

use std::path::PathBuf;

use anyhow::Context;
use lazare_proto::{DiskPolicy, Inventory};

#[derive(clap::Args)]
pub struct PlanArgs {
    /// Inventory JSON (as the agent sends in `POST /api/v1/hello`).
    #[arg(long)]
    pub inventory: PathBuf,
    /// Disk policy JSON (the plan's `disks` object). Default: the default policy.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Print the human description shown before installing, not JSON.
    #[arg(long)]
    pub text: bool,
}

pub fn run(args: &PlanArgs) -> anyhow::Result<()> {
    let inv: Inventory = read_json(&args.inventory).context("reading the inventory")?;
    let policy: DiskPolicy = match &args.policy {
        Some(p) => read_json(p).context("reading the policy")?,
        None => DiskPolicy::default(),
    };
    let layout = diskplan::plan(&inv, &policy).context("planning the disks")?;
    if args.text {
        for line in crate::install::show::describe(&layout) {
            println!("{line}");
        }
    } else {
        println!("{}", serde_json::to_string_pretty(&layout)?);
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}
