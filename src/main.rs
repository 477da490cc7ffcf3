//! `lazare`: thin entry point; every command lives in the library.

use clap::Parser;

fn main() {
    let cli = lazare::cli::Cli::parse();
    if let Err(e) = lazare::cli::run(cli) {
        eprintln!("lazare: {e:#}");
        std::process::exit(1);
    }
}
