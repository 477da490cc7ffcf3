//! `lazare build` (being written).

#[derive(clap::Args)]
pub struct BuildArgs {}

pub fn run(_args: &BuildArgs) -> anyhow::Result<()> {
    anyhow::bail!("`lazare build` is not implemented yet")
}
