//! How the kernel modules travel in the initramfs: not as plain `.ko` files
//! but in two packs, each a cpio newc archive of `.ko` files (named as
//! modules.dep names them, `kernel/...`) compressed with zstd, under the
//! modules directory beside the plain index files.
//!
//! Why (issue 17): the kernel unpacks the initramfs before `/init` runs,
//! and decompressing 16.8 MB of modules cost ~0.3 s of a TCG boot (22 MB
//! uncompressed: +0.05 s against busybox; the same in zstd: +0.4 s), while
//! a PC loads a dozen of them. In packs the kernel only copies 3.1 MB; the
//! agent decompresses the first pack (the network drivers, 6 MB) before
//! the network step and the second while the network comes up, and none
//! of it stays in RAM for the install.
//!
//! - [`PACKS`]`[0]`: every module under `kernel/drivers/net/` and
//!   `kernel/drivers/virtio/` (virtio_pci, which a virtio-net sits behind)
//!   and the modules they load with.
//! - [`PACKS`]`[1]`: the rest, compressed with the first pack's
//!   uncompressed archive as its dictionary (zstd's raw-content
//!   dictionary): two packs cost 23 kB more than one archive without it,
//!   with it 0 kB, and the CD has 13 kB to spare under its 20 MB.

use std::io::Read;

/// The packs' file names in the modules directory, in the order they are
/// read: a module is looked for in the first, then in the second.
pub const PACKS: [&str; 2] = ["modules.lazare-net.cpio.zst", "modules.lazare-rest.cpio.zst"];

