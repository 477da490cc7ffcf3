//! `lazare-agent`: PID 1 of the boot CD, and host-runnable seams
//! (`config`, `plan`) for tests and volunteers. Logic lives in the library.

use clap::{Parser, Subcommand};
use lazare_agent::{config, flow, init, plancli};

#[derive(Parser)]
#[command(
    name = "lazare-agent",
    version,
    about = "The lazare install agent (PID 1 of the boot CD)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the configuration resolved from a kernel command line as JSON.
    Config(config::ConfigArgs),
    /// Print the disk layout for an inventory and a policy as JSON.
    Plan(plancli::PlanArgs),
    /// Run as the boot CD's init (the default when started as PID 1).
    Init,
    /// Run the agent's DHCP client on interfaces and print the lease as JSON.
    Dhcp(lazare_agent::net::cli::DhcpArgs),
    /// Look a host name up with the agent's own DNS resolver.
    Resolve(lazare_agent::net::cli::ResolveArgs),
    /// The agent's work (hardware, network, server); PID 1 runs it as a child.
    #[command(hide = true)]
    Agent,
    /// Stream an image into a directory with the install pipeline (benchmarks).
    #[command(hide = true)]
    Fetch(lazare_agent::benchcli::FetchArgs),
}

fn main() {
    lazare_agent::sys::fix_malloc_thresholds();
    // The kernel runs /sbin/modprobe (a link to us) for its module requests.
    let args: Vec<String> = std::env::args().collect();
    if args.first().is_some_and(|a| a.rsplit('/').next() == Some("modprobe")) {
        std::process::exit(lazare_agent::hw::coldplug::modprobe_main(&args));
    }
    // As PID 1 the kernel passes its own leftover arguments: never parse them.
    if std::process::id() == 1 {
        init::run();
    }
    let cli = Cli::parse();
    let result = match cli.cmd {
        Some(Cmd::Config(args)) => config::run(&args),
        Some(Cmd::Plan(args)) => plancli::run(&args),
        Some(Cmd::Init) | None => init::run(),
        Some(Cmd::Agent) => flow::run(),
        Some(Cmd::Dhcp(args)) => lazare_agent::net::cli::run(&args),
        Some(Cmd::Resolve(args)) => lazare_agent::net::cli::resolve(&args),
        Some(Cmd::Fetch(args)) => lazare_agent::benchcli::run(&args),
    };
    if let Err(e) = result {
        eprintln!("lazare-agent: {e:#}");
        std::process::exit(1);
    }
}
