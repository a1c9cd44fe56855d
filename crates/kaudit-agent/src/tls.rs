//! TLS material: reading PEM certificates and keys, and the webhook receiver's rustls server
//! configuration (ring provider), with optional client-certificate authentication.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;
use crate::error::AgentError;

/// Reads every certificate of a PEM file; an empty file is an error.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, AgentError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| AgentError::Tls(format!("{}: {err}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| AgentError::Tls(format!("{}: {err}", path.display())))?;
    if certs.is_empty() {
        return Err(AgentError::Tls(format!(
            "{}: no PEM certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, AgentError> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| AgentError::Tls(format!("{}: {err}", path.display())))
}

/// The server configuration of the webhook receiver.
pub fn server_config(config: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, AgentError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&config.cert)?;
    let key = read_key(&config.key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| AgentError::Tls(err.to_string()))?;
    let builder = match &config.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|err| AgentError::Tls(format!("{}: {err}", path.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|err| AgentError::Tls(format!("{}: {err}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(|err| AgentError::Tls(format!("{}: {err}", config.cert.display())))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}
