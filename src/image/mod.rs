//! `lazare image`: build Debian root filesystem images with mmdebstrap from
//! the profiles in `profiles/`, and add them to a server's data dir.

pub mod add;
pub mod build;
pub mod chunks;
pub mod profile;
pub mod tools;
pub mod torrent;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

/// `<file><suffix>`: what travels with an image (its chunk index, its
/// install tools) sits beside it under its name.
pub fn beside(file: &Path, suffix: &str) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

#[derive(Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub cmd: ImageCmd,
}

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Build images (Debian 12 root filesystems as .tar.zst + a .chunks index +
    /// a .json manifest).
    ///
    /// Built images are cached in ~/.cache/lazare/images/<profile-hash>/
    /// (LAZARE_CACHE_DIR or XDG_CACHE_HOME change that): building the same
    /// profile again only copies it to --output.
    Build(BuildArgs),
    /// Verify images against their manifests and copy them into a server's
    /// data dir (DIR/images/), where `lazare serve` hands them out.
    Add(AddArgs),
}

#[derive(Args)]
pub struct BuildArgs {
    /// Profile to build: standard, light, test (or a NAME.toml in --profiles).
    /// Repeat to build several.
    #[arg(long = "profile", value_name = "NAME", required_unless_present = "all")]
    pub profiles: Vec<String>,
    /// Build every built-in profile.
    #[arg(long, conflicts_with = "profiles")]
    pub all: bool,
    /// Where to put the tarballs and manifests.
    #[arg(long, short, value_name = "DIR", default_value = ".")]
    pub output: PathBuf,
    /// Read profiles from DIR (NAME.toml, base.toml, hooks/customize.sh)
    /// instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// Default locale of the image, e.g. de_DE.UTF-8 (profile's otherwise).
    #[arg(long)]
    pub locale: Option<String>,
    /// Default keyboard layout[-variant], e.g. de or ch-fr.
    #[arg(long)]
    pub keymap: Option<String>,
    /// Default timezone, e.g. Europe/Brussels.
    #[arg(long)]
    pub timezone: Option<String>,
    /// Debian suite (the profiles are written for bookworm).
    #[arg(long)]
    pub suite: Option<String>,
    /// Build again even if the cache already holds the image.
    #[arg(long)]
    pub rebuild: bool,
    /// Less output: mmdebstrap -q, no progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct AddArgs {
    /// The server's data dir (as given to `lazare serve --data`).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Tarballs (NAME.tar.zst, with NAME.tar.zst.json beside) or manifests.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
}

pub fn run(args: &ImageArgs) -> Result<()> {
    match &args.cmd {
        ImageCmd::Build(a) => run_build(a),
        ImageCmd::Add(a) => run_add(a),
    }
}

fn run_build(a: &BuildArgs) -> Result<()> {
    let names: Vec<String> = if a.all {
        match &a.profiles_dir {
            Some(_) => bail!(
                "--all builds the built-in profiles; with --profiles-dir name them with --profile"
            ),
            None => profile::builtin_names().into_iter().map(String::from).collect(),
        }
    } else {
        a.profiles.clone()
    };
    let ov = profile::Overrides {
        locale: a.locale.clone(),
        keymap: a.keymap.clone(),
        timezone: a.timezone.clone(),
        suite: a.suite.clone(),
    };
    let opts = build::BuildOptions {
        cache: build::default_cache_dir()?,
        rebuild: a.rebuild,
        quiet: a.quiet,
    };
    for name in &names {
        let p = profile::load(name, a.profiles_dir.as_deref(), &ov)?;
        let built = build::build(&p, &opts).with_context(|| format!("building image {name:?}"))?;
        let out = build::export(&built, &a.output)
            .with_context(|| format!("copying image {name:?} to {}", a.output.display()))?;
        let m = &built.manifest;
        println!(
            "{} {} ({} MiB, unpacked {} MiB, sha256 {}){}",
            m.name,
            out.display(),
            m.size >> 20,
            m.installed_size >> 20,
            m.sha256,
            if built.cached { " [cached]" } else { "" }
        );
    }
    Ok(())
}

fn run_add(a: &AddArgs) -> Result<()> {
    for img in &a.images {
        let m = add::add(&a.data, img).with_context(|| format!("adding {}", img.display()))?;
        println!(
            "{} added as {} ({} MiB)",
            m.name,
            add::images_dir(&a.data).join(&m.file).display(),
            m.size >> 20
        );
    }
    Ok(())
}
