//! The server's data directory: signing key, admin token, rules file,
//! database and images, each a plain file a volunteer can back up.

use anyhow::{bail, Context, Result};
use lazare_proto::SigningKey;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// 32 raw secret bytes, mode 0600.
pub const KEY_FILE: &str = "server.key";
/// `ed25519:BASE64`, what `lazare build --key` takes.
pub const PUB_FILE: &str = "server.pub";
/// The admin token (hex), mode 0600.
pub const TOKEN_FILE: &str = "admin-token";
pub const RULES_FILE: &str = "lazare.toml";
pub const DB_FILE: &str = "lazare.db";
pub const IMAGES_DIR: &str = "images";

/// Paths inside one data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: &Path) -> Self {
        DataDir { root: root.to_path_buf() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn images(&self) -> PathBuf {
        self.path(IMAGES_DIR)
    }

    /// Creates the directory and its images folder if needed.
    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(self.images())
            .with_context(|| format!("creating data directory {}", self.images().display()))
    }

    /// Loads the signing key, or says how to create it (never creates one:
    /// a mistyped `--data` must not silently yield a key no CD knows).
    pub fn load_key(&self) -> Result<SigningKey> {
        let path = self.path(KEY_FILE);
        if !path.exists() {
            bail!(
                "no server key in {}: start `lazare serve --data {}` once to create it",
                self.root.display(),
                self.root.display()
            );
        }
        warn_if_readable_by_others(&path);
        let raw = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let secret: [u8; 32] = raw.try_into().map_err(|v: Vec<u8>| {
            anyhow::anyhow!("{} holds {} bytes, expected 32", path.display(), v.len())
        })?;
        Ok(SigningKey::from_bytes(&secret))
    }

    /// Loads the key, creating it on first start. Returns whether it is new.
    pub fn load_or_create_key(&self) -> Result<(SigningKey, bool)> {
        let created = if self.path(KEY_FILE).exists() {
            false
        } else if let Some(found) = [DB_FILE, TOKEN_FILE].iter().find(|f| self.path(f).exists()) {
            // A lost key or a mistyped --data: a new key would silently
            // orphan every CD built so far.
            bail!(
                "no signing key ({KEY_FILE}) in {}, but it holds {found}: every CD built so far \
                 trusts the old key. Restore {KEY_FILE} from a backup; or, to start over with a \
                 new key (every CD must be rebuilt), move {DB_FILE} and {TOKEN_FILE} away first",
                self.root.display()
            );
        } else {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret)
                .map_err(|e| anyhow::anyhow!("drawing the key from the OS random source: {e}"))?;
            write_private(&self.path(KEY_FILE), &secret)?;
            true
        };
        let key = self.load_key()?;
        // Rewritten every start so it always matches the secret.
        let public = format!("{}\n", key.public());
        write_atomic(&self.path(PUB_FILE), public.as_bytes(), 0o644)?;
        Ok((key, created))
    }

    /// Replaces the admin token with a new random one and returns it. Logged-in
    /// browsers and scripts with the old token are refused from now on.
    pub fn rotate_token(&self) -> Result<String> {
        if !self.path(KEY_FILE).exists() {
            bail!("{} is not a lazare data directory (no {KEY_FILE})", self.root.display());
        }
        let token = new_token()?;
        write_private(&self.path(TOKEN_FILE), format!("{token}\n").as_bytes())?;
        Ok(token)
    }

    /// Loads the admin token, creating it on first start. Returns whether it is new.
    pub fn load_or_create_token(&self) -> Result<(String, bool)> {
        let path = self.path(TOKEN_FILE);
        if path.exists() {
            warn_if_readable_by_others(&path);
            let token = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let token = token.trim().to_string();
            if token.len() < 16 {
                bail!("the admin token in {} is shorter than 16 characters", path.display());
            }
            return Ok((token, false));
        }
        let token = new_token()?;
        write_private(&path, format!("{token}\n").as_bytes())?;
        Ok((token, true))
    }
}

fn new_token() -> Result<String> {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw)
        .map_err(|e| anyhow::anyhow!("drawing the admin token from the OS random source: {e}"))?;
    Ok(lazare_proto::hex(&raw))
}

/// Hash used to compare tokens without a byte-by-byte early exit on the secret.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes, 0o600)
}

/// Temp file + rename, so a crash never leaves a half-written key.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    // The mode given to open() only applies to new files.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", tmp.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "lazare: warning: {} is readable by other users; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_token_are_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::new(dir.path());
        d.create().unwrap();
        let (k1, new1) = d.load_or_create_key().unwrap();
        let (k2, new2) = d.load_or_create_key().unwrap();
        assert!(new1 && !new2);
        assert_eq!(k1.to_bytes(), k2.to_bytes());
        let mode = std::fs::metadata(d.path(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (t1, n1) = d.load_or_create_token().unwrap();
        let (t2, n2) = d.load_or_create_token().unwrap();
        assert!(n1 && !n2);
        assert_eq!(t1, t2);
        assert_eq!(t1.len(), 48);
        let public = std::fs::read_to_string(d.path(PUB_FILE)).unwrap();
        assert_eq!(public.trim(), k1.public().to_string());
    }

    #[test]
    fn a_lost_key_beside_existing_data_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::new(dir.path());
        d.create().unwrap();
        d.load_or_create_key().unwrap();
        d.load_or_create_token().unwrap();
        let old = d.rotate_token().unwrap();
        assert_eq!(std::fs::read_to_string(d.path(TOKEN_FILE)).unwrap().trim(), old);
        std::fs::remove_file(d.path(KEY_FILE)).unwrap();
        let Err(err) = d.load_or_create_key() else { panic!("a new key was made") };
        let err = format!("{err:#}");
        assert!(err.contains("Restore server.key"), "{err}");
        assert!(!d.path(KEY_FILE).exists());
    }

    #[test]
    fn missing_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let Err(err) = DataDir::new(dir.path()).load_key() else { panic!("a key appeared") };
        assert!(format!("{err:#}").contains("lazare serve --data"));
        assert!(!dir.path().join(KEY_FILE).exists());
    }
}
