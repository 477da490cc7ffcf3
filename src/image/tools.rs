//! An image's install tools (`<image>.tools`, see
//! [`lazare_proto::ImageRef::tools`]): the image's own mke2fs with its
//! `/etc/mke2fs.conf`, dynamic loader and libraries, taken from the image
//! root while mmdebstrap builds it, as a zstd-compressed tar.
//!
//! The set is what the image's own `ldd` says mke2fs loads, and the tar is
//! made inside the image root (chroot): Debian's loader link
//! `/lib64/ld-linux-x86-64.so.2` is absolute, and resolved outside the root
//! it would name the build host's file.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lazare_proto::{Pinned, TOOLS_SUFFIX};
use sha2::{Digest, Sha256};

use super::build::set_readable;

/// The mmdebstrap customize hook (run with `sh -c`, `$1` the image root)
/// that writes the tools' tar to the path in `$LAZARE_TOOLS_TAR`. ldd lists
/// `name => /path (addr)` for libraries and `/path (addr)` for the loader;
/// `--dereference` stores each under the name the loader asks for.
pub const HOOK: &str = r#"set -e
if [ ! -x "$1/usr/sbin/mke2fs" ]; then
    echo "lazare: the image has no /usr/sbin/mke2fs: its profile must include e2fsprogs" >&2
    exit 1
fi
chroot "$1" sh -c 'set -e
    libs=$(ldd /usr/sbin/mke2fs | sed -n "s|.*=> /\([^ ]*\) .*|\1|p; s|^[[:space:]]*/\([^ ]*\) (0x.*|\1|p")
    cd /
    tar --create --file=- --dereference --sort=name --format=gnu --numeric-owner \
        --owner=0 --group=0 --mtime="@$SOURCE_DATE_EPOCH" \
        usr/sbin/mke2fs etc/mke2fs.conf $libs' > "$LAZARE_TOOLS_TAR"
"#;

/// zstd level of the tools file: small (about 3 MB unpacked), so the
/// smallest download is worth the second it takes.
const LEVEL: i32 = 19;

/// `<tarball>.tools`.
pub fn tools_path(tarball: &Path) -> PathBuf {
    super::beside(tarball, TOOLS_SUFFIX)
}

/// Compresses the hook's tar into `out` and describes it for the manifest.
pub fn pack(tar: &Path, out: &Path) -> Result<Pinned> {
    let raw = std::fs::read(tar).with_context(|| format!("reading {}", tar.display()))?;
    if raw.is_empty() {
        bail!("the image's install tools are empty (the customize hook wrote nothing)");
    }
    let packed = zstd::stream::encode_all(&raw[..], LEVEL).context("compressing the tools")?;
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = BufWriter::new(file);
    w.write_all(&packed).with_context(|| format!("writing {}", out.display()))?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    set_readable(&file)?;
    Ok(describe(&packed))
}

fn describe(bytes: &[u8]) -> Pinned {
    Pinned { sha256: lazare_proto::hex(&Sha256::digest(bytes)), size: bytes.len() as u64 }
}

/// Copies `src` beside `dst` and renames it into place only if it is the
/// file `want` describes (`lazare image add`).
pub fn copy_verified(src: &Path, dst: &Path, want: &Pinned) -> Result<()> {
    let mut bytes = Vec::new();
    File::open(src)
        .with_context(|| format!("opening {} (the image's install tools)", src.display()))?
        .take(want.size + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", src.display()))?;
    let got = describe(&bytes);
    if got != *want {
        bail!(
            "{}: sha256 {} and {} bytes, but the image's manifest says {} and {} bytes",
            src.display(),
            got.sha256,
            got.size,
            want.sha256,
            want.size
        );
    }
    let dir = dst.parent().context("destination has no parent")?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".adding-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    tmp.write_all(&bytes).map_err(|e: io::Error| anyhow::anyhow!(e))?;
    tmp.as_file().sync_all()?;
    set_readable(tmp.as_file())?;
    tmp.persist(dst).with_context(|| format!("writing {}", dst.display()))?;
    Ok(())
}
