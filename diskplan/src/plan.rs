//! The planning rules. Summary of the choices (each explained where made):
//! - never touched: the boot CD/USB, removable media, excluded names, tiny disks;
//! - root goes on the first non-rotational disk that fits it, else the first
//!   disk by name that does (the one a BIOS boots by default); a disk that
//!   holds a kept /home is tried last;
//! - a kept /home on another disk leaves that disk untouched; on the root
//!   disk, the table is kept and the rest is rebuilt around it;
//! - a new /home goes on the largest other disk, else shares the root disk
//!   when it has room;
//! - swap goes on a third disk when there is one (it spreads the I/O of a
//!   machine that swaps a lot), else beside /home, else beside root, and is
//!   dropped when it does not fit;
//! - any further disk becomes `/data`, `/data2`...: no LVM in the image, and
//!   spanning old disks would let the weakest one take all the data along.

use crate::layout::{
    DiskAction, DiskLayout, Fs, Layout, Mount, PlannedPartition, Role, UntouchedReason,
};
use crate::pack::{pack, usable, Want};
use crate::*;
use lazare_proto::{Disk, DiskPolicy, Firmware, HomePolicy, Inventory, Partition};
use lazare_proto::{PartitionTable, SwapPolicy, TablePreference};

struct Ctx<'a> {
    inv: &'a Inventory,
    policy: &'a DiskPolicy,
    root_min: u64,
    /// The /home to keep: its disk and partition.
    home: Option<(&'a Disk, &'a Partition)>,
}

/// What will be written to one disk, before packing.
struct Spec<'a> {
    disk: &'a Disk,
    table: PartitionTable,
    keep: bool,
    kept: Vec<PlannedPartition>,
    wants: Vec<Want>,
}

/// Plans the disks of `inv` under `policy`. Pure: reads nothing else.
pub fn plan(inv: &Inventory, policy: &DiskPolicy) -> Result<Layout, PlanError> {
    let mut untouched = Vec::new();
    let mut cands: Vec<&Disk> = Vec::new();
    for d in &inv.disks {
        match never_touch(inv, policy, d) {
            Some(why) => untouched.push((d, why)),
            None => cands.push(d),
        }
    }
    cands.sort_by(|a, b| a.name.cmp(&b.name));
    if cands.is_empty() {
        let list: Vec<String> =
            untouched.iter().map(|(d, why)| format!("{}: {why:?}", d.name)).collect();
        let list = if list.is_empty() { "the PC reports no disk".into() } else { list.join(", ") };
        return Err(PlanError::NoDisk(list));
    }
    let mut notes = Vec::new();
    let home = match policy.home {
        HomePolicy::Preserve => find_home(&cands),
        HomePolicy::Fresh => None,
    };
    // Other disks holding something that looks like a /home are kept too:
    // erasing a user's files on a guess is the one thing not to do.
    if let Some((hd, _)) = home {
        cands.retain(|d| {
            let other_home = d.name != hd.name && d.partitions.iter().any(is_home_like);
            if other_home {
                notes.push(format!(
                    "{} also holds a /home-like partition: kept, not mounted",
                    d.name
                ));
                untouched.push((d, UntouchedReason::HoldsHome));
            }
            !other_home
        });
    }
    let swap = match policy.swap {
        SwapPolicy::Auto => auto_swap(inv.memory_bytes),
        SwapPolicy::None => 0,
        SwapPolicy::Fixed(n) => align_up(n, lazare_proto::MIB),
    };
    let root_min = align_up(policy.root_min.max(lazare_proto::MIB), lazare_proto::MIB);
    let ctx = Ctx { inv, policy, root_min, home };
    // Root preference: not the kept-/home disk, then SSD before spinning
    // disk, then name order (the sort above; sort_by_key is stable).
    // Except on BIOS when the kept /home is on the first disk: that is the
    // disk the BIOS starts, and left untouched it has no boot code, so root
    // is rebuilt around the /home there when it fits.
    let home_name = home.map(|(h, _)| h.name.as_str());
    let bios_first_home =
        inv.firmware == Firmware::Bios && home_name == Some(cands[0].name.as_str());
    let mut order = cands.clone();
    order.sort_by_key(|d| {
        let is_home = home_name == Some(d.name.as_str());
        (!(bios_first_home && is_home), is_home, d.rotational)
    });
    let mut home_err = None;
    for r in &order {
        for try_swap in swap_tries(swap) {
            match attempt(&ctx, &cands, r, try_swap, &mut notes) {
                Ok(specs) => {
                    if try_swap == 0 && swap > 0 {
                        notes.push("no room for swap: none made".into());
                    } else if try_swap < swap {
                        notes.push(format!(
                            "the disks are tight: swap is {} MiB, not {}",
                            try_swap >> 20,
                            swap >> 20
                        ));
                    }
                    if bios_first_home && r.name != cands[0].name {
                        notes.push(format!(
                            "{} keeps your files and stays as is; if the PC does not start, choose {} in the BIOS boot menu",
                            cands[0].name, r.name
                        ));
                    }
                    return Ok(finish(&ctx, specs, untouched, notes));
                }
                Err(e @ PlanError::HomeNotKeepable { .. }) => home_err = Some(e),
                Err(_) => {}
            }
        }
    }
    if let Some(e) = home_err {
        return Err(e);
    }
    let needed = root_min + boot_size(&ctx, order[0]);
    let largest = cands.iter().map(|d| largest_free(&ctx, d)).max().unwrap_or(0);
    Err(PlanError::TooLittleSpace { needed, largest })
}

