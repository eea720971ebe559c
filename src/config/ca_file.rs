//! `oidc.ca_file`: extra CA certificates for the calls to the provider.

use std::path::Path;

use super::ConfigError;
use crate::auth::provider::error_chain;

/// Reads the PEM bundle at `path` and checks that rustls accepts every
/// certificate in it as a trust anchor, so a broken file fails at start and
/// not at the first login.
pub(super) fn read_ca_file(
    key: &str,
    path: &Path,
) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let file = path.display();
    let pem = std::fs::read(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {file}: {e}")))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        ConfigError::invalid(
            key,
            format!("{file} is not a valid PEM bundle: {}", error_chain(&e)),
        )
    })?;
    if certificates.is_empty() {
        return Err(ConfigError::invalid(
            key,
            format!("{file} contains no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }

    // reqwest parses the certificates only when it builds a client, so one is
    // built here with these certificates as its only roots.
    let mut builder = reqwest::Client::builder().tls_built_in_root_certs(false);
    for certificate in &certificates {
        builder = builder.add_root_certificate(certificate.clone());
    }
    builder.build().map_err(|e| {
        ConfigError::invalid(
            key,
            format!(
                "{file} contains a certificate that is not a valid CA certificate: {}",
                error_chain(&e)
            ),
        )
    })?;
    Ok(certificates)
}
