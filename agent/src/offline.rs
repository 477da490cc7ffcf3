//! An install with no server in reach, from the offline bundle that
//! `lazare build --offline` put on the boot medium: its plan template must
//! verify with the key baked into the CD (the same check as a server's
//! plan), the image comes from the medium with the same chunk checks, and
//! the events and log are kept on the installed system
//! ([`lazare_proto::REPORT_PATH`]) for `lazare-next` to hand to the server.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use lazare_proto::{
    Event, Inventory, OfflineReport, Phase, Plan, PlanTemplate, PublicKey, RecordedEvent,
    OFFLINE_DIR, REPORT_PATH, SIGNATURE_FILE, TEMPLATE_FILE,
};

use crate::failure::Failure;
use crate::i18n::t;
use crate::install::{Fetch, Made, Reporter};
use crate::installing::{self, Source};
use crate::screen::Screen;
use kernel_cmdline::{Cmdline, ServerUrl};

/// Where the boot medium is mounted to read the bundle.
const MOUNT: &str = "/run/lazare/offline";

/// Failed tries of the network, then of the server, after which a bundle
/// takes over: the staff wait seconds (2 s + 4 s between the three tries),
/// not the minutes a server rebooting deserves when there is no bundle.
pub const RETRIES: u32 = 2;

/// An offline bundle found on the boot medium.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// `<mount>/lazare/offline`.
    pub dir: PathBuf,
    pub device: String,
}

impl Bundle {
    /// The bundle on `boot_device` (mounted read-only), if it carries one.
    pub fn find(boot_device: Option<&str>, screen: &Screen) -> Option<Bundle> {
        let device = boot_device?;
        let _ = std::fs::create_dir_all(MOUNT);
        let src = format!("/dev/{device}");
        if let Err(e) = crate::sys::mount(&src, MOUNT, "iso9660", crate::sys::MS_RDONLY, None) {
            screen.note(&format!("mounting {src} to look for an offline bundle: {e}"));
            return None;
        }
        let b = Bundle::at(Path::new(MOUNT), device);
        match &b {
            Some(b) => screen.note(&format!("offline bundle found in {}", b.dir.display())),
            None => {
                screen.note(&format!("{src} carries no offline bundle"));
                let _ = nix::mount::umount2(MOUNT, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        b
    }

    /// The bundle under the mounted medium `root`, if its template is there.
    pub fn at(root: &Path, device: &str) -> Option<Bundle> {
        let dir = root.join(OFFLINE_DIR.trim_start_matches('/'));
        dir.join(TEMPLATE_FILE).is_file().then(|| Bundle { dir, device: device.to_string() })
    }

    /// The plan of machine `inv`: the template's signature verified with the
    /// baked `key` (always: a bundle is never taken on trust, `lazare.insecure`
    /// or not), then filled in and checked like a server's plan.
    pub fn plan(&self, key: Option<&PublicKey>, inv: &Inventory) -> Result<Plan, Failure> {
        let read = |name: &str| {
            std::fs::read(self.dir.join(name)).map_err(|e| {
                Failure::new(&t("fail-not-understood"), format!("reading the offline {name}: {e}"))
            })
        };
        let body = read(TEMPLATE_FILE)?;
        let sig = String::from_utf8_lossy(&read(SIGNATURE_FILE)?).trim().to_string();
        crate::verify::signed(&body, Some(&sig), key)
            .map_err(|e| Failure::new(&t("fail-refused"), format!("offline plan template: {e}")))?;
        let template =
            PlanTemplate::parse(&body).map_err(|e| Failure::new(&t("fail-not-understood"), e))?;
        template.plan_for(inv).map_err(|e| Failure::new(&t("fail-other-computer"), e))
    }
}

/// Reads the image and its index from the bundle's directory: `url` is a
/// plain file name there (the template's `image.url`, and `+ .chunks`).
pub struct FileFetch {
    pub dir: PathBuf,
}

impl Fetch for FileFetch {
    fn get(&self, url: &str, offset: u64) -> io::Result<(u64, Box<dyn Read + Send>)> {
        if url.is_empty() || url.contains('/') || url.starts_with('.') {
            return Err(io::Error::other(format!("{url:?} is not a file name in the bundle")));
        }
        let path = self.dir.join(url);
        let mut f = File::open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        f.seek(SeekFrom::Start(offset))?;
        Ok((offset, Box::new(f)))
    }
}

/// Shows events as the server install does and records them for the report.
pub struct Recorder<'a> {
    pub screen: &'a Screen,
    pub events: Mutex<Vec<RecordedEvent>>,
}

impl Recorder<'_> {
    /// Records an event without showing it.
    pub fn record(&self, phase: Phase, percent: Option<u8>, message: &str) {
        let time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let event = Event { phase, percent, message: message.to_string(), from_peers: None };
        if let Ok(mut events) = self.events.lock() {
            // Progress every percent is noise on the dashboard: keep the
            // start, the end and every tenth.
            if percent.is_none_or(|p| p % 10 == 0) {
                events.push(RecordedEvent { time, event });
            }
        }
    }
}

impl Reporter for Recorder<'_> {
    fn event(&self, phase: Phase, percent: Option<u8>, message: &str) {
        installing::show_event(self.screen, phase, percent, message);
        self.record(phase, percent, message);
    }

