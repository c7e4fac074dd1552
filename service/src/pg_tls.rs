//! TLS to the ledger database, as libpq does it: the ledger URL's `sslmode` and `sslrootcert`
//! parameters choose whether the connection is encrypted and what is verified, through rustls
//! (the TLS stack the server already uses) as a `tokio-postgres` connector.
//!
//! | `sslmode` | encrypted | certificate chain verified | host name verified |
//! |---|---|---|---|
//! | `disable` | never | - | - |
//! | `prefer` (the default) | when the server offers TLS | only with `sslrootcert` | no |
//! | `require` | always (else refused) | only with `sslrootcert` | no |
//! | `verify-ca` | always | against `sslrootcert` | no |
//! | `verify-full` | always | against `sslrootcert` | yes |
//!
//! `sslrootcert` is a PEM file of the certificate authorities trusted for the database. Unlike
//! libpq, no default file (`~/.postgresql/root.crt`) is looked for: `verify-ca` and
//! `verify-full` need the parameter. A certificate that does not verify, and a server without
//! TLS when the mode requires it, fail with `STORAGE` and a message that says which (not
//! retried: the service stops at start rather than wait). Client certificates (`sslcert`,
//! `sslkey`) are not supported.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use license_backup::{Error, ErrorCode, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode as DriverMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it.
    Prefer,
    /// TLS, or no connection.
    Require,
    /// TLS with a certificate chain that verifies against `sslrootcert`.
    VerifyCa,
    /// As [`SslMode::VerifyCa`], and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "the ledger URL's sslmode={other:?} is not supported: disable, prefer, require, verify-ca or \
                         verify-full"
                    ),
                ));
            }
        })
    }

    /// What the driver is told: whether TLS may be skipped.
    pub fn driver_mode(self) -> DriverMode {
        match self {
            SslMode::Disable => DriverMode::Disable,
            SslMode::Prefer => DriverMode::Prefer,
            _ => DriverMode::Require,
        }
    }
}

/// The TLS parameters of a ledger URL.
#[derive(Clone, Debug)]
pub struct DbTls {
    /// The mode.
    pub mode: SslMode,
    /// The trusted certificate authorities' PEM file.
    pub root_cert: Option<PathBuf>,
}

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| {
                    Error::new(ErrorCode::InvalidArgument, "the ledger URL has a malformed percent escape")
                })?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Error::new(ErrorCode::InvalidArgument, "the ledger URL is not UTF-8"))
}

/// Takes the TLS parameters out of a `postgres://` URL's query: (the URL the driver parses, the
/// TLS parameters). `sslcert`, `sslkey` and `sslpassword` are refused (not supported).
pub fn split_url(url: &str) -> Result<(String, DbTls)> {
    let mut tls = DbTls { mode: SslMode::Prefer, root_cert: None };
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), tls)) };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => tls.mode = SslMode::parse(&percent_decode(value)?)?,
            "sslrootcert" => tls.root_cert = Some(PathBuf::from(percent_decode(value)?)),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    format!("the ledger URL's {key} is not supported (no client certificates to the database)"),
                ));
            }
            _ => kept.push(pair),
        }
    }
    if matches!(tls.mode, SslMode::VerifyCa | SslMode::VerifyFull) && tls.root_cert.is_none() {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            "the ledger URL's sslmode=verify-ca and verify-full need sslrootcert=<PEM file of the trusted CAs>",
        ));
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, tls))
}

/// rustls with `ring`, like the server's own TLS (`crate::tls`).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifies the chain against the roots; the host name only when `names` is set.
#[derive(Debug)]
struct Verifier {
    /// `None`: nothing is verified (prefer / require without `sslrootcert`, as libpq).
    webpki: Option<Arc<WebPkiServerVerifier>>,
    names: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else { return Ok(ServerCertVerified::assertion()) };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // The chain verified before the name was checked.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.names => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The connector for `tls` (`None` for `sslmode=disable`). Reads `sslrootcert` now: a missing
/// or unreadable file, or one without a certificate, is `INVALID_ARGUMENT`.
pub fn connector(tls: &DbTls) -> Result<Option<MakeRustls>> {
    if tls.mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = provider();
    let webpki = match &tls.root_cert {
        None => None,
        Some(path) => {
            let bad = |what: String| {
                Error::new(ErrorCode::InvalidArgument, format!("the ledger's sslrootcert {}: {what}", path.display()))
            };
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?;
            for cert in certs {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad("holds no certificate".into()));
            }
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Some(verifier)
        }
    };
    let verifier = Verifier { webpki, names: tls.mode == SslMode::VerifyFull, provider: Arc::clone(&provider) };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorCode::Internal, format!("TLS to the ledger: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Some(MakeRustls { config: Arc::new(config) }))
}

/// What a failed connection says about TLS, as `STORAGE` (waiting cures neither): the
/// certificate did not verify, or the server has no TLS and the mode requires it.
pub fn tls_failure(e: &tokio_postgres::Error) -> Option<Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(rustls::Error::InvalidCertificate(c)) = s.downcast_ref::<rustls::Error>() {
            return Some(not_trusted(c));
        }
        if let Some(io) = s.downcast_ref::<io::Error>() {
            if let Some(rustls::Error::InvalidCertificate(c)) =
                io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return Some(not_trusted(c));
            }
        }
        if s.to_string() == "server does not support TLS" {
            return Some(Error::new(
                ErrorCode::Storage,
                "the ledger database does not offer TLS, which the ledger URL's sslmode requires",
            ));
        }
        source = s.source();
    }
    None
}

fn not_trusted(c: &CertificateError) -> Error {
    let why = match c {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it does not name the host in the ledger URL (sslmode=verify-full)".to_string()
        }
        // A CA of the same name but another key: the signature does not verify.
        CertificateError::UnknownIssuer | CertificateError::BadSignature => {
            "it is not signed by a CA in the ledger URL's sslrootcert".to_string()
        }
        other => format!("{other:?}"),
    };
    Error::new(ErrorCode::Storage, format!("the ledger database's TLS certificate is not trusted: {why}"))
}

/// A `tokio-postgres` TLS connector over rustls.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<rustls::ClientConfig>,
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{domain:?}: {e}")))?;
        Ok(RustlsConnect { config: Arc::clone(&self.config), name })
    }
}

/// One connection's handshake.
pub struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config).connect(self.name, stream).await?;
            Ok(RustlsStream(tls))
        })
    }
}

/// A TLS session to the database.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // No tls-server-end-point binding: SCRAM runs without channel binding (-PLUS).
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let (url, tls) =
            split_url("postgres://u@db:5432/l?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3")
                .unwrap();
        assert_eq!(url, "postgres://u@db:5432/l?connect_timeout=3");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        let (url, tls) = split_url("postgres://u@db/l").unwrap();
        assert_eq!((url.as_str(), tls.mode), ("postgres://u@db/l", SslMode::Prefer));
        for bad in [
            "postgres://db/l?sslmode=allow",
            "postgres://db/l?sslmode=verify-ca",
            "postgres://db/l?sslmode=require&sslcert=c.pem",
            "postgres://db/l?sslrootcert=%zz",
        ] {
            assert_eq!(split_url(bad).unwrap_err().code(), ErrorCode::InvalidArgument, "{bad}");
        }
    }
}
