//! Pictures of the guest's screen: what the staff in front of the PC will
//! see. `lazare vm --screenshots DIR` keeps one PNG each time the screen
//! changes, so a volunteer can put the real screens in their own
//! instructions (and our README shows the agent's screen the same way).

use super::{io_err, Vm, VmError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

impl Vm {
    /// Save the guest's display as a PNG (qemu's `screendump -f png`).
    pub fn screenshot(&self, path: &Path) -> Result<(), VmError> {
        let out = self.monitor(&format!("screendump {} -f png", path.display()))?;
        if !path.is_file() {
            return Err(VmError::Screenshot(format!(
                "qemu wrote no picture to {}: {}",
                path.display(),
                out.trim()
            )));
        }
        Ok(())
    }
}

/// Width and height from a PNG's IHDR chunk, or None if `data` is not a PNG.
pub fn png_size(data: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !data.starts_with(SIGNATURE) || data.get(12..16)? != b"IHDR" {
        return None;
    }
    let be = |r: std::ops::Range<usize>| Some(u32::from_be_bytes(data.get(r)?.try_into().ok()?));
    Some((be(16..20)?, be(20..24)?))
}

/// Takes a screenshot every `every` and keeps it only when the screen
/// changed since the last one kept: `DIR/001-0012s.png` (order, seconds
/// since boot).
pub struct ScreenRecorder {
    dir: PathBuf,
    every: Duration,
    started: Instant,
    last_try: Option<Instant>,
    last_kept: Vec<u8>,
    kept: usize,
}

impl ScreenRecorder {
    pub fn new(dir: &Path, every: Duration) -> Result<Self, VmError> {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        Ok(ScreenRecorder {
            dir: dir.to_path_buf(),
            every,
            started: Instant::now(),
            last_try: None,
            last_kept: Vec::new(),
            kept: 0,
        })
    }

    /// How many distinct screens were saved.
    pub fn kept(&self) -> usize {
        self.kept
    }

    /// Call often; takes a picture when `every` has passed. Returns the path
    /// of a newly kept picture.
    pub fn tick(&mut self, vm: &Vm) -> Result<Option<PathBuf>, VmError> {
        if self.last_try.is_some_and(|t| t.elapsed() < self.every) {
            return Ok(None);
        }
        self.last_try = Some(Instant::now());
        let scratch = self.dir.join(".screen.png");
        vm.screenshot(&scratch)?;
        let data =
            std::fs::read(&scratch).map_err(io_err(format!("reading {}", scratch.display())))?;
        // Identical bytes mean an identical screen (qemu's encoder is deterministic).
        if data == self.last_kept {
            let _ = std::fs::remove_file(&scratch);
            return Ok(None);
        }
        self.kept += 1;
        let secs = self.started.elapsed().as_secs();
        let path = self.dir.join(format!("{:03}-{secs:04}s.png", self.kept));
        std::fs::rename(&scratch, &path).map_err(io_err(format!("saving {}", path.display())))?;
        self.last_kept = data;
        Ok(Some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::png_size;

    #[test]
    fn png_size_reads_ihdr_and_refuses_other_data() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&720u32.to_be_bytes());
        png.extend_from_slice(&400u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((720, 400)));
        assert_eq!(png_size(&png[..20]), None);
        assert_eq!(png_size(b"P6\n720 400\n255\n"), None);
    }
}
