//! Plan verification: a plan only counts when its `Lazare-Signature`
//! verifies with the server key baked into the CD, over the exact bytes
//! received, and it names this machine. A rogue DHCP server or a man in
//! the middle cannot make the agent touch a disk.

use std::time::Duration;

use lazare_proto::{Plan, PublicKey, SignError};

use crate::failure::Failure;
use crate::http::SignedAnswer;
use crate::i18n::t;
use crate::screen::Screen;

/// Checks the signature (unless `insecure`, then warns in red), parses the
/// plan and checks it is for `machine_id`.
pub fn plan(
    answer: &SignedAnswer,
    key: Option<&PublicKey>,
    insecure: bool,
    machine_id: &str,
    screen: &Screen,
) -> Result<Plan, Failure> {
    match check(answer, key) {
        Ok(()) => screen.note("plan signature verified with the baked server key"),
        Err(e) if insecure => {
            screen.warn(&format!(
                "lazare.insecure: using a plan whose signature was not verified ({e})"
            ));
        }
        Err(e) => return Err(Failure::new(&t("fail-refused"), e)),
    }
    let plan: Plan = serde_json::from_slice(&answer.body)
        .map_err(|e| Failure::new(&t("fail-not-understood"), format!("parsing the plan: {e}")))?;
    plan.validate_for(machine_id).map_err(|e| Failure::new(&t("fail-other-computer"), e))?;
    fresh(&plan, answer).map_err(|e| Failure::new(&t("fail-replayed"), e))?;
    Ok(plan)
}

/// The plan answers this hello: it echoes the challenge the hello sent, and
/// it arrived within its validity, counted on the monotonic clock from the
/// moment the hello was sent (never the wall clock: an old PC's may be
/// years off, and a plan's own date would have to be trusted to check it).
pub fn fresh(plan: &Plan, answer: &SignedAnswer) -> Result<(), FreshError> {
    if answer.challenge.is_empty() || plan.challenge != answer.challenge {
        return Err(FreshError::Challenge {
            sent: answer.challenge.clone(),
            got: plan.challenge.clone(),
        });
    }
    let age = answer.sent.elapsed();
    if age > Duration::from_secs(plan.valid_secs.into()) {
        return Err(FreshError::Expired { age_secs: age.as_secs(), valid_secs: plan.valid_secs });
    }
    Ok(())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FreshError {
    #[error(
        "the plan echoes challenge {got:?}, not {sent:?} which this hello sent: a replayed plan"
    )]
    Challenge { sent: String, got: String },
    #[error("the plan arrived {age_secs} s after the hello, past its {valid_secs} s validity")]
    Expired { age_secs: u64, valid_secs: u32 },
}

/// The signature check alone.
pub fn check(answer: &SignedAnswer, key: Option<&PublicKey>) -> Result<(), VerifyError> {
    signed(&answer.body, answer.signature.as_deref(), key)
}

/// `signature` over the exact `body` bytes verifies with the baked `key`:
/// a server's plan, or the plan template of an offline bundle.
pub fn signed(
    body: &[u8],
    signature: Option<&str>,
    key: Option<&PublicKey>,
) -> Result<(), VerifyError> {
    let key = key.ok_or(VerifyError::NoKey)?;
    let sig = signature.ok_or(VerifyError::Sign(SignError::Missing))?;
    key.verify(body, sig).map_err(VerifyError::Sign)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("this CD carries no server key (/etc/lazare/server.pub or lazare.key=), so no plan can be trusted")]
    NoKey,
    #[error(transparent)]
    Sign(SignError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use lazare_proto::SigningKey;

    fn answer(body: &[u8], signature: Option<String>) -> SignedAnswer {
        SignedAnswer {
            body: body.to_vec(),
            signature,
            date: None,
            challenge: "c".repeat(32),
            sent: std::time::Instant::now(),
        }
    }

    #[test]
    fn good_signature_passes_and_tampering_fails() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let body = br#"{"hostname":"pc1"}"#;
        let public = k.public();
        assert_eq!(check(&answer(body, Some(k.sign(body))), Some(&public)), Ok(()));
        assert_eq!(
            check(&answer(br#"{"hostname":"pc2"}"#, Some(k.sign(body))), Some(&public)),
            Err(VerifyError::Sign(SignError::Mismatch))
        );
    }

    #[test]
    fn unsigned_or_other_key_or_no_key_is_refused() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let rogue = SigningKey::from_bytes(&[4; 32]);
        let body = b"{}";
        let public = k.public();
        assert_eq!(
            check(&answer(body, None), Some(&public)),
            Err(VerifyError::Sign(SignError::Missing))
        );
        assert_eq!(
            check(&answer(body, Some(rogue.sign(body))), Some(&public)),
            Err(VerifyError::Sign(SignError::Mismatch))
        );
        assert_eq!(check(&answer(body, Some(k.sign(body))), None), Err(VerifyError::NoKey));
    }

    #[test]
    fn refused_plan_is_a_failure_unless_insecure() {
        let screen = Screen::stderr();
        let e = plan(&answer(b"{}", None), None, false, "x", &screen).unwrap_err();
        assert!(e.plain.contains("nothing will be written"));
        // Insecure gets past the signature, then the body must still parse.
        let e = plan(&answer(b"{}", None), None, true, "x", &screen).unwrap_err();
        assert!(e.detail.contains("parsing the plan"), "{}", e.detail);
        assert!(screen.log_text().contains("WARNING: lazare.insecure"));
    }
}
