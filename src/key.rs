//! `lazare key`: the install server's signing key.

use crate::serve::datadir::DataDir;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub cmd: KeyCmd,
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Print the server's public key as `ed25519:BASE64` (what `lazare build --key` takes).
    Show {
        /// The server's data directory (as given to `lazare serve --data`).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
    },
}

pub fn run(args: &KeyArgs) -> anyhow::Result<()> {
    match &args.cmd {
        KeyCmd::Show { data } => {
            let key = DataDir::new(data).load_key()?;
            println!("{}", key.public());
            Ok(())
        }
    }
}
