//! The disk plan in words for the person in front of the PC, and the
//! countdown before anything is written.

use std::time::Duration;

use diskplan::{DiskAction, DiskLayout, Layout, Role, UntouchedReason};

/// Where the lines go: the agent's screen, or a Vec in tests.
pub trait Say {
    fn say(&self, line: &str);
}

/// One line per disk, e.g.
/// `Disk sda (8.6 GB, QEMU HARDDISK): will be ERASED → / (5.3 GB), swap (537 MB), /home (2.6 GB)`.
pub fn describe(layout: &Layout) -> Vec<String> {
    let mut lines: Vec<String> = layout.disks.iter().map(disk_line).collect();
    lines.extend(layout.notes.iter().map(|n| format!("Note: {n}")));
    lines
}

fn disk_line(d: &DiskLayout) -> String {
    let mut head = format!("Disk {} ({}", d.name, gb(d.size_bytes));
    if let Some(m) = d.model.as_deref().filter(|m| !m.is_empty()) {
        head.push_str(", ");
        head.push_str(m);
    }
    head.push(')');
    let what = match &d.action {
        DiskAction::Untouched { reason } => {
            return format!("{head}: kept as is ({})", why(*reason))
        }
        DiskAction::NewTable { .. } => "will be ERASED",
        DiskAction::KeepTable { .. } => "partly rewritten, your files are kept",
    };
    let parts: Vec<String> = d
        .partitions
        .iter()
        .filter(|p| p.role != Role::BiosGrub)
        .map(|p| {
            let name = match p.role {
                Role::Root => "/",
                Role::Home => "/home",
                Role::Swap => "swap",
                Role::Esp => "boot (EFI)",
                Role::Data => "/data",
                Role::BiosGrub => "",
            };
            let kept = if p.preserve { ", kept" } else { "" };
            format!("{name} ({}{kept})", gb(p.size))
        })
        .collect();
    format!("{head}: {what} → {}", parts.join(", "))
}

fn why(r: UntouchedReason) -> &'static str {
    match r {
        UntouchedReason::BootDevice => "this is the install CD or stick",
        UntouchedReason::Removable => "removable media",
        UntouchedReason::Excluded => "excluded by the server",
        UntouchedReason::TooSmall => "too small to be useful",
        UntouchedReason::HoldsHome => "home with your files",
    }
}

/// Decimal gigabytes, as disk labels print them.
fn gb(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{} MB", bytes / 1_000_000)
    }
}

/// Says the plan, then counts down `secs` seconds (a line every 5 s and
/// for the last 3, so a serial log shows it too), as the agent does before
/// the first write. `sleep` is injected so tests do not wait.
pub fn show_and_count_down(layout: &Layout, secs: u32, say: &dyn Say, sleep: &dyn Fn(Duration)) {
    say.say("The disks will be used like this:");
    for l in describe(layout) {
        say.say(&format!("  {l}"));
    }
    for left in (1..=secs).rev() {
        if left % 5 == 0 || left <= 3 {
            say.say(&format!("Starting in {left} s (switch the computer off now to stop)..."));
        }
        sleep(Duration::from_secs(1));
    }
    say.say("Starting.");
}
