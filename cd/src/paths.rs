//! Paths both sides agree on. Absolute paths are as the running system sees
//! them; the builder writes them into the image, the agent reads them.

/// The kernel on the CD (ISO 9660 and the El Torito / ESP boot menus).
pub const CD_KERNEL: &str = "/boot/vmlinuz";
/// The initramfs on the CD.
pub const CD_INITRD: &str = "/boot/initrd.img";

/// The command line `lazare build` bakes into the initramfs; the live
/// `/proc/cmdline` wins over it key by key.
pub const BAKED_CMDLINE: &str = "/etc/lazare/cmdline";
/// The server's public key (`ed25519:BASE64`) baked into the initramfs.
pub const BAKED_KEY: &str = "/etc/lazare/server.pub";

/// Where the kernel modules of `release` are, in the initramfs and on a host.
pub fn modules_dir(release: &str) -> String {
    format!("/lib/modules/{release}")
}

/// Files the agent writes on the installed system for `lazare-next`, the
/// boot-time service that asks the server whether to reinstall.
pub mod installed {
    /// The server's base URL, one line, no trailing `/` (the script appends
    /// `/api/v1/machines/<id>/next`).
    pub const SERVER: &str = "/etc/lazare/server";
    /// lazare's id of this PC, one line of hex.
    pub const MACHINE_ID: &str = "/etc/lazare/machine-id";
    /// The pin of the server key baked into the CD, curl's `sha256//BASE64`
    /// (`lazare-next` passes it to `--pinnedpubkey`).
    pub const SERVER_PIN: &str = "/etc/lazare/server.pin";
    /// The PC's enrolment secret, one line of hex, root only (0600). Also
    /// where the reinstall entry's second initramfs puts it for the agent.
    pub const MACHINE_SECRET: &str = "/etc/lazare/machine-secret";
    /// Where the CD's kernel and initramfs are copied for the "Reinstall from
    /// server" boot entry.
    pub const REINSTALL_DIR: &str = "/boot/lazare";
}
