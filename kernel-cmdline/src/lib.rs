//! Parse and format the Linux kernel command line, its `ip=` parameter and
//! lazare's own `lazare.*` keys. No I/O: callers pass strings in.
//!
//! - [`Cmdline`]: tokens split and quoted as the kernel does; `Display`
//!   quotes only where needed and reads back to the same list.
//! - [`IpConfig`]: one `ip=` value, kernel and dracut grammars.
//! - [`Server`], [`BootAction`], [`Insecure`], [`Retries`]: the `lazare.*`
//!   values, each with `FromStr`; `lazare.key` is proto's `PublicKey`
//!   ([`parse_key`] names the key in its error).
//! - [`resolve`]: the agent's [`AgentConfig`] from the baked and live lines.
//! - [`fuzz_check`]: the fuzz target's body (see `fuzz/README.md`).
//!
//! ```
//! use kernel_cmdline::Cmdline;
//! let c = Cmdline::parse(r#"console=ttyS0 "lazare.server=http://10.0.2.100:8470" quiet -- single"#);
//! assert_eq!(c.value("lazare.server"), Some("http://10.0.2.100:8470"));
//! assert!(c.contains("quiet"));
//! assert_eq!(c.init_args()[0].key, "single");
//! assert_eq!(c.to_string(), "console=ttyS0 lazare.server=http://10.0.2.100:8470 quiet -- single");
//! ```

mod cmdline;
mod fuzz;
mod ip;
mod lazare;
mod resolve;

pub use cmdline::{keys_equal, Cmdline, CmdlineError, Param};
pub use fuzz::fuzz_check;
pub use ip::{Autoconf, ClientId, IpConfig, IpError, IpForm, MacAddr, Netmask};
pub use lazare::{
    parse_key, BootAction, Host, Insecure, Retries, Scheme, Server, ServerUrl, ValueError,
    DEFAULT_SERVER_PORT, KEY_ACTION, KEY_INSECURE, KEY_KEY, KEY_RETRIES, KEY_SERVER, KNOWN_KEYS,
};
pub use resolve::{resolve, AgentConfig, ConfigError, Method, NetworkConfig, ServerSource};
