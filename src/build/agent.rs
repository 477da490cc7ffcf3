//! The static agent that becomes the CD's `/init`: found on disk or embedded
//! in this executable by build.rs, and checked once, as bytes.

use anyhow::{bail, Context, Result};
use sha2::Digest;
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// The agent build.rs embedded (`LAZARE_EMBED_AGENT`, or its own nested
/// build under `cargo install`); `None` when built with
/// `LAZARE_EMBED_AGENT=none` or as a plain debug build.
#[cfg(lazare_embedded_agent)]
pub const EMBEDDED: Option<&[u8]> = Some(include_bytes!(concat!(env!("OUT_DIR"), "/lazare-agent")));
#[cfg(not(lazare_embedded_agent))]
pub const EMBEDDED: Option<&[u8]> = None;

/// Where the agent came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOrigin {
    /// `--agent`, `$LAZARE_AGENT` or a file found on disk.
    File(PathBuf),
    /// The copy inside this `lazare` executable.
    Embedded,
}

/// The agent's bytes and where they came from.
#[derive(Clone)]
pub struct Agent {
    pub origin: AgentOrigin,
    pub bytes: Cow<'static, [u8]>,
}

impl fmt::Debug for Agent {
    // Not the 6 MB of bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("origin", &self.origin)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl fmt::Display for Agent {
    /// `embedded in lazare 0.1.0 (6.0 MB, sha256 0123456789abcdef)` or
    /// `/path/to/lazare-agent (6.0 MB, sha256 …)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            AgentOrigin::Embedded => write!(f, "embedded in lazare {}", env!("CARGO_PKG_VERSION"))?,
            AgentOrigin::File(p) => write!(f, "{}", p.display())?,
        }
        let mb = self.bytes.len() as f64 / 1e6;
        write!(f, " ({mb:.1} MB, sha256 {})", &self.sha256()[..16])
    }
}

impl Agent {
    /// Read the agent at `path` and check it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let data =
            std::fs::read(path).with_context(|| format!("reading agent {}", path.display()))?;
        check_agent(&data, &path.display().to_string())?;
        Ok(Self { origin: AgentOrigin::File(path.to_path_buf()), bytes: Cow::Owned(data) })
    }

    /// The embedded agent, checked, if this executable carries one.
    pub fn embedded() -> Option<Result<Self>> {
        EMBEDDED.map(|bytes| {
            check_agent(bytes, "embedded in this lazare")?;
            Ok(Self { origin: AgentOrigin::Embedded, bytes: Cow::Borrowed(bytes) })
        })
    }

    pub fn sha256(&self) -> String {
        lazare_proto::hex(&sha2::Sha256::digest(&self.bytes))
    }

    /// `embedded` or `file`: what build.json records (not the path, which
    /// would make the ISO depend on where the agent sat).
    pub fn origin_kind(&self) -> &'static str {
        match self.origin {
            AgentOrigin::Embedded => "embedded",
            AgentOrigin::File(_) => "file",
        }
    }
}

/// `--agent`, else `$LAZARE_AGENT`, else the agent embedded in this
/// executable, else a file beside it, in /usr/lib/lazare, or (for builds
/// without an embedded agent) the checkout's `make agent` output.
///
/// The embedded copy comes before every implicit file: it is the agent built
/// with this very `lazare`, while a file beside the executable may be the
/// dynamic `lazare-agent` of `cargo build --workspace --release`, and
/// /usr/lib/lazare may hold another version's agent.
pub fn find_agent(given: Option<PathBuf>) -> Result<Agent> {
    if let Some(p) = given {
        return Agent::from_file(&p);
    }
    if let Some(p) = std::env::var_os("LAZARE_AGENT") {
        return Agent::from_file(Path::new(&p)).context("LAZARE_AGENT");
    }
    if let Some(embedded) = Agent::embedded() {
        return embedded;
    }
    let candidates = disk_candidates("lazare-agent");
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Agent::from_file(found);
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    bail!(
        "lazare-agent not found: this lazare has no embedded agent (built with \
         LAZARE_EMBED_AGENT=none, or a debug build) and none is in {}; pass --agent PATH, \
         set LAZARE_AGENT, or build one with `make agent`",
        looked.join(", ")
    )
}

/// Where a static companion executable `name` (`lazare-agent`, the room's
/// `lazare-share`) is looked for when nothing is embedded: beside this
/// executable (a tarball that ships it there), the Debian package's place,
/// the checkout's static build relative to the working directory and to the
/// source tree this `lazare` was compiled from.
pub fn disk_candidates(name: &str) -> Vec<PathBuf> {
    let beside = std::env::current_exe().ok().and_then(|e| Some(e.parent()?.join(name)));
    let checkout = format!("target/x86_64-unknown-linux-gnu/agent/{name}");
    beside
        .into_iter()
        .chain([
            Path::new("/usr/lib/lazare").join(name),
            PathBuf::from(&checkout),
            Path::new(env!("CARGO_MANIFEST_DIR")).join(&checkout),
        ])
        .collect()
}

/// The agent must be a static ELF executable: it runs as PID 1 with no
/// libraries around it. `name` says which agent in the error.
pub fn check_agent(data: &[u8], name: &str) -> Result<()> {
    if !data.starts_with(b"\x7fELF") {
        bail!("agent {name} is not an ELF executable");
    }
    let has_interp = object::read::elf::ElfFile64::<object::Endianness>::parse(data)
        .map(|f| {
            use object::{Object, ObjectSection};
            f.sections().any(|s| s.name() == Ok(".interp"))
        })
        .unwrap_or(false);
    if has_interp {
        bail!("agent {name} is dynamically linked: build it static with `make agent`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_elf_and_dynamic_agents_are_refused() {
        let e = check_agent(b"#!/bin/sh\n", "x.sh").unwrap_err().to_string();
        assert!(e.contains("x.sh") && e.contains("not an ELF"), "{e}");
        // This test binary is a dynamically linked ELF executable.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let e = check_agent(&me, "me").unwrap_err().to_string();
        assert!(e.contains("dynamically linked"), "{e}");
    }

    /// What build.rs embedded is a static ELF (build.rs checks it too, with
    /// its own parser; this is the check `lazare build` uses).
    #[cfg(lazare_embedded_agent)]
    #[test]
    fn the_embedded_agent_passes_the_check() {
        let agent = Agent::embedded().expect("cfg lazare_embedded_agent is set").unwrap();
        assert!(agent.to_string().starts_with("embedded in lazare "), "{agent}");
        assert!(agent.bytes.len() > 1_000_000, "{agent}");
    }
}