/// Swap sizes to try, largest first: the full size, then halves while
/// still worth having (≥ 256 MiB), then none.
fn swap_tries(swap: u64) -> Vec<u64> {
    let mut out = vec![swap];
    let mut next = align_down(swap / 2, lazare_proto::MIB);
    while next >= 256 * lazare_proto::MIB {
        out.push(next);
        next = align_down(next / 2, lazare_proto::MIB);
    }
    if swap > 0 {
        out.push(0);
    }
    out
}

/// Why `d` must never be written, if it must not.
fn never_touch(inv: &Inventory, policy: &DiskPolicy, d: &Disk) -> Option<UntouchedReason> {
    if inv.boot_device.as_deref() == Some(d.name.as_str()) {
        Some(UntouchedReason::BootDevice)
    } else if d.removable {
        Some(UntouchedReason::Removable)
    } else if policy.exclude.iter().any(|x| x == &d.name) {
        Some(UntouchedReason::Excluded)
    } else if d.size_bytes < MIN_USEFUL_DISK {
        Some(UntouchedReason::TooSmall)
    } else {
        None
    }
}

fn is_home_like(p: &Partition) -> bool {
    let ext = matches!(p.fs_type.as_deref(), Some("ext2" | "ext3" | "ext4"));
    let label = p.label.as_deref().is_some_and(|l| l.eq_ignore_ascii_case("home"));
    ext && (label || p.looks_like_home)
}

/// The best /home candidate: label and content agree > content > label,
/// then the largest.
fn find_home<'a>(cands: &[&'a Disk]) -> Option<(&'a Disk, &'a Partition)> {
    let score = |p: &Partition| {
        let label = p.label.as_deref().is_some_and(|l| l.eq_ignore_ascii_case("home"));
        (u8::from(p.looks_like_home) * 2 + u8::from(label), p.size)
    };
    cands
        .iter()
        .flat_map(|d| d.partitions.iter().map(move |p| (*d, p)))
        .filter(|(_, p)| is_home_like(p))
        .max_by_key(|(_, p)| score(p))
}

/// Table for a disk that gets a new one.
fn new_table(ctx: &Ctx, d: &Disk, notes: &mut Vec<String>) -> PartitionTable {
    // MBR counts sectors in 32 bits.
    let mbr_max = (u64::from(u32::MAX) + 1) * u64::from(d.sector_size.max(512));
    let fits_mbr = d.size_bytes <= mbr_max;
    match (ctx.policy.table, ctx.inv.firmware) {
        (TablePreference::Gpt, _) | (TablePreference::Auto, Firmware::Uefi) => PartitionTable::Gpt,
        // Old BIOSes hang on a disk without an MBR partition they recognise.
        (TablePreference::Auto, Firmware::Bios) if fits_mbr => PartitionTable::Mbr,
        (TablePreference::Mbr, _) if fits_mbr => PartitionTable::Mbr,
        _ => {
            notes.push(format!("{} is larger than MBR can address: GPT", d.name));
            PartitionTable::Gpt
        }
    }
}

/// Boot partition a disk needs: an ESP on the UEFI root disk, bios_grub on
/// every GPT disk of a BIOS PC (so GRUB can go on each; MBR embeds GRUB in
/// the gap before the first partition and needs none).
fn boot_want(ctx: &Ctx, d: &Disk, table: PartitionTable, is_root: bool) -> Option<Want> {
    match (ctx.inv.firmware, table) {
        (Firmware::Uefi, _) if is_root => {
            let esp = if d.sector_size >= 4096 { ESP_SIZE_4K } else { ESP_SIZE };
            Some(Want::fixed(Role::Esp, esp))
        }
        (Firmware::Bios, PartitionTable::Gpt) => Some(Want::fixed(Role::BiosGrub, BIOS_GRUB_SIZE)),
        _ => None,
    }
}

fn boot_size(ctx: &Ctx, d: &Disk) -> u64 {
    let keeps = ctx.home.is_some_and(|(h, _)| h.name == d.name);
    let table = match d.table {
        Some(t) if keeps => t,
        _ => new_table(ctx, d, &mut Vec::new()),
    };
    boot_want(ctx, d, table, true).map_or(0, |w| w.min)
}

