//! `lazare vm` (being written).

#[derive(clap::Args)]
pub struct VmArgs {}

pub fn run(_args: &VmArgs) -> anyhow::Result<()> {
    anyhow::bail!("`lazare vm` is not implemented yet")
}
