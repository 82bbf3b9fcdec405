//! A credential bundle: the directory `zdn-collector pki issue` writes and every client (agent,
//! `zdn`) and the collector itself load.
//!
//! ```text
//! <dir>/cert.pem   the holder's certificate (chain allowed)
//! <dir>/key.pem    its private key (PKCS#8), mode 0600
//! <dir>/ca.pem     the CA that the peer's certificate must chain to
//! <dir>/bundle.pem the three in one file, mode 0600, for `zdn-agent enrol --bundle`
//! ```

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";
pub const CA_FILE: &str = "ca.pem";
/// The three above in one file (certificate, key, CA), as handed to the holder to enrol.
pub const BUNDLE_FILE: &str = "bundle.pem";

#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub ca: Vec<CertificateDer<'static>>,
}

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {what}")]
    Pem { path: PathBuf, what: String },
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let certs = read_certs(&dir.join(CERT_FILE))?;
        let ca = read_certs(&dir.join(CA_FILE))?;
        let key_path = dir.join(KEY_FILE);
        let pem = read(&key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|e| BundleError::Pem { path: key_path, what: format!("no private key: {e}") })?;
        Ok(Bundle { dir: dir.to_owned(), certs, key, ca })
    }

    /// The CA certificates as a root store.
    pub fn roots(&self) -> Result<rustls::RootCertStore, BundleError> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in &self.ca {
            roots.add(ca.clone()).map_err(|e| BundleError::Pem {
                path: self.dir.join(CA_FILE),
                what: format!("unusable CA certificate: {e}"),
            })?;
        }
        Ok(roots)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, BundleError> {
    std::fs::read(path).map_err(|source| BundleError::Io { path: path.to_owned(), source })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, BundleError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BundleError::Pem { path: path.to_owned(), what: format!("bad PEM: {e}") })?;
    if certs.is_empty() {
        return Err(BundleError::Pem { path: path.to_owned(), what: "no certificate".into() });
    }
    Ok(certs)
}
