//! The sentences the staff read, in their language: the agent's screen and
//! the boot menus. One Fluent file per language (`locales/<lang>.ftl`),
//! embedded at compile time, so the static agent needs no file on the CD.
//! Fluent carries the plural rules (CLDR: French says "0 seconde", English
//! "0 seconds"), so no language's grammar is hand-coded here.
//!
//! Technical detail for the volunteer stays English and is not in these files.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
pub use fluent_bundle::FluentValue;
use fluent_bundle::{FluentArgs, FluentResource};
pub use kernel_cmdline::Lang;

/// The source of each language's messages, in [`Lang::ALL`] order.
const SOURCES: [(Lang, &str); 4] = [
    (Lang::En, include_str!("../locales/en.ftl")),
    (Lang::Fr, include_str!("../locales/fr.ftl")),
    (Lang::De, include_str!("../locales/de.ftl")),
    (Lang::Es, include_str!("../locales/es.ftl")),
];

type Bundle = FluentBundle<FluentResource>;

fn bundle(lang: Lang) -> &'static Bundle {
    static BUNDLES: OnceLock<Vec<(Lang, Bundle)>> = OnceLock::new();
    let all = BUNDLES.get_or_init(|| SOURCES.iter().map(|(l, src)| (*l, load(*l, src))).collect());
    // Every Lang has a source (checked by a test), English as the fallback.
    all.iter().find(|(l, _)| *l == lang).map_or(&all[0].1, |(_, b)| b)
}

/// Parses one embedded file. A syntax error is a bug caught by the tests
/// (`every_file_parses`); at run time the messages that did parse are kept.
fn load(lang: Lang, src: &str) -> Bundle {
    let res = FluentResource::try_new(src.to_string()).unwrap_or_else(|(res, _)| res);
    let id = lang.as_str().parse().unwrap_or_default();
    let mut b = FluentBundle::new_concurrent(vec![id]);
    // No Unicode isolation marks around arguments: the Linux console and
    // the boot loaders would print them as garbage.
    b.set_use_isolating(false);
    let _ = b.add_resource(res);
    b
}

/// The message `id` in `lang` with `args` (`("secs", 3.into())`). A message
/// missing in `lang` falls back to English; missing everywhere, the id itself
/// is shown (the tests make sure neither happens).
pub fn tr(lang: Lang, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
    format(lang, id, args).or_else(|| format(Lang::En, id, args)).unwrap_or_else(|| id.to_string())
}

fn format(lang: Lang, id: &str, args: &[(&str, FluentValue<'_>)]) -> Option<String> {
    let b = bundle(lang);
    let pattern = b.get_message(id)?.value()?;
    let mut fargs = FluentArgs::new();
    for (k, v) in args {
        fargs.set(*k, v.clone());
    }
    let mut errors = Vec::new();
    let text = b.format_pattern(pattern, Some(&fargs), &mut errors);
    errors.is_empty().then(|| text.into_owned())
}

/// The language of the volunteer's environment (LC_ALL, then LC_MESSAGES,
/// then LANG, as gettext reads them); English when none names a language
/// the agent speaks.
pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Lang {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .filter_map(|k| get(k).filter(|v| !v.is_empty()))
        .next()
        .and_then(|v| Lang::from_locale(&v))
        .unwrap_or_default()
}

/// `s` with the letters boot loaders cannot show (ISOLINUX's menu is code
/// page 437, GRUB's text console has no font) spelled in ASCII: é → e,
/// ö → oe, ß → ss, ñ → n. Anything else non-ASCII becomes `?`.
pub fn ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let plain = match c {
            'ä' => "ae",
            'Ä' => "Ae",
            'ö' => "oe",
            'Ö' => "Oe",
            'ü' => "ue",
            'Ü' => "Ue",
            'à' | 'á' | 'â' => "a",
            'À' | 'Á' | 'Â' => "A",
            'ç' => "c",
            'Ç' => "C",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'É' | 'È' | 'Ê' | 'Ë' => "E",
            'í' | 'î' | 'ï' => "i",
            'Í' | 'Î' | 'Ï' => "I",
            'ñ' => "n",
            'Ñ' => "N",
            'ó' | 'ô' => "o",
            'Ó' | 'Ô' => "O",
            'ú' | 'ù' | 'û' => "u",
            'Ú' | 'Ù' | 'Û' => "U",
            'ß' => "ss",
            'œ' => "oe",
            '’' => "'",
            '«' | '»' => "\"",
            '\u{a0}' | '\u{202f}' => " ",
            c if c.is_ascii() => {
                out.push(c);
                continue;
            }
            _ => "?",
        };
        out.push_str(plain);
    }
    out
}

#[cfg(test)]
mod tests;