fn largest_free(ctx: &Ctx, d: &Disk) -> u64 {
    let (s, e) = usable(d);
    match ctx.home {
        Some((hd, hp)) if hd.name == d.name => {
            let before = align_down(hp.start, lazare_proto::MIB).saturating_sub(s);
            let after = e.saturating_sub(align_up(hp.start + hp.size, lazare_proto::MIB));
            before.max(after)
        }
        _ => e.saturating_sub(s),
    }
}

/// One try with `r` as the root disk.
fn attempt<'a>(
    ctx: &Ctx<'a>,
    cands: &[&'a Disk],
    r: &'a Disk,
    swap: u64,
    notes: &mut Vec<String>,
) -> Result<Vec<Spec<'a>>, PlanError> {
    let mut local_notes = Vec::new();
    let home_disk = ctx.home.map(|(d, _)| d.name.as_str());
    let mut others: Vec<&Disk> = cands
        .iter()
        .copied()
        .filter(|d| d.name != r.name && Some(d.name.as_str()) != home_disk)
        .collect();
    let mut root = root_spec(ctx, r, &mut local_notes)?;
    // A new /home: the largest other disk (first by name on a tie).
    let new_home = if ctx.home.is_none() {
        let best = others.iter().enumerate().max_by_key(|(i, d)| (d.size_bytes, usize::MAX - i));
        best.map(|(i, _)| i).map(|i| others.remove(i))
    } else {
        None
    };
    let third = if others.is_empty() { None } else { Some(others.remove(0)) };
    let swap_on = match (third, new_home) {
        (Some(t), _) => t.name.as_str(),
        (None, Some(h)) => h.name.as_str(),
        (None, None) => r.name.as_str(),
    };
    let swap_want = (swap > 0).then(|| Want::fixed(Role::Swap, swap));
    let mut specs = Vec::new();
    let shares_home = ctx.home.is_none() && new_home.is_none();
    if swap_on == r.name {
        root.wants.extend(swap_want);
    }
    if shares_home {
        split_root_home(ctx, &mut root, &mut local_notes);
    }
    specs.push(root);
    for (d, main) in
        new_home.map(|h| (h, Role::Home)).into_iter().chain(third.map(|t| (t, Role::Data)))
    {
        let mut s = other_spec(ctx, d, &mut local_notes);
        if swap_on == d.name {
            s.wants.extend(swap_want);
        }
        s.wants.push(Want::fill(main, DATA_MIN));
        specs.push(s);
    }
    for d in others {
        let mut s = other_spec(ctx, d, &mut local_notes);
        s.wants.push(Want::fill(Role::Data, DATA_MIN));
        specs.push(s);
    }
    for s in &specs {
        if pack(s.disk, s.table, &s.kept, &s.wants).is_none() {
            return Err(PlanError::TooLittleSpace { needed: 0, largest: 0 });
        }
    }
    notes.extend(local_notes);
    Ok(specs)
}

/// The root disk's spec: keep its table around the kept /home, or a new one.
fn root_spec<'a>(ctx: &Ctx, r: &'a Disk, notes: &mut Vec<String>) -> Result<Spec<'a>, PlanError> {
    let mut spec = match ctx.home {
        Some((hd, hp)) if hd.name == r.name => {
            let refuse = |why: &str| PlanError::HomeNotKeepable {
                disk: r.name.clone(),
                number: hp.number,
                why: why.into(),
            };
            let table =
                r.table.ok_or_else(|| refuse("the disk's partition table type is unknown"))?;
            if table == PartitionTable::Mbr && hp.number > 4 {
                return Err(refuse("it is a logical partition and root needs this disk"));
            }
            // GRUB on an MBR disk embeds itself in the gap before the first
            // partition; an old DOS layout starting at sector 63 leaves none.
            let bios_mbr = ctx.inv.firmware == Firmware::Bios && table == PartitionTable::Mbr;
            if bios_mbr && hp.start < lazare_proto::MIB {
                return Err(refuse("it starts in the first MiB, where GRUB must go"));
            }
            let kept = vec![kept_home(hp)];
            Spec { disk: r, table, keep: true, kept, wants: Vec::new() }
        }
        _ => Spec {
            disk: r,
            table: new_table(ctx, r, notes),
            keep: false,
            kept: vec![],
            wants: vec![],
        },
    };
    spec.wants.extend(boot_want(ctx, r, spec.table, true));
    spec.wants.push(Want::fill(Role::Root, ctx.root_min));
    Ok(spec)
}

fn other_spec<'a>(ctx: &Ctx, d: &'a Disk, notes: &mut Vec<String>) -> Spec<'a> {
    let table = new_table(ctx, d, notes);
    let wants = boot_want(ctx, d, table, false).into_iter().collect();
    Spec { disk: d, table, keep: false, kept: vec![], wants }
}

