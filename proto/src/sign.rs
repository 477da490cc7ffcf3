//! ed25519 signatures over exact body bytes, written `ed25519:BASE64`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer, Verifier};

/// HTTP header that carries the plan's signature.
pub const SIGNATURE_HEADER: &str = "Lazare-Signature";

const PREFIX: &str = "ed25519:";

/// DER SubjectPublicKeyInfo of an Ed25519 key minus the key (RFC 8410):
/// SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (0 unused bits) }.
const SPKI_PREFIX: [u8; 12] =
    [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    #[error("expected `ed25519:` followed by base64, got {0:?}")]
    Syntax(String),
    #[error("the key is not a valid ed25519 public key")]
    BadKey,
    #[error("the signature does not match the server key baked into this CD")]
    Mismatch,
    #[error("the answer carries no signature")]
    Missing,
}

/// A server's public key, as baked into the CD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

/// The server's private key.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A key from 32 secret bytes (the caller draws them from the OS).
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(secret))
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// `ed25519:BASE64` signature over `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        format!("{PREFIX}{}", B64.encode(self.0.sign(body).to_bytes()))
    }
}

impl PublicKey {
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key as a DER SubjectPublicKeyInfo: what a TLS certificate of the
    /// server carries, and what the agent pins.
    pub fn spki_der(&self) -> Vec<u8> {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0.to_bytes());
        der
    }

    /// The pin of this key in curl's `--pinnedpubkey` syntax:
    /// `sha256//` + base64 of the SHA-256 of [`Self::spki_der`].
    pub fn tls_pin(&self) -> String {
        use sha2::Digest as _;
        format!("sha256//{}", B64.encode(sha2::Sha256::digest(self.spki_der())))
    }

    /// Verifies an `ed25519:BASE64` signature over the exact `body` bytes.
    pub fn verify(&self, body: &[u8], signature: &str) -> Result<(), SignError> {
        let raw = decode(signature)?;
        let sig = ed25519_dalek::Signature::from_slice(&raw)
            .map_err(|_| SignError::Syntax(signature.to_string()))?;
        self.0.verify(body, &sig).map_err(|_| SignError::Mismatch)
    }
}

impl std::str::FromStr for PublicKey {
    type Err = SignError;

    fn from_str(s: &str) -> Result<Self, SignError> {
        let raw = decode(s.trim())?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| SignError::BadKey)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| SignError::BadKey)
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}{}", B64.encode(self.0.to_bytes()))
    }
}

/// As its `ed25519:BASE64` text (the CD's baked key, `lazare-agent config`).
impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn decode(s: &str) -> Result<Vec<u8>, SignError> {
    let b64 = s.strip_prefix(PREFIX).ok_or_else(|| SignError::Syntax(s.to_string()))?;
    B64.decode(b64).map_err(|_| SignError::Syntax(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_roundtrip() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let body = br#"{"hostname":"pc"}"#;
        let sig = k.sign(body);
        let public: PublicKey = k.public().to_string().parse().unwrap();
        assert_eq!(public.verify(body, &sig), Ok(()));
        assert_eq!(public.verify(b"{\"hostname\":\"evil\"}", &sig), Err(SignError::Mismatch));
    }

    #[test]
    fn other_key_is_refused() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]).public();
        assert_eq!(other.verify(b"x", &k.sign(b"x")), Err(SignError::Mismatch));
    }

    /// RFC 8410 section 10.1: the example public key and its SPKI.
    #[test]
    fn spki_matches_rfc_8410() {
        let raw = "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1";
        let bytes = crate::unhex(raw).unwrap();
        let key: PublicKey = format!("{PREFIX}{}", B64.encode(&bytes)).parse().unwrap();
        assert_eq!(
            B64.encode(key.spki_der()),
            "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="
        );
        let pin = key.tls_pin();
        assert!(pin.starts_with("sha256//") && pin.len() == 8 + 44, "{pin}");
    }

    #[test]
    fn key_text_and_json_round_trip() {
        let public = SigningKey::from_bytes(&[9; 32]).public();
        assert_eq!(public.to_string().parse::<PublicKey>().unwrap(), public);
        let json = serde_json::to_string(&public).unwrap();
        assert_eq!(json, format!("\"{public}\""));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), public);
        assert!(serde_json::from_str::<PublicKey>("\"ed25519:AAAA\"").is_err());
    }

    #[test]
    fn bad_syntax() {
        assert!(matches!("rsa:abc".parse::<PublicKey>(), Err(SignError::Syntax(_))));
        assert!(matches!("ed25519:AAAA".parse::<PublicKey>(), Err(SignError::BadKey)));
    }
}
