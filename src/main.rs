//! `lazare`: thin entry point; every command lives in the library.

fn main() {
    let cli = lazare::cli::parse();
    if let Err(e) = lazare::cli::run(cli) {
        eprintln!("lazare: {e:#}");
        std::process::exit(1);
    }
}
