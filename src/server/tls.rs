//! TLS for the gateway's listener (SPEC S2): rustls with the ring provider,
//! offering HTTP/2 only.
//!
//! The acceptor is built once, at start-up, so files that cannot be used are
//! an error then, not a listener whose every handshake fails.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

/// Reads a PEM certificate chain and private key into a TLS acceptor that
/// offers HTTP/2 only (gRPC needs nothing else).
pub fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, TlsSetupError> {
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::crypto::ring;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::Pem("certificate", e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsSetupError::Pem("key", e))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read the TLS {0}: {1}")]
    Pem(&'static str, tokio_rustls::rustls::pki_types::pem::Error),
    #[error(transparent)]
    Rustls(#[from] tokio_rustls::rustls::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S2: files that parse but hold no certificate, or no key, are refused
    /// at start-up rather than making every handshake fail later.
    #[test]
    fn tls_needs_a_certificate_and_its_key() {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert, key) = (cert.pem(), signing_key.serialize_pem());
        assert!(tls_acceptor(cert.as_bytes(), key.as_bytes()).is_ok());
        assert!(tls_acceptor(b"", key.as_bytes()).is_err(), "no certificate");
        assert!(
            tls_acceptor(key.as_bytes(), key.as_bytes()).is_err(),
            "a key as the certificate"
        );
        assert!(
            tls_acceptor(cert.as_bytes(), cert.as_bytes()).is_err(),
            "a certificate as the key"
        );
    }
}
