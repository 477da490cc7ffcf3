//! `lazare inspect` (being written).

#[derive(clap::Args)]
pub struct InspectArgs {}

pub fn run(_args: &InspectArgs) -> anyhow::Result<()> {
    anyhow::bail!("`lazare inspect` is not implemented yet")
}
