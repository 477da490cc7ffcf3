//! Builders for tests in this crate and the crates that use it (feature
//! `testing`), so each fixture is written once.

use crate::{
    hex, DiskPolicy, ImageFormat, ImageManifest, ImageRef, PlanTemplate, Setup,
    DEFAULT_ORDERS_EVERY_SECS, TEMPLATE_KIND,
};
use sha2::{Digest, Sha256};

/// The manifest of a tar.zst `file` holding `bytes`, profile `name`, as
/// `lazare image build` writes it before `image add` (no chunk index, no
/// tools, no torrent), with C.UTF-8 defaults.
pub fn manifest(name: &str, file: &str, bytes: &[u8]) -> ImageManifest {
    ImageManifest {
        name: name.into(),
        file: file.into(),
        sha256: hex(&Sha256::digest(bytes)),
        size: bytes.len() as u64,
        format: ImageFormat::TarZst,
        installed_size: 0,
        suite: "bookworm".into(),
        locale: "C.UTF-8".into(),
        keymap: "us".into(),
        timezone: "UTC".into(),
        created: 0,
        chunks: None,
        tools: None,
        torrent: None,
    }
}

/// A plan template for an image `url` of `size` bytes: French desktop
/// defaults, no users, no countdown.
pub fn template(url: &str, size: u64) -> PlanTemplate {
    PlanTemplate {
        kind: TEMPLATE_KIND.into(),
        hostname_prefix: "pc-".into(),
        setup: Setup {
            image: ImageRef {
                name: "test".into(),
                url: url.into(),
                sha256: "a".repeat(64),
                size,
                format: ImageFormat::TarZst,
                chunks: "b".repeat(64),
                tools: None,
                torrent: None,
            },
            disks: DiskPolicy::default(),
            locale: "fr_FR.UTF-8".into(),
            keymap: "fr".into(),
            timezone: "Europe/Paris".into(),
            users: vec![],
            reinstall_entry: true,
            countdown_secs: 0,
            orders_every_secs: DEFAULT_ORDERS_EVERY_SECS,
            room: None,
        },
        created: 1,
    }
}
