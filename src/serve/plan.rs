//! From an inventory and the rules to a plan: pick the image profile, find
//! its manifest in `DATA/images/`, fill in host name, locale, disks, users.

use super::config::Rules;
use anyhow::Context;
use lazare_proto::{Action, DiskPolicy, ImageManifest, ImageRef, Inventory, Plan, Setup, MIB};
use std::path::Path;

/// Why no plan could be made; answered 503 so the agent retries later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NoPlan {
    #[error("no [[image]] rule in lazare.toml matches this PC ({ram} MiB RAM)")]
    NoRule { ram: u64 },
    #[error(
        "image {profile:?} is not on this server (no manifest naming it in DATA/images): build it with \
         `lazare image build --profile {profile} --output OUT`, then add it with \
         `lazare image add --data DATA OUT/<image file>`"
    )]
    MissingImage { profile: String },
}

/// The newest usable manifest for `profile` in `dir`. Manifests whose
/// tarball is missing or has another size are skipped with a warning: the
/// agent would fail its sha256 check on them after wiping the disk.
pub fn find_image(dir: &Path, profile: &str) -> Result<ImageManifest, NoPlan> {
    // The answer goes to any PC: it names no server path.
    let missing = || NoPlan::MissingImage { profile: profile.to_string() };
    let mut best: Option<ImageManifest> = None;
    for m in usable_manifests(dir) {
        if m.name != profile {
            continue;
        }
        let newer = best.as_ref().is_none_or(|b| (m.created, &m.file) > (b.created, &b.file));
        if newer {
            best = Some(m);
        }
    }
    best.ok_or_else(missing)
}

/// Every manifest in `dir` whose tarball is there (see [`find_image`]).
pub fn usable_manifests(dir: &Path) -> Vec<ImageManifest> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| read_manifest(&p).filter(|m| usable(dir, m, &p)))
        .collect()
}

fn read_manifest(path: &Path) -> Option<ImageManifest> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice(&text) {
        Ok(m) => Some(m),
        Err(e) => {
            eprintln!("lazare: warning: {} is not an image manifest: {e}", path.display());
            None
        }
    }
}

fn usable(dir: &Path, m: &ImageManifest, manifest: &Path) -> bool {
    // Served as /images/<file>: a plain file name, nothing to escape or traverse.
    let plain = !m.file.is_empty()
        && !m.file.starts_with('.')
        && m.file.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    if !plain {
        eprintln!("lazare: warning: {}: file name {:?} refused", manifest.display(), m.file);
        return false;
    }
    match std::fs::metadata(dir.join(&m.file)) {
        Ok(meta) if meta.is_file() && meta.len() == m.size => true,
        Ok(meta) => {
            eprintln!(
                "lazare: warning: {}: {} is {} bytes, the manifest says {}",
                manifest.display(),
                m.file,
                meta.len(),
                m.size
            );
            false
        }
        Err(_) => {
            eprintln!("lazare: warning: {}: {} is missing", manifest.display(), m.file);
            false
        }
    }
}

/// What the server knew of a machine before its hello.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// Its last install finished.
    pub installed: bool,
    /// The admin ordered a reinstall that it has not started yet.
    pub reinstall_ordered: bool,
}

/// What a hello is answered: the rules' action, except that a PC the server
/// shows as installed, booted again from a CD or stick left in, whose disk
/// still holds the system lazare installed on it, starts that system
/// ([`Action::Local`]) rather than being wiped. It is reinstalled when the
/// admin ordered it, when the rules say `reinstall_installed = true`, when
/// its disk no longer holds its system (replaced, wiped), or when it did not
/// boot from removable media (the installed system's own "Reinstall from
/// server" entry is a deliberate choice).
pub fn action_for(rules: &Rules, before: Standing, inv: &Inventory) -> Action {
    let left_in = before.installed
        && !before.reinstall_ordered
        && !rules.reinstall_installed
        && inv.boot_device.is_some()
        && inv.holds_its_system();
    match rules.action {
        Action::Install if left_in => Action::Local,
        other => other,
    }
}

