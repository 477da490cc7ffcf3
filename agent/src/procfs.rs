//! The kernel's text files under /proc that the agent reads, one parser
//! each: `Key: N kB` lines (/proc/meminfo, /proc/self/status) and the mount
//! table (/proc/self/mounts). Pure functions of the text: callers read it.

use std::path::PathBuf;

/// The kB value of `field:` in /proc/meminfo or /proc/PID/status text
/// (`MemTotal:  1000 kB`).
pub fn kib(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key == field).then(|| value.split_whitespace().next()?.parse().ok())?
    })
}

/// Swap in use, in kB: SwapTotal − SwapFree of /proc/meminfo text.
pub fn swap_used_kib(meminfo: &str) -> Option<u64> {
    let (total, free) = (kib(meminfo, "SwapTotal")?, kib(meminfo, "SwapFree")?);
    Some(total.saturating_sub(free))
}

/// One line of /proc/self/mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub target: PathBuf,
    pub fstype: String,
    /// `rw,nosuid,nodev,relatime`...: the kernel's options of the mount.
    pub options: String,
}

/// The mount table; the kernel writes space, tab, newline and `\` in paths
/// as octal escapes (`\040`).
pub fn mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split(' ');
            let (source, target, fstype) = (words.next()?, words.next()?, words.next()?);
            Some(Mount {
                source: unescape(source),
                target: PathBuf::from(unescape(target)),
                fstype: fstype.to_string(),
                options: words.next().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

fn unescape(word: &str) -> String {
    let bytes = word.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |n, b| n.wrapping_mul(8) + (b - b'0')));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_used_is_total_minus_free() {
        assert_eq!(swap_used_kib("SwapTotal: 4096 kB\nSwapFree: 1024 kB\n"), Some(3072));
        assert_eq!(swap_used_kib("SwapTotal: 4096 kB\n"), None);
    }

    #[test]
    fn kib_fields() {
        let meminfo = "MemTotal:        2017356 kB\nMemFree:          123 kB\nSwapTotal: 0 kB\n";
        assert_eq!(kib(meminfo, "MemTotal"), Some(2_017_356));
        assert_eq!(kib(meminfo, "SwapTotal"), Some(0));
        assert_eq!(kib(meminfo, "Mem"), None);
        assert_eq!(kib("VmHWM:\t    9216 kB\n", "VmHWM"), Some(9216));
        assert_eq!(kib("MemTotal: lots\n", "MemTotal"), None);
    }

    #[test]
    fn mount_lines_with_escapes() {
        let text = "/dev/sda1 /target ext4 rw,relatime 0 0\n\
                    /dev/sr0 /run/lazare/my\\040cd iso9660 ro 0 0\n\
                    proc /proc proc rw 0 0\n";
        let m = mounts(text);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0],
            Mount {
                source: "/dev/sda1".into(),
                target: "/target".into(),
                fstype: "ext4".into(),
                options: "rw,relatime".into()
            }
        );
        assert_eq!(m[1].target, PathBuf::from("/run/lazare/my cd"));
        assert_eq!(unescape("a\\134b\\011c\\9"), "a\\b\tc\\9");
    }
}
