//! The agent's TLS trust (DESIGN.md "Trust"): the install server's ed25519
//! signing key, baked into the CD, is also its TLS key. A certificate whose
//! SubjectPublicKeyInfo is that key is accepted without a CA, a host name or
//! a clock (old PCs have dead CMOS batteries). Any other certificate (a
//! TLS-terminating proxy with a public certificate) must chain to the usual
//! CA roots; plans are still checked with the signature key either way.

use std::sync::Arc;

use lazare_proto::PublicKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

/// Which server certificates the agent accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The pinned key's certificate, or one that chains to the CA roots.
    Pinned(PublicKey),
    /// Only certificates that chain to the CA roots (a CD without a key:
    /// no plan will pass anyway, but the hello still reaches the server).
    Roots,
    /// Any certificate (`lazare build --insecure` without a key: a lab; the
    /// screen says so in red). The handshake signature is still checked
    /// against the certificate's own key.
    Anything,
}

impl Trust {
    /// The trust a CD with this key (or none) and `lazare.insecure` asks
    /// for. A key always wins: `lazare.insecure` typed at the boot menu must
    /// not turn a pinned channel into an open one.
    pub fn for_cd(key: Option<&PublicKey>, insecure: bool) -> Trust {
        match key {
            Some(k) => Trust::Pinned(k.clone()),
            None if insecure => Trust::Anything,
            None => Trust::Roots,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    #[error("setting up TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("loading the CA roots: {0}")]
    Roots(#[from] rustls::client::VerifierBuilderError),
}

/// The client configuration for ureq: ring (as ureq's own), TLS 1.2 and
/// 1.3, and the [`Trust`] verifier.
pub fn client_config(trust: Trust, clock_floor: u64) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Verifier::new(trust, clock_floor, provider.clone())?);
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A server that is not the pinned one: a rogue server, or a man in the
/// middle.
#[derive(Debug, thiserror::Error)]
enum NotPinned {
    /// A certificate that is neither for the pinned key nor vouched for by a CA.
    #[error(
        "the server's certificate is not for the install server's key baked into this CD \
         ({pinned}), and no certificate authority vouches for it ({roots})"
    )]
    OtherKey { pinned: String, roots: rustls::Error },
    /// The pinned key's certificate (it is public), shown by a server that
    /// cannot sign with that key.
    #[error(
        "the server shows the certificate of the install server's key baked into this CD \
         ({pinned}) but cannot sign with that key ({source})"
    )]
    NoProof { pinned: String, source: rustls::Error },
}

/// True when `e`, or what caused it, is [`NotPinned`]: the server was
/// refused because it does not hold the pinned key. The staff
/// then read that another server answered, not that the network is down.
pub fn is_not_pinned(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<NotPinned>() {
            return true;
        }
        // io::Error::source skips the error it wraps, and rustls::Error
        // has no source: look inside both.
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if is_not_pinned(inner) {
                return true;
            }
        }
        if let Some(rustls::Error::Other(OtherError(inner))) = e.downcast_ref::<rustls::Error>() {
            if is_not_pinned(inner.as_ref()) {
                return true;
            }
        }
        next = e.source();
    }
    false
}

#[derive(Debug)]
struct Verifier {
    trust: Trust,
    /// DER SubjectPublicKeyInfo of the pinned key.
    pinned_spki: Option<Vec<u8>>,
    roots: Arc<WebPkiServerVerifier>,
    algorithms: WebPkiSupportedAlgorithms,
    /// A clock before this is wrong (the agent's build time): CA
    /// certificates are checked at this time instead.
    floor: UnixTime,
}

impl Verifier {
    fn new(
        trust: Trust,
        clock_floor: u64,
        provider: Arc<CryptoProvider>,
    ) -> Result<Verifier, TlsSetupError> {
        let store = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let roots = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
            .build()?;
        let pinned_spki = match &trust {
            Trust::Pinned(k) => Some(k.spki_der()),
            _ => None,
        };
        Ok(Verifier {
            trust,
            pinned_spki,
            roots,
            algorithms: provider.signature_verification_algorithms,
            floor: UnixTime::since_unix_epoch(std::time::Duration::from_secs(clock_floor)),
        })
    }

    /// A failed handshake signature: with the pinned key's certificate, the
    /// server does not hold that key.
    fn signature_error(&self, cert: &CertificateDer<'_>, e: rustls::Error) -> rustls::Error {
        let (Trust::Pinned(key), Some(spki)) = (&self.trust, &self.pinned_spki) else { return e };
        let pinned = ParsedCertificate::try_from(cert)
            .is_ok_and(|c| c.subject_public_key_info().as_ref() == spki.as_slice());
        if !pinned {
            return e;
        }
        let e = NotPinned::NoProof { pinned: key.to_string(), source: e };
        rustls::Error::Other(OtherError(Arc::new(e)))
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // CA certificates are checked at the floor when the clock is behind it.
        let at = if now.as_secs() < self.floor.as_secs() { self.floor } else { now };
        let by_roots =
            || self.roots.verify_server_cert(end_entity, intermediates, server_name, ocsp, at);
        match (&self.trust, &self.pinned_spki) {
            (Trust::Anything, _) => Ok(ServerCertVerified::assertion()),
            (Trust::Pinned(key), Some(spki)) => {
                // The SPKI parsed out of the certificate, never a byte search:
                // a rogue certificate may carry our key in an extension.
                let cert = ParsedCertificate::try_from(end_entity)?;
                if cert.subject_public_key_info().as_ref() == spki.as_slice() {
                    // The handshake signature is then checked with this
                    // same key, so the server holds the private half.
                    return Ok(ServerCertVerified::assertion());
                }
                by_roots().map_err(|roots| {
                    let e = NotPinned::OtherKey { pinned: key.to_string(), roots };
                    // Error::Other shows our sentence (InvalidCertificate
                    // would show it with Debug).
                    rustls::Error::Other(OtherError(Arc::new(e)))
                })
            }
            _ => by_roots(),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
            .map_err(|e| self.signature_error(cert, e))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
            .map_err(|e| self.signature_error(cert, e))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
