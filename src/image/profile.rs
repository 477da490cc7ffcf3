//! Image profiles: plain TOML files in `profiles/` (built into the binary, or
//! read from `--profiles DIR`), plus the mmdebstrap hook every image runs.

use anyhow::{bail, Context, Result};
use lazare_proto::hex;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The profiles shipped with lazare, as written in `profiles/`.
const BUILTIN: &[(&str, &str)] = &[
    ("standard", include_str!("../../profiles/standard.toml")),
    ("light", include_str!("../../profiles/light.toml")),
    ("test", include_str!("../../profiles/test.toml")),
];
const BUILTIN_BASE: &str = include_str!("../../profiles/base.toml");
const BUILTIN_HOOK: &str = include_str!("../../profiles/hooks/customize.sh");

/// Names of the built-in profiles, in the order `--all` builds them.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

/// One profile file (`profiles/NAME.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    #[serde(default)]
    pub description: String,
    pub suite: String,
    /// mmdebstrap variant: `minbase`, `apt`, `important`...
    pub variant: String,
    #[serde(default = "main_component")]
    pub components: Vec<String>,
    /// `networkmanager` or `networkd`.
    pub network: String,
    pub locale: String,
    pub keymap: String,
    pub timezone: String,
    #[serde(default)]
    pub packages: Vec<String>,
    /// Install Recommends (off by default: lists say exactly what is in).
    #[serde(default)]
    pub recommends: bool,
    #[serde(default)]
    pub disable: Vec<String>,
    /// Extra mmdebstrap MIRROR arguments (e.g. a local mirror); none means
    /// mmdebstrap's default Debian mirror plus updates and security.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// dpkg path-exclude globs (e.g. `/usr/share/man/*`): smaller images.
    #[serde(default)]
    pub dpkg_exclude: Vec<String>,
    /// dpkg path-include globs, applied after the excludes.
    #[serde(default)]
    pub dpkg_include: Vec<String>,
    /// zstd level for the tarball (the image is built once, unpacked often).
    #[serde(default = "default_level")]
    pub zstd_level: i32,
}

fn main_component() -> Vec<String> {
    vec!["main".into()]
}

fn default_level() -> i32 {
    12
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaseFile {
    packages: Vec<String>,
}

/// A profile ready to build: the file, the shared base and hook, and the
/// user's overrides.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub file: ProfileFile,
    /// base.toml packages followed by the profile's.
    pub packages: Vec<String>,
    pub hook: String,
    /// sha256 of everything that shapes the image, hex.
    pub hash: String,
}

/// What the user may change on the command line without editing a file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub locale: Option<String>,
    pub keymap: Option<String>,
    pub timezone: Option<String>,
    pub suite: Option<String>,
}

/// Loads profile `name` from `dir` (or the built-in set when `dir` is None),
/// applies `ov`, and hashes the result.
pub fn load(name: &str, dir: Option<&Path>, ov: &Overrides) -> Result<Profile> {
    let (text, base, hook) = match dir {
        Some(d) => (
            read(&d.join(format!("{name}.toml")))?,
            read(&d.join("base.toml"))?,
            read(&d.join("hooks/customize.sh"))?,
        ),
        None => {
            let Some((_, t)) = BUILTIN.iter().find(|(n, _)| *n == name) else {
                bail!(
                    "no built-in profile {name:?} (built-in: {}; or pass --profiles DIR)",
                    builtin_names().join(", ")
                );
            };
            (t.to_string(), BUILTIN_BASE.to_string(), BUILTIN_HOOK.to_string())
        }
    };
    let mut file: ProfileFile =
        toml::from_str(&text).with_context(|| format!("parsing profile {name:?}"))?;
    let base: BaseFile = toml::from_str(&base).context("parsing base.toml")?;
    apply(&mut file, ov);
    check(name, &file)?;
    let mut packages = base.packages;
    packages.extend(file.packages.iter().cloned());
    let hash = hash_of(&[
        "lazare-image-v1",
        name,
        &text,
        &packages.join(","),
        &hook,
        super::tools::HOOK,
        &file.suite,
        &file.locale,
        &file.keymap,
        &file.timezone,
    ]);
    Ok(Profile { name: name.into(), file, packages, hook, hash })
}

