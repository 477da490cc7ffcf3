//! `SOURCE_DATE_EPOCH` (reproducible-builds.org): the time every file of a
//! build claims, so two builds of the same inputs are byte-identical. One
//! type for the ISO build and the image build.

use anyhow::{Context, Result};

/// Seconds since 1970-01-01 UTC; never before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct SourceDateEpoch(pub u64);

impl SourceDateEpoch {
    pub const VAR: &'static str = "SOURCE_DATE_EPOCH";

    /// `$SOURCE_DATE_EPOCH` when set, else the clock.
    pub fn from_env() -> Result<SourceDateEpoch> {
        match std::env::var(Self::VAR) {
            Ok(v) => Self::parse(&v),
            Err(_) => Ok(SourceDateEpoch(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .context("reading the clock")?
                    .as_secs(),
            )),
        }
    }

    /// The variable's text: a whole number of seconds.
    pub fn parse(text: &str) -> Result<SourceDateEpoch> {
        let v = text.trim();
        match v.parse::<u64>() {
            Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => Ok(SourceDateEpoch(n)),
            _ => anyhow::bail!("SOURCE_DATE_EPOCH={text:?} is not a whole number of seconds"),
        }
    }

    /// For APIs that count time as `i64` (ISO 9660 and FAT timestamps).
    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

impl std::fmt::Display for SourceDateEpoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_seconds_only() {
        assert_eq!(SourceDateEpoch::parse("1700000000\n").unwrap(), SourceDateEpoch(1_700_000_000));
        for bad in ["-1", "+5", "1.5", "", "soon"] {
            let e = SourceDateEpoch::parse(bad).unwrap_err().to_string();
            assert!(e.contains("SOURCE_DATE_EPOCH"), "{bad}: {e}");
        }
        let e = SourceDateEpoch(42);
        assert_eq!(SourceDateEpoch::parse(&e.to_string()).unwrap(), e);
        assert_eq!(e.as_i64(), 42);
    }
}
