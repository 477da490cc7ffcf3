//! The inventory sent in `POST /api/v1/hello`, read from `/sys`, `/proc`
//! and the disks' own superblocks. Every path is under `root` so tests can
//! run it on a fake tree.

use std::fs::File;
use std::path::Path;

use lazare_proto::{Disk, Dmi, Firmware, Inventory, Nic, Partition};

use crate::hw::blkid;

fn read(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn read_u64(path: &Path) -> u64 {
    read(path).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Collects everything; `root` is `/` on the PC.
pub fn collect(root: &Path) -> Inventory {
    let dmi = dmi(root);
    let nics = nics(root);
    let macs: Vec<String> = nics.iter().map(|n| n.mac.clone()).collect();
    let (disks, whole): (Vec<Disk>, Vec<Option<blkid::FsInfo>>) = disks(root).into_iter().unzip();
    Inventory {
        machine_id: Inventory::compute_machine_id(&dmi, &macs),
        memory_bytes: memory_bytes(root),
        cpus: cpus(root),
        cpu_model: cpu_model(root),
        firmware: if root.join("sys/firmware/efi").exists() {
            Firmware::Uefi
        } else {
            Firmware::Bios
        },
        dmi,
        boot_device: boot_device(&disks, &whole),
        disks: disks.into_iter().filter(|d| !d.name.starts_with("sr")).collect(),
        nics,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        installed_id: None,
    }
}

fn dmi(root: &Path) -> Dmi {
    let d = root.join("sys/class/dmi/id");
    // Placeholder strings some vendors leave in DMI are no identity.
    let real = |f: &str| {
        read(&d.join(f)).filter(|v| {
            let l = v.to_ascii_lowercase();
            !["to be filled by o.e.m.", "default string", "not specified", "none", "0"]
                .contains(&l.as_str())
        })
    };
    Dmi {
        vendor: real("sys_vendor"),
        product: real("product_name"),
        serial: real("product_serial"),
        uuid: real("product_uuid"),
    }
}

/// Total RAM as the firmware reported it: the kernel's MemTotal leaves out
/// what it reserved for itself, so the sum of the memory map's "System RAM"
/// ranges (from /sys/firmware/memmap) is used when present.
fn memory_bytes(root: &Path) -> u64 {
    let dimms = smbios_memory(root);
    if dimms > 0 {
        return dimms;
    }
    let mut total = 0u64;
    for e in std::fs::read_dir(root.join("sys/firmware/memmap")).into_iter().flatten().flatten() {
        if read(&e.path().join("type")).as_deref() != Some("System RAM") {
            continue;
        }
        let hex = |f: &str| {
            read(&e.path().join(f))
                .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        };
        if let (Some(start), Some(end)) = (hex("start"), hex("end")) {
            total += end + 1 - start;
        }
    }
    if total > 0 {
        return round_to_mib(total);
    }
    let meminfo = read(&root.join("proc/meminfo")).unwrap_or_default();
    crate::procfs::kib(&meminfo, "MemTotal").map_or(0, |kib| kib * 1024)
}

/// The installed RAM as SMBIOS lists it (type 17 "memory device" entries):
/// the size a person or a VM configuration states.
fn smbios_memory(root: &Path) -> u64 {
    let mut total = 0u64;
    for e in
        std::fs::read_dir(root.join("sys/firmware/dmi/entries")).into_iter().flatten().flatten()
    {
        if !e.file_name().to_string_lossy().starts_with("17-") {
            continue;
        }
        let Ok(raw) = std::fs::read(e.path().join("raw")) else { continue };
        total += dimm_size(&raw);
    }
    total
}

/// Size field of one SMBIOS type 17 structure, in bytes.
fn dimm_size(raw: &[u8]) -> u64 {
    let Some(size) = raw.get(0x0c..0x0e).map(|b| u16::from_le_bytes([b[0], b[1]])) else {
        return 0;
    };
    match size {
        0 | 0xffff => 0,
        0x7fff => raw
            .get(0x1c..0x20)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64 * lazare_proto::MIB),
        s if s & 0x8000 != 0 => (s & 0x7fff) as u64 * 1024,
        s => s as u64 * lazare_proto::MIB,
    }
}

/// The memory map misses the legacy holes below 1 MiB (VGA, BIOS ROM): RAM
/// sizes are whole MiB, so round up.
fn round_to_mib(bytes: u64) -> u64 {
    bytes.div_ceil(lazare_proto::MIB) * lazare_proto::MIB
}

fn cpus(root: &Path) -> u32 {
    let info = read(&root.join("proc/cpuinfo")).unwrap_or_default();
    info.lines().filter(|l| l.starts_with("processor")).count().max(1) as u32
}

fn cpu_model(root: &Path) -> String {
    let info = read(&root.join("proc/cpuinfo")).unwrap_or_default();
    info.lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// The Ethernet NICs: name, MAC (the burnt-in one when the driver has it),
/// driver and whether a cable is in.
pub fn nics(root: &Path) -> Vec<Nic> {
    crate::net::physical_nics(root)
        .into_iter()
        .filter_map(|name| {
            let dir = root.join("sys/class/net").join(&name);
            // Only Ethernet-type links (ARPHRD_ETHER = 1).
            if read(&dir.join("type")).as_deref() != Some("1") {
                return None;
            }
            let current = read(&dir.join("address"))?.to_ascii_lowercase();
            let mac = if root == Path::new("/") {
                crate::sys::permanent_mac(&name)
                    .map(|m| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
                    .unwrap_or(current)
            } else {
                current
            };
            let driver = std::fs::read_link(dir.join("device/driver"))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            Some(Nic { carrier: crate::net::carrier(root, &name), name, mac, driver })
        })
        .collect()
}

/// Block devices with hardware behind them (no loop, ram or zram).
/// The disks, each with the filesystem on its whole device (an ISO on a
/// CD or on a stick written with dd): one open per disk, as opening a CD
/// drive makes it check its medium (0.1 s for an empty one under qemu,
/// issue 17).
fn disks(root: &Path) -> Vec<(Disk, Option<blkid::FsInfo>)> {
    let mut out: Vec<(Disk, Option<blkid::FsInfo>)> = std::fs::read_dir(root.join("sys/block"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("device").exists())
        .filter_map(|e| disk(root, &e.file_name().to_string_lossy()))
        .collect();
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    out
}

fn disk(root: &Path, name: &str) -> Option<(Disk, Option<blkid::FsInfo>)> {
    let dir = root.join("sys/block").join(name);
    let sector =
        read(&dir.join("queue/logical_block_size")).and_then(|s| s.parse().ok()).unwrap_or(512u32);
    let size_bytes = read_u64(&dir.join("size")) * 512;
    if size_bytes == 0 && !name.starts_with("sr") {
        return None;
    }
    let serial = read(&dir.join("device/serial"))
        .or_else(|| read(&dir.join("serial")))
        .or_else(|| vpd_serial(&dir));
    let mut partitions: Vec<Partition> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("partition").exists())
        .filter_map(|e| partition(root, &e.path(), &e.file_name().to_string_lossy()))
        .collect();
    partitions.sort_by_key(|p| p.number);
    let (table, whole) = match File::open(root.join("dev").join(name)) {
        Ok(mut f) => (blkid::table(&mut f, sector as u64), blkid::probe(&mut f)),
        Err(_) => (None, None),
    };
    let disk = Disk {
        name: name.to_string(),
        size_bytes,
        model: read(&dir.join("device/model")),
        serial,
        removable: read(&dir.join("removable")).as_deref() == Some("1"),
        rotational: read(&dir.join("queue/rotational")).as_deref() == Some("1"),
        sector_size: sector,
        partitions,
        table,
    };
    Some((disk, whole))
}

/// SCSI/ATA unit serial number (VPD page 0x80): 4 header bytes, then text.
fn vpd_serial(dir: &Path) -> Option<String> {
    let raw = std::fs::read(dir.join("device/vpd_pg80")).ok()?;
    let s = String::from_utf8_lossy(raw.get(4..)?).trim_matches(['\0', ' ']).to_string();
    (!s.is_empty()).then_some(s)
}

fn partition(root: &Path, dir: &Path, name: &str) -> Option<Partition> {
    let number = read(&dir.join("partition"))?.parse().ok()?;
    let fs = File::open(root.join("dev").join(name)).ok().and_then(|mut f| blkid::probe(&mut f));
    Some(Partition {
        number,
        start: read_u64(&dir.join("start")) * 512,
        size: read_u64(&dir.join("size")) * 512,
        fs_type: fs.as_ref().map(|f| f.fs_type.clone()),
        label: fs.as_ref().and_then(|f| f.label.clone()),
        uuid: fs.and_then(|f| f.uuid),
        looks_like_home: false,
    })
}

/// The CD or USB stick we booted from: a whole device holding an iso9660
/// filesystem, preferring one labelled like ours.
fn boot_device(disks: &[Disk], whole: &[Option<blkid::FsInfo>]) -> Option<String> {
    let mut isos: Vec<(String, Option<String>)> = disks
        .iter()
        .zip(whole)
        .filter_map(|(d, fs)| {
            let fs = fs.as_ref()?;
            (fs.fs_type == "iso9660").then(|| (d.name.clone(), fs.label.clone()))
        })
        .collect();
    isos.sort_by_key(|(_, label)| {
        !label.as_deref().is_some_and(|l| l.to_ascii_uppercase().starts_with("LAZARE"))
    });
    isos.into_iter().next().map(|(n, _)| n)
}

/// The installed lazare system on `disks` (the first ext filesystem holding
/// `etc/lazare/machine-id`): its id for [`Inventory::installed_id`], and its
/// machine secret, which lets a CD left in prove the PC to the server.
/// Mounts each one read-only without journal replay: nothing is written.
/// Only for the PC itself (`/dev`): host runs never mount their own disks.
pub fn installed(
    dev: &Path,
    disks: &[Disk],
    note: &dyn Fn(&str),
) -> Option<crate::install::probe::Installed> {
    let scratch = Path::new("/run/lazare/probe");
    for d in disks {
        for p in &d.partitions {
            let Some(fs) = p.fs_type.as_deref().filter(|f| matches!(*f, "ext2" | "ext3" | "ext4"))
            else {
                continue;
            };
            let node = dev.join(diskplan::partition_name(&d.name, p.number));
            match crate::install::probe::installed(&node, fs, scratch) {
                Ok(Some(found)) => {
                    let id = &found.id;
                    note(&format!("{} holds the lazare system of machine {id}", node.display()));
                    return Some(found);
                }
                Ok(None) => {}
                Err(e) => {
                    note(&format!("looking for an installed system on {}: {e}", node.display()))
                }
            }
        }
    }
    None
}

/// A few lines for the screen.
pub fn summary(inv: &Inventory) -> Vec<String> {
    let gib = |b: u64| b as f64 / lazare_proto::GIB as f64;
    let mut lines = vec![
        format!(
            "Computer: {} {}",
            inv.dmi.vendor.as_deref().unwrap_or("?"),
            inv.dmi.product.as_deref().unwrap_or("?")
        ),
        format!(
            "Memory: {} MiB, {} x {}",
            inv.memory_bytes / lazare_proto::MIB,
            inv.cpus,
            inv.cpu_model
        ),
        format!("Firmware: {:?}", inv.firmware),
    ];
    for d in &inv.disks {
        lines.push(format!(
            "Disk {}: {:.1} GiB {}",
            d.name,
            gib(d.size_bytes),
            d.model.as_deref().unwrap_or("")
        ));
    }
    for n in &inv.nics {
        lines.push(format!(
            "Network card {}: {} ({})",
            n.name,
            n.mac,
            n.driver.as_deref().unwrap_or("no driver")
        ));
    }
    lines.push(format!("Machine id: {}", inv.machine_id));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn smbios_dimm_sizes() {
        let mut raw = vec![0u8; 0x22];
        raw[0x0c..0x0e].copy_from_slice(&256u16.to_le_bytes());
        assert_eq!(dimm_size(&raw), 256 * lazare_proto::MIB);
        raw[0x0c..0x0e].copy_from_slice(&0x7fffu16.to_le_bytes());
        raw[0x1c..0x20].copy_from_slice(&65536u32.to_le_bytes());
        assert_eq!(dimm_size(&raw), 64 * lazare_proto::GIB);
        raw[0x0c..0x0e].copy_from_slice(&(0x8000u16 | 512).to_le_bytes());
        assert_eq!(dimm_size(&raw), 512 * 1024);
    }

    #[test]
    fn fake_sysfs_inventory() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(
            r,
            "proc/cpuinfo",
            "processor\t: 0\nmodel name\t: Pentium 4\nprocessor\t: 1\nmodel name\t: Pentium 4\n",
        );
        write(r, "proc/meminfo", "MemTotal:  1000 kB\n");
        write(r, "sys/class/dmi/id/sys_vendor", "Dell Inc.\n");
        write(r, "sys/class/dmi/id/product_serial", "To Be Filled By O.E.M.\n");
        write(r, "sys/block/sda/size", "8388608\n");
        write(r, "sys/block/sda/removable", "0\n");
        write(r, "sys/block/sda/queue/rotational", "1\n");
        write(r, "sys/block/sda/device/model", "QEMU HARDDISK   \n");
        write(r, "sys/block/sda/sda1/partition", "1\n");
        write(r, "sys/block/sda/sda1/start", "2048\n");
        write(r, "sys/block/sda/sda1/size", "4096\n");
        write(r, "sys/block/loop0/size", "100\n");
        write(r, "sys/class/net/eth0/address", "52:54:00:12:34:56\n");
        write(r, "sys/class/net/eth0/type", "1\n");
        write(r, "sys/class/net/eth0/carrier", "1\n");
        fs::create_dir_all(r.join("sys/class/net/eth0/device")).unwrap();
        fs::create_dir_all(r.join("sys/block/sda/device")).unwrap();
        let inv = collect(r);
        assert_eq!((inv.cpus, inv.cpu_model.as_str()), (2, "Pentium 4"));
        assert_eq!(inv.memory_bytes, 1000 * 1024);
        assert_eq!(inv.firmware, Firmware::Bios);
        assert_eq!(inv.dmi.vendor.as_deref(), Some("Dell Inc."));
        assert_eq!(inv.dmi.serial, None, "OEM placeholder is no serial");
        assert_eq!(inv.disks.len(), 1, "loop devices are no disks");
        let d = &inv.disks[0];
        assert_eq!(
            (d.size_bytes, d.rotational, d.model.as_deref()),
            (4 * lazare_proto::GIB, true, Some("QEMU HARDDISK"))
        );
        assert_eq!((d.partitions[0].start, d.partitions[0].size), (1024 * 1024, 2 * 1024 * 1024));
        assert_eq!(inv.nics[0].mac, "52:54:00:12:34:56");
        assert_eq!(
            inv.machine_id,
            Inventory::compute_machine_id(&inv.dmi, &["52:54:00:12:34:56".into()])
        );
        inv.validate().unwrap();
    }
}
