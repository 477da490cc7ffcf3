//! The agent's work after PID 1 set up the basics: hardware, network,
//! server, then the action. Runs in a child of PID 1 (`lazare-agent agent`);
//! on failure it shows a plain sentence and the detail and exits with
//! [`crate::init::EXIT_FAILED`] so PID 1 offers retry/shell/reboot.

use std::path::Path;

use crate::screen::Screen;
use crate::settings::{self, Settings};

/// A failure with a sentence for the person at the PC.
#[derive(Debug, thiserror::Error)]
#[error("{plain}")]
pub struct Failure {
    pub plain: String,
    pub detail: String,
}

impl Failure {
    pub fn new(plain: &str, detail: impl std::fmt::Display) -> Failure {
        Failure { plain: plain.to_string(), detail: format!("{detail:#}") }
    }
}

/// The child's main. Never returns.
pub fn run() -> ! {
    let screen = Screen::open_console();
    match work(&screen) {
        Ok(()) => std::process::exit(0),
        Err(f) => {
            screen.failure(&f.plain, &f.detail);
            std::process::exit(crate::init::EXIT_FAILED)
        }
    }
}

fn work(screen: &Screen) -> Result<(), Failure> {
    let settings: Settings = settings::load(Path::new("/"))
        .map_err(|e| Failure::new("The CD's settings are wrong; the CD must be rebuilt.", e))?;
    screen.note(&format!("settings: {settings:?}"));
    Err(Failure::new(
        "This CD's agent cannot continue yet.",
        "hardware detection is not implemented yet in this build",
    ))
}
