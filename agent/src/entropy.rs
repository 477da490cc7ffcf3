//! Early-boot entropy. getrandom() blocks until the kernel's pool is
//! initialised, and on an old PC with no hardware RNG that can take minutes:
//! TLS, DHCP transaction ids and UUIDs would hang. We mix what differs from
//! boot to boot and machine to machine (timing jitter, interrupt counts,
//! hardware ids) and credit it with RNDADDENTROPY. This is not strong
//! secrecy; plan integrity rests on the ed25519 signature, not on it.

use sha2::{Digest, Sha256};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Files whose contents vary per boot or per machine.
const SOURCES: &[&str] = &[
    "/proc/interrupts",
    "/proc/stat",
    "/proc/meminfo",
    "/proc/sys/kernel/random/boot_id",
    "/sys/class/dmi/id/product_uuid",
    "/sys/class/dmi/id/product_serial",
    "/sys/class/dmi/id/board_serial",
];

/// A 64-byte seed from timing jitter and the sources above.
pub fn gather(extra: &[u8]) -> [u8; 64] {
    let mut h = Sha256::new();
    let start = Instant::now();
    for round in 0..4u32 {
        for path in SOURCES {
            h.update(std::fs::read(path).unwrap_or_default());
            h.update(start.elapsed().as_nanos().to_le_bytes());
        }
        h.update(round.to_le_bytes());
    }
    if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
        h.update(now.as_nanos().to_le_bytes());
    }
    for entry in std::fs::read_dir("/sys/class/net").into_iter().flatten().flatten() {
        h.update(std::fs::read(entry.path().join("address")).unwrap_or_default());
    }
    h.update(extra);
    let first = h.finalize();
    let mut h2 = Sha256::new();
    h2.update(first);
    h2.update(start.elapsed().as_nanos().to_le_bytes());
    let second = h2.finalize();
    let mut seed = [0u8; 64];
    seed[..32].copy_from_slice(&first);
    seed[32..].copy_from_slice(&second);
    seed
}

/// Credits a seed to the kernel pool: enough (256 bits) for it to count as
/// initialised so getrandom() returns.
pub fn credit_boot_entropy() -> std::io::Result<()> {
    crate::sys::add_entropy(&gather(&[]), 256)
}

/// Mixes in later material (the server's nonce, DHCP packets) without
/// crediting it.
pub fn mix(extra: &[u8]) {
    let _ = crate::sys::add_entropy(&gather(extra), 0);
}