    fn log(&self, line: &str) {
        self.screen.note(line);
    }
}

/// What [`install`] needs besides the bundle and the plan.
pub struct Offline<'a> {
    pub inv: &'a Inventory,
    pub cmdline: &'a Cmdline,
    pub key: Option<&'a PublicKey>,
    /// The server the installed system will report to (`None` when the CD
    /// takes it from DHCP: no reinstall entry then).
    pub server: Option<&'a ServerUrl>,
    /// The machine secret kept from an earlier install, if any.
    pub secret: Option<String>,
    /// Why the server was not used (network or server failure).
    pub why: &'a Failure,
}

/// Installs `plan` from the bundle; restarts into the new system on
/// success (never returns Ok).
pub fn install(screen: &Screen, b: &Bundle, plan: &Plan, o: &Offline) -> Result<(), Failure> {
    let rec = Recorder { screen, events: Mutex::new(Vec::new()) };
    rec.record(
        Phase::Network,
        None,
        &format!("no install server: {} ({})", o.why.plain, o.why.detail),
    );
    rec.record(
        Phase::Plan,
        None,
        &format!(
            "offline plan verified from {}: {} on {}",
            b.device, plan.setup.image.name, plan.hostname
        ),
    );
    let layout = installing::plan_and_show(screen, o.inv, plan)?;
    let reinstall = o.server.and_then(|server| {
        installing::reinstall_entry(screen, o.inv, server, o.cmdline, o.secret.clone(), o.key)
    });
    let fetch = FileFetch { dir: b.dir.clone() };
    let keep = |made: &[Made]| keep_record(screen, &rec, o.inv, plan, made);
    let source = Source {
        reporter: &rec,
        fetch: &fetch,
        image_url: &plan.setup.image.url,
        reinstall: reinstall.as_ref(),
        // Nowhere to send it: the record on the disk goes at first contact.
        upload_log: &|| {},
        keep: &keep,
        // No server, no tracker: the stick is the only source.
        room: None,
    };
    installing::run(screen, o.inv, plan, &layout, &source)
}

/// Writes the report into the new root filesystem. A failure here loses
/// only the record, not the install: it is said on screen and in the log.
fn keep_record(screen: &Screen, rec: &Recorder, inv: &Inventory, plan: &Plan, made: &[Made]) {
    rec.record(Phase::Installed, Some(100), "installed from the offline bundle");
    let report = OfflineReport {
        inventory: inv.clone(),
        hostname: plan.hostname.clone(),
        image: plan.setup.image.name.clone(),
        events: rec.events.lock().map(|e| e.clone()).unwrap_or_default(),
        log: screen.log_text(),
    };
    match write_report(Path::new(installing::TARGET), made, &report) {
        Ok(()) => screen.note(&format!("offline record kept in {REPORT_PATH}")),
        Err(e) => screen.warn(&format!("the offline record could not be kept: {e}")),
    }
}

/// Mounts the new root at `target`, writes [`REPORT_PATH`] (root only:
/// the log names the machine's disks and network), unmounts.
pub fn write_report(target: &Path, made: &[Made], report: &OfflineReport) -> io::Result<()> {
    let root = made
        .iter()
        .find(|m| m.mount == "/")
        .ok_or_else(|| io::Error::other("the plan made no root filesystem"))?;
    let dev = root.device.to_string_lossy();
    let at = target.to_string_lossy();
    crate::sys::mount(&dev, &at, root.fs.name(), 0, None)?;
    let written = save(target, report);
    let unmounted = nix::mount::umount(target).map_err(io::Error::from);
    written.and(unmounted)
}

