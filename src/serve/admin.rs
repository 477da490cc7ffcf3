//! `lazare admin`: what the dashboard's admin can do, from a shell on the
//! server (works whether or not `lazare serve` runs: both share the SQLite
//! database, and the server reads the token file on every check).

use super::datadir::{DataDir, DB_FILE, KEY_FILE, TOKEN_FILE};
use super::store::{now_ms, rfc3339, Store};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub cmd: AdminCmd,
}

#[derive(Subcommand)]
pub enum AdminCmd {
    /// Replace the admin token with a new one and print it (browsers logged
    /// in with the old one must log in again).
    RotateToken {
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
    },
    /// Accept new PCs for the next HOURS hours (0 closes the window).
    Enroll {
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        #[arg(long, default_value_t = 2)]
        hours: u32,
    },
    /// Accept a PC that waits (`enroll = "approve"`, or outside the window).
    Accept {
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The machine id (as on the dashboard).
        id: String,
    },
    /// Let a PC enrol again, e.g. after its disk died with its secret.
    Reenroll {
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        id: String,
    },
    /// Forget a PC, its events and logs.
    Forget {
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        id: String,
    },
}

/// The database of an existing data directory (never a new one: a typo in
/// `--data` must not create an empty server).
fn store(data: &std::path::Path) -> Result<Store> {
    let d = DataDir::new(data);
    if !d.path(KEY_FILE).exists() || !d.path(DB_FILE).exists() {
        bail!(
            "{} is not a lazare data directory (no {KEY_FILE} or {DB_FILE}): start `lazare serve \
             --data DIR` once first",
            data.display()
        );
    }
    Store::open(&d.path(DB_FILE))
}

fn machine(id: &str, found: bool) -> Result<()> {
    if found {
        Ok(())
    } else {
        bail!("no machine with id {id}")
    }
}

pub fn run(args: &AdminArgs) -> Result<()> {
    match &args.cmd {
        AdminCmd::RotateToken { data } => {
            let d = DataDir::new(data);
            let token = d.rotate_token()?;
            println!("new admin token (kept in {}): {token}", d.path(TOKEN_FILE).display());
        }
        AdminCmd::Enroll { data, hours } => {
            if *hours > super::api::MAX_WINDOW_HOURS {
                bail!("at most {} hours", super::api::MAX_WINDOW_HOURS);
            }
            let until = store(data)?.open_window(now_ms(), *hours).context("opening the window")?;
            if *hours == 0 {
                println!("new PCs now wait to be accepted");
            } else {
                println!("new PCs are accepted until {}", rfc3339(until));
            }
        }
        AdminCmd::Accept { data, id } => {
            machine(id, store(data)?.accept(id)?)?;
            println!("accepted {id}");
        }
        AdminCmd::Reenroll { data, id } => {
            machine(id, store(data)?.reenroll(id)?)?;
            println!("{id} may enrol again at its next hello");
        }
        AdminCmd::Forget { data, id } => {
            machine(id, store(data)?.forget(id)?)?;
            println!("forgot {id}");
        }
    }
    Ok(())
}
