//! PID 1 (placeholder until the agent runtime lands).

pub fn run() -> ! {
    eprintln!("lazare-agent: init is not implemented yet");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
