//! Tokens of the kernel command line, split and quoted exactly as the kernel
//! does (`next_arg()` in `lib/cmdline.c`, `parse_args()` in `kernel/params.c`).

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

/// One parameter: `key=value`, or a flag `key` (value `None`).
/// `key=` is `Some("")`, which the kernel distinguishes from a flag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Param {
    pub key: String,
    pub value: Option<String>,
}

/// A parsed kernel command line: the kernel's parameters in order, and the
/// arguments after a bare `--`, which the kernel hands to init.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Cmdline {
    params: Vec<Param>,
    init_args: Vec<Param>,
}

/// Why a parameter cannot be added to a command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmdlineError {
    /// The kernel's grammar has no escapes: some quote/space mixes cannot be written.
    #[error("{0}: the kernel command line cannot carry this (unbalanced double quotes or a quote next to a space)")]
    Unrepresentable(String),
    /// `--` is not a parameter: it starts init's arguments.
    #[error("`--` is not a kernel parameter: it starts init's arguments (use push_init_arg)")]
    DashDash,
}

/// Key comparison as the kernel's `parameq()`: `-` and `_` are the same.
pub fn keys_equal(a: &str, b: &str) -> bool {
    let norm = |c: u8| if c == b'-' { b'_' } else { c };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}

/// The kernel's `isspace()` on ASCII. (It also counts byte 0xA0, which is a
/// UTF-8 continuation byte here; we keep text valid and do not split on it.)
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

impl Param {
    pub fn new(key: impl Into<String>, value: Option<impl Into<String>>) -> Self {
        Param { key: key.into(), value: value.map(Into::into) }
    }

    /// Whether this parameter's key is `key` (`-` and `_` equal).
    pub fn is(&self, key: &str) -> bool {
        keys_equal(&self.key, key)
    }
}

impl fmt::Display for Param {
    /// The shortest token that reads back as this parameter, assuming more
    /// tokens may follow it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match encode(self, false) {
            Some(tok) => f.write_str(&tok),
            None => f.write_str(&naive_encoding(self)),
        }
    }
}

/// One token as the kernel's `next_arg()` cuts it: (param, value, rest).
fn next_arg(args: &str) -> (Param, &str) {
    let (quoted, body) = match args.strip_prefix('"') {
        Some(b) => (true, b),
        None => (false, args),
    };
    let mut in_quote = quoted;
    let mut equals = None;
    let mut end = body.len();
    for (i, c) in body.char_indices() {
        if is_space(c) && !in_quote {
            end = i;
            break;
        }
        // The kernel's `equals == 0` test means an `=` at index 0 is not a separator.
        if equals.is_none() && c == '=' && i > 0 {
            equals = Some(i);
        }
        if c == '"' {
            in_quote = !in_quote;
        }
    }
    let tok = &body[..end];
    let rest = &body[end..];
    let ends_quote = tok.ends_with('"');
    let param = match equals {
        None => {
            let key = if quoted && ends_quote { &tok[..tok.len() - 1] } else { tok };
            Param { key: key.to_string(), value: None }
        }
        Some(eq) => {
            let key = &tok[..eq];
            let mut val = &tok[eq + 1..];
            if let Some(v) = val.strip_prefix('"') {
                // The kernel drops the value's opening quote and the token's last
                // quote; the token-level strip below then sees a NUL, not a quote.
                val = v;
                if ends_quote && !val.is_empty() {
                    val = &val[..val.len() - 1];
                }
            } else if quoted && ends_quote {
                val = &val[..val.len() - 1];
            }
            Param { key: key.to_string(), value: Some(val.to_string()) }
        }
    };
    (param, rest.trim_start_matches(is_space))
}

/// Candidate spellings of a parameter, most readable first; the odd ones
/// (unbalanced quotes) only matter for tokens read back from odd input.
fn candidates(p: &Param) -> Vec<String> {
    let k = &p.key;
    match &p.value {
        None => vec![k.clone(), format!("\"{k}\""), format!("\"{k}")],
        Some(v) => vec![
            format!("{k}={v}"),
            format!("{k}=\"{v}\""),
            format!("\"{k}={v}\""),
            format!("\"{k}=\"{v}\""),
            format!("{k}=\"{v}"),
            format!("\"{k}={v}"),
            format!("\"{k}=\"{v}"),
        ],
    }
}

/// A token that the kernel reads back as `p`: `last` says nothing follows it,
/// which allows spellings that run to the end of the line.
fn encode(p: &Param, last: bool) -> Option<String> {
    // An empty token would vanish between blanks.
    candidates(p).into_iter().filter(|tok| !tok.is_empty()).find(|tok| {
        let probe = if last { tok.clone() } else { format!("{tok} x") };
        let (got, rest) = next_arg(&probe);
        got == *p && rest == if last { "" } else { "x" }
    })
}

/// What `Display` writes for a parameter no spelling can carry. Only reachable
/// through `Param`'s own `Display`; `Cmdline` refuses such parameters.
fn naive_encoding(p: &Param) -> String {
    match &p.value {
        None => p.key.clone(),
        Some(v) => format!("{}=\"{v}\"", p.key),
    }
}

