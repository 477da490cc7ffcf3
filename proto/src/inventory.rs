//! What the agent reports about a PC in `POST /api/v1/hello`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hardware of one PC as the agent found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Stable id: see [`Inventory::compute_machine_id`].
    pub machine_id: String,
    pub memory_bytes: u64,
    pub cpus: u32,
    pub cpu_model: String,
    pub firmware: Firmware,
    pub dmi: Dmi,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    /// Kernel name of the CD or USB stick the agent booted from (`sr0`, `sdb`):
    /// never a target.
    pub boot_device: Option<String>,
    /// Version of the agent that sent this inventory.
    #[serde(default)]
    pub agent_version: String,
    /// The lazare machine id (`/etc/lazare/machine-id`) of a system lazare
    /// installed, found on one of the disks; `None` when no disk holds one.
    /// The server starts that system instead of reinstalling it when it is
    /// this PC's own (a CD or stick left in, see [`Inventory::holds_its_system`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    Bios,
    Uefi,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dmi {
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
    pub uuid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Kernel name: `sda`, `vdb`, `nvme0n1`.
    pub name: String,
    pub size_bytes: u64,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub removable: bool,
    pub rotational: bool,
    /// Logical sector size in bytes (512 when unknown).
    #[serde(default = "default_sector")]
    pub sector_size: u32,
    pub partitions: Vec<Partition>,
    /// Partition table found on the disk (`None`: none or unrecognised).
    /// Disk planning needs it to rebuild a table around a kept /home.
    #[serde(default)]
    pub table: Option<PartitionTable>,
}

/// Kind of partition table on a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionTable {
    /// MS-DOS / MBR (`dos` in sfdisk's words).
    Mbr,
    Gpt,
}

fn default_sector() -> u32 {
    512
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Partition number as the kernel counts it (`sda2` → 2).
    pub number: u32,
    /// Offset from the start of the disk, in bytes.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    /// Filesystem type as blkid would name it (`ext4`, `vfat`, `swap`).
    pub fs_type: Option<String>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    /// True when the filesystem's top level looks like a /home (user
    /// directories with dotfiles); set by the agent when it could look.
    #[serde(default)]
    pub looks_like_home: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    pub name: String,
    /// Permanent MAC, lowercase `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub driver: Option<String>,
    pub carrier: bool,
}

/// Why an inventory was refused by the server.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InventoryError {
    #[error("machine_id must be 64 lowercase hex characters, got {0:?}")]
    BadMachineId(String),
    #[error("memory_bytes is 0")]
    NoMemory,
    #[error("disk {0:?} has an invalid name")]
    BadDiskName(String),
    #[error("nic {name:?} has an invalid MAC {mac:?}")]
    BadMac { name: String, mac: String },
    #[error("partition {number} of {disk} lies outside the disk")]
    PartitionOutside { disk: String, number: u32 },
}

impl Inventory {
    /// A disk still holds the system lazare installed on this very PC.
    pub fn holds_its_system(&self) -> bool {
        self.installed_id.as_deref() == Some(self.machine_id.as_str())
    }

    /// Stable hash of what does not change when a PC is reinstalled: DMI
    /// product UUID and serial, and the permanent MACs of physical NICs.
    /// Sorted so that NIC enumeration order does not matter.
    pub fn compute_machine_id(dmi: &Dmi, macs: &[String]) -> String {
        let mut macs: Vec<String> = macs.iter().map(|m| m.to_ascii_lowercase()).collect();
        macs.sort();
        macs.dedup();
        let mut h = Sha256::new();
        h.update(b"lazare-machine-id-v1\n");
        for field in [&dmi.uuid, &dmi.serial, &dmi.vendor, &dmi.product] {
            h.update(field.as_deref().unwrap_or("").trim().to_ascii_lowercase());
            h.update(b"\n");
        }
        for m in &macs {
            h.update(m.as_bytes());
            h.update(b"\n");
        }
        hex(&h.finalize())
    }

