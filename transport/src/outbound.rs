//! TLS towards services outside ZDN — an alert webhook, a TAXII server, a MISP instance: the
//! system's trusted roots, plus the CA of an operator's own file where the service's
//! certificate comes from an internal CA. Server authentication only: these services know us
//! by a secret (HMAC key, API key, password), not by a ZDN certificate.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum OutboundTlsError {
    #[error("{path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// A client configuration trusting the system's roots and, if given, every certificate in the
/// PEM file `extra_ca`.
pub fn client_config(extra_ca: Option<&Path>) -> Result<rustls::ClientConfig, OutboundTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = extra_ca {
        let ca_error = |reason: String| OutboundTlsError::Ca { path: path.display().to_string(), reason };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let mut added = 0;
        for cert in
            <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem)
        {
            roots.add(cert.map_err(|e| ca_error(e.to_string()))?).map_err(|e| ca_error(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_error("no PEM certificate in the file".into()));
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(crate::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = client_config(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("ca.pem") && error.contains("no PEM certificate"), "{error}");
        let missing = client_config(Some(&dir.path().join("absent.pem"))).unwrap_err().to_string();
        assert!(missing.contains("absent.pem"), "{missing}");
    }
}
