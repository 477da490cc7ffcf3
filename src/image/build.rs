//! `lazare image build`: mmdebstrap → tar → zstd + sha256 → manifest, kept
//! in a cache outside the checkout so a second build is instant.

use super::profile::Profile;
use super::tools::tools_path;
use anyhow::{bail, Context, Result};
use fs4::FileExt;
use indicatif::{ProgressBar, ProgressStyle};
use lazare_proto::{ImageFormat, ImageManifest};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What to build and where to keep it.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Root of the cache (`~/.cache/lazare/images` by default).
    pub cache: PathBuf,
    /// Build again even if the cache holds this profile.
    pub rebuild: bool,
    /// Pass `-q` to mmdebstrap and draw no progress bar.
    pub quiet: bool,
}

/// A built image: where its files are in the cache.
#[derive(Debug, Clone)]
pub struct Built {
    pub tarball: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: ImageManifest,
    /// True when the cache already held it.
    pub cached: bool,
}

/// `$LAZARE_CACHE_DIR`, else `$XDG_CACHE_HOME/lazare/images`, else
/// `~/.cache/lazare/images`.
pub fn default_cache_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("LAZARE_CACHE_DIR") {
        return Ok(PathBuf::from(d));
    }
    crate::cachedir::cache_dir("images")
        .context("neither LAZARE_CACHE_DIR, XDG_CACHE_HOME nor HOME is set")
}

/// Where the install tools hook writes its tar in the build directory.
const TOOLS_TAR: &str = "tools.tar";

/// File name of the tarball: `<name>-<suite>-<hash16>.tar.zst`.
pub fn tarball_name(p: &Profile) -> String {
    format!("{}-{}-{}.tar.zst", p.name, p.file.suite, &p.hash[..16])
}

/// Builds `p` into the cache (or finds it there). Concurrent builds of the
/// same profile wait for each other on a lock file.
pub fn build(p: &Profile, opts: &BuildOptions) -> Result<Built> {
    let dir = opts.cache.join(&p.hash[..16]);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let lock = File::create(dir.join(".lock")).context("creating the cache lock")?;
    // fs4, not std's File::lock: that one is newer than our rust-version.
    FileExt::lock(&lock).context("locking the image cache")?;
    let name = tarball_name(p);
    let tarball = dir.join(&name);
    let manifest_path = dir.join(format!("{name}.json"));
    if !opts.rebuild && cached(&tarball, &manifest_path) {
        // A build by an older lazare has no chunk index yet: made here.
        let manifest = super::chunks::ensure(&manifest_path)?;
        return Ok(Built { tarball, manifest_path, manifest, cached: true });
    }
    remove_stale_builds(&dir);
    let tmp = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(&dir)
        .context("creating a build directory in the cache")?;
    let epoch = crate::epoch::SourceDateEpoch::from_env()?.0;
    let tar = tmp.path().join("root.tar");
    run_mmdebstrap(p, &tar, tmp.path(), epoch, opts.quiet)?;
    let zst = tmp.path().join(&name);
    let packed = compress(&tar, &zst, p.file.zstd_level, opts.quiet)?;
    let tools = super::tools::pack(&tmp.path().join(TOOLS_TAR), &tools_path(&zst))?;
    let mut manifest = ImageManifest {
        name: p.name.clone(),
        file: name.clone(),
        sha256: packed.sha256,
        size: packed.size,
        format: ImageFormat::TarZst,
        installed_size: packed.installed_size,
        suite: p.file.suite.clone(),
        locale: p.file.locale.clone(),
        keymap: p.file.keymap.clone(),
        timezone: p.file.timezone.clone(),
        created: epoch,
        chunks: None,
        tools: Some(tools),
        torrent: None,
    };
    // Indexed from the written file (page cache: seconds against a build of
    // minutes), which also checks it against the hash taken while writing.
    let index = super::chunks::index_file(&zst, &manifest)?;
    manifest.chunks = Some(index.hash());
    // Tarball and index first, manifest last: a manifest in the cache means
    // complete.
    std::fs::rename(&zst, &tarball).context("moving the tarball into the cache")?;
    std::fs::rename(tools_path(&zst), tools_path(&tarball))
        .context("moving the install tools into the cache")?;
    super::chunks::write_index(&index, &super::chunks::index_path(&tarball))?;
    write_manifest(&manifest, &manifest_path)?;
    Ok(Built { tarball, manifest_path, manifest, cached: false })
}

