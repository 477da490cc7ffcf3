//! `lazare build --offline IMAGE --data DIR`: the same hybrid ISO, also
//! carrying one image of the server as a plain file, its chunk index and a
//! plan template signed by the server's key (see
//! [`crate::serve::offline::bundle`]), so a PC that cannot reach the server
//! installs from the stick alone.

use crate::image::tools::tools_path;
use crate::serve::offline::{bundle, Bundle};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use lazare_proto::{
    PublicKey, INDEX_SUFFIX, OFFLINE_DIR, SIGNATURE_FILE, TEMPLATE_FILE, TOOLS_SUFFIX,
};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The bundle of `--offline IMAGE`, checked against `--key` when both are
/// given (the CD must trust the key that signed the template).
pub fn resolve(
    image: &str,
    data: Option<&Path>,
    key: Option<&PublicKey>,
    created: u64,
) -> Result<Bundle> {
    let Some(data) = data else {
        bail!(
            "--offline needs --data DIR, the install server's data directory: its image, chunk \
             index, rules and signing key make the offline bundle"
        )
    };
    let b = bundle(data, image, created)
        .with_context(|| format!("making the offline bundle of image {image:?}"))?;
    if let Some(k) = key.filter(|k| **k != b.key) {
        bail!(
            "--key ({k}) is not the key of the server in {} ({}): the CD would refuse its own \
             offline plan. Leave --key out with --offline: the data dir's key is baked in",
            data.display(),
            b.key
        );
    }
    Ok(b)
}

/// The small files (template and signature), by their path on the ISO.
pub fn small_files(b: &Bundle) -> Vec<(String, Vec<u8>)> {
    vec![
        (on_iso(TEMPLATE_FILE), b.template.clone()),
        (on_iso(SIGNATURE_FILE), format!("{}\n", b.signature).into_bytes()),
    ]
}

/// The big files, read from the data dir while the ISO is written: the
/// image under its own name (the template's `image.url`) and its index.
pub fn host_files(b: &Bundle) -> Vec<(String, PathBuf)> {
    let file = &b.manifest.file;
    let mut files = vec![
        (on_iso(file), b.image.clone()),
        (on_iso(&format!("{file}{INDEX_SUFFIX}")), b.chunks.clone()),
    ];
    if b.manifest.tools.is_some() {
        files.push((on_iso(&format!("{file}{TOOLS_SUFFIX}")), tools_path(&b.image)));
    }
    files
}

fn on_iso(name: &str) -> String {
    format!("{}/{name}", OFFLINE_DIR.trim_start_matches('/'))
}

/// The bytes the big files add, for the progress bar.
pub fn bytes(b: &Bundle) -> u64 {
    host_files(b).iter().filter_map(|(_, p)| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}

/// Shows the ISO's growth on `pb` while it is written: the writer has no
/// progress hook, so a thread reads the blocks the file really holds (its
/// length may be set before its bytes are written). Stops when dropped.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    pub fn start(file: std::fs::File, pb: ProgressBar) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if let Ok(m) = file.metadata() {
                    pb.set_position((m.blocks() * 512).min(pb.length().unwrap_or(u64::MAX)));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            pb.finish_and_clear();
        });
        Watch { stop, thread: Some(thread) }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