/// The plan for one machine. `seq` numbers the host name, `nonce` is fresh,
/// `action` from [`action_for`].
pub fn build_plan(
    rules: &Rules,
    inv: &Inventory,
    seq: u64,
    image: &ImageManifest,
    nonce: String,
    action: Action,
) -> anyhow::Result<Plan> {
    let url = match &rules.image_base_url {
        Some(mirror) => mirror.join(&image.file),
        None => format!("/images/{}", image.file),
    };
    Ok(Plan {
        machine_id: inv.machine_id.clone(),
        hostname: rules.hostname_for(seq, &inv.machine_id)?,
        action,
        setup: setup(rules, image, url)?,
        nonce,
        // Set from the hello by the caller (api.rs).
        challenge: String::new(),
        valid_secs: lazare_proto::PLAN_VALID_SECS,
    })
}

/// What `rules` give every machine they install with `image`, fetched from
/// `url`: the part of a server plan, and of an offline template, that does
/// not depend on the machine.
pub fn setup(rules: &Rules, image: &ImageManifest, url: String) -> anyhow::Result<Setup> {
    Ok(Setup {
        image: image_ref(image, url)?,
        disks: disks_for(rules, image),
        locale: rules.locale.clone(),
        keymap: rules.keymap.clone(),
        timezone: rules.timezone.clone(),
        users: rules.users.clone(),
        reinstall_entry: rules.reinstall_entry,
        countdown_secs: rules.countdown_secs,
        orders_every_secs: rules.orders_every_secs,
        // Set by build_plan when this server runs its room (never offline).
        room: None,
    })
}

/// The rules' disk policy, its root grown to hold `image`.
pub fn disks_for(rules: &Rules, image: &ImageManifest) -> DiskPolicy {
    let mut disks = rules.disks.clone();
    // The unpacked tree plus a quarter for logs, updates and the user's
    // first files, rounded up to whole MiB.
    let needed = (image.installed_size + image.installed_size / 4).div_ceil(MIB) * MIB;
    disks.root_min = disks.root_min.max(needed);
    disks
}

/// What a plan says of `image`, fetched from `url`.
pub fn image_ref(image: &ImageManifest, url: String) -> anyhow::Result<ImageRef> {
    Ok(ImageRef {
        name: image.name.clone(),
        url,
        sha256: image.sha256.clone(),
        size: image.size,
        format: image.format,
        chunks: image.chunks.clone().with_context(|| {
            format!("image {} has no chunk index: restart `lazare serve` to make it", image.file)
        })?,
        tools: image.tools.clone(),
        torrent: image.torrent.clone(),
    })
}

