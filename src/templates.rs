//! Boot configs rendered from `templates/` (plain files a volunteer can read)
//! with minijinja. One command line, built by the kernel-cmdline crate, goes
//! into every loader; each loader gets it in the spelling its own parser
//! turns back into exactly that command line.

use kernel_cmdline::{BootAction, Cmdline, CmdlineError, KEY_ACTION};
use minijinja::{context, Environment};

const ISOLINUX: &str = include_str!("../templates/isolinux.cfg");
const GRUB: &str = include_str!("../templates/grub.cfg");
const GRUB_ESP: &str = include_str!("../templates/grub-esp.cfg");
const LILO: &str = include_str!("../templates/lilo.conf");

use lazare_cd::paths::{CD_INITRD, CD_KERNEL};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("rendering {name}: {source}")]
    Render {
        name: &'static str,
        #[source]
        source: minijinja::Error,
    },
    #[error("adding lazare.action to the command line: {0}")]
    Cmdline(#[from] CmdlineError),
    #[error("{loader} cannot carry the parameter `{param}`: it contains {what}")]
    Unrepresentable { loader: &'static str, param: String, what: &'static str },
}

/// One menu entry that boots the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuEntry {
    /// Short id: the ISOLINUX/LILO label and the GRUB `--id`.
    pub id: &'static str,
    pub title: &'static str,
    pub cmdline: Cmdline,
}

/// The boot menu shared by every loader.
#[derive(Debug, Clone)]
pub struct BootMenu {
    pub title: String,
    /// Seconds before the default entry boots; 0 boots it at once.
    pub timeout: u32,
    /// Menus on the first serial port too (115200 baud).
    pub serial: bool,
    pub entries: Vec<MenuEntry>,
}

impl BootMenu {
    /// The standard menu: Install (default, exactly `base`), Inventory only,
    /// Rescue shell; "Boot from local disk" is in every template.
    pub fn new(
        title: &str,
        timeout: u32,
        serial: bool,
        base: &Cmdline,
    ) -> Result<Self, TemplateError> {
        let with_action = |a: BootAction| -> Result<Cmdline, TemplateError> {
            let mut c = base.clone();
            c.set(KEY_ACTION, Some(a.as_str()))?;
            Ok(c)
        };
        let entries = vec![
            MenuEntry { id: "install", title: "Install (erases this PC)", cmdline: base.clone() },
            MenuEntry {
                id: "inventory",
                title: "Inventory only (report hardware, change nothing)",
                cmdline: with_action(BootAction::Inventory)?,
            },
            MenuEntry {
                id: "rescue",
                title: "Rescue shell",
                cmdline: with_action(BootAction::Rescue)?,
            },
        ];
        Ok(BootMenu { title: title.into(), timeout, serial, entries })
    }
}

fn render(
    name: &'static str,
    source: &str,
    ctx: minijinja::Value,
) -> Result<String, TemplateError> {
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    env.add_template(name, source)
        .and_then(|_| env.get_template(name)?.render(ctx))
        .map_err(|source| TemplateError::Render { name, source })
}

/// `isolinux.cfg`: ISOLINUX hands the APPEND text to the kernel verbatim.
pub fn isolinux_cfg(menu: &BootMenu) -> Result<String, TemplateError> {
    let entries: Vec<_> = menu
        .entries
        .iter()
        .map(|e| context! { id => e.id, title => e.title, cmdline => e.cmdline.to_string() })
        .collect();
    // ISOLINUX counts tenths of a second and reads 0 as "wait forever".
    let isolinux_timeout = (menu.timeout * 10).max(1);
    render(
        "isolinux.cfg",
        ISOLINUX,
        context! {
            title => menu.title, serial => menu.serial, isolinux_timeout, entries,
            default => "install", kernel => CD_KERNEL, initrd => CD_INITRD,
            version => env!("CARGO_PKG_VERSION"),
        },
    )
}

/// `grub.cfg` for the ISO's `/boot/grub/`.
pub fn grub_cfg(menu: &BootMenu) -> Result<String, TemplateError> {
    let mut entries = Vec::new();
    for e in &menu.entries {
        entries
            .push(context! { id => e.id, title => e.title, grub_args => grub_args(&e.cmdline)? });
    }
    render(
        "grub.cfg",
        GRUB,
        context! {
            title => menu.title, serial => menu.serial, timeout => menu.timeout, entries,
            default => "install", kernel => CD_KERNEL, initrd => CD_INITRD,
            version => env!("CARGO_PKG_VERSION"),
        },
    )
}

/// The ESP's `boot/grub/grub.cfg`: find the ISO by `marker` (an absolute
/// path only this build carries) and read its menu.
pub fn grub_esp_cfg(marker: &str) -> Result<String, TemplateError> {
    render("grub-esp.cfg", GRUB_ESP, context! { marker, version => env!("CARGO_PKG_VERSION") })
}

