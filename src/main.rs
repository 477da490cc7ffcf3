fn main() {
    eprintln!("lazare: not implemented yet");
    std::process::exit(1);
}
