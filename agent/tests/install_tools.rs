//! The install tools end to end on this host: the image build's hook
//! (`lazare::image::tools::HOOK`, run on this Debian host's root as
//! mmdebstrap runs it on an image root) makes the tar, `pack` compresses
//! it; the agent's `prepare` fetches it beside an image, checks it against
//! the plan and unpacks it; its mke2fs, run through the unpacked loader and
//! libraries alone, makes an ext4 the agent's superblock probe reads back.
//! A tools file that is not the one the plan names is refused before a
//! byte of it is unpacked. Needs root (chroot), like the image build.

use std::path::Path;
use std::process::Command;

use lazare_agent::install::tools::{prepare, Mke2fs, ToolsError};
use lazare_agent::install::Retry;
use lazare_agent::offline::FileFetch;
use lazare_proto::{Pinned, TOOLS_SUFFIX};

struct Quiet;

impl lazare_agent::install::stream::Progress for Quiet {
    fn percent(&self, _: u8) {}
    fn warn(&self, _: &str) {}
}

/// The tools of this host's root, as the image build makes them for an
/// image root: `<dir>/img.tar.zst.tools`.
fn host_tools(dir: &Path) -> Pinned {
    let tar = dir.join("tools.tar");
    let status = Command::new("sh")
        .arg("-c")
        .arg(lazare::image::tools::HOOK)
        .arg("hook")
        .arg("/")
        .env("LAZARE_TOOLS_TAR", &tar)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .status()
        .unwrap();
    assert!(status.success(), "the tools hook failed on this host's root");
    lazare::image::tools::pack(&tar, &dir.join(format!("img.tar.zst{TOOLS_SUFFIX}"))).unwrap()
}

const RETRY: Retry = Retry { tries: 1, first_wait: std::time::Duration::from_millis(1) };

#[test]
fn the_images_mke2fs_runs_from_ram_through_its_own_loader() {
    let tmp = tempfile::tempdir().unwrap();
    let want = host_tools(tmp.path());
    assert!(want.size > 100_000, "suspiciously small tools: {want:?}");
    let fetch = FileFetch { dir: tmp.path().to_path_buf() };
    let ram = tmp.path().join("run/lazare/tools");
    let mke2fs = prepare(&fetch, "img.tar.zst", Some(&want), &ram, RETRY, &Quiet).unwrap();
    assert!(matches!(&mke2fs, Mke2fs::Image { root, .. } if root == &ram), "{mke2fs:?}");
    for file in ["usr/sbin/mke2fs", "etc/mke2fs.conf", "lib64/ld-linux-x86-64.so.2"] {
        // A file, not a link: one into / would run this host's copy.
        let meta = std::fs::symlink_metadata(ram.join(file));
        assert!(meta.is_ok_and(|m| m.is_file()), "{file} not a file in the tools");
    }
    let has = |name: &str| {
        walkdir::WalkDir::new(&ram).into_iter().flatten().any(|e| e.file_name() == name)
    };
    assert!(has("libext2fs.so.2") && has("libc.so.6"), "libraries missing");

    let disk = tmp.path().join("disk.img");
    std::fs::write(&disk, vec![0u8; 16 << 20]).unwrap();
    let out = mke2fs
        .command()
        .args(["-q", "-F", "-t", "ext4", "-L", "lazare", "-U"])
        .arg("0b5e9c3e-6a0c-4bb4-9f1e-3f6f2b1c8d77")
        .arg(&disk)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info = lazare_agent::hw::blkid::probe(&mut std::fs::File::open(&disk).unwrap()).unwrap();
    assert_eq!(info.fs_type, "ext4");
    assert_eq!(info.label.as_deref(), Some("lazare"));
    assert_eq!(info.uuid.as_deref(), Some("0b5e9c3e-6a0c-4bb4-9f1e-3f6f2b1c8d77"));

    mke2fs.remove().unwrap();
    assert!(!ram.exists(), "the tools stay in RAM");
}

#[test]
fn tools_that_are_not_the_signed_ones_are_refused_unpacked() {
    let tmp = tempfile::tempdir().unwrap();
    let want = host_tools(tmp.path());
    let fetch = FileFetch { dir: tmp.path().to_path_buf() };
    let ram = tmp.path().join("tools");
    let other = Pinned { sha256: "0".repeat(64), ..want.clone() };
    let e = prepare(&fetch, "img.tar.zst", Some(&other), &ram, RETRY, &Quiet).unwrap_err();
    assert!(matches!(e, ToolsError::Mismatch { .. }), "{e}");
    let longer = Pinned { size: want.size - 1, ..want };
    let e = prepare(&fetch, "img.tar.zst", Some(&longer), &ram, RETRY, &Quiet).unwrap_err();
    assert!(matches!(e, ToolsError::Mismatch { .. }), "{e}");
    assert!(!ram.exists(), "refused tools were unpacked");
}
