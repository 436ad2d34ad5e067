//! TLS client settings for the providers: the C++ `CSSLClientAsync::InitSSL`
//! (push_server's `socket/`), on rustls with the ring provider.
//!
//! Differences from the C++: the server's certificate is verified (against
//! the public roots, or the CAs of `ApnsCaPath`/`FcmCaPath` when set; the
//! C++ never calls `SSL_CTX_set_verify`), ALPN offers `h2` only, TLS 1.2 or
//! 1.3.

use crate::key_file::{parse_certs, read_pem_file, KeyError};
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Why a TLS client cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// rustls refused the settings (a key that does not fit its certificate...).
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The roots to trust: the CAs in `ca_path`, or Mozilla's public roots.
pub fn roots(ca_path: Option<&str>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_path {
        Some(path) => {
            for cert in parse_certs(&read_pem_file(path)?)? {
                roots.add(cert)?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// A client config offering `h2`, with a client certificate when given.
pub fn client_config(
    roots: RootCertStore,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client_cert {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