/// Under the lock, a `.build-*` dir is what an interrupted build left
/// (a GB-sized tar, often): remove it.
fn remove_stale_builds(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(".build-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A complete build in the cache: its manifest, a tarball of its size, and
/// its install tools.
fn cached(tarball: &Path, manifest_path: &Path) -> bool {
    let read = || -> Option<bool> {
        let m: ImageManifest = serde_json::from_slice(&std::fs::read(manifest_path).ok()?).ok()?;
        let tools = std::fs::metadata(tools_path(tarball)).ok()?.len() == m.tools?.size;
        Some(std::fs::metadata(tarball).ok()?.len() == m.size && tools)
    };
    read().unwrap_or(false)
}

/// The mmdebstrap command line for `p` writing a tar to `out`.
/// `hook` and `tools_hook` are files: mmdebstrap first checks whether a
/// hook argument names a file, and perl warns about a command with newlines.
pub fn mmdebstrap_command(
    p: &Profile,
    out: &Path,
    hook: &Path,
    tools_hook: &Path,
    epoch: u64,
) -> Command {
    let mut c = Command::new("mmdebstrap");
    c.arg(format!("--variant={}", p.file.variant))
        .arg(format!("--components={}", p.file.components.join(",")))
        .arg(format!("--include={}", p.packages.join(",")))
        .arg(format!(
            "--aptopt=APT::Install-Recommends \"{}\"",
            if p.file.recommends { "true" } else { "false" }
        ))
        .args(p.file.dpkg_exclude.iter().map(|g| format!("--dpkgopt=path-exclude={g}")))
        .args(p.file.dpkg_include.iter().map(|g| format!("--dpkgopt=path-include={g}")))
        // Hooks run with `sh -c`; "$1" is the image root.
        .arg(format!("--customize-hook=sh '{}' \"$1\"", hook.display()))
        // Last, on the finished root: the install tools (see tools.rs).
        .arg(format!("--customize-hook=sh '{}' \"$1\"", tools_hook.display()))
        .arg(&p.file.suite)
        .arg(out)
        .args(&p.file.mirrors)
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LAZARE_LOCALE", &p.file.locale)
        .env("LAZARE_KEYMAP", &p.file.keymap)
        .env("LAZARE_TIMEZONE", &p.file.timezone)
        .env("LAZARE_NETWORK", &p.file.network)
        .env("LAZARE_DISABLE", p.file.disable.join(" "));
    c
}

fn run_mmdebstrap(p: &Profile, out: &Path, tmp: &Path, epoch: u64, quiet: bool) -> Result<()> {
    let hook = tmp.join("customize.sh");
    std::fs::write(&hook, &p.hook).context("writing the customize hook")?;
    let tools_hook = tmp.join("tools.sh");
    std::fs::write(&tools_hook, super::tools::HOOK).context("writing the tools hook")?;
    let mut c = mmdebstrap_command(p, out, &hook, &tools_hook, epoch);
    c.env("LAZARE_TOOLS_TAR", tmp.join(TOOLS_TAR));
    if quiet {
        c.arg("-q");
    }
    eprintln!(
        "lazare: building image {:?} ({} {}, {} packages) with mmdebstrap; this takes minutes",
        p.name,
        p.file.suite,
        p.file.variant,
        p.packages.len()
    );
    // mmdebstrap's own output goes straight to the user's terminal.
    let status = c.status().context("running mmdebstrap (is it installed? `make deps`)")?;
    if !status.success() {
        bail!("mmdebstrap failed ({status}) building profile {:?}; its output is above", p.name);
    }
    Ok(())
}

struct Packed {
    sha256: String,
    size: u64,
    installed_size: u64,
}

/// Compresses `tar` into `out` in one pass, hashing the compressed bytes and
/// summing the sizes of the files in the archive on the way.
fn compress(tar: &Path, out: &Path, level: i32, quiet: bool) -> Result<Packed> {
    let input = File::open(tar).with_context(|| format!("opening {}", tar.display()))?;
    let total = input.metadata()?.len();
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(total) };
    bar.set_style(
        ProgressStyle::with_template(
            "compressing {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("static template"),
    );
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let hashed = HashWriter { inner: BufWriter::new(file), hash: Sha256::new(), len: 0 };
    let mut enc = zstd::stream::Encoder::new(hashed, level).context("starting zstd")?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    enc.multithread(threads).context("enabling zstd threads")?;
    let mut tee = Tee { inner: bar.wrap_read(BufReader::new(input)), out: &mut enc };
    let mut installed = 0u64;
    let mut archive = tar::Archive::new(&mut tee);
    for entry in archive.entries().context("reading the mmdebstrap tar")? {
        let entry = entry.context("reading the mmdebstrap tar")?;
        if entry.header().entry_type().is_file() {
            installed += entry.size();
        }
    }
    // The tar reader stops at the end marker; the padding after it belongs
    // in the tarball too.
    io::copy(&mut archive.into_inner(), &mut io::sink()).context("reading the tar's end")?;
    bar.finish();
    let mut hashed = enc.finish().context("finishing zstd")?;
    hashed.inner.flush().context("writing the tarball")?;
    hashed.inner.get_ref().sync_all().context("syncing the tarball")?;
    set_readable(hashed.inner.get_ref())?;
    Ok(Packed {
        sha256: lazare_proto::hex(&hashed.hash.finalize()),
        size: hashed.len,
        installed_size: installed,
    })
}

/// Copies everything read from `inner` into `out`.
struct Tee<'a, R, W> {
    inner: R,
    out: &'a mut W,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `m` as pretty JSON to `path` atomically.
pub fn write_manifest(m: &ImageManifest, path: &Path) -> Result<()> {
    let dir = path.parent().context("manifest path has no parent")?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).context("creating the manifest")?;
    serde_json::to_writer_pretty(&mut tmp, m).context("writing the manifest")?;
    tmp.write_all(b"\n")?;
    set_readable(tmp.as_file())?;
    tmp.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically (a synced temp file beside it,
/// renamed), readable by all; `what` names it in errors.
pub fn write_readable(path: &Path, bytes: &[u8], what: &str) -> Result<()> {
    let dir = path.parent().with_context(|| format!("{what}: {} has no parent", path.display()))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).with_context(|| format!("creating {what}"))?;
    tmp.write_all(bytes).with_context(|| format!("writing {what}"))?;
    tmp.as_file().sync_all().with_context(|| format!("syncing {what}"))?;
    set_readable(tmp.as_file())?;
    tmp.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// 0644: temp files are 0600, but a server running as another user reads these.
pub fn set_readable(f: &File) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o644)).context("setting permissions")
}

/// Puts the built files into `out` (hard link when on the same filesystem,
/// else a copy through a temp file), and returns the tarball's new path.
pub fn export(b: &Built, out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let dst = out.join(&b.manifest.file);
    place(&b.tarball, &dst)?;
    place(&super::chunks::index_path(&b.tarball), &super::chunks::index_path(&dst))?;
    place(&tools_path(&b.tarball), &tools_path(&dst))?;
    place(&b.manifest_path, &out.join(format!("{}.json", b.manifest.file)))?;
    Ok(dst)
}

fn place(src: &Path, dst: &Path) -> Result<()> {
    let dir = dst.parent().context("destination has no parent")?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        dst.file_name().context("destination has no name")?.to_string_lossy()
    ));
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(src, &tmp).is_err() {
        std::fs::copy(src, &tmp)
            .with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
    }
    std::fs::rename(&tmp, dst).with_context(|| format!("writing {}", dst.display()))
}
