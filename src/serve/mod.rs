//! `lazare serve` (being written).

#[derive(clap::Args)]
pub struct ServeArgs {}

pub fn run(_args: &ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("`lazare serve` is not implemented yet")
}
