//! Resolved agent configuration (placeholder until the cmdline work lands).

#[derive(clap::Args)]
pub struct ConfigArgs {}

pub fn run(_args: &ConfigArgs) -> anyhow::Result<()> {
    anyhow::bail!("`config` is not implemented yet")
}
