//! Which kernel a CD is built with by default: the newest `vmlinuz-*` in
//! /boot. The builder picks it, and the tests that boot "the kernel the CD
//! has" pick the same one through this function (a plain sort would put
//! 6.1.0-9 after 6.1.0-10).

/// The file name prefix of an installed kernel.
pub const VMLINUZ_PREFIX: &str = "vmlinuz-";

/// The newest of `names` that is a `vmlinuz-RELEASE` (file names, not
/// paths), by release, comparing digit runs as numbers.
pub fn newest<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names.into_iter().filter(|n| n.starts_with(VMLINUZ_PREFIX)).max_by_key(|n| version_key(n))
}

/// The release of a `vmlinuz-RELEASE` file name.
pub fn release(name: &str) -> Option<&str> {
    name.strip_prefix(VMLINUZ_PREFIX)
}

/// "6.1.0-10-amd64" sorts after "6.1.0-9-amd64".
fn version_key(s: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut num = String::new();
    let mut text = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                out.push((0, std::mem::take(&mut text)));
            }
            num.push(c);
        } else {
            if !num.is_empty() {
                out.push((num.parse().unwrap_or(u64::MAX), String::new()));
                num.clear();
            }
            text.push(c);
        }
    }
    if !num.is_empty() {
        out.push((num.parse().unwrap_or(u64::MAX), String::new()));
    }
    if !text.is_empty() {
        out.push((0, text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_as_numbers_and_other_files_are_ignored() {
        let names = ["vmlinuz-6.1.0-9-amd64", "config-6.1.0-99-amd64", "vmlinuz-6.1.0-10-amd64"];
        assert_eq!(newest(names), Some("vmlinuz-6.1.0-10-amd64"));
        assert_eq!(release("vmlinuz-6.1.0-10-amd64"), Some("6.1.0-10-amd64"));
        assert_eq!(newest(["initrd.img-6.1.0-9-amd64"]), None);
        assert_eq!(
            newest(["vmlinuz-5.10.0-30-amd64", "vmlinuz-6.1.0-1-amd64"]),
            Some("vmlinuz-6.1.0-1-amd64")
        );
    }
}
