//! The client's TLS configuration: the platform's verifier with the system roots (plus the
//! application's extra CA certificates), or exactly the certificates the application pinned.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorCode, Result};

/// rustls with `ring`, which the core already uses for its own cryptography (the alternative
/// provider, aws-lc-rs, builds a C library with CMake and would double the build time).
/// `ring`'s provider has no post-quantum key exchange, hence the deprecation note rustls gives.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the PEM certificates of `path` (at least one).
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<_, _>>())
        .map_err(|e| Error::invalid(format!("cannot read the certificates in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::invalid(format!("{} holds no PEM certificate", path.display())));
    }
    Ok(certs)
}

/// The TLS configuration for a service: pinned certificates when `pins` is not empty (SHA-256
/// of each accepted end-entity certificate, DER), else the platform verifier with the system
/// roots and `extra_roots`.
pub(crate) fn client_config(
    extra_roots: &[CertificateDer<'static>],
    pins: &[[u8; 32]],
) -> Result<Arc<rustls::ClientConfig>> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("TLS configuration: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if pins.is_empty() {
        Arc::new(
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots.iter().cloned(), provider).map_err(
                |e| Error::new(ErrorCode::ServiceNotTrusted, format!("no trusted certificate authorities: {e}")),
            )?,
        )
    } else {
        Arc::new(PinnedCertificates { pins: pins.to_vec(), algorithms: provider.signature_verification_algorithms })
    };
    let mut config = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts exactly the end-entity certificates whose SHA-256 is pinned (a self-hosted service
/// with a self-signed certificate); the handshake's signatures are still verified with the
/// certificate's key, so only the holder of its private key passes.
#[derive(Debug)]
struct PinnedCertificates {
    pins: Vec<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificates {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let digest: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if self.pins.contains(&digest) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