/// 16 random bytes in hex.
pub fn nonce() -> anyhow::Result<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("drawing a nonce: {e}"))?;
    Ok(lazare_proto::hex(&raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lazare_proto::ImageFormat;

    fn manifest(name: &str, file: &str, size: u64, created: u64) -> ImageManifest {
        ImageManifest {
            name: name.into(),
            file: file.into(),
            sha256: "0".repeat(64),
            size,
            format: ImageFormat::TarZst,
            installed_size: 10 * lazare_proto::GIB,
            suite: "bookworm".into(),
            locale: "fr_FR.UTF-8".into(),
            keymap: "fr".into(),
            timezone: "Europe/Paris".into(),
            created,
            chunks: Some("c".repeat(64)),
            tools: None,
            torrent: None,
        }
    }

    fn put(dir: &Path, m: &ImageManifest, bytes: usize) {
        std::fs::write(dir.join(&m.file), vec![0u8; bytes]).unwrap();
        std::fs::write(dir.join(format!("{}.json", m.file)), serde_json::to_vec(m).unwrap())
            .unwrap();
    }

    #[test]
    fn newest_complete_image_wins() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), &manifest("light", "light-1.tar.zst", 3, 100), 3);
        put(dir.path(), &manifest("light", "light-2.tar.zst", 4, 200), 4);
        // Newer but truncated: skipped.
        put(dir.path(), &manifest("light", "light-3.tar.zst", 9, 300), 5);
        put(dir.path(), &manifest("standard", "std.tar.zst", 1, 999), 1);
        assert_eq!(find_image(dir.path(), "light").unwrap().file, "light-2.tar.zst");
        let err = find_image(dir.path(), "test").unwrap_err().to_string();
        assert!(err.contains("lazare image add"), "{err}");
    }

    #[test]
    fn root_grows_to_fit_the_image() {
        let rules = Rules::parse(super::super::config::DEFAULT_RULES).unwrap();
        let inv: Inventory = serde_json::from_value(serde_json::json!({
            "machine_id": "b".repeat(64), "memory_bytes": 1u64 << 30, "cpus": 1,
            "cpu_model": "x", "firmware": "bios", "dmi": {}, "disks": [], "nics": [],
            "boot_device": null
        }))
        .unwrap();
        let m = manifest("standard", "s.tar.zst", 1, 1);
        let plan = build_plan(&rules, &inv, 42, &m, nonce().unwrap(), Action::Install).unwrap();
        assert_eq!(plan.hostname, "pc-042");
        assert_eq!(plan.setup.image.url, "/images/s.tar.zst");
        assert_eq!(plan.setup.image.chunks, "c".repeat(64), "the index hash is in the signed plan");
        assert!(plan.setup.disks.root_min >= m.installed_size + m.installed_size / 4);
        assert_eq!(plan.nonce.len(), 32);
        plan.validate_for(&inv.machine_id).unwrap();
    }

    #[test]
    fn a_mirror_rule_puts_the_image_there_still_pinned_by_hash() {
        let text = format!(
            "{}\nimage_base_url = \"https://mirror.example.org/lazare/\"\n",
            super::super::config::DEFAULT_RULES.split("[[image]]").next().unwrap()
        ) + "[[image]]\nprofile = \"standard\"\n";
        let rules = Rules::parse(&text).unwrap();
        let m = manifest("standard", "s.tar.zst", 1, 1);
        let plan =
            build_plan(&rules, &pc(None, None), 1, &m, nonce().unwrap(), Action::Install).unwrap();
        assert_eq!(plan.setup.image.url, "https://mirror.example.org/lazare/s.tar.zst");
        assert_eq!(
            (plan.setup.image.sha256.as_str(), plan.setup.image.size),
            (m.sha256.as_str(), m.size)
        );
        assert_eq!(plan.setup.image.chunks, "c".repeat(64));
        plan.validate_for(&"b".repeat(64)).unwrap();
        for bad in ["ftp://m/x", "https://user@m/x", "https://m/x?y=1", "mirror"] {
            let t = text.replace("https://mirror.example.org/lazare/", bad);
            assert!(Rules::parse(&t).is_err(), "{bad} accepted");
        }
    }

    fn pc(installed_id: Option<&str>, boot_device: Option<&str>) -> Inventory {
        serde_json::from_value(serde_json::json!({
            "machine_id": "b".repeat(64), "memory_bytes": 1u64 << 30, "cpus": 1,
            "cpu_model": "x", "firmware": "bios", "dmi": {}, "disks": [], "nics": [],
            "boot_device": boot_device, "installed_id": installed_id
        }))
        .unwrap()
    }

    #[test]
    fn an_installed_pc_booted_from_a_left_in_cd_starts_its_system() {
        let rules = Rules::parse(super::super::config::DEFAULT_RULES).unwrap();
        let own = "b".repeat(64);
        let installed = Standing { installed: true, reinstall_ordered: false };
        let left_in = pc(Some(&own), Some("sr0"));
        assert_eq!(action_for(&rules, installed, &left_in), Action::Local);
        assert_eq!(action_for(&rules, installed, &pc(Some(&own), Some("sdb"))), Action::Local);
        // The admin ordered it.
        let ordered = Standing { installed: true, reinstall_ordered: true };
        assert_eq!(action_for(&rules, ordered, &left_in), Action::Install);
        // Never installed (or its install failed).
        assert_eq!(action_for(&rules, Standing::default(), &left_in), Action::Install);
        // The disk no longer holds its system: wiped, replaced, another PC's.
        assert_eq!(action_for(&rules, installed, &pc(None, Some("sr0"))), Action::Install);
        let other = "c".repeat(64);
        assert_eq!(action_for(&rules, installed, &pc(Some(&other), Some("sr0"))), Action::Install);
        // Booted from its own disk's reinstall entry: deliberate.
        assert_eq!(action_for(&rules, installed, &pc(Some(&own), None)), Action::Install);
        // A rule says so.
        let text = super::super::config::DEFAULT_RULES
            .replace("reinstall_installed = false", "reinstall_installed = true");
        let always = Rules::parse(&text).unwrap();
        assert!(always.reinstall_installed);
        assert_eq!(action_for(&always, installed, &left_in), Action::Install);
        // Other rule actions are kept as they are.
        let mut inventory_only = rules.clone();
        inventory_only.action = Action::Inventory;
        assert_eq!(action_for(&inventory_only, installed, &left_in), Action::Inventory);
    }
}
