//! What every step of the agent returns when it cannot go on: a sentence
//! for the person at the PC and the detail for the volunteer. Its own
//! module so that the steps (flow, installing, verify) import it without
//! importing each other.

/// A failure with a sentence for the person at the PC.
#[derive(Debug, thiserror::Error)]
#[error("{plain}")]
pub struct Failure {
    pub plain: String,
    pub detail: String,
}

impl Failure {
    pub fn new(plain: &str, detail: impl std::fmt::Display) -> Failure {
        Failure { plain: plain.to_string(), detail: format!("{detail:#}") }
    }
}
