//! Shell-style glob matching as modules.alias patterns use it.

/// Shell-style glob match (`*`, `?`, `[...]` with ranges and `!`/`^`), as
/// modules.alias uses.
pub fn fnmatch(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star_p, mut star_t) = (None, 0);
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star_p = Some(p);
                    star_t = t;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(&pattern[p..], text[t]) {
                        if matched {
                            p += next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star_p {
            Some(sp) => {
                p = sp + 1;
                star_t += 1;
                t = star_t;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against a bracket expression at the start of `pat`; returns
/// (matched, length of the expression), or None when it is not closed.
fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pat.len() {
        if pat[i] == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pat.get(i + 1) == Some(&b'-') && pat.get(i + 2).is_some_and(|&e| e != b']') {
            matched |= (pat[i]..=pat[i + 2]).contains(&c);
            i += 3;
        } else {
            matched |= pat[i] == c;
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn globs() {
        let cases: &[(&str, &str, bool)] = &[
            (
                "pci:v00008086d0000100Esv*sd*bc*sc*i*",
                "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
                true,
            ),
            (
                "pci:v00008086d0000100Esv*sd*bc*sc*i*",
                "pci:v00008086d0000100Fsv00001AF4sd00001100bc02sc00i00",
                false,
            ),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("i8[0-9a-f]*", "i8a", true),
            ("i8[0-9a-f]*", "i8g", false),
            ("x[!0-9]", "xa", true),
            ("x[!0-9]", "x5", false),
            ("*", "", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("abc", "abcd", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(fnmatch(p.as_bytes(), t.as_bytes()), *want, "{p} vs {t}");
        }
    }
}
