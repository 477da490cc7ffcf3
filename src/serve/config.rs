//! The rules a volunteer edits in `DATA/lazare.toml`: which image a PC gets,
//! its host name, locale, users and disk policy.

use anyhow::{bail, Context, Result};
use kernel_cmdline::ServerUrl;
use lazare_proto::{
    valid_hostname, valid_user_name, Action, DiskPolicy, Firmware, Inventory, User,
    DEFAULT_ORDERS_EVERY_SECS, MIB, MIN_ORDERS_EVERY_SECS,
};
use serde::Deserialize;
use std::path::Path;

/// Written on first start; the comments are the documentation.
pub const DEFAULT_RULES: &str = r#"# lazare install server rules. Edit, then restart `lazare serve`.

# Host name of each PC. {n} is the order in which the server first saw the PC
# ({n:03} pads it to 3 digits: pc-001); {id} is the start of its machine id.
hostname = "pc-{n:03}"

locale = "fr_FR.UTF-8"
keymap = "fr"
timezone = "Europe/Paris"

# Seconds the PC shows its disk plan before it writes anything (0: at once).
countdown_secs = 10

# Add a "Reinstall from server" entry to the installed system's boot menu.
reinstall_entry = true

# Seconds between an installed PC's asks whether you ordered its reinstall
# (besides the one at each boot): a PC left on picks the order up within
# this time, plus up to 4/15 of it (PCs switched on together spread their
# asks). At least 30. Takes effect on the PCs installed after the change.
orders_every_secs = 900

# How new PCs are accepted: "window" (while a window opened on the dashboard
# or with `lazare admin enroll` lasts; the first start opens one for 24
# hours), "approve" (each PC is accepted on the dashboard) or "open" (any PC
# on the network: only on a network you trust).
enroll = "window"

# What a PC does after hello: "install", "inventory" (report, power off) or
# "wait" (ask again later).
action = "install"

# A PC this server installed that boots again from a CD or USB stick left in
# starts its installed system (the CD is ejected) instead of being wiped,
# unless you ordered a reinstall (dashboard or API) or its disk no longer
# holds that system. true: reinstall it at every such boot.
reinstall_installed = false

# Where PCs download the images from. Unset: this server. A mirror or CDN
# (http or https) for sites that outgrow one server: copy DATA/images/*.tar.zst
# and their .chunks and .tools files there. The signed plan still pins every
# image by its sha256, chunk index and tools, so a mirror cannot change a
# byte unseen.
# image_base_url = "https://mirror.example.org/lazare"

# Image rules, first match wins. A rule may test ram_below_mib and firmware
# ("bios" or "uefi"); a rule without tests matches every PC. The profile is
# the image name given to `lazare image build --profile NAME`.
[[image]]
profile = "light"
ram_below_mib = 512

[[image]]
profile = "standard"

# How the agent may lay out the disks.
[disks]
root_min = 3221225472     # bytes (3 GiB); raised to fit the image if needed
home = "preserve"         # "preserve": keep an existing /home; "fresh": wipe it
swap = { kind = "auto" }  # or { kind = "none" }, { kind = "fixed", bytes = N }
table = "auto"            # "auto", "gpt" or "mbr"
exclude = []              # disk names never to touch, e.g. ["sdb"]

# Accounts created on every PC. The login screen lists them: the staff
# click a name.
# - password_hash: a crypt(3) hash, e.g. from `openssl passwd -6`; without
#   one the password is locked (no login with a password).
# - autologin = true (one user at most): a shared public PC. Its desktop
#   opens by itself at power-on, and after a log-out a click on its name
#   opens it again, with no password (only on the login screen: the text
#   console, su and sudo still want one).
# - admin = true: in the sudo group (give it a password_hash).
[[user]]
name = "utilisateur"
full_name = "Utilisateur"
admin = false
autologin = true
"#;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub hostname: String,
    pub locale: String,
    pub keymap: String,
    pub timezone: String,
    #[serde(default = "default_countdown")]
    pub countdown_secs: u32,
    #[serde(default = "yes")]
    pub reinstall_entry: bool,
    #[serde(default = "orders_every")]
    pub orders_every_secs: u32,
    #[serde(default = "install")]
    pub action: Action,
    #[serde(default)]
    pub enroll: super::enroll::EnrollRule,
    #[serde(default)]
    pub reinstall_installed: bool,
    /// Images come from here instead of this server's `/images/`.
    #[serde(default, deserialize_with = "base_url")]
    pub image_base_url: Option<ServerUrl>,
    #[serde(rename = "image")]
    pub images: Vec<ImageRule>,
    #[serde(default)]
    pub disks: DiskPolicy,
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
}

