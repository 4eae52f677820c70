//! TLS for the HTTP endpoints: builds a `rustls::ServerConfig` from `tls_server_config` and does
//! the handshake of each connection that [`super::serve`] accepts.
//!
//! Why our own accept loop rather than the `axum-server` crate: what we need is small and
//! specific: take the *current* TLS config for every new connection (so a rotated certificate is
//! used without a restart), answer a plain-HTTP request on the TLS port with a clear 400 instead
//! of a garbled handshake, and the same connection limits as plain HTTP. That is a few lines over
//! hyper-util and tokio-rustls, which are already in the tree under reqwest, with the ring
//! provider the rest of the exporter uses; axum-server would add a dependency with its own rustls
//! feature set and reload handle.

use std::io;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::config::{ClientAuth, Problem, TlsSettings, TlsVersion};

/// Builds the rustls config, reading the certificate, key and client CA files now.
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, Problem> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            Problem::invalid(
                "tls_server_config.cert_file",
                format!("{}: {e}", settings.cert_file.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(Problem::invalid(
            "tls_server_config.cert_file",
            format!("{}: no PEM certificate in it", settings.cert_file.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&settings.key_file).map_err(|e| {
        Problem::invalid(
            "tls_server_config.key_file",
            format!("{}: {e}", settings.key_file.display()),
        )
    })?;

    let verifier: Arc<dyn ClientCertVerifier> = match settings.client_auth {
        ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AnyClientCert {
                mandatory: settings.client_auth == ClientAuth::RequireAnyClientCert,
                provider: provider.clone(),
            })
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let roots = client_roots(settings)?;
            let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let builder = if settings.client_auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder
                .build()
                .map_err(|e| Problem::invalid("tls_server_config.client_ca_file", e.to_string()))?
        }
    };

    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (settings.min_version..=settings.max_version).contains(v))
    .map(|(_, v)| v)
    .collect();
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| Problem::invalid("tls_server_config.min_version", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            Problem::invalid(
                "tls_server_config.key_file",
                format!(
                    "{} cannot be used with {}: {e}",
                    settings.key_file.display(),
                    settings.cert_file.display()
                ),
            )
        })?;
    config.ignore_client_order = settings.prefer_server_cipher_suites;
    // HTTP/1.1 only (see the module doc of `super`): say so in ALPN.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn client_roots(settings: &TlsSettings) -> Result<Arc<RootCertStore>, Problem> {
    let path = settings
        .client_ca_file
        .as_ref()
        .expect("validation requires client_ca_file for verifying policies");
    let field = "tls_server_config.client_ca_file";
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .map_err(|e| Problem::invalid(field, format!("{}: {e}", path.display())))?
    {
        let cert = cert.map_err(|e| Problem::invalid(field, format!("{}: {e}", path.display())))?;
        roots
            .add(cert)
            .map_err(|e| Problem::invalid(field, format!("{}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(Problem::invalid(
            field,
            format!("{}: no PEM certificate in it", path.display()),
        ));
    }
    Ok(Arc::new(roots))
}

/// `RequestClientCert` / `RequireAnyClientCert`: Go's policies that ask for a certificate and
/// accept any. The handshake signature is still checked (the client holds the key of the
/// certificate it sent), the certificate's issuer is not. The docs call these insecure.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a plain-HTTP client gets on the TLS port (Go's servers answer the same).
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 48\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

pub(super) async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    mut stream: TcpStream,
) -> io::Result<TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    // Every TLS connection opens with a handshake record (content type 22).
    if n == 1 && first[0] != 0x16 {
        // Read what the client sent so closing does not reset the connection before it reads
        // the answer.
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).await;
        let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
        let _ = stream.shutdown().await;
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a plain-HTTP request on the TLS port (refused with 400)",
        ));
    }
    acceptor.accept(stream).await
}

pub(super) fn log_handshake_error(peer: std::net::SocketAddr, error: &io::Error) {
    // A TLS-level refusal (no or a bad client certificate, no shared version) is worth a warning
    // to the operator; a client that just went away is not.
    let tls = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(e) => tracing::warn!(%peer, error = %e, "TLS handshake refused"),
        None => tracing::debug!(%peer, error = %error, "TLS handshake failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_http_answer_has_the_right_length() {
        let text = std::str::from_utf8(PLAIN_HTTP_ANSWER).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(text.contains(&format!("Content-Length: {}\r\n", body.len())));
    }
}
