//! `lazare/build.json` on the ISO: what `lazare build` made it from,
//! written by the build and read back by `lazare inspect` through this one
//! type.

use kernel_cmdline::Server;
use lazare_proto::PublicKey;
use serde::{Deserialize, Serialize};

use crate::epoch::SourceDateEpoch;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub lazare_version: String,
    pub server: Server,
    /// The install entry's kernel command line (the baked one).
    pub cmdline: String,
    pub entries: Vec<EntryInfo>,
    pub key: Option<PublicKey>,
    pub kernel_release: String,
    pub label: String,
    pub source_date_epoch: SourceDateEpoch,
    pub serial: bool,
    pub efi_loader: super::EfiLoaderKind,
    /// `/.disk/lazare-<hash>`, the path GRUB searches for this ISO.
    pub marker: String,
    /// Kernel modules carried, `_` spelling.
    pub modules: Vec<String>,
    pub agent: AgentInfo,
}

/// One boot menu entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    pub id: String,
    pub title: String,
    pub cmdline: String,
}

/// The agent that became `/init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// `embedded` or `file` (not the path: the ISO must not depend on it).
    pub origin: String,
    pub bytes: u64,
    pub sha256: String,
}

impl BuildInfo {
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    pub fn from_json(data: &[u8]) -> Result<BuildInfo, serde_json::Error> {
        serde_json::from_slice(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_json_reads_back() {
        let info = BuildInfo {
            lazare_version: "0.1.0".into(),
            server: "http://10.0.2.2:8470/lazare".parse().unwrap(),
            cmdline: "lazare.server=http://10.0.2.2:8470/lazare console=tty0".into(),
            entries: vec![EntryInfo {
                id: "install".into(),
                title: "Install".into(),
                cmdline: "x".into(),
            }],
            key: Some(lazare_proto::SigningKey::from_bytes(&[2; 32]).public()),
            kernel_release: "6.1.0-57-amd64".into(),
            label: "LAZARE".into(),
            source_date_epoch: SourceDateEpoch(1_700_000_000),
            serial: true,
            efi_loader: super::super::EfiLoaderKind::Signed,
            marker: "/.disk/lazare-0011223344556677".into(),
            modules: vec!["e1000".into()],
            agent: AgentInfo { origin: "embedded".into(), bytes: 6_000_000, sha256: "ab".into() },
        };
        let json = info.to_json();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["efi_loader"], "signed");
        assert_eq!(v["source_date_epoch"], 1_700_000_000);
        assert_eq!(v["agent"]["origin"], "embedded");
        assert_eq!(BuildInfo::from_json(&json).unwrap(), info);
    }
}
