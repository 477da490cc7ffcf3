fn main() {
    eprintln!("lazare-agent: not implemented yet");
    std::process::exit(1);
}
