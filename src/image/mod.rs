//! `lazare image` (being written).

#[derive(clap::Args)]
pub struct ImageArgs {}

pub fn run(_args: &ImageArgs) -> anyhow::Result<()> {
    anyhow::bail!("`lazare image` is not implemented yet")
}
