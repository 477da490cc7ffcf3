//! What the server answers to a hello: the plan for one machine.

use serde::{Deserialize, Serialize};

/// The signed answer to `POST /api/v1/hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub machine_id: String,
    pub hostname: String,
    pub action: Action,
    /// What the rules give every machine; its fields sit at the top level
    /// of the JSON, beside these.
    #[serde(flatten)]
    pub setup: Setup,
    /// Server nonce: fresh per answer, so a recorded plan is recognisable
    /// and the agent can credit it as entropy.
    #[serde(default)]
    pub nonce: String,
    /// The agent's challenge from its hello, echoed: a plan recorded for
    /// another hello is refused (see `CHALLENGE_HEADER`).
    #[serde(default)]
    pub challenge: String,
    /// Seconds the plan is valid after the hello was sent (agent's clock).
    #[serde(default)]
    pub valid_secs: u32,
}

/// The part of a plan that does not depend on the machine: what the
/// server's rules give every PC they match, and what an offline plan
/// template ([`crate::PlanTemplate`]) carries for any PC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    pub image: ImageRef,
    pub disks: DiskPolicy,
    pub locale: String,
    pub keymap: String,
    pub timezone: String,
    #[serde(default)]
    pub users: Vec<User>,
    /// Add the "Reinstall from server" boot entry to the installed system.
    #[serde(default = "yes")]
    pub reinstall_entry: bool,
    /// Seconds the agent shows the disk plan before writing (0 for labs).
    #[serde(default = "default_countdown")]
    pub countdown_secs: u32,
    /// Seconds between the installed system's asks for orders
    /// (`lazare-next.timer`), besides the one at each boot.
    #[serde(default = "default_orders_every")]
    pub orders_every_secs: u32,
    /// How this PC shares the image with the others installing with it.
    /// `None`: it downloads from the server alone (offline templates, a
    /// server without its tracker or engine, an image without a torrent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<Room>,
}

/// The room (issue 15): the PCs installing at the same time fetch image
/// pieces from each other with BitTorrent, each piece checked (SHA-1 by the
/// engine, then sha256 against the signed chunk index by the agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// The server's tracker port (plain HTTP, on the server's address).
    pub tracker_port: u16,
    /// The sharing engine `lazare-share`, a static executable served
    /// zstd-compressed at [`ENGINE_PATH`] (the pin is the compressed
    /// file's); not on the CD (it does not fit).
    pub engine: Pinned,
}

/// The room's torrent file name is the image's and this.
pub const TORRENT_SUFFIX: &str = ".torrent";

/// Where the server serves the room's engine, zstd-compressed: 8 MB as
/// it is, ~3 MB so, fetched by every PC of the room.
pub const ENGINE_PATH: &str = "/images/lazare-share.zst";

fn yes() -> bool {
    true
}

fn default_countdown() -> u32 {
    10
}

/// 15 minutes: a PC left on picks up a reinstall order within a quarter of
/// an hour, and a room of 30 PCs asks the server twice a minute.
pub const DEFAULT_ORDERS_EVERY_SECS: u32 = 900;

pub(crate) fn default_orders_every() -> u32 {
    DEFAULT_ORDERS_EVERY_SECS
}

/// The shortest period a plan may set: below it a room of PCs asks the
/// server faster than a failed ask gives up (lazare-next's own retries).
pub const MIN_ORDERS_EVERY_SECS: u32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Partition, install the image, reboot.
    Install,
    /// Nothing to do: report and power off.
    Inventory,
    /// Wait and ask again later (the admin has not approved this machine).
    Wait,
    /// The PC is installed and its disk still holds that system (a CD or
    /// stick was left in): write nothing, start the installed system.
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// Profile name (`standard`, `light`, `test`).
    pub name: String,
    /// Absolute URL or a path relative to the server base URL (`/images/x.tar.zst`).
    pub url: String,
    /// Lowercase hex sha256 of the compressed file.
    pub sha256: String,
    /// Size of the compressed file in bytes.
    pub size: u64,
    pub format: ImageFormat,
    /// Lowercase hex sha256 of the image's chunk index
    /// ([`crate::ChunkIndex::hash`]), served at `url` + `.chunks`: the agent
    /// checks every chunk against it before unpacking a byte of it.
    pub chunks: String,
    /// The image's own install tools, served at `url` + [`TOOLS_SUFFIX`]:
    /// what the agent runs to make the target's filesystems before the
    /// image is there (the image's own `mke2fs`, its `/etc/mke2fs.conf`, and
    /// their dynamic loader and libraries, as a zstd-compressed tar). The CD
    /// need not carry a mke2fs with a C library (1.2 MB of its initramfs),
    /// and the filesystems are made by the e2fsprogs of the system that will
    /// check and mount them. `None` for an image built by a lazare before
    /// them: the agent then needs a mke2fs of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Pinned>,
    /// The info hash (lowercase hex SHA-1, BitTorrent v1) of the image's
    /// torrent, served at `url` + `.torrent`: the PCs of a room share the
    /// image by it. `None`: fetch from `url` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torrent: Option<String>,
}

