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
        let id = &self.machine_id;
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(InventoryError::BadMachineId(id.clone()));
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
            if !is_mac(&n.mac) {
                return Err(InventoryError::BadMac { name: n.name.clone(), mac: n.mac.clone() });
            }
        }
        Ok(())
    }
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Lowercase hex of `bytes` (sha256 digests, ids, tokens): the one encoder
/// the agent, the server and the builder share.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn mac_syntax() {
        assert!(is_mac("52:54:00:12:34:56"));
        assert!(!is_mac("52:54:00:12:34"));
        assert!(!is_mac("52:54:00:12:34:zz"));
    }
}
