//! The server's two sides of an install with no server in reach: the
//! signed plan template `lazare build --offline` puts on the stick, and
//! `POST /api/v1/machines/{id}/offline`, where the installed system's
//! `lazare-next` hands over what the offline agent recorded.

use super::api::{blocking, check_id, parse_json, ApiError};
use super::auth::machine_proof;
use super::config::Rules;
use super::datadir::{DataDir, RULES_FILE};
use super::enroll::HelloOutcome;
use super::plan::{find_image, setup};
use super::store::{now_ms, LogOutcome};
use super::Server;
use crate::image::chunks::index_path;
use crate::image::tools::tools_path;
use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use lazare_proto::{Event, ImageManifest, OfflineReport, PlanTemplate, PublicKey, TEMPLATE_KIND};
use std::path::PathBuf;
use std::sync::Arc;

/// What `lazare build --offline` copies onto the stick.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The template's exact signed bytes.
    pub template: Vec<u8>,
    /// `ed25519:BASE64` over [`Self::template`].
    pub signature: String,
    pub manifest: ImageManifest,
    /// The compressed image and its chunk index in the data dir.
    pub image: PathBuf,
    pub chunks: PathBuf,
    /// The key that checks the signature: the CD must carry it.
    pub key: PublicKey,
}

/// The bundle for image profile `profile` of the server whose data dir is
/// `root`, signed by its key, with its rules' locale, users and disks.
pub fn bundle(root: &std::path::Path, profile: &str, created: u64) -> Result<Bundle> {
    let data = DataDir::new(root);
    let key = data.load_key()?;
    let rules_path = data.path(RULES_FILE);
    if !rules_path.is_file() {
        bail!(
            "{} has no {RULES_FILE}: is {} the install server's data directory?",
            root.display(),
            root.display()
        );
    }
    let text = std::fs::read_to_string(&rules_path)
        .with_context(|| format!("reading {}", rules_path.display()))?;
    let rules = Rules::parse(&text)
        .with_context(|| format!("checking the rules in {}", rules_path.display()))?;
    let manifest = find_image(&data.images(), profile)?;
    let image = data.images().join(&manifest.file);
    let chunks = index_path(&image);
    if !chunks.is_file() {
        bail!(
            "image {} has no chunk index {}: start `lazare serve --data {}` once to make it",
            manifest.file,
            chunks.display(),
            root.display()
        );
    }
    // With no server to fall back on, a stick whose image lacks its tools
    // could not format a disk: the CD carries no mke2fs.
    if manifest.tools.is_none() {
        bail!(
            "image {} has no install tools (it was built by an older lazare): build it again \
             with `lazare image build` and add it with `lazare image add`",
            manifest.file
        );
    }
    if !tools_path(&image).is_file() {
        bail!(
            "image {} has no install tools file {}: copy it beside the image, or add the image \
             again with `lazare image add`",
            manifest.file,
            tools_path(&image).display()
        );
    }
    let t = template(&rules, &manifest, created)?;
    let body = serde_json::to_vec_pretty(&t).context("encoding the plan template")?;
    Ok(Bundle {
        signature: key.sign(&body),
        template: body,
        manifest,
        image,
        chunks,
        key: key.public(),
    })
}

/// The machine-independent part of what [`super::plan::build_plan`] makes
/// from the same rules; the image is a file beside the template.
pub fn template(rules: &Rules, image: &ImageManifest, created: u64) -> Result<PlanTemplate> {
    Ok(PlanTemplate {
        kind: TEMPLATE_KIND.into(),
        hostname_prefix: hostname_prefix(&rules.hostname),
        setup: setup(rules, image, image.file.clone())?,
        created,
    })
}

/// The literal start of the host name pattern (`pc-` of `pc-{n:03}`): with
/// no server to number the PC, its MAC follows.
fn hostname_prefix(pattern: &str) -> String {
    let head = pattern.split('{').next().unwrap_or_default().to_ascii_lowercase();
    if head.is_empty() {
        "pc-".into()
    } else {
        head
    }
}

/// `POST /api/v1/machines/{id}/offline`. Records the machine as a hello
/// would (a known machine must prove itself with its secret, a new one
/// enrols by the rules), then its plan, its events (marked as offline) and
/// its log. Answers the machine's new secret, or nothing when it had one.
pub async fn report(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<String, ApiError> {
    check_id(&id)?;
    let r: OfflineReport = parse_json(&body?, "offline report")?;
    r.inventory.validate().map_err(|e| ApiError::BadRequest(format!("invalid inventory: {e}")))?;
    if r.inventory.machine_id != id {
        return Err(ApiError::BadRequest("the report's inventory is another machine's".into()));
    }
    let proof = machine_proof(&headers);
    blocking(move || record(&s, &r, proof.as_deref())).await
}

fn record(s: &Server, r: &OfflineReport, proof: Option<&str>) -> Result<String, ApiError> {
    let id = &r.inventory.machine_id;
    let now = now_ms();
    let new_secret = match s.store.hello(&r.inventory, now, proof, s.rules.enroll, false)? {
        HelloOutcome::In { new_secret, .. } => new_secret,
        HelloOutcome::Refused(refusal) => return Err(refusal.into()),
    };
    s.store.set_plan(id, &r.hostname, &r.image)?;
    for rec in &r.events {
        let ev = Event {
            phase: rec.event.phase,
            percent: rec.event.percent.filter(|p| *p <= 100),
            message: format!("offline (PC clock {}): {}", rec.time, rec.event.message),
            from_peers: None,
        };
        s.store.add_event(id, &ev, now)?;
    }
    match s.store.add_log(id, &r.log, now)? {
        LogOutcome::Stored => {}
        other => eprintln!("lazare: offline log of {} not kept: {other:?}", &id[..12]),
    }
    eprintln!(
        "lazare: {} ({}) reports an install from an offline stick: {} events, image {}",
        r.hostname,
        &id[..12],
        r.events.len(),
        r.image
    );
    Ok(new_secret.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_name_keeps_the_patterns_literal_start() {
        assert_eq!(hostname_prefix("pc-{n:03}"), "pc-");
        assert_eq!(hostname_prefix("Salle2-{id}"), "salle2-");
        assert_eq!(hostname_prefix("{n}"), "pc-");
    }

    #[test]
    fn the_template_carries_the_rules_and_the_image_as_a_file() {
        let rules = Rules::parse(super::super::config::DEFAULT_RULES).unwrap();
        let m = ImageManifest {
            name: "test".into(),
            file: "test-1.tar.zst".into(),
            sha256: "a".repeat(64),
            size: 100,
            format: lazare_proto::ImageFormat::TarZst,
            installed_size: 8 << 30,
            suite: "bookworm".into(),
            locale: "fr_FR.UTF-8".into(),
            keymap: "fr".into(),
            timezone: "Europe/Paris".into(),
            created: 1,
            chunks: Some("b".repeat(64)),
            tools: None,
            torrent: None,
        };
        let t = template(&rules, &m, 7).unwrap();
        assert_eq!(t.setup.image.url, "test-1.tar.zst");
        assert_eq!(t.setup.image.chunks, "b".repeat(64));
        assert_eq!(t.setup.locale, rules.locale);
        assert_eq!(t.setup.users, rules.users);
        // Grown to hold the image, as a server plan would be.
        assert_eq!(t.setup.disks.root_min, 10 << 30);
        let no_index = ImageManifest { chunks: None, ..m };
        assert!(template(&rules, &no_index, 7).is_err());
    }
}