impl Cmdline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Split as the kernel does: blanks separate, double quotes group, a bare
    /// `--` ends the kernel's parameters (the rest are init's), a NUL ends the line.
    pub fn parse(s: &str) -> Cmdline {
        let s = s.split('\0').next().unwrap_or_default();
        let mut args = s.trim_start_matches(is_space);
        let mut out = Cmdline::default();
        let mut after_dashes = false;
        while !args.is_empty() {
            let (param, rest) = next_arg(args);
            args = rest;
            if !after_dashes && param.value.is_none() && param.key == "--" {
                after_dashes = true;
            } else if after_dashes {
                out.init_args.push(param);
            } else {
                out.params.push(param);
            }
        }
        out
    }

    /// The kernel's parameters, in order (repeated keys kept).
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The arguments after `--`, passed to init.
    pub fn init_args(&self) -> &[Param] {
        &self.init_args
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty() && self.init_args.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Param> {
        self.params.iter()
    }

    /// The last occurrence of `key`: the kernel lets a later value override.
    pub fn get(&self, key: &str) -> Option<&Param> {
        self.params.iter().rev().find(|p| p.is(key))
    }

    /// The value of the last `key=value` (`None` for a flag or an absent key).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|p| p.value.as_deref())
    }

    /// Every occurrence of `key`, in order (for keys such as `ip=` or `console=`).
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Param> + 'a {
        self.params.iter().filter(move |p| p.is(key))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Append a kernel parameter. Refuses `--` and values the kernel's grammar
    /// cannot carry, so that `Display` always reads back to the same list.
    pub fn push(&mut self, key: &str, value: Option<&str>) -> Result<(), CmdlineError> {
        let p = Param::new(key, value);
        if p.value.is_none() && p.key == "--" {
            return Err(CmdlineError::DashDash);
        }
        self.check_appendable(&p)?;
        self.params.push(p);
        Ok(())
    }

    /// Append an argument for init (written after `--`).
    pub fn push_init_arg(&mut self, key: &str, value: Option<&str>) -> Result<(), CmdlineError> {
        let p = Param::new(key, value);
        self.check_appendable(&p)?;
        self.init_args.push(p);
        Ok(())
    }

    /// Remove every occurrence of `key`; returns how many were removed.
    pub fn remove(&mut self, key: &str) -> usize {
        let before = self.params.len();
        self.params.retain(|p| !p.is(key));
        before - self.params.len()
    }

    /// Replace every occurrence of `key` by one `key[=value]` at the end.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), CmdlineError> {
        let mut next = self.clone();
        next.remove(key);
        next.push(key, value)?;
        *self = next;
        Ok(())
    }

    /// A new parameter must be writable, and the current last token (which may
    /// rely on running to the end of the line) must stay writable when followed.
    fn check_appendable(&self, p: &Param) -> Result<(), CmdlineError> {
        if encode(p, false).is_none() {
            return Err(CmdlineError::Unrepresentable(naive_encoding(p)));
        }
        let last =
            if self.init_args.is_empty() { self.params.last() } else { self.init_args.last() };
        match last {
            Some(l) if encode(l, false).is_none() => {
                Err(CmdlineError::Unrepresentable(naive_encoding(l)))
            }
            _ => Ok(()),
        }
    }

    fn tokens(&self) -> impl Iterator<Item = Option<&Param>> {
        let dashes = (!self.init_args.is_empty()).then_some(None);
        self.params.iter().map(Some).chain(dashes).chain(self.init_args.iter().map(Some))
    }
}

impl fmt::Display for Cmdline {
    /// Space separated, quoting only where needed; parses back to `self`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count =
            self.params.len() + self.init_args.len() + usize::from(!self.init_args.is_empty());
        for (i, tok) in self.tokens().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match tok {
                None => f.write_str("--")?,
                Some(p) => {
                    let enc = encode(p, i + 1 == count).unwrap_or_else(|| naive_encoding(p));
                    f.write_str(&enc)?;
                }
            }
        }
        Ok(())
    }
}

impl FromStr for Cmdline {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Cmdline::parse(s))
    }
}

impl<'a> IntoIterator for &'a Cmdline {
    type Item = &'a Param;
    type IntoIter = std::slice::Iter<'a, Param>;
    fn into_iter(self) -> Self::IntoIter {
        self.params.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `next_arg()` on one token: (input, key, value, rest).
    #[test]
    fn next_arg_matches_the_kernel() {
        let cases: &[(&str, &str, Option<&str>, &str)] = &[
            ("a b", "a", None, "b"),
            ("a=1  b", "a", Some("1"), "b"),
            (r#"a="x y" b"#, "a", Some("x y"), "b"),
            (r#""a=x y" b"#, "a", Some("x y"), "b"),
            // Quoted token and quoted value: the second quote closes the first,
            // so the blank ends the token.
            (r#""a="x y"" b"#, "a", Some("x"), r#"y"" b"#),
            (r#""a="x y" b"#, "a", Some("x"), r#"y" b"#),
            (r#""a="x" b"#, "a", Some(r#"x" b"#), ""),
            // Quoted token and quoted value: only one closing quote is dropped.
            (r#""a="x"" b"#, "a", Some(r#"x""#), "b"),
            (r#"a="x"#, "a", Some("x"), ""),
            (r#"a=""#, "a", Some(""), ""),
            (r#"""#, "", None, ""),
            (r#""""#, "", None, ""),
            ("=a=b c", "=a", Some("b"), "c"),
            ("a\tb", "a", None, "b"),
        ];
        for (input, key, value, rest) in cases {
            let (p, r) = next_arg(input);
            assert_eq!((p.key.as_str(), p.value.as_deref(), r), (*key, *value, *rest), "{input:?}");
        }
    }

    #[test]
    fn encode_prefers_plain_then_quoted_value() {
        let enc = |k: &str, v: Option<&str>| encode(&Param::new(k, v), false);
        assert_eq!(enc("a", Some("b")).as_deref(), Some("a=b"));
        assert_eq!(enc("a", Some("b c")).as_deref(), Some(r#"a="b c""#));
        assert_eq!(enc("a b", None).as_deref(), Some(r#""a b""#));
        assert_eq!(enc("", None).as_deref(), Some(r#""""#));
        assert_eq!(enc("a", Some(r#"b c"d e"#)), None);
    }
}