/// Writes the report under `root` (a mounted root filesystem).
pub fn save(root: &Path, report: &OfflineReport) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = root.join(REPORT_PATH.trim_start_matches('/'));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec(report).map_err(io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(&json)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lazare_proto::SigningKey;

    fn template() -> PlanTemplate {
        lazare_proto::testing::template("img.tar.zst", 4)
    }

    fn inv() -> Inventory {
        let mut inv = diskplan::testing::inventory(lazare_proto::Firmware::Bios, 1 << 30, vec![]);
        inv.machine_id = "d".repeat(64);
        inv
    }

    /// A medium with a bundle signed by `signer`.
    fn medium(signer: &SigningKey, body: &[u8]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("lazare/offline");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(TEMPLATE_FILE), body).unwrap();
        std::fs::write(dir.join(SIGNATURE_FILE), format!("{}\n", signer.sign(body))).unwrap();
        std::fs::write(dir.join("img.tar.zst"), b"0123456789").unwrap();
        root
    }

    #[test]
    fn a_signed_template_gives_this_pcs_plan() {
        let k = SigningKey::from_bytes(&[5; 32]);
        let body = serde_json::to_vec(&template()).unwrap();
        let m = medium(&k, &body);
        let b = Bundle::at(m.path(), "sr0").expect("bundle found");
        let plan = b.plan(Some(&k.public()), &inv()).unwrap();
        assert_eq!(plan.machine_id, "d".repeat(64));
        assert!(plan.hostname.starts_with("pc-"), "{}", plan.hostname);
        assert!(Bundle::at(tempfile::tempdir().unwrap().path(), "sr0").is_none());
    }

    #[test]
    fn another_key_or_a_changed_template_or_no_key_is_refused() {
        let k = SigningKey::from_bytes(&[5; 32]);
        let rogue = SigningKey::from_bytes(&[6; 32]);
        let body = serde_json::to_vec(&template()).unwrap();
        let m = medium(&rogue, &body);
        let b = Bundle::at(m.path(), "sr0").unwrap();
        let e = b.plan(Some(&k.public()), &inv()).unwrap_err();
        assert!(e.plain.contains("nothing will be written"), "{}", e.plain);
        assert!(e.detail.contains("offline plan template"), "{}", e.detail);
        // Signed, then changed on the stick: the same refusal.
        let m = medium(&k, &body);
        let mut changed = template();
        changed.setup.users.push(lazare_proto::User {
            name: "intrus".into(),
            full_name: String::new(),
            password_hash: Some("x".into()),
            admin: true,
            autologin: false,
        });
        std::fs::write(
            m.path().join("lazare/offline").join(TEMPLATE_FILE),
            serde_json::to_vec(&changed).unwrap(),
        )
        .unwrap();
        let b = Bundle::at(m.path(), "sr0").unwrap();
        assert!(b.plan(Some(&k.public()), &inv()).is_err());
        assert!(b.plan(None, &inv()).unwrap_err().detail.contains("no plan can be trusted"));
    }

    #[test]
    fn the_file_fetcher_starts_at_the_offset_and_stays_in_the_bundle() {
        let k = SigningKey::from_bytes(&[5; 32]);
        let m = medium(&k, b"{}");
        let f = FileFetch { dir: m.path().join("lazare/offline") };
        let (start, mut body) = f.get("img.tar.zst", 4).unwrap();
        let mut rest = String::new();
        body.read_to_string(&mut rest).unwrap();
        assert_eq!((start, rest.as_str()), (4, "456789"));
        assert!(f.get("../offline/img.tar.zst", 0).is_err());
        assert!(f.get("missing", 0).is_err());
    }

    #[test]
    fn the_report_is_kept_root_only_where_lazare_next_reads_it() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let screen = Screen::stderr();
        let rec = Recorder { screen: &screen, events: Mutex::new(Vec::new()) };
        rec.record(Phase::Download, Some(37), "noise");
        rec.record(Phase::Download, Some(40), "downloading");
        rec.record(Phase::Installed, None, "done");
        let report = OfflineReport {
            inventory: inv(),
            hostname: "pc-1".into(),
            image: "test".into(),
            events: rec.events.lock().unwrap().clone(),
            log: "log".into(),
        };
        save(root.path(), &report).unwrap();
        let path = root.path().join(REPORT_PATH.trim_start_matches('/'));
        let back: OfflineReport = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.events.len(), 2);
        assert_eq!(back, report);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
