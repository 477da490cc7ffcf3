//! Build settings: command-line flags over an optional TOML config file,
//! checked once, before anything is written.

use super::agent::Agent;
use crate::epoch::SourceDateEpoch;
use anyhow::{Context, Result};
use kernel_cmdline::{Cmdline, IpConfig, Server};
use std::path::{Path, PathBuf};

/// `--efi-loader`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EfiLoaderKind {
    /// Debian's signed shim + GRUB: boots with Secure Boot on.
    Signed,
    /// grub-mkstandalone: only for firmware without Secure Boot.
    Unsigned,
}

/// The TOML config file: the same settings as the flags (flags win).
///
/// ```toml
/// server = "http://10.0.0.5:8470"
/// ip = ["dhcp"]
/// key = "server.pub"
/// timeout = 3
/// lang = "fr"
/// ```
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub server: Option<Server>,
    pub output: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    pub modules_dir: Option<PathBuf>,
    #[serde(default)]
    pub ip: Vec<String>,
    pub cmdline: Option<String>,
    pub key: Option<PathBuf>,
    pub insecure: Option<bool>,
    pub label: Option<String>,
    pub timeout: Option<u32>,
    pub serial: Option<bool>,
    pub lilo: Option<PathBuf>,
    pub efi_loader: Option<EfiLoaderKind>,
    pub agent: Option<PathBuf>,
    pub lang: Option<String>,
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut cfg: ConfigFile =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        // Relative paths in the file are relative to the file.
        let base = path.parent().unwrap_or(Path::new("."));
        let paths = [&mut cfg.output, &mut cfg.kernel, &mut cfg.modules_dir, &mut cfg.key];
        for p in paths.into_iter().chain([&mut cfg.lilo, &mut cfg.agent]).flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }
}

/// Checked settings of one build.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: Server,
    pub output: PathBuf,
    pub kernel: PathBuf,
    pub modules_dir: PathBuf,
    pub kernel_release: String,
    pub ips: Vec<IpConfig>,
    pub extra: Cmdline,
    pub key: Option<lazare_proto::PublicKey>,
    /// `--insecure`: baked in as `lazare.insecure` (the agent warns in red).
    pub insecure: bool,
    pub label: String,
    pub timeout: u32,
    pub serial: bool,
    pub lilo: Option<PathBuf>,
    pub efi_loader: EfiLoaderKind,
    pub agent: Agent,
    /// SOURCE_DATE_EPOCH, or now.
    pub epoch: SourceDateEpoch,
    /// The boot menus' and the agent's language (`lazare.lang`).
    pub lang: kernel_cmdline::Lang,
    /// `--offline`: the image, its index and the signed plan template.
    pub offline: Option<crate::serve::offline::Bundle>,
}

impl Settings {
    /// The one command line every boot entry starts from, built with the
    /// kernel-cmdline crate: `lazare.server=… ip=… console=tty0
    /// [console=ttyS0,115200] EXTRA`.
    pub fn base_cmdline(&self) -> Result<Cmdline> {
        let mut c = Cmdline::new();
        c.push(kernel_cmdline::KEY_SERVER, Some(&self.server.to_string()))?;
        for ip in &self.ips {
            c.push("ip", Some(&ip.to_string()))?;
        }
        // English is the agent's default: a command line without the key
        // says the same, and stays as short as before.
        if self.lang != kernel_cmdline::Lang::En {
            c.push(kernel_cmdline::KEY_LANG, Some(self.lang.as_str()))?;
        }
        if self.insecure {
            c.push(kernel_cmdline::KEY_INSECURE, None)?;
        }
        for p in lazare_cd::console::cmdline(self.serial).params() {
            c.push(&p.key, p.value.as_deref())?;
        }
        for p in self.extra.params() {
            c.push(&p.key, p.value.as_deref()).context("adding --cmdline")?;
        }
        for p in self.extra.init_args() {
            c.push_init_arg(&p.key, p.value.as_deref()).context("adding --cmdline")?;
        }
        Ok(c)
    }
}

pub fn parse_ip(s: &str) -> Result<IpConfig> {
    // Accept both `dhcp` and `ip=dhcp`.
    let v = s.strip_prefix("ip=").unwrap_or(s);
    v.parse::<IpConfig>().map_err(|e| anyhow::anyhow!("bad --ip {s:?}: {e}"))
}

/// Read and check a server public key file (`ed25519:BASE64`).
pub fn read_key(path: &Path) -> Result<lazare_proto::PublicKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading key {}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("key {}: {e} (expected ed25519:BASE64)", path.display()))
}

/// The newest `/boot/vmlinuz-*`, by version order.
pub fn newest_kernel(boot: &Path) -> Result<PathBuf> {
    let names: Vec<String> = std::fs::read_dir(boot)
        .with_context(|| format!("listing {}", boot.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let newest = lazare_cd::kernel::newest(names.iter().map(String::as_str));
    newest.map(|n| boot.join(n)).with_context(|| {
        format!(
            "no kernel: {}/vmlinuz-* not found (install linux-image-amd64 or pass --kernel)",
            boot.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_kernel_of_a_boot_dir_is_found_by_version() {
        let boot = tempfile::tempdir().unwrap();
        for n in ["vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-10-amd64", "config-6.1.0-11-amd64"] {
            std::fs::write(boot.path().join(n), b"").unwrap();
        }
        let k = newest_kernel(boot.path()).unwrap();
        assert_eq!(k, boot.path().join("vmlinuz-6.1.0-10-amd64"));
        let empty = tempfile::tempdir().unwrap();
        assert!(newest_kernel(empty.path()).unwrap_err().to_string().contains("linux-image-amd64"));
    }

    #[test]
    fn bad_values_are_named() {
        let e = toml::from_str::<ConfigFile>("server = \"ftp://x\"").unwrap_err().to_string();
        assert!(e.contains("lazare.server=ftp://x: scheme ftp"), "{e}");
        let ok: ConfigFile = toml::from_str("server = \"http://h:1/\"").unwrap();
        assert_eq!(ok.server.unwrap().to_string(), "http://h:1");
        assert!(parse_ip("ip=1.2.3.999::::::none").unwrap_err().to_string().contains("1.2.3.999"));
        assert!(parse_ip("dhcp").is_ok());
    }
}
