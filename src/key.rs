//! `lazare key` (being written).

#[derive(clap::Args)]
pub struct KeyArgs {}

pub fn run(_args: &KeyArgs) -> anyhow::Result<()> {
    anyhow::bail!("`lazare key` is not implemented yet")
}
