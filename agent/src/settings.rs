//! The agent's settings for this boot: the kernel command line merged over
//! the config baked into the CD (`/etc/lazare/cmdline`, same syntax; the
//! command line wins), and the baked server key.

use std::path::Path;

/// Where the builder bakes the agent's configuration into the initramfs.
pub const BAKED_CMDLINE: &str = "etc/lazare/cmdline";
pub const BAKED_KEY: &str = "etc/lazare/server.pub";

/// What the agent does once it has a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Install,
    Inventory,
    Rescue,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Install => "install",
            Action::Inventory => "inventory",
            Action::Rescue => "rescue",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `lazare.server=`: a base URL, `dhcp`, or none (then `ip=`'s server field).
    pub server: Option<String>,
    pub action: Action,
    /// `ip=` values, in order.
    pub ip: Vec<String>,
    /// `lazare.key=` or the baked key file, `ed25519:BASE64`.
    pub key: Option<String>,
    pub insecure: bool,
    pub retries: Option<u32>,
    /// The exact kernel command line, for the screen and the log.
    pub cmdline: String,
}

/// Reads the settings from a root directory (`/` on the CD, a fake tree in
/// tests): `proc/cmdline` over `etc/lazare/cmdline`.
pub fn load(root: &Path) -> anyhow::Result<Settings> {
    let live = std::fs::read_to_string(root.join("proc/cmdline")).unwrap_or_default();
    let baked = std::fs::read_to_string(root.join(BAKED_CMDLINE)).unwrap_or_default();
    let baked_key = std::fs::read_to_string(root.join(BAKED_KEY)).ok();
    let mut s = resolve(&baked, &live)?;
    if s.key.is_none() {
        s.key = baked_key.map(|k| k.trim().to_string()).filter(|k| !k.is_empty());
    }
    Ok(s)
}

/// Merges two command lines: keys from `live` replace the same keys from
/// `baked`; `ip=` from `live` replaces all of `baked`'s.
pub fn resolve(baked: &str, live: &str) -> anyhow::Result<Settings> {
    let mut s = Settings {
        server: None,
        action: Action::Install,
        ip: Vec::new(),
        key: None,
        insecure: false,
        retries: None,
        cmdline: live.trim_end().to_string(),
    };
    apply(&mut s, baked)?;
    let live_ip: Vec<String> = values(live, "ip").collect();
    if !live_ip.is_empty() {
        s.ip.clear();
    }
    apply(&mut s, live)?;
    Ok(s)
}

fn apply(s: &mut Settings, line: &str) -> anyhow::Result<()> {
    for tok in tokens(line) {
        let (key, value) = match tok.split_once('=') {
            Some((k, v)) => (k.replace('-', "_"), Some(v.to_string())),
            None => (tok.replace('-', "_"), None),
        };
        match (key.as_str(), value) {
            ("lazare.server", Some(v)) => s.server = Some(v),
            ("lazare.action", Some(v)) => {
                s.action = match v.as_str() {
                    "install" => Action::Install,
                    "inventory" => Action::Inventory,
                    "rescue" => Action::Rescue,
                    other => anyhow::bail!(
                        "lazare.action={other} is unknown (install, inventory or rescue)"
                    ),
                }
            }
            ("ip", Some(v)) => s.ip.push(v),
            ("lazare.key", Some(v)) => s.key = Some(v),
            ("lazare.insecure", None) => s.insecure = true,
            ("lazare.insecure", Some(v)) => s.insecure = !matches!(v.as_str(), "0" | "no" | "off"),
            ("lazare.retries", Some(v)) => {
                s.retries = Some(
                    v.parse().map_err(|_| anyhow::anyhow!("lazare.retries={v} is not a number"))?,
                )
            }
            _ => {}
        }
    }
    Ok(())
}

fn values<'a>(line: &'a str, key: &'a str) -> impl Iterator<Item = String> + 'a {
    tokens(line).filter_map(move |t| t.strip_prefix(key)?.strip_prefix('=').map(str::to_string))
}

/// Splits like the kernel: on whitespace, double quotes group and are removed.
fn tokens(line: &str) -> impl Iterator<Item = String> + '_ {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_wins_over_baked() {
        let s = resolve(
            "lazare.server=http://a:8470 ip=dhcp lazare.action=install",
            "quiet lazare.action=inventory ip=eth0:dhcp",
        )
        .unwrap();
        assert_eq!(s.server.as_deref(), Some("http://a:8470"));
        assert_eq!(s.action, Action::Inventory);
        assert_eq!(s.ip, vec!["eth0:dhcp"]);
    }

    #[test]
    fn quotes_and_flags() {
        let s = resolve("", r#"x="a b" lazare.insecure lazare-retries=3"#).unwrap();
        assert!(s.insecure);
        assert_eq!(s.retries, Some(3));
    }

    #[test]
    fn unknown_action_is_refused() {
        let e = resolve("", "lazare.action=dance").unwrap_err();
        assert!(e.to_string().contains("dance"));
    }
}
