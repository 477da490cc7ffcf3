//! Builders for the inventories that planning and install tests start from,
//! shared by this crate's tests and the agent's (feature `testing`), so one
//! place says what a plain test disk is.

use lazare_proto::{Disk, Dmi, Firmware, Inventory, Partition, MIB};

/// A blank, fixed, rotating disk with 512-byte sectors and no table.
pub fn disk(name: &str, size: u64) -> Disk {
    Disk {
        name: name.into(),
        size_bytes: size,
        model: None,
        serial: None,
        removable: false,
        rotational: true,
        sector_size: 512,
        partitions: vec![],
        table: None,
    }
}

/// A partition found on a disk (bytes), formatted `fs` and labelled
/// `label`; the one labelled `home` looks like a user's /home.
pub fn partition(number: u32, start: u64, size: u64, fs: &str, label: &str) -> Partition {
    Partition {
        number,
        start,
        size,
        fs_type: Some(fs.into()),
        label: Some(label.into()),
        uuid: None,
        looks_like_home: label == "home",
    }
}

/// A one-CPU machine with `memory` bytes and these disks, booted from none
/// of them.
pub fn inventory(firmware: Firmware, memory: u64, disks: Vec<Disk>) -> Inventory {
    Inventory {
        machine_id: "0".repeat(64),
        memory_bytes: memory,
        cpus: 1,
        cpu_model: "test".into(),
        firmware,
        dmi: Dmi::default(),
        disks,
        nics: vec![],
        boot_device: None,
        agent_version: String::new(),
        installed_id: None,
    }
}

/// [`inventory`] with 256 MiB, the least a donated PC has, and one disk.
pub fn one_disk(firmware: Firmware, disk: Disk) -> Inventory {
    inventory(firmware, 256 * MIB, vec![disk])
}
