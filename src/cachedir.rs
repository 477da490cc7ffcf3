//! Where lazare keeps what it can make again but would rather not: built
//! images and compressed initramfs parts.

use std::path::PathBuf;

/// `$XDG_CACHE_HOME/lazare/<kind>`, else `~/.cache/lazare/<kind>`; `None`
/// when neither variable is set.
pub fn cache_dir(kind: &str) -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(base.join("lazare").join(kind))
}