fn read(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
}

fn apply(f: &mut ProfileFile, ov: &Overrides) {
    let set = |dst: &mut String, v: &Option<String>| {
        if let Some(v) = v {
            dst.clone_from(v);
        }
    };
    set(&mut f.locale, &ov.locale);
    set(&mut f.keymap, &ov.keymap);
    set(&mut f.timezone, &ov.timezone);
    set(&mut f.suite, &ov.suite);
}

/// Rejects values that would end up in a shell hook or a file name.
fn check(name: &str, f: &ProfileFile) -> Result<()> {
    let plain = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+/@".contains(&b))
    };
    if !plain(name) || name.contains('/') {
        bail!("profile name {name:?} must be letters, digits, '.', '_', '-'");
    }
    for (what, v) in [
        ("suite", &f.suite),
        ("variant", &f.variant),
        ("locale", &f.locale),
        ("keymap", &f.keymap),
        ("timezone", &f.timezone),
        ("network", &f.network),
    ] {
        if !plain(v) {
            bail!("profile {name:?}: {what} {v:?} has characters lazare does not accept");
        }
    }
    if !["networkmanager", "networkd"].contains(&f.network.as_str()) {
        bail!("profile {name:?}: network must be networkmanager or networkd, not {:?}", f.network);
    }
    if let Some(p) = f
        .dpkg_exclude
        .iter()
        .chain(&f.dpkg_include)
        .find(|p| !p.starts_with('/') || p.contains(char::is_whitespace))
    {
        bail!("profile {name:?}: dpkg path glob {p:?} must be an absolute glob without spaces");
    }
    if let Some(p) = f.packages.iter().chain(&f.disable).find(|p| !plain(p)) {
        bail!("profile {name:?}: {p:?} is not a package or unit name");
    }
    Ok(())
}

fn hash_of(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed so ("ab","c") and ("a","bc") differ.
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_parses() {
        for n in builtin_names() {
            let p = load(n, None, &Overrides::default()).unwrap();
            assert!(p.packages.iter().any(|p| p == "linux-image-amd64"), "{n}");
            assert!(p.packages.iter().any(|p| p == "grub-efi-amd64-bin"), "{n}");
            assert_eq!(p.file.suite, "bookworm");
        }
    }

    /// A volunteer trimming an image for a small disk reads why each
    /// package is there on its own line (`"name",  # reason`).
    #[test]
    fn every_package_says_why_it_is_there() {
        let files = BUILTIN.iter().copied().chain([("base", BUILTIN_BASE)]);
        for (name, text) in files {
            let parsed: toml::Value = toml::from_str(text).unwrap();
            let count = parsed["packages"].as_array().unwrap().len();
            let list = text.split_once("\npackages = [").unwrap().1;
            let list = if list.starts_with(']') { "" } else { &list[..list.find("\n]").unwrap()] };
            let lines: Vec<&str> = list.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            assert_eq!(lines.len(), count, "{name}.toml: one package per line");
            for line in lines {
                let reason = line.split_once("\",  # ").map(|(_, r)| r.trim());
                assert!(
                    line.starts_with('"') && reason.is_some_and(|r| !r.is_empty()),
                    "{name}.toml: {line:?} does not say why it is there"
                );
            }
        }
    }

    #[test]
    fn overrides_change_the_hash() {
        let a = load("test", None, &Overrides::default()).unwrap();
        let ov = Overrides { locale: Some("de_DE.UTF-8".into()), ..Default::default() };
        let b = load("test", None, &ov).unwrap();
        assert_eq!(b.file.locale, "de_DE.UTF-8");
        assert_ne!(a.hash, b.hash);
        assert_eq!(a.hash, load("test", None, &Overrides::default()).unwrap().hash);
    }

    #[test]
    fn shell_metacharacters_are_refused() {
        let ov = Overrides { timezone: Some("x; rm -rf /".into()), ..Default::default() };
        let e = load("test", None, &ov).unwrap_err();
        assert!(format!("{e:#}").contains("timezone"), "{e:#}");
        assert!(load("nope", None, &Overrides::default()).is_err());
    }
}