/// `lilo.conf` for a PC's own disk; the kernel and initramfs go to `dir` there.
pub fn lilo_conf(menu: &BootMenu, dir: &str, boot_device: &str) -> Result<String, TemplateError> {
    let mut entries = Vec::new();
    for e in &menu.entries {
        let cmdline = e.cmdline.to_string();
        // LILO's append="..." has no escape for a double quote.
        if cmdline.contains('"') {
            return Err(TemplateError::Unrepresentable {
                loader: "lilo.conf",
                param: cmdline,
                what: "a double quote",
            });
        }
        entries.push(context! { id => e.id, cmdline });
    }
    render(
        "lilo.conf",
        LILO,
        context! {
            title => menu.title, serial => menu.serial, entries, dir, boot_device,
            default => "install", lilo_timeout => menu.timeout * 10,
            version => env!("CARGO_PKG_VERSION"),
        },
    )
}

/// The `linux` arguments for GRUB. GRUB re-joins its words with spaces and
/// wraps a word holding a space in double quotes, so passing each parameter
/// as the single word `key=value` gives the kernel `key=value` or
/// `"key=value with spaces"`: both parse to the same parameter. GRUB escapes a
/// double quote with a backslash, which the kernel does not understand, so a
/// value with `"` is refused rather than silently changed.
fn grub_args(cmdline: &Cmdline) -> Result<String, TemplateError> {
    let words = cmdline.params().iter().map(|p| (p, false));
    let init = cmdline.init_args().iter().map(|p| (p, true));
    let mut out = Vec::new();
    let mut dashes_written = false;
    for (p, is_init) in words.chain(init) {
        if is_init && !dashes_written {
            out.push("--".to_string());
            dashes_written = true;
        }
        let raw = match &p.value {
            None => p.key.clone(),
            Some(v) => format!("{}={v}", p.key),
        };
        if raw.contains('"') {
            return Err(TemplateError::Unrepresentable {
                loader: "grub.cfg",
                param: raw,
                what: "a double quote",
            });
        }
        out.push(grub_quote(&raw));
    }
    Ok(out.join(" "))
}

/// One GRUB word: bare when every character is plain, else single-quoted
/// (GRUB reads single-quoted text literally; a `'` is written as `'\''`).
pub fn grub_quote(word: &str) -> String {
    let plain = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, '-' | '_' | '.' | ',' | ':' | '/' | '=' | '@' | '+' | '%')
    };
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    //! Golden files live in `tests/snapshots/`. After a deliberate template
    //! change, re-bless them with `cargo insta review` (or
    //! `INSTA_UPDATE=always cargo test -p lazare --lib templates`) and read the diff.
    use super::*;

    fn base() -> Cmdline {
        let mut c = Cmdline::new();
        c.push("lazare.server", Some("http://10.0.2.100:8470")).unwrap();
        c.push("ip", Some("dhcp")).unwrap();
        c.push("console", Some("tty0")).unwrap();
        c.push("console", Some("ttyS0,115200")).unwrap();
        c.push("lazare.note", Some("two words")).unwrap();
        c
    }

    fn menu() -> BootMenu {
        BootMenu::new("lazare installer", 5, true, &base()).unwrap()
    }

    macro_rules! golden {
        ($name:expr, $text:expr) => {
            insta::with_settings!({ snapshot_path => "../tests/snapshots", prepend_module_to_snapshot => false }, {
                insta::assert_snapshot!($name, $text);
            })
        };
    }

    #[test]
    fn isolinux_golden() {
        golden!("isolinux.cfg", isolinux_cfg(&menu()).unwrap());
    }

    #[test]
    fn grub_golden() {
        golden!("grub.cfg", grub_cfg(&menu()).unwrap());
    }

    #[test]
    fn grub_esp_golden() {
        golden!("grub-esp.cfg", grub_esp_cfg("/.lazare/id-0123456789abcdef").unwrap());
    }

    #[test]
    fn lilo_golden() {
        let mut c = base();
        c.remove("lazare.note");
        let m = BootMenu::new("lazare installer", 5, false, &c).unwrap();
        golden!("lilo.conf", lilo_conf(&m, "/boot/lazare", "/dev/sda").unwrap());
    }

    #[test]
    fn lilo_refuses_quotes_it_cannot_carry() {
        let err = lilo_conf(&menu(), "/boot/lazare", "/dev/sda").unwrap_err().to_string();
        assert!(err.contains("lazare.note=\"two words\""), "{err}");
    }

    #[test]
    fn entries_differ_only_by_action() {
        let m = menu();
        assert_eq!(m.entries[0].cmdline, base());
        let inv = &m.entries[1].cmdline;
        assert_eq!(inv.value("lazare.action"), Some("inventory"));
        assert_eq!(inv.len(), base().len() + 1);
    }

    #[test]
    fn grub_words_keep_spaces_and_refuse_quotes() {
        assert_eq!(grub_quote("ip=dhcp"), "ip=dhcp");
        assert_eq!(grub_quote("a b"), "'a b'");
        assert_eq!(grub_quote("it's"), "'it'\\''s'");
        let mut c = Cmdline::new();
        c.push("x", Some("a\"b\"")).unwrap();
        let err = grub_args(&c).unwrap_err().to_string();
        assert!(err.contains("x=a\"b\""), "{err}");
    }

    #[test]
    fn isolinux_timeout_zero_boots_at_once() {
        let mut m = menu();
        m.timeout = 0;
        assert!(isolinux_cfg(&m).unwrap().contains("\nTIMEOUT 1\n"));
    }
}