    /// Checks what the server relies on; called on every hello.
    pub fn validate(&self) -> Result<(), InventoryError> {
        if !valid_machine_id(&self.machine_id) {
            return Err(InventoryError::BadMachineId(self.machine_id.clone()));
        }
        if self.memory_bytes == 0 {
            return Err(InventoryError::NoMemory);
        }
        for d in &self.disks {
            let ok = !d.name.is_empty()
                && d.name.len() <= 32
                && d.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(InventoryError::BadDiskName(d.name.clone()));
            }
            for p in &d.partitions {
                if p.start.checked_add(p.size).is_none_or(|end| end > d.size_bytes) {
                    return Err(InventoryError::PartitionOutside {
                        disk: d.name.clone(),
                        number: p.number,
                    });
                }
            }
        }
        for n in &self.nics {
            if n.mac.parse::<MacAddr>().is_err() {
                return Err(InventoryError::BadMac { name: n.name.clone(), mac: n.mac.clone() });
            }
        }
        Ok(())
    }
}

/// A machine id as [`Inventory::compute_machine_id`] makes it: 64 lowercase
/// hex characters. The server checks ids in URLs with this too.
pub fn valid_machine_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// An Ethernet address, `52:54:00:12:34:56`: how sysfs, `ip=` and the
/// inventory write it (six two-digit hex bytes; any case in, lowercase out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address: expected six hex bytes like 52:54:00:12:34:56")]
pub struct MacError(pub String);

impl std::str::FromStr for MacAddr {
    type Err = MacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let byte = |p: &str| {
            (p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        };
        let bytes: Option<Vec<u8>> = s.split(':').map(byte).collect();
        bytes.and_then(|b| <[u8; 6]>::try_from(b).ok()).map(MacAddr).ok_or(MacError(s.into()))
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

/// Lowercase hex of `bytes` (sha256 digests, ids, tokens): the one encoder
/// the agent, the server and the builder share.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of [`hex`]'s output (either case); `None` if `s` is not an
/// even number of hex digits.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhex_reads_what_hex_writes_and_nothing_else() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert_eq!(unhex("AbCd").unwrap(), [0xab, 0xcd]);
        for bad in ["abc", "zz", "+1", "a\u{e9}"] {
            assert_eq!(unhex(bad), None, "{bad}");
        }
    }

    fn dmi() -> Dmi {
        Dmi {
            vendor: Some("QEMU".into()),
            product: Some("Standard PC".into()),
            serial: None,
            uuid: Some("1234".into()),
        }
    }

    #[test]
    fn machine_id_ignores_nic_order_and_case() {
        let a = Inventory::compute_machine_id(
            &dmi(),
            &["52:54:00:12:34:56".into(), "52:54:00:AA:BB:CC".into()],
        );
        let b = Inventory::compute_machine_id(
            &dmi(),
            &["52:54:00:aa:bb:cc".into(), "52:54:00:12:34:56".into()],
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn machine_id_changes_with_hardware() {
        let a = Inventory::compute_machine_id(&dmi(), &["52:54:00:12:34:56".into()]);
        let b = Inventory::compute_machine_id(&dmi(), &["52:54:00:12:34:57".into()]);
        assert_ne!(a, b);
    }

    #[test]
    fn mac_syntax_and_round_trip() {
        let mac: MacAddr = "52:54:00:AB:cd:0f".parse().unwrap();
        assert_eq!(mac, MacAddr([0x52, 0x54, 0, 0xab, 0xcd, 0x0f]));
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!(mac.to_string().parse::<MacAddr>().unwrap(), mac);
        for bad in [
            "52:54:00:12:34",
            "52:54:00:12:34:zz",
            "52:54:00:12:34:5",
            "52:54:00:12:34:56:78",
            "",
            "+1:54:00:12:34:56",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn machine_ids() {
        let id = Inventory::compute_machine_id(&dmi(), &[]);
        assert!(valid_machine_id(&id));
        assert!(!valid_machine_id(&id.to_uppercase()));
        assert!(!valid_machine_id(&id[1..]));
        assert!(!valid_machine_id("not-hex"));
    }
}
