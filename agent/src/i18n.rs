//! The language the agent speaks to the person at the PC: `lazare.lang`
//! from the command line when the agent starts, then the plan's locale once
//! the server sent one (the admin's choice for this PC wins over the CD's).
//! The sentences themselves are in the `lazare-i18n` crate's Fluent files.

use std::sync::atomic::{AtomicUsize, Ordering};

pub use lazare_i18n::{FluentValue, Lang};

/// An index into [`Lang::ALL`]; English until told otherwise.
static CURRENT: AtomicUsize = AtomicUsize::new(0);

/// From now on the screen speaks `lang`.
pub fn set(lang: Lang) {
    let i = Lang::ALL.iter().position(|l| *l == lang).unwrap_or(0);
    CURRENT.store(i, Ordering::Relaxed);
}

/// The plan's locale (`fr_FR.UTF-8`) takes over when the agent speaks it;
/// returns the language now in use.
pub fn follow_locale(locale: &str) -> Lang {
    let lang = after_plan(current(), locale);
    set(lang);
    lang
}

/// The language once a plan names `locale`: its own when the agent speaks
/// it, else the one in use.
fn after_plan(current: Lang, locale: &str) -> Lang {
    Lang::from_locale(locale).unwrap_or(current)
}

pub fn current() -> Lang {
    Lang::ALL.get(CURRENT.load(Ordering::Relaxed)).copied().unwrap_or_default()
}

/// The message `id` in the current language.
pub fn t(id: &str) -> String {
    lazare_i18n::tr(current(), id, &[])
}

/// The message `id` in the current language, with arguments.
pub fn t_with(id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
    lazare_i18n::tr(current(), id, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The global itself is not switched here: other tests of this crate
    // read English sentences at the same time.
    #[test]
    fn the_plan_locale_takes_over_only_when_spoken() {
        assert_eq!(after_plan(Lang::En, "fr_FR.UTF-8"), Lang::Fr);
        assert_eq!(after_plan(Lang::De, "es_ES.UTF-8"), Lang::Es);
        // A locale the agent does not speak keeps the language in use.
        assert_eq!(after_plan(Lang::Fr, "it_IT.UTF-8"), Lang::Fr);
        assert_eq!(after_plan(Lang::De, "C.UTF-8"), Lang::De);
    }
}
