//! The fuzz target's body, a plain function so that `cargo test` (proptest)
//! exercises it too: `cargo fuzz` needs a nightly compiler.

use std::str::FromStr;

use crate::{resolve, Cmdline, IpConfig};

/// Parse arbitrary bytes (lossy UTF-8) as a command line and check that
/// formatting reads back to the same thing, for the line and every `ip=`.
/// Panics on a violation; never panics otherwise.
pub fn fuzz_check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = Cmdline::parse(&text);
    let formatted = parsed.to_string();
    let reparsed = Cmdline::parse(&formatted);
    assert_eq!(parsed, reparsed, "cmdline round trip: {text:?} -> {formatted:?}");
    assert_eq!(formatted, reparsed.to_string(), "formatting is not stable for {text:?}");
    for p in parsed.get_all("ip") {
        let Some(v) = p.value.as_deref() else { continue };
        if let Ok(ip) = IpConfig::from_str(v) {
            let shown = ip.to_string();
            let back = IpConfig::from_str(&shown);
            assert_eq!(back.as_ref(), Ok(&ip), "ip= round trip: {v:?} -> {shown:?}");
        }
    }
    // Must not panic, whatever it answers.
    let _ = resolve(&Cmdline::new(), &parsed);
    let _ = resolve(&parsed, &Cmdline::new());
}