/// A file the agent fetches from the server and runs or unpacks: pinned by
/// the signed plan, checked before use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinned {
    /// Lowercase hex sha256 of the file; the agent checks it before use.
    pub sha256: String,
    /// Its size in bytes: the agent reads no more.
    pub size: u64,
}

/// The install tools' file name is the image's and this.
pub const TOOLS_SUFFIX: &str = ".tools";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageFormat {
    #[serde(rename = "tar.gz")]
    TarGz,
    #[serde(rename = "tar.zst")]
    TarZst,
}

impl ImageFormat {
    /// Guess from a file name's extension.
    pub fn from_file_name(name: &str) -> Option<Self> {
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(Self::TarGz)
        } else if name.ends_with(".tar.zst") {
            Some(Self::TarZst)
        } else {
            None
        }
    }
}

/// How the agent may lay out the disks (the input of disk planning next to
/// the inventory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskPolicy {
    /// Smallest root filesystem the image needs, in bytes.
    pub root_min: u64,
    #[serde(default)]
    pub home: HomePolicy,
    #[serde(default)]
    pub swap: SwapPolicy,
    #[serde(default)]
    pub table: TablePreference,
    /// Disk names never to touch (besides removable media and the boot device,
    /// which are never touched anyway).
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl Default for DiskPolicy {
    fn default() -> Self {
        DiskPolicy {
            root_min: 3 * crate::GIB,
            home: HomePolicy::default(),
            swap: SwapPolicy::default(),
            table: TablePreference::default(),
            exclude: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HomePolicy {
    /// Keep an existing /home partition byte-for-byte; make one if none exists.
    #[default]
    Preserve,
    /// Wipe everything, /home included.
    Fresh,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "bytes")]
pub enum SwapPolicy {
    /// Sized from RAM.
    #[default]
    Auto,
    None,
    Fixed(u64),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TablePreference {
    /// GPT on UEFI; MBR on BIOS for disks up to 2 TiB (old BIOSes choke on GPT).
    #[default]
    Auto,
    Gpt,
    Mbr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub full_name: String,
    /// crypt(3) hash as in /etc/shadow; `None` locks the password.
    pub password_hash: Option<String>,
    #[serde(default)]
    pub admin: bool,
    /// A shared public PC's account: the desktop opens it at power-on with
    /// no password (LightDM autologin), and the login screen opens it
    /// without one after a log-out. At most one user of a plan has it.
    #[serde(default)]
    pub autologin: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    #[error("the plan is for machine {got}, not this one ({want})")]
    WrongMachine { want: String, got: String },
    #[error("the plan's image sha256 (or chunk index sha256) {0:?} is not 64 hex characters")]
    BadSha256(String),
    #[error("the plan's hostname {0:?} is not a valid host name")]
    BadHostname(String),
    #[error("the plan's user name {0:?} is not a valid user name")]
    BadUser(String),
    #[error("the plan asks for orders every {0} s, under the {MIN_ORDERS_EVERY_SECS} s minimum")]
    OrdersTooOften(u32),
}

impl Plan {
    /// Checks a (signature-verified) plan before anything acts on it.
    pub fn validate_for(&self, machine_id: &str) -> Result<(), PlanError> {
        if self.machine_id != machine_id {
            return Err(PlanError::WrongMachine {
                want: machine_id.into(),
                got: self.machine_id.clone(),
            });
        }
        for sha in [&self.setup.image.sha256, &self.setup.image.chunks] {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(PlanError::BadSha256(sha.clone()));
            }
        }
        if !valid_hostname(&self.hostname) {
            return Err(PlanError::BadHostname(self.hostname.clone()));
        }
        if let Some(u) = self.setup.users.iter().find(|u| !valid_user_name(&u.name)) {
            return Err(PlanError::BadUser(u.name.clone()));
        }
        if self.setup.orders_every_secs < MIN_ORDERS_EVERY_SECS {
            return Err(PlanError::OrdersTooOften(self.setup.orders_every_secs));
        }
        Ok(())
    }
}

/// A Linux user name as Debian's adduser accepts it by default: starts with
/// a lowercase letter or `_`, then lowercase letters, digits, `_` or `-`.
pub fn valid_user_name(name: &str) -> bool {
    name.len() <= 32
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// RFC 1123 host name label(s).
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The machine-independent part is one type in Rust but not in the
    /// signed JSON: its fields stay beside machine_id, as agents expect.
    #[test]
    fn a_plan_is_flat_json() {
        let plan = Plan {
            machine_id: "m".into(),
            hostname: "pc-1".into(),
            action: Action::Install,
            setup: crate::testing::template("/images/t.tar.zst", 5).setup,
            nonce: "n".into(),
            challenge: "c".into(),
            valid_secs: 60,
        };
        let v = serde_json::to_value(&plan).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in ["machine_id", "image", "disks", "locale", "users", "countdown_secs", "nonce"] {
            assert!(keys.contains(&k), "{k} not at the top: {keys:?}");
        }
        assert!(!keys.contains(&"setup"));
        let back: Plan = serde_json::from_value(v).unwrap();
        assert_eq!(back, plan);
        // Defaults of the flattened part still apply to a terse plan.
        let mut terse = serde_json::to_value(&plan).unwrap();
        let o = terse.as_object_mut().unwrap();
        o.remove("users");
        o.remove("reinstall_entry");
        o.remove("countdown_secs");
        let p: Plan = serde_json::from_value(terse).unwrap();
        assert_eq!(
            (p.setup.users.len(), p.setup.reinstall_entry, p.setup.countdown_secs),
            (0, true, 10)
        );
    }

    #[test]
    fn policy_json_shape() {
        let p: DiskPolicy =
            serde_json::from_str(r#"{"root_min": 1000, "swap": {"kind": "fixed", "bytes": 5}}"#)
                .unwrap();
        assert_eq!(p.swap, SwapPolicy::Fixed(5));
        assert_eq!(p.home, HomePolicy::Preserve);
        let s = serde_json::to_string(&SwapPolicy::Auto).unwrap();
        assert_eq!(s, r#"{"kind":"auto"}"#);
    }

    #[test]
    fn image_format_names() {
        assert_eq!(serde_json::to_string(&ImageFormat::TarZst).unwrap(), r#""tar.zst""#);
        assert_eq!(ImageFormat::from_file_name("x.tar.gz"), Some(ImageFormat::TarGz));
        assert_eq!(ImageFormat::from_file_name("x.iso"), None);
    }

    #[test]
    fn hostnames() {
        assert!(valid_hostname("pc-042"));
        assert!(!valid_hostname("-pc"));
        assert!(!valid_hostname("pc_1"));
        assert!(!valid_hostname(""));
    }
}

/// `<image>.json` written by `lazare image build` beside the compressed
/// tarball; `lazare image add` copies both into the server's data dir, and
/// the server builds [`ImageRef`]s from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    /// Profile name: `standard`, `light`, `test`.
    pub name: String,
    /// File name of the tarball, in the same directory as the manifest.
    pub file: String,
    pub sha256: String,
    /// Compressed size in bytes.
    pub size: u64,
    pub format: ImageFormat,
    /// Bytes the unpacked tree occupies (the root filesystem must be larger).
    pub installed_size: u64,
    /// Debian suite the image was built from.
    pub suite: String,
    /// Default locale/keymap/timezone baked into the profile.
    pub locale: String,
    pub keymap: String,
    pub timezone: String,
    /// Unix time of the build (SOURCE_DATE_EPOCH when set).
    pub created: u64,
    /// sha256 of the chunk index `<file>.chunks` beside the tarball
    /// ([`crate::ChunkIndex::hash`]). `None` in manifests written by a
    /// lazare before chunk indexes: `lazare serve` makes the index at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<String>,
    /// The install tools `<file>.tools` beside the tarball. `None` in
    /// manifests written by a lazare before them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Pinned>,
    /// Info hash of the room's torrent `<file>.torrent` beside the tarball,
    /// made by `image add` (or `lazare serve` at start) on a server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torrent: Option<String>,
}
