//! `lazare inspect`: read back an ISO built by lazare (with hadris-iso's
//! reader) and show its boot entries, files, the kernel command line of
//! every boot config, the initramfs listing, the baked config and where
//! the bytes go (by kind, and the biggest files of the initramfs).

pub mod kinds;

use anyhow::{Context, Result};
use hadris_fs::sync::Volume;
use hadris_fs::{FileType, MountOptions};
use hadris_iso::sync::IsoFs;
use hadris_storage::host::FileDevice;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct InspectArgs {
    /// The ISO to read.
    pub iso: PathBuf,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub volume_id: String,
    pub el_torito: Vec<CatalogLine>,
    pub files: Vec<FileLine>,
    /// (config file, entry label, kernel command line)
    pub boot_entries: Vec<BootLine>,
    pub initramfs: Vec<FileLine>,
    pub baked_cmdline: Option<String>,
    pub baked_key: Option<String>,
    pub build: Option<crate::build::BuildInfo>,
    /// Bytes by kind on the CD, then in the initramfs (unpacked).
    pub sizes: Vec<kinds::KindSize>,
    /// The biggest files of the initramfs, biggest first.
    pub biggest: Vec<FileLine>,
}

#[derive(Debug, Serialize)]
pub struct CatalogLine {
    pub platform: String,
    pub bootable: bool,
    pub load_block: u32,
    pub sectors: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileLine {
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct BootLine {
    pub config: String,
    pub entry: String,
    pub cmdline: String,
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let i = inspect(&args.iso)?;
    let text = if args.json { serde_json::to_string_pretty(&i)? + "\n" } else { human(&i) };
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // `lazare inspect x.iso | head` is fine.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

fn human(i: &Inspection) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "volume: {}", i.volume_id);
    let _ = writeln!(o, "El Torito:");
    for c in &i.el_torito {
        let _ = writeln!(
            o,
            "  {:<6} bootable={} block={} sectors={}",
            c.platform, c.bootable, c.load_block, c.sectors
        );
    }
    let _ = writeln!(o, "boot entries:");
    for b in &i.boot_entries {
        let _ = writeln!(o, "  {:<22} {:<10} {}", b.config, b.entry, b.cmdline);
    }
    let none = "(none)";
    let _ =
        writeln!(o, "baked /etc/lazare/cmdline: {}", i.baked_cmdline.as_deref().unwrap_or(none));
    let _ = writeln!(o, "baked /etc/lazare/server.pub: {}", i.baked_key.as_deref().unwrap_or(none));
    if let Some(a) = i.build.as_ref().map(|b| &b.agent) {
        // build.json records where `lazare build` took the agent from.
        let _ = writeln!(o, "agent (/init): {}, {} bytes, sha256 {}", a.origin, a.bytes, a.sha256);
    }
    let _ = writeln!(o, "where the bytes go (the initramfs unpacked, as it is held in RAM):");
    for k in &i.sizes {
        let kind = serde_json::to_value(k.kind).ok();
        let kind = kind.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
        let mb = k.bytes as f64 / 1e6;
        let _ = writeln!(o, "  {:<10} {:<13} {mb:>7.2} MB  {} files", k.place, kind, k.files);
    }
    let _ = writeln!(o, "biggest in the initramfs:");
    for f in &i.biggest {
        let _ = writeln!(o, "  {:>10}  {}", f.size, f.path);
    }
    let _ = writeln!(o, "files:");
    for f in &i.files {
        let _ = writeln!(o, "  {:>10}  {}", f.size, f.path);
    }
    let _ = writeln!(o, "initramfs ({} entries):", i.initramfs.len());
    for f in &i.initramfs {
        let _ = writeln!(o, "  {:>10}  {}", f.size, f.path);
    }
    o
}

/// Read everything `lazare inspect` shows from the ISO at `path`.
pub fn inspect(path: &Path) -> Result<Inspection> {
    let dev = FileDevice::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut fs = IsoFs::mount(dev, MountOptions::new())
        .map_err(|e| anyhow::anyhow!("{}: not an ISO 9660 image ({e:?})", path.display()))?;
    let volume_id =
        String::from_utf8_lossy(fs.info().id(hadris_iso::IsoId::Volume)).trim().to_string();
    let el_torito = catalog(&mut fs)?;
    let vol = Volume::new(fs);
    let read = |p: &str| vol.read(p).ok();
    let text = |p: &str| read(p).map(|d| String::from_utf8_lossy(&d).into_owned());

    let mut files = Vec::new();
    for e in vol.walk("/").map_err(|e| anyhow::anyhow!("listing {}: {e}", path.display()))? {
        let e = e.map_err(|e| anyhow::anyhow!("listing {}: {e}", path.display()))?;
        if e.entry().file_type() == FileType::File {
            let p = String::from_utf8_lossy(e.path()).into_owned();
            files.push(FileLine { path: p, size: e.entry().metadata().len() });
        }
    }
    let mut boot_entries = Vec::new();
    if let Some(cfg) = text("/isolinux/isolinux.cfg") {
        boot_entries.extend(isolinux_entries(&cfg));
    }
    if let Some(cfg) = text("/boot/grub/grub.cfg") {
        boot_entries.extend(grub_entries(&cfg));
    }
    let (mut initramfs, mut baked_cmdline, mut baked_key) = (Vec::new(), None, None);
    if let Some(data) = read(lazare_cd::paths::CD_INITRD) {
        let entries = crate::initramfs::read_initramfs(&data).context("reading the initramfs")?;
        for e in entries {
            let body = || String::from_utf8_lossy(&e.data).trim_end().to_string();
            if e.path == lazare_cd::paths::BAKED_CMDLINE {
                baked_cmdline = Some(body());
            } else if e.path == lazare_cd::paths::BAKED_KEY {
                baked_key = Some(body());
            }
            initramfs.push(FileLine { path: e.path.clone(), size: e.data.len() as u64 });
        }
    }
    let build = match read(&format!("/{}", crate::iso::BUILD_JSON)) {
        Some(d) => Some(
            crate::build::BuildInfo::from_json(&d)
                .with_context(|| format!("reading {}", crate::iso::BUILD_JSON))?,
        ),
        None => None,
    };
    let mut sizes = kinds::by_kind("cd", &files, kinds::Kind::of_cd_path);
    sizes.extend(kinds::by_kind("initramfs", &initramfs, kinds::Kind::of_initramfs_path));
    let biggest = kinds::biggest(&initramfs, 10).into_iter().cloned().collect();
    Ok(Inspection {
        volume_id,
        el_torito,
        files,
        boot_entries,
        initramfs,
        baked_cmdline,
        baked_key,
        build,
        sizes,
        biggest,
    })
}

fn catalog(fs: &mut IsoFs<FileDevice>) -> Result<Vec<CatalogLine>> {
    let mut buf = vec![0u8; 2048];
    let Some(cat) =
        fs.boot_catalog(&mut buf).map_err(|e| anyhow::anyhow!("reading the boot catalog: {e}"))?
    else {
        return Ok(Vec::new());
    };
    Ok(cat
        .entries()
        .map(|e| CatalogLine {
            platform: format!("{:?}", e.platform()),
            bootable: e.is_bootable(),
            load_block: e.load_block(),
            sectors: e.sector_count(),
        })
        .collect())
}

/// `LABEL x` … `APPEND cmdline` pairs of an isolinux.cfg.
pub fn isolinux_entries(cfg: &str) -> Vec<BootLine> {
    let mut out = Vec::new();
    let mut label = String::new();
    for line in cfg.lines().map(str::trim) {
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match word.to_ascii_uppercase().as_str() {
            "LABEL" => label = rest.trim().to_string(),
            "APPEND" => out.push(BootLine {
                config: "isolinux/isolinux.cfg".into(),
                entry: label.clone(),
                cmdline: rest.trim().to_string(),
            }),
            _ => {}
        }
    }
    out
}

/// `menuentry … --id x` … `linux /boot/vmlinuz ARGS` of a grub.cfg, the
/// arguments unquoted as GRUB does and re-joined as GRUB hands them over.
pub fn grub_entries(cfg: &str) -> Vec<BootLine> {
    let mut out = Vec::new();
    let mut id = String::new();
    for line in cfg.lines().map(str::trim) {
        if line.starts_with("menuentry") {
            id = line
                .split("--id ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or("")
                .into();
        } else if let Some(rest) = line.strip_prefix("linux ") {
            let words = grub_words(rest);
            let args = words.get(1..).unwrap_or_default();
            let cmdline = match kernel_line(args) {
                Ok(c) => c.to_string(),
                Err(e) => format!("{} (not a kernel command line: {e})", args.join(" ")),
            };
            out.push(BootLine { config: "boot/grub/grub.cfg".into(), entry: id.clone(), cmdline });
        }
    }
    out
}

/// GRUB's words (one kernel parameter each, `--` before init's) as the
/// command line the kernel gets, spelled by kernel-cmdline.
fn kernel_line(words: &[String]) -> Result<kernel_cmdline::Cmdline, kernel_cmdline::CmdlineError> {
    let mut c = kernel_cmdline::Cmdline::new();
    let mut for_init = false;
    for w in words {
        if w == "--" && !for_init {
            for_init = true;
            continue;
        }
        let (key, value) = match w.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (w.as_str(), None),
        };
        if for_init {
            c.push_init_arg(key, value)?;
        } else {
            c.push(key, value)?;
        }
    }
    Ok(c)
}

/// GRUB's word splitting for the quoting lazare writes: bare words,
/// single-quoted runs and backslash escapes.
fn grub_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut in_word, mut quoted) = (false, false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            // Outside quotes a backslash makes the next character literal.
            '\\' if !quoted => {
                cur.extend(chars.next());
                in_word = true;
            }
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                }
                in_word = false;
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_words_undo_lazare_quoting() {
        let q = crate::templates::grub_quote;
        let line = format!("/boot/vmlinuz {} {} {}", q("a=b"), q("c=d e"), q("it's"));
        assert_eq!(grub_words(&line), ["/boot/vmlinuz", "a=b", "c=d e", "it's"]);
    }

    #[test]
    fn grub_entries_read_back_as_the_menu_cmdline() {
        let c = kernel_cmdline::Cmdline::parse(r#"a=b c="d e" quiet -- single x=1"#);
        let menu =
            crate::templates::BootMenu::new("T", 1, false, &c, kernel_cmdline::Lang::En).unwrap();
        let cfg = crate::templates::grub_cfg(&menu).unwrap();
        let entries = grub_entries(&cfg);
        assert_eq!(entries[0].entry, "install");
        assert_eq!(kernel_cmdline::Cmdline::parse(&entries[0].cmdline), menu.entries[0].cmdline);
    }
}
