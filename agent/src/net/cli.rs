//! `lazare-agent dhcp --iface X`: the agent's DHCP client on a host, for
//! tests in network namespaces and for debugging a LAN. Prints the lease
//! (the first interface to get one wins) as JSON.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

#[derive(clap::Args, Debug)]
pub struct DhcpArgs {
    /// Interface to run DHCP on (repeat for several: first lease wins).
    #[arg(long = "iface", required = true)]
    pub ifaces: Vec<String>,
    /// DISCOVER attempts per interface (2, 4, 8, 16 s waits).
    #[arg(long, default_value_t = 3)]
    pub tries: u32,
    /// Also give the interface the address and the default route.
    #[arg(long)]
    pub apply: bool,
}

pub fn run(args: &DhcpArgs) -> anyhow::Result<()> {
    let cabled = super::up_and_wait(&args.ifaces, Duration::from_secs(6));
    let skipped: Vec<&String> = args.ifaces.iter().filter(|i| !cabled.contains(i)).collect();
    if !skipped.is_empty() {
        eprintln!("no carrier on {skipped:?}: skipped");
    }
    anyhow::ensure!(!cabled.is_empty(), "no carrier on any of {:?}", args.ifaces);
    let lease =
        super::dhcp_first_in(Path::new("/"), &cabled, args.tries).context("running DHCP")?;
    if args.apply {
        super::apply_lease(&lease).context("applying the lease")?;
    }
    println!("{}", serde_json::to_string_pretty(&lease).context("writing the lease")?);
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ResolveArgs {
    /// Host name to look up (A record).
    pub name: String,
    /// DNS server to ask (repeatable).
    #[arg(long = "dns", required = true)]
    pub servers: Vec<std::net::Ipv4Addr>,
}

/// `lazare-agent resolve NAME --dns IP`: the agent's own resolver, one
/// address a line.
pub fn resolve(args: &ResolveArgs) -> anyhow::Result<()> {
    let id = (std::process::id() & 0xffff) as u16;
    for ip in super::dns::resolve(&args.name, &args.servers, id)? {
        println!("{ip}");
    }
    Ok(())
}