/// Root and a new /home share the root disk: root gets its minimum plus
/// half the rest (at least [`ROOT_SLACK`], at most [`ROOT_GROW_CAP`]), /home
/// the remainder; a disk too small for both keeps /home inside root.
fn split_root_home(ctx: &Ctx, spec: &mut Spec, notes: &mut Vec<String>) {
    let (s, e) = usable(spec.disk);
    let fixed: u64 = spec.wants.iter().filter(|w| w.role != Role::Root).map(|w| w.min).sum();
    let avail = (e - s).saturating_sub(fixed);
    if avail < ctx.root_min + ROOT_SLACK + HOME_MIN {
        notes.push(format!("{} has no room for a separate /home: it stays on /", spec.disk.name));
        return;
    }
    let rest = avail - ctx.root_min;
    let grow = (rest / 2).clamp(ROOT_SLACK, ROOT_GROW_CAP).min(rest - HOME_MIN);
    let Some(root) = spec.wants.iter_mut().find(|w| w.role == Role::Root) else { return };
    *root = Want::fixed(Role::Root, align_down(ctx.root_min + grow, lazare_proto::MIB));
    spec.wants.push(Want::fill(Role::Home, HOME_MIN));
}

fn kept_home(p: &Partition) -> PlannedPartition {
    let fs = match p.fs_type.as_deref() {
        Some("ext2") => Fs::Ext2,
        Some("ext3") => Fs::Ext3,
        _ => Fs::Ext4,
    };
    PlannedPartition {
        number: p.number,
        start: p.start,
        size: p.size,
        role: Role::Home,
        fs: Some(fs),
        label: p.label.clone(),
        preserve: true,
        uuid: p.uuid.clone(),
    }
}

fn finish(
    ctx: &Ctx,
    specs: Vec<Spec>,
    untouched: Vec<(&Disk, UntouchedReason)>,
    notes: Vec<String>,
) -> Layout {
    let mut disks = Vec::new();
    for s in &specs {
        let parts = pack(s.disk, s.table, &s.kept, &s.wants).unwrap_or_default();
        let action = if s.keep {
            DiskAction::KeepTable { table: s.table }
        } else {
            DiskAction::NewTable { table: s.table }
        };
        disks.push(disk_layout(s.disk, action, parts));
    }
    let mut untouched = untouched;
    if let Some((hd, hp)) = ctx.home {
        if !specs.iter().any(|s| s.disk.name == hd.name) {
            untouched.push((hd, UntouchedReason::HoldsHome));
            let action = DiskAction::Untouched { reason: UntouchedReason::HoldsHome };
            disks.push(disk_layout(hd, action, vec![kept_home(hp)]));
        }
    }
    for (d, why) in untouched {
        if !disks.iter().any(|x| x.name == d.name) {
            disks.push(disk_layout(d, DiskAction::Untouched { reason: why }, vec![]));
        }
    }
    // Inventory order on screen and in JSON.
    let pos = |n: &str| ctx.inv.disks.iter().position(|d| d.name == n);
    disks.sort_by_key(|d| pos(&d.name));
    let mounts = mounts(&disks);
    let root_disk = specs[0].disk.name.clone();
    let mut boot_disks = vec![root_disk.clone()];
    if ctx.inv.firmware == Firmware::Bios {
        boot_disks.extend(specs[1..].iter().map(|s| s.disk.name.clone()));
    }
    Layout { firmware: ctx.inv.firmware, disks, mounts, boot_disks, notes }
}

fn disk_layout(d: &Disk, action: DiskAction, partitions: Vec<PlannedPartition>) -> DiskLayout {
    DiskLayout {
        name: d.name.clone(),
        size_bytes: d.size_bytes,
        model: d.model.clone(),
        sector_size: d.sector_size,
        action,
        partitions,
    }
}

fn mounts(disks: &[DiskLayout]) -> Vec<Mount> {
    let mut out = Vec::new();
    let mut data = 0;
    for d in disks {
        for p in &d.partitions {
            let target = match p.role {
                Role::Root => "/".to_string(),
                Role::Home => "/home".into(),
                Role::Esp => "/boot/efi".into(),
                Role::Swap => "swap".into(),
                Role::Data => {
                    data += 1;
                    if data == 1 {
                        "/data".into()
                    } else {
                        format!("/data{data}")
                    }
                }
                Role::BiosGrub => continue,
            };
            let fs = p.fs.unwrap_or(Fs::Ext4);
            out.push(Mount { target, disk: d.name.clone(), number: p.number, fs });
        }
    }
    // "/" first, parents before children ("/boot" < "/boot/efi"), swap last.
    out.sort_by_key(|m| (m.target == "swap", m.target != "/", m.target.clone()));
    out
}
