//! `lazare build`: kernel, initramfs (agent as /init, modules, baked config)
//! and boot menus from `templates/` make one hybrid ISO, written to a temp
//! file in the output directory and renamed into place.

pub mod agent;
mod info;
mod offline;
mod settings;

pub use agent::{Agent, AgentOrigin};
pub use info::{AgentInfo, BuildInfo, EntryInfo};

pub use settings::{newest_kernel, ConfigFile, EfiLoaderKind, Settings};

use crate::initramfs::{self, ExtraFile, InitramfsSpec};
use crate::iso::{self, BiosLoader, EfiLoader, IsoContent};
use crate::templates::{self, BootMenu};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::Digest;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug, Default)]
pub struct BuildArgs {
    /// Install server URL (http://HOST[:PORT][/PATH]) or `dhcp` (from the
    /// DHCP lease); parsed here into the type the agent's requests use.
    #[arg(long, value_name = "URL")]
    pub server: Option<kernel_cmdline::Server>,
    /// Where to write the ISO.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Kernel to boot (default: the newest /boot/vmlinuz-*).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Its modules (default: /lib/modules/<kernel release>).
    #[arg(long)]
    pub modules_dir: Option<PathBuf>,
    /// Network setup in the kernel's ip= syntax, e.g. `dhcp`, `eth0:dhcp`,
    /// `10.0.0.9::10.0.0.1:255.255.255.0::eth0:none` (repeatable).
    #[arg(long)]
    pub ip: Vec<String>,
    /// More kernel parameters, appended to every boot entry.
    #[arg(long)]
    pub cmdline: Option<String>,
    /// The server's public key file (ed25519:BASE64), baked in as /etc/lazare/server.pub.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Make a CD without --key: it cannot tell the real install server from
    /// a rogue one and says so in red on screen. For lab tests only.
    #[arg(long)]
    pub insecure: bool,
    /// ISO volume label (A-Z, 0-9, _).
    #[arg(long)]
    pub label: Option<String>,
    /// Seconds the boot menu waits before installing.
    #[arg(long)]
    pub timeout: Option<u32>,
    /// Boot menus and kernel console on the first serial port too (default).
    #[arg(long, overrides_with = "no_serial")]
    pub serial: bool,
    /// No serial console.
    #[arg(long)]
    pub no_serial: bool,
    /// Also write lilo.conf, the kernel and the initramfs to DIR, for PCs that
    /// start the agent from their hard disk with LILO.
    #[arg(long, value_name = "DIR")]
    pub lilo: Option<PathBuf>,
    /// UEFI loader: `signed` (Debian's shim + GRUB; boots with Secure Boot on)
    /// or `unsigned` (grub-mkstandalone; Secure Boot off only, and not
    /// byte-reproducible).
    #[arg(long, value_enum)]
    pub efi_loader: Option<EfiLoaderKind>,
    /// The static lazare-agent (default: $LAZARE_AGENT, else the one embedded
    /// in this program, else beside it, /usr/lib/lazare/lazare-agent or
    /// target/x86_64-unknown-linux-gnu/agent/lazare-agent).
    #[arg(long)]
    pub agent: Option<PathBuf>,
    /// TOML file with the same settings; flags win.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Language of the boot menus and of the PC's screen until the plan's
    /// locale takes over: en, fr, de or es (default: from LC_ALL,
    /// LC_MESSAGES or LANG, else English).
    #[arg(long, value_name = "LANG")]
    pub lang: Option<kernel_cmdline::Lang>,
    /// Also carry image IMAGE of the server (its profile name, e.g.
    /// `standard`) with its chunk index and a plan template signed by the
    /// server's key: a PC that cannot reach the server installs from the
    /// CD or stick alone. Needs --data; bakes in the data dir's key.
    #[arg(long, value_name = "IMAGE")]
    pub offline: Option<String>,
    /// The install server's data directory (for --offline).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub output: PathBuf,
    pub iso_bytes: u64,
    pub initramfs_bytes: u64,
    pub cmdline: String,
    pub modules: usize,
    pub missing_modules: Vec<String>,
    /// Firmware the carried drivers name that this machine lacks.
    pub missing_firmware: Vec<crate::initramfs::MissingFirmware>,
    /// What the ISO writer could not store as asked (none expected).
    pub warnings: Vec<String>,
    pub seconds: f64,
}

