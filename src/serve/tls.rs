//! HTTPS for `lazare serve` with one server identity: the ed25519 key that
//! signs plans (server.key, printed by `lazare key show`) is also the TLS
//! key. Its self-signed certificate is made in memory at each start. CDs pin
//! the key itself (its SubjectPublicKeyInfo), not the certificate, so no CA,
//! host name or date is ever checked: old PCs have dead CMOS batteries.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use lazare_proto::SigningKey;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its handshake by then is dropped: a
/// half-open connection must not hold a connection permit for ever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// PKCS#8 v1 PrivateKeyInfo of an Ed25519 key minus the 32 secret bytes
/// (RFC 8410 section 7): version 0, OID 1.3.101.112, OCTET STRING in an
/// OCTET STRING.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn pkcs8(key: &SigningKey) -> PrivatePkcs8KeyDer<'static> {
    let mut der = PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&key.to_bytes());
    PrivatePkcs8KeyDer::from(der)
}

/// The self-signed certificate for `key`. Its dates span all of time that
/// X.509 can say (a client that checks them is not one of ours).
pub fn certificate(key: &SigningKey) -> Result<CertificateDer<'static>> {
    let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8(key), &rcgen::PKCS_ED25519)
        .context("loading the server key for TLS")?;
    let mut params = rcgen::CertificateParams::new(vec!["lazare".to_string()])
        .context("making the TLS certificate")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "lazare install server");
    params.not_before = rcgen::date_time_ymd(1970, 1, 1);
    params.not_after = rcgen::date_time_ymd(9999, 12, 31);
    // The same certificate at every start (a browser exception stays valid).
    let serial = key.public().to_bytes();
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial[..16]));
    let cert = params.self_signed(&pair).context("signing the TLS certificate")?;
    Ok(cert.der().clone())
}

/// rustls with ring (the agent's provider too), TLS 1.2 and 1.3, HTTP/1.1.
pub fn server_config(key: &SigningKey) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choosing the TLS versions")?
        .with_no_client_auth()
        .with_single_cert(vec![certificate(key)?], PrivateKeyDer::Pkcs8(pkcs8(key)))
        .context("loading the TLS certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The acceptor [`super::listen::run`] hands each TCP connection to.
pub fn acceptor(key: &SigningKey) -> Result<TlsAcceptor> {
    Ok(TlsAcceptor::from(server_config(key)?))
}

/// The TLS handshake of one connection, bounded in time. A refused or
/// abandoned handshake (a port scan, a client without our key, plain HTTP on
/// this port) is the client's business: `None`, nothing logged.
pub async fn handshake(acceptor: &TlsAcceptor, stream: TcpStream) -> Option<TlsStream<TcpStream>> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await.ok()?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The certificate carries the signing key as its public key, and is
    /// the same at every start.
    #[test]
    fn certificate_holds_the_signing_key() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let der = certificate(&key).unwrap();
        let parsed = rustls::server::ParsedCertificate::try_from(&der).unwrap();
        assert_eq!(parsed.subject_public_key_info().as_ref(), key.public().spki_der().as_slice());
        assert_eq!(certificate(&key).unwrap(), der);
        server_config(&key).unwrap();
    }
}
