//! Machine enrolment and fresh plans (DESIGN.md "Server API"): the headers
//! a hello and the later calls carry, shared by the agent and the server.

/// Request header of `POST /api/v1/hello`: the agent's random challenge
/// (hex), which the signed plan must echo in `Plan::challenge`, so a
/// recorded plan cannot be replayed to a later boot.
pub const CHALLENGE_HEADER: &str = "Lazare-Challenge";

/// Answer header of the hello that enrolled a machine: its secret, sent
/// once. The agent proves every later call with it.
pub const SECRET_HEADER: &str = "Lazare-Machine-Secret";

/// `Authorization: Lazare-Machine <secret>` on every call after the first
/// hello (events, log, `/next`, a later hello).
pub const MACHINE_AUTH_SCHEME: &str = "Lazare-Machine";

/// Seconds a plan stays valid after the agent sent its hello. Counted on the
/// agent's monotonic clock from the moment it sent the challenge, because an
/// old PC's wall clock may be years off (dead CMOS battery).
pub const PLAN_VALID_SECS: u32 = 600;

/// Challenge length in bytes (hex doubles it).
pub const CHALLENGE_BYTES: usize = 16;

/// A machine secret or challenge as it travels: 16 to 64 bytes in lowercase hex.
pub fn valid_token_hex(s: &str) -> bool {
    (32..=128).contains(&s.len())
        && s.len().is_multiple_of(2)
        && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The `Authorization` value proving a machine: `Lazare-Machine <secret>`.
pub fn machine_auth(secret: &str) -> String {
    format!("{MACHINE_AUTH_SCHEME} {secret}")
}

/// The secret in an `Authorization` value, if it uses our scheme.
pub fn parse_machine_auth(value: &str) -> Option<&str> {
    let rest = value.strip_prefix(MACHINE_AUTH_SCHEME)?.strip_prefix(' ')?.trim();
    valid_token_hex(rest).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_auth_round_trips_and_refuses_junk() {
        let secret = "ab".repeat(32);
        assert_eq!(parse_machine_auth(&machine_auth(&secret)), Some(secret.as_str()));
        assert_eq!(parse_machine_auth(&format!("Bearer {secret}")), None);
        assert_eq!(parse_machine_auth("Lazare-Machine AB"), None);
        assert_eq!(parse_machine_auth("Lazare-Machine"), None);
        assert!(!valid_token_hex(&"g".repeat(32)));
        assert!(valid_token_hex(&"0".repeat(32)));
    }
}