pub fn run(args: &BuildArgs) -> Result<()> {
    let settings = resolve(args)?;
    println!("agent: {}", settings.agent);
    let r = build(&settings)?;
    println!(
        "wrote {} ({:.1} MB, initramfs {:.1} MB, {} modules) in {:.1} s",
        r.output.display(),
        r.iso_bytes as f64 / 1e6,
        r.initramfs_bytes as f64 / 1e6,
        r.modules,
        r.seconds
    );
    println!("kernel command line: {}", r.cmdline);
    if let Some(b) = &settings.offline {
        println!(
            "offline bundle: image {} ({}, {:.1} MB), plan template signed by {}",
            b.manifest.name,
            b.manifest.file,
            b.manifest.size as f64 / 1e6,
            b.key
        );
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if !r.missing_modules.is_empty() {
        eprintln!("note: modules not in this kernel: {}", r.missing_modules.join(", "));
    }
    if let Some(w) = crate::initramfs::missing_firmware_warning(&r.missing_firmware) {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// Flags over the config file, every value checked.
pub fn resolve(args: &BuildArgs) -> Result<Settings> {
    let cfg = match &args.config {
        Some(p) => ConfigFile::load(p)?,
        None => ConfigFile::default(),
    };
    let server = args.server.clone().or(cfg.server).context("--server URL is required")?;
    let ip_specs = if args.ip.is_empty() { cfg.ip } else { args.ip.clone() };
    let ips = ip_specs.iter().map(|s| settings::parse_ip(s)).collect::<Result<Vec<_>>>()?;
    let kernel = match args.kernel.clone().or(cfg.kernel) {
        Some(k) => k,
        None => settings::newest_kernel(Path::new("/boot"))?,
    };
    if !kernel.is_file() {
        bail!("kernel {} not found", kernel.display());
    }
    let kernel_release = initramfs::kernel_release_of(&kernel)
        .with_context(|| format!("reading the version of kernel {}", kernel.display()))?;
    let modules_dir = args
        .modules_dir
        .clone()
        .or(cfg.modules_dir)
        .unwrap_or_else(|| PathBuf::from("/lib/modules").join(&kernel_release));
    if !modules_dir.join("modules.dep").is_file() {
        bail!("kernel modules {} not found (no modules.dep)", modules_dir.display());
    }
    let agent = agent::find_agent(args.agent.clone().or(cfg.agent))?;
    let mut key = args.key.clone().or(cfg.key).map(|p| settings::read_key(&p)).transpose()?;
    let epoch = crate::epoch::SourceDateEpoch::from_env()?;
    let offline = match &args.offline {
        Some(image) => {
            let b = offline::resolve(image, args.data.as_deref(), key.as_ref(), epoch.0)?;
            key = Some(b.key.clone());
            Some(b)
        }
        None => None,
    };
    let label = args.label.clone().or(cfg.label).unwrap_or_else(|| "LAZARE".into());
    iso::check_label(&label)?;
    let output = args.output.clone().or(cfg.output).unwrap_or_else(|| "lazare.iso".into());
    check_output_dir(&output)?;
    let serial = if args.no_serial { false } else { args.serial || cfg.serial.unwrap_or(true) };
    let lang = match (args.lang, &cfg.lang) {
        (Some(l), _) => l,
        (None, Some(l)) => {
            l.parse().map_err(|e| anyhow::anyhow!("lang in the config file: {e}"))?
        }
        (None, None) => lazare_i18n::from_env(|k| std::env::var(k).ok()),
    };
    // Last, so a wrong path or value is named first.
    let insecure = args.insecure || cfg.insecure.unwrap_or(false);
    if key.is_none() && !insecure {
        bail!(
            "no --key: a CD without the server's public key cannot tell the real install server \
             from a rogue one. Pass --key DATA/server.pub (its content is what `lazare key show` \
             prints), or --insecure for a lab CD"
        );
    }
    Ok(Settings {
        server,
        output,
        kernel,
        modules_dir,
        kernel_release,
        ips,
        extra: kernel_cmdline::Cmdline::parse(
            args.cmdline.as_deref().or(cfg.cmdline.as_deref()).unwrap_or(""),
        ),
        key,
        insecure,
        label,
        timeout: args.timeout.or(cfg.timeout).unwrap_or(5),
        serial,
        lilo: args.lilo.clone().or(cfg.lilo),
        efi_loader: args.efi_loader.or(cfg.efi_loader).unwrap_or(EfiLoaderKind::Signed),
        agent,
        epoch,
        lang,
        offline,
    })
}

fn out_dir(output: &Path) -> &Path {
    match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn check_output_dir(output: &Path) -> Result<()> {
    let dir = out_dir(output);
    tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("output directory {} is not writable", dir.display()))?;
    Ok(())
}

fn bar(len: u64, msg: &'static str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{msg:24} [{bar:30}] {bytes}/{total_bytes}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(msg);
    pb
}

/// The whole build. Nothing appears at `settings.output` unless it succeeds.
pub fn build(s: &Settings) -> Result<BuildReport> {
    let started = Instant::now();
    let base = s.base_cmdline()?;
    let base_text = base.to_string();

    // The initramfs writer reads the agent from a file: the checked bytes go
    // there, so what was checked is what ends up as /init.
    let agent_file = staged_agent(&s.agent)?;
    let mut spec = InitramfsSpec::new(agent_file.path(), &s.modules_dir, s.epoch.0);
    let baked = lazare_cd::BakedConfig { cmdline: base.clone(), key: s.key.clone() };
    for (path, data) in baked.files() {
        spec.files.push(ExtraFile { path: path.into(), data, mode: 0o644 });
    }
    let pb = bar(0, "initramfs");
    let mut initrd = Vec::new();
    let report = initramfs::write_initramfs(&spec, &mut initrd, &mut |p| {
        if p.phase == initramfs::Phase::Compress {
            pb.set_length(p.total);
            pb.set_position(p.done);
        }
    })
    .context("writing the initramfs")?;
    pb.finish_and_clear();

    let kernel = std::fs::read(&s.kernel)
        .with_context(|| format!("reading kernel {}", s.kernel.display()))?;
    let menu = BootMenu::new(&s.label.replace('_', " "), s.timeout, s.serial, &base, s.lang)?;
    let marker = marker(&kernel, &initrd, &base_text);
    let build_json = build_json(s, &menu, &report, &marker)?;
    let mut files = vec![(iso::BUILD_JSON.into(), build_json)];
    let mut host_files = Vec::new();
    if let Some(b) = &s.offline {
        files.extend(offline::small_files(b));
        host_files = offline::host_files(b);
    }
    let content = IsoContent {
        label: s.label.clone(),
        isolinux_cfg: templates::isolinux_cfg(&menu)?,
        grub_cfg: templates::grub_cfg(&menu)?,
        marker: marker.clone(),
        files,
        host_files,
        epoch: s.epoch.as_i64(),
        kernel,
        initrd,
    };
    let efi = match s.efi_loader {
        EfiLoaderKind::Signed => EfiLoader::signed_from_system()?,
        EfiLoaderKind::Unsigned => EfiLoader::unsigned_from_system(&marker, s.epoch.as_i64())?,
    };
    let bios = BiosLoader::from_system()?;
    let iso_report = write_atomically(&s.output, |file| {
        // Only the offline image makes the write long enough to watch.
        let _watch = match &s.offline {
            Some(b) => {
                let total =
                    offline::bytes(b) + (content.kernel.len() + content.initrd.len()) as u64;
                let copy = file.try_clone().context("watching the ISO's progress")?;
                Some(offline::Watch::start(copy, bar(total, "writing the ISO")))
            }
            None => None,
        };
        iso::write_iso(&content, &bios, &efi, file).context("writing the ISO")
    })?;
    if let Some(dir) = &s.lilo {
        write_lilo(dir, &menu, &content)
            .with_context(|| format!("writing LILO files to {}", dir.display()))?;
    }
    Ok(BuildReport {
        output: s.output.clone(),
        iso_bytes: iso_report.size,
        warnings: iso_report.warnings,
        initramfs_bytes: content.initrd.len() as u64,
        cmdline: base_text,
        modules: report.modules.len(),
        missing_modules: report.missing_modules,
        missing_firmware: report.missing_firmware,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The agent's checked bytes in a private temp file (removed on drop).
fn staged_agent(agent: &Agent) -> Result<tempfile::NamedTempFile> {
    let mut f = tempfile::Builder::new()
        .prefix("lazare-agent-")
        .tempfile()
        .context("creating a temp file for the agent")?;
    std::io::Write::write_all(&mut f, &agent.bytes).context("writing the agent to a temp file")?;
    Ok(f)
}

/// Write through a temp file in the target directory, renamed into place only
/// on success; on failure the temp file is removed by its Drop.
fn write_atomically<T>(out: &Path, f: impl FnOnce(std::fs::File) -> Result<T>) -> Result<T> {
    let dir = out_dir(out);
    let tmp = tempfile::Builder::new()
        .prefix(".lazare-build-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    let file = tmp.reopen().context("reopening the temp file")?;
    let value = f(file)?;
    tmp.as_file().sync_all().context("syncing the ISO")?;
    // Temp files are 0600; an ISO is for everyone to read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(out).with_context(|| format!("renaming the ISO to {}", out.display()))?;
    Ok(value)
}

/// `/.disk/lazare-<hash>`: a path only this build's ISO carries.
fn marker(kernel: &[u8], initrd: &[u8], cmdline: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(kernel);
    h.update(initrd);
    h.update(cmdline.as_bytes());
    let d = h.finalize();
    let hex = lazare_proto::hex(&d[..8]);
    format!("/.disk/lazare-{hex}")
}

fn build_json(
    s: &Settings,
    menu: &BootMenu,
    report: &initramfs::InitramfsReport,
    marker: &str,
) -> Result<Vec<u8>> {
    let entries = menu.entries.iter().map(|e| EntryInfo {
        id: e.id.to_string(),
        title: e.title.to_string(),
        cmdline: e.cmdline.to_string(),
    });
    let info = BuildInfo {
        lazare_version: env!("CARGO_PKG_VERSION").into(),
        server: s.server.clone(),
        cmdline: menu.entries[0].cmdline.to_string(),
        entries: entries.collect(),
        key: s.key.clone(),
        kernel_release: s.kernel_release.clone(),
        label: s.label.clone(),
        source_date_epoch: s.epoch,
        serial: s.serial,
        efi_loader: s.efi_loader,
        marker: marker.into(),
        modules: report.modules.clone(),
        agent: AgentInfo {
            origin: s.agent.origin_kind().into(),
            bytes: s.agent.bytes.len() as u64,
            sha256: s.agent.sha256(),
        },
    };
    Ok(info.to_json())
}

fn write_lilo(dir: &Path, menu: &BootMenu, c: &IsoContent) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let conf = templates::lilo_conf(menu, "/boot/lazare", "/dev/sda")?;
    std::fs::write(dir.join("lilo.conf"), conf)?;
    std::fs::write(dir.join("vmlinuz"), &c.kernel)?;
    std::fs::write(dir.join("initrd.img"), &c.initrd)?;
    Ok(())
}
