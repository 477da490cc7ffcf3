//! `lazare-agent plan` (placeholder until disk planning lands).

#[derive(clap::Args)]
pub struct PlanArgs {}

pub fn run(_args: &PlanArgs) -> anyhow::Result<()> {
    anyhow::bail!("`plan` is not implemented yet")
}
