use std::collections::BTreeSet;

use fluent_bundle::{FluentResource, FluentValue};
use fluent_syntax::ast::Entry;

use super::*;

fn ids(src: &str) -> BTreeSet<String> {
    let res = FluentResource::try_new(src.to_string()).expect("parses");
    res.entries()
        .filter_map(|e| match e {
            Entry::Message(m) => Some(m.id.name.to_string()),
            _ => None,
        })
        .collect()
}

/// Every variable any message uses, with a value of its kind.
fn sample_args() -> Vec<(&'static str, FluentValue<'static>)> {
    vec![
        ("server", "http://10.0.2.2:8470".into()),
        ("count", 7.into()),
        ("secs", 5.into()),
        ("id", "8086:100e".into()),
        ("name", "sda".into()),
        ("size", "8.6 GB, QEMU HARDDISK".into()),
        ("note", "sdb is too small".into()),
    ]
}

#[test]
fn every_file_parses() {
    for (lang, src) in SOURCES {
        if let Err((_, errors)) = FluentResource::try_new(src.to_string()) {
            panic!("locales/{lang}.ftl: {errors:?}");
        }
    }
    assert_eq!(SOURCES.map(|(l, _)| l), Lang::ALL, "one file per language, in Lang::ALL order");
}

#[test]
fn every_message_exists_in_every_language() {
    let english = ids(SOURCES[0].1);
    assert!(english.len() > 40, "{english:?}");
    for (lang, src) in SOURCES {
        let these = ids(src);
        let missing: Vec<_> = english.difference(&these).collect();
        let extra: Vec<_> = these.difference(&english).collect();
        assert!(missing.is_empty(), "locales/{lang}.ftl lacks {missing:?}");
        assert!(extra.is_empty(), "locales/{lang}.ftl has ids English lacks: {extra:?}");
    }
}

#[test]
fn every_message_formats_without_error_in_every_language() {
    let args = sample_args();
    for (lang, _) in SOURCES {
        for id in ids(SOURCES[0].1) {
            let text = format(lang, &id, &args)
                .unwrap_or_else(|| panic!("{id} in {lang} does not format"));
            assert!(!text.trim().is_empty(), "{id} in {lang} is empty");
            assert!(!text.contains('\u{2068}'), "{id} in {lang}: {text:?}");
            if lang != Lang::En {
                let english = format(Lang::En, &id, &args).unwrap();
                assert_ne!(text, english, "{id} in {lang} is still English");
            }
        }
    }
}

#[test]
fn plurals_follow_each_language_rules() {
    let secs = |lang, n: u32| tr(lang, "retry-in", &[("secs", n.into())]);
    assert_eq!(secs(Lang::En, 1), "Trying again in 1 second...");
    assert_eq!(secs(Lang::En, 0), "Trying again in 0 seconds...");
    assert_eq!(secs(Lang::En, 32), "Trying again in 32 seconds...");
    // CLDR: French treats 0 as singular, English does not.
    assert_eq!(secs(Lang::Fr, 0), "Nouvel essai dans 0 seconde...");
    assert_eq!(secs(Lang::Fr, 1), "Nouvel essai dans 1 seconde...");
    assert_eq!(secs(Lang::Fr, 2), "Nouvel essai dans 2 secondes...");
    assert_eq!(secs(Lang::De, 1), "Neuer Versuch in 1 Sekunde...");
    assert_eq!(secs(Lang::De, 4), "Neuer Versuch in 4 Sekunden...");
    assert_eq!(secs(Lang::Es, 1), "Nuevo intento en 1 segundo...");
    assert_eq!(secs(Lang::Es, 8), "Nuevo intento en 8 segundos...");
    let drivers = |lang, n: u32| tr(lang, "step-drivers", &[("count", n.into())]);
    assert_eq!(drivers(Lang::En, 1), "done (1 driver)");
    assert_eq!(drivers(Lang::Fr, 12), "fait (12 pilotes)");
    // ISOLINUX chooses singular or plural itself: Fluent passes its syntax on.
    assert_eq!(tr(Lang::En, "menu-autoboot", &[]), "Automatic boot in # second{,s}...");
}

#[test]
fn arguments_are_not_wrapped_in_isolation_marks() {
    let line = tr(Lang::Fr, "step-server", &[("server", "http://10.0.2.2:8470".into())]);
    assert_eq!(line, "Contact du serveur d'installation http://10.0.2.2:8470");
}

#[test]
fn an_unknown_id_shows_itself() {
    assert_eq!(tr(Lang::Fr, "no-such-message", &[]), "no-such-message");
}

#[test]
fn environment_language_follows_gettext_order() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    };
    assert_eq!(from_env(env(&[])), Lang::En);
    assert_eq!(from_env(env(&[("LANG", "fr_FR.UTF-8")])), Lang::Fr);
    assert_eq!(from_env(env(&[("LANG", "fr_FR.UTF-8"), ("LC_MESSAGES", "es_ES")])), Lang::Es);
    assert_eq!(
        from_env(env(&[("LANG", "fr_FR.UTF-8"), ("LC_MESSAGES", "es_ES"), ("LC_ALL", "de_DE")])),
        Lang::De
    );
    // An empty LC_ALL is unset, as for gettext; C means English.
    assert_eq!(from_env(env(&[("LC_ALL", ""), ("LANG", "fr_FR")])), Lang::Fr);
    assert_eq!(from_env(env(&[("LANG", "C.UTF-8")])), Lang::En);
}

#[test]
fn menus_are_ascii_for_the_boot_loaders() {
    assert_eq!(ascii("Démarrer sur le disque local"), "Demarrer sur le disque local");
    assert_eq!(ascii("Installieren (löscht diesen PC)"), "Installieren (loescht diesen PC)");
    assert_eq!(ascii("Größe ñ ç Œ"), "Groesse n c ?");
    for lang in Lang::ALL {
        for id in ["menu-autoboot", "menu-tabmsg"] {
            let text = ascii(&tr(lang, id, &[]));
            assert!(text.is_ascii(), "{id} in {lang}");
            // ISOLINUX's own countdown syntax survives Fluent.
            assert!(id != "menu-autoboot" || text.contains("# "), "{id} in {lang}: {text}");
        }
        for id in ["menu-install", "menu-inventory", "menu-rescue", "menu-local"] {
            let text = ascii(&tr(lang, id, &[]));
            assert!(text.is_ascii(), "{id} in {lang}");
            // GRUB's menuentry titles are single-quoted in templates/grub.cfg.
            assert!(!text.contains(['\'', '"', '\\']), "{id} in {lang}: {text}");
        }
    }
}