/// True for a module the first pack holds (its dependencies go with it):
/// what the agent loads before its network step.
pub fn is_network_driver(path: &str) -> bool {
    path.starts_with("kernel/drivers/net/") || path.starts_with("kernel/drivers/virtio/")
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    #[error("decompressing {pack}: {source}")]
    Decompress {
        pack: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {pack}: {message}")]
    Archive { pack: &'static str, message: String },
}

/// The largest archive a pack may declare: a damaged header must not make
/// the agent of a 128 MB PC allocate gigabytes.
const MAX_ARCHIVE: usize = 256 << 20;

/// The archive of pack `i` ([`PACKS`]), from its compressed bytes; `first`
/// is the first pack's archive (what [`unpack`] gave for it), the
/// dictionary of every later one. Decoded in one pass into a buffer of the
/// size the frame declares: streaming would add zstd's window (8 MB) and a
/// growing buffer's slack to the agent's peak (42 MB at boot, measured).
pub fn unpack(i: usize, compressed: &[u8], first: &[u8]) -> Result<Vec<u8>, PackError> {
    let pack = PACKS[i];
    let fail = |source| PackError::Decompress { pack, source };
    let dict: &[u8] = if i == 0 { &[] } else { first };
    let size = zstd::bulk::Decompressor::upper_bound(compressed)
        .filter(|n| *n <= MAX_ARCHIVE)
        .ok_or_else(|| fail(std::io::Error::other("no or an impossible size in its header")))?;
    zstd::bulk::Decompressor::with_dictionary(dict)
        .and_then(|mut d| d.decompress(compressed, size))
        .map_err(fail)
}

/// The members of pack `i`'s `archive` whose names `want` takes, with their
/// bytes.
pub fn members(
    i: usize,
    archive: &[u8],
    want: impl FnMut(&str) -> bool,
) -> Result<Vec<(String, Vec<u8>)>, PackError> {
    read_members(i, archive, want, |_| false)
}

/// The members `names` of pack `i`, decompressing it only as far as the
/// last of them: the agent's network step needs one driver of the first
/// pack, and decompressing all of it cost 0.17 s of a TCG boot. Names not
/// in the pack are left out of the answer.
pub fn find(
    i: usize,
    compressed: &[u8],
    first: &[u8],
    names: &[String],
) -> Result<Vec<(String, Vec<u8>)>, PackError> {
    let dict: &[u8] = if i == 0 { &[] } else { first };
    let decoder = zstd::stream::read::Decoder::with_dictionary(compressed, dict)
        .map_err(|source| PackError::Decompress { pack: PACKS[i], source })?;
    let want = |n: &str| names.iter().any(|w| w == n);
    read_members(i, decoder, want, |found| found.len() == names.len())
}

/// Reads newc members from `input` until the trailer or until `enough`.
fn read_members<R: Read>(
    i: usize,
    input: R,
    mut want: impl FnMut(&str) -> bool,
    enough: impl Fn(&[(String, Vec<u8>)]) -> bool,
) -> Result<Vec<(String, Vec<u8>)>, PackError> {
    let pack = PACKS[i];
    let fail = |n: usize, e: std::io::Error| PackError::Archive {
        pack,
        message: format!("entry {n}: {e}"),
    };
    let mut out = Vec::new();
    let mut input = input;
    for n in 0.. {
        let mut reader = cpio::NewcReader::new(input).map_err(|e| fail(n, e))?;
        if reader.entry().is_trailer() {
            break;
        }
        let name = reader.entry().name().to_string();
        if want(&name) {
            let mut data = Vec::with_capacity(reader.entry().file_size() as usize);
            reader.read_to_end(&mut data).map_err(|e| fail(n, e))?;
            out.push((name, data));
            if enough(&out) {
                break;
            }
        }
        input = reader.finish().map_err(|e| fail(n, e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the builder writes them (the `lazare` crate's initramfs writer).
    fn compress(i: usize, archive: &[u8], first: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
        let dict: &[u8] = if i == 0 { &[] } else { first };
        let mut encoder = zstd::stream::write::Encoder::with_dictionary(Vec::new(), level, dict)?;
        encoder.include_checksum(true)?;
        encoder.set_pledged_src_size(Some(archive.len() as u64))?;
        std::io::Write::write_all(&mut encoder, archive)?;
        encoder.finish()
    }

    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in files {
            let mut w =
                cpio::newc::Builder::new(name).mode(0o100644).write(&mut out, data.len() as u32);
            std::io::Write::write_all(&mut w, data).unwrap();
            w.finish().unwrap();
        }
        cpio::newc::trailer(&mut out).unwrap();
        out
    }

    #[test]
    fn the_second_pack_needs_the_first_as_its_dictionary() {
        let shared: Vec<u8> = (0..20_000u32).flat_map(|i| (i * 7919).to_le_bytes()).collect();
        let net = archive(&[("kernel/drivers/net/a.ko", &shared), ("kernel/lib/b.ko", b"bb")]);
        let mut rest_data = shared.clone();
        rest_data.extend_from_slice(b"tail");
        let rest = archive(&[("kernel/fs/c.ko", &rest_data)]);
        let net_z = compress(0, &net, &[], 3).unwrap();
        let rest_z = compress(1, &rest, &net, 3).unwrap();
        // The dictionary pays: the shared bytes are not stored twice.
        assert!(rest_z.len() < compress(0, &rest, &[], 3).unwrap().len() / 2);
        let net_back = unpack(0, &net_z, &[]).unwrap();
        assert_eq!(net_back, net);
        assert_eq!(unpack(1, &rest_z, &net_back).unwrap(), rest);
        // Without it (or with another one) the frame does not decode.
        assert!(unpack(1, &rest_z, b"not the first pack").is_err());
        let got = members(0, &net_back, |n| n.ends_with("b.ko")).unwrap();
        assert_eq!(got, vec![("kernel/lib/b.ko".to_string(), b"bb".to_vec())]);
        let all = members(1, &rest, |_| true).unwrap();
        assert_eq!(all, vec![("kernel/fs/c.ko".to_string(), rest_data.clone())]);
        // Streamed from the compressed pack: the same bytes, absent names
        // left out.
        let names = ["kernel/fs/c.ko".to_string(), "kernel/none.ko".to_string()];
        assert_eq!(find(1, &rest_z, &net_back, &names).unwrap(), all);
        let names = ["kernel/lib/b.ko".to_string()];
        assert_eq!(find(0, &net_z, &[], &names).unwrap(), got);
    }

    #[test]
    fn a_damaged_pack_is_an_error_naming_it() {
        let net = archive(&[("kernel/drivers/net/a.ko", b"aaaa")]);
        let mut z = compress(0, &net, &[], 3).unwrap();
        let n = z.len();
        z[n - 6] ^= 0xff;
        let err = unpack(0, &z, &[]).unwrap_err();
        assert!(err.to_string().contains(PACKS[0]), "{err}");
        let err = members(0, &net[..net.len() - 200], |_| true).unwrap_err();
        assert!(err.to_string().contains(PACKS[0]), "{err}");
    }
}
