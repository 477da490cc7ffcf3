//! The configuration `lazare build` bakes into the initramfs: a kernel
//! command line (the live `/proc/cmdline` wins over it key by key) and,
//! optionally, the server's public key. Written and read through this one
//! type, so the file names and their format live in one place.

use kernel_cmdline::Cmdline;
use lazare_proto::{PublicKey, SignError};

use crate::paths::{BAKED_CMDLINE, BAKED_KEY};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BakedConfig {
    pub cmdline: Cmdline,
    /// Plans must carry this key's signature (see the agent's verify step).
    pub key: Option<PublicKey>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BakedError {
    #[error("{BAKED_KEY}: {0}")]
    Key(#[from] SignError),
}

impl BakedConfig {
    /// The files to put into the initramfs: (absolute path, contents).
    pub fn files(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut files = vec![(BAKED_CMDLINE, format!("{}\n", self.cmdline).into_bytes())];
        if let Some(key) = &self.key {
            files.push((BAKED_KEY, format!("{key}\n").into_bytes()));
        }
        files
    }

    /// From the files' texts as read from the initramfs; `None` for a file
    /// that is absent (an empty command line, no key).
    pub fn parse(cmdline: Option<&str>, key: Option<&str>) -> Result<BakedConfig, BakedError> {
        Ok(BakedConfig {
            cmdline: cmdline.map(Cmdline::parse).unwrap_or_default(),
            key: key.map(|k| k.trim().parse()).transpose()?,
        })
    }
}