/// An `http(s)://HOST[:PORT][/PATH]` base, parsed by kernel-cmdline's
/// one URL parser.
fn base_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ServerUrl>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

fn default_countdown() -> u32 {
    10
}
fn yes() -> bool {
    true
}
fn orders_every() -> u32 {
    DEFAULT_ORDERS_EVERY_SECS
}
fn install() -> Action {
    Action::Install
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRule {
    pub profile: String,
    pub ram_below_mib: Option<u64>,
    pub firmware: Option<Firmware>,
}

impl ImageRule {
    fn matches(&self, inv: &Inventory) -> bool {
        self.ram_below_mib.is_none_or(|mib| inv.memory_bytes < mib * MIB)
            && self.firmware.is_none_or(|f| f == inv.firmware)
    }
}

impl Rules {
    /// Reads `path`, writing [`DEFAULT_RULES`] there first if it is missing.
    pub fn load_or_create(path: &Path) -> Result<Rules> {
        if !path.exists() {
            std::fs::write(path, DEFAULT_RULES)
                .with_context(|| format!("writing the default rules to {}", path.display()))?;
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Rules::parse(&text).with_context(|| format!("checking the rules in {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Rules> {
        let rules: Rules = toml::from_str(text).context("parsing TOML")?;
        rules.check()?;
        Ok(rules)
    }

    /// Refuses rules that would produce plans the agent rejects, at start
    /// rather than at the first hello.
    fn check(&self) -> Result<()> {
        if self.images.is_empty() {
            bail!("no [[image]] rule: add at least one, e.g. profile = \"standard\"");
        }
        for n in [1, 999_999] {
            let h = self.hostname_for(n, &"0".repeat(64))?;
            if !valid_hostname(&h) {
                bail!("hostname pattern {:?} gives {h:?}, not a valid host name", self.hostname);
            }
        }
        if let Some(u) = self.users.iter().find(|u| !valid_user_name(&u.name)) {
            bail!("user name {:?} is not a valid Linux user name", u.name);
        }
        if self.orders_every_secs < MIN_ORDERS_EVERY_SECS {
            bail!(
                "orders_every_secs = {}: at least {MIN_ORDERS_EVERY_SECS} (the PCs would ask \
                 faster than one ask gives up)",
                self.orders_every_secs
            );
        }
        let auto: Vec<&str> =
            self.users.iter().filter(|u| u.autologin).map(|u| u.name.as_str()).collect();
        if auto.len() > 1 {
            bail!(
                "several users have autologin = true ({}): a PC opens one session at power-on",
                auto.join(", ")
            );
        }
        Ok(())
    }

    /// How the staff log in on the installed PCs, in plain words (the
    /// dashboard shows it).
    pub fn login_help(&self) -> String {
        let label = |u: &User| {
            if u.full_name.is_empty() {
                u.name.clone()
            } else {
                u.full_name.clone()
            }
        };
        let mut out = Vec::new();
        if let Some(u) = self.users.iter().find(|u| u.autologin) {
            out.push(format!(
                "On an installed PC, the desktop of \"{}\" opens by itself at power-on; after a \
                 log-out, click \"{}\" on the login screen (no password).",
                label(u),
                label(u)
            ));
        }
        let others = |with: bool| -> Vec<String> {
            self.users
                .iter()
                .filter(|u| !u.autologin && u.password_hash.is_some() == with)
                .map(|u| format!("\"{}\"", label(u)))
                .collect()
        };
        let (with, locked) = (others(true), others(false));
        if !with.is_empty() {
            out.push(format!("{} log in with the password set in lazare.toml.", with.join(", ")));
        }
        if !locked.is_empty() {
            out.push(format!(
                "{} cannot log in: no password_hash and no autologin in lazare.toml.",
                locked.join(", ")
            ));
        }
        if out.is_empty() {
            out.push("No [[user]] in lazare.toml: nobody can log in on the installed PCs.".into());
        }
        out.join(" ")
    }

    /// The image profile the first matching rule names.
    pub fn pick_profile(&self, inv: &Inventory) -> Option<&str> {
        self.images.iter().find(|r| r.matches(inv)).map(|r| r.profile.as_str())
    }

    /// Renders the host name pattern: `{n}`, `{n:0W}`, `{id}`.
    pub fn hostname_for(&self, n: u64, machine_id: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = self.hostname.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..]
                .find('}')
                .with_context(|| format!("unclosed '{{' in hostname {:?}", self.hostname))?;
            let field = &rest[open + 1..open + close];
            match field {
                "n" => out.push_str(&n.to_string()),
                "id" => out.push_str(&machine_id[..machine_id.len().min(8)]),
                _ => match field.strip_prefix("n:0").map(str::parse::<usize>) {
                    Some(Ok(width)) if width <= 10 => out.push_str(&format!("{n:0width$}")),
                    _ => bail!(
                        "unknown field {{{field}}} in hostname {:?}: use {{n}}, {{n:03}} or {{id}}",
                        self.hostname
                    ),
                },
            }
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        Ok(out.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lazare_proto::Dmi;

    fn inv(mib: u64) -> Inventory {
        Inventory {
            machine_id: "a".repeat(64),
            memory_bytes: mib * MIB,
            cpus: 1,
            cpu_model: "Pentium III".into(),
            firmware: Firmware::Bios,
            dmi: Dmi::default(),
            disks: vec![],
            nics: vec![],
            boot_device: None,
            agent_version: String::new(),
            installed_id: None,
        }
    }

    #[test]
    fn default_rules_pick_light_below_512_mib() {
        let r = Rules::parse(DEFAULT_RULES).unwrap();
        assert_eq!(r.pick_profile(&inv(256)), Some("light"));
        assert_eq!(r.pick_profile(&inv(511)), Some("light"));
        assert_eq!(r.pick_profile(&inv(512)), Some("standard"));
        assert_eq!(r.pick_profile(&inv(4096)), Some("standard"));
        assert_eq!(r.locale, "fr_FR.UTF-8");
        assert_eq!(r.users[0].name, "utilisateur");
        // The default gives a working login: the shared account opens itself.
        assert!(r.users[0].autologin && !r.users[0].admin);
    }

    #[test]
    fn login_help_says_how_the_staff_log_in() {
        let r = Rules::parse(DEFAULT_RULES).unwrap();
        assert_eq!(
            r.login_help(),
            "On an installed PC, the desktop of \"Utilisateur\" opens by itself at power-on; \
             after a log-out, click \"Utilisateur\" on the login screen (no password)."
        );
        let more = DEFAULT_RULES.replace("autologin = true", "autologin = false")
            + "[[user]]\nname = \"marie\"\npassword_hash = \"$6$s$h\"\n";
        assert_eq!(
            Rules::parse(&more).unwrap().login_help(),
            "\"marie\" log in with the password set in lazare.toml. \"Utilisateur\" cannot log \
             in: no password_hash and no autologin in lazare.toml."
        );
        let none = DEFAULT_RULES.split("[[user]]").next().unwrap();
        assert!(Rules::parse(none).unwrap().login_help().starts_with("No [[user]]"));
    }

    #[test]
    fn hostname_patterns() {
        let mut r = Rules::parse(DEFAULT_RULES).unwrap();
        assert_eq!(r.hostname_for(7, &"ab".repeat(32)).unwrap(), "pc-007");
        assert_eq!(r.hostname_for(1234, "").unwrap(), "pc-1234");
        r.hostname = "Salle2-{n}-{id}".into();
        assert_eq!(r.hostname_for(5, &"ab".repeat(32)).unwrap(), "salle2-5-abababab");
        r.hostname = "pc-{x}".into();
        assert!(r.hostname_for(1, "").is_err());
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let bad_host = DEFAULT_RULES.replace("pc-{n:03}", "pc_{n}");
        let e = format!("{:#}", Rules::parse(&bad_host).unwrap_err());
        assert!(e.contains("not a valid host name"), "{e}");
        let typo = DEFAULT_RULES.replace("ram_below_mib", "ram_below");
        assert!(Rules::parse(&typo).is_err());
        let two = format!("{DEFAULT_RULES}\n[[user]]\nname = \"salle\"\nautologin = true\n");
        let e = format!("{:#}", Rules::parse(&two).unwrap_err());
        assert!(e.contains("several users have autologin = true (utilisateur, salle)"), "{e}");
        assert_eq!(Rules::parse(DEFAULT_RULES).unwrap().orders_every_secs, 900);
        let often = DEFAULT_RULES.replace("orders_every_secs = 900", "orders_every_secs = 10");
        let e = format!("{:#}", Rules::parse(&often).unwrap_err());
        assert!(e.contains("orders_every_secs = 10: at least 30"), "{e}");
    }
}
