//! The TLS roots librqbit's HTTP client is built with.
//!
//! librqbit builds a reqwest client for its trackers when the session
//! starts, and reqwest's rustls verifier refuses to be built without a CA
//! root from the system: on the PC, whose root is the agent's initramfs
//! (no /etc/ssl), the engine died at start. The engine speaks only plain
//! HTTP (trackers are http:// IP literals, see swarm.rs), so it is given
//! one root of its own, made for this with its private key discarded: it
//! trusts no TLS server at all, on the PC and on the server alike. The
//! client reads the file once, when the session starts; it is removed then.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// A self-signed P-256 certificate; its key was never written anywhere.
const NO_TLS_ROOT: &str = include_str!("no_tls_root.pem");

pub struct Roots(Option<PathBuf>);

impl Roots {
    pub fn none() -> Roots {
        Roots(None)
    }

    /// Writes the root into `dir` and points the client at it
    /// (`SSL_CERT_FILE`, which rustls-native-certs reads instead of the
    /// system's). Must run before any other thread exists.
    pub fn install(dir: &Path) -> anyhow::Result<Roots> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!(".lazare-share-{}.pem", std::process::id()));
        std::fs::write(&path, NO_TLS_ROOT)
            .with_context(|| format!("writing {}", path.display()))?;
        std::env::set_var("SSL_CERT_FILE", &path);
        std::env::remove_var("SSL_CERT_DIR");
        Ok(Roots(Some(path)))
    }

    /// Once the session (and so its HTTP client) is built.
    pub fn remove(self) {
        if let Some(p) = self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
