//! Certificate revocation lists, read so that a wrong file fails closed.
//!
//! rustls refuses a revoked client certificate only if it was given the list; a path that
//! names the CA certificate, a key or an empty file yields *no* list from a PEM reader, and
//! a collector that started with none accepts every revoked certificate without a word. So
//! every configured file must hold at least one CRL, each CRL must be issued by our CA and
//! carry the CA's valid signature; anything else is an error naming the file and the reason.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use std::path::{Path, PathBuf};
use thiserror::Error;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

#[derive(Debug, Error)]
pub enum RevocationError {
    #[error("revocation list {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("revocation list {path}: {what}")]
    Invalid { path: PathBuf, what: String },
}

/// One checked revocation list: its DER, and what it revokes.
#[derive(Debug, Clone)]
pub struct Crl {
    pub der: CertificateRevocationListDer<'static>,
    /// Serial numbers of the revoked certificates, lower-case hex.
    pub revoked: Vec<String>,
}

/// Reads every file in `paths` (PEM with one or more CRLs, or one DER CRL) and checks each
/// list against `ca`: issued by it, signed by its key.
pub fn load(paths: &[impl AsRef<Path>], ca: &[CertificateDer<'_>]) -> Result<Vec<Crl>, RevocationError> {
    let mut crls = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let invalid = |what: String| RevocationError::Invalid { path: path.to_owned(), what };
        let bytes =
            std::fs::read(path).map_err(|source| RevocationError::Io { path: path.to_owned(), source })?;
        let ders: Vec<CertificateRevocationListDer<'static>> = if bytes.starts_with(b"-----BEGIN") {
            CertificateRevocationListDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(format!("bad PEM: {e}")))?
        } else {
            vec![CertificateRevocationListDer::from(bytes)]
        };
        if ders.is_empty() {
            return Err(invalid("holds no X509 CRL (is it a certificate or a key?)".into()));
        }
        for der in ders {
            let revoked = check(&der, ca).map_err(invalid)?;
            crls.push(Crl { der, revoked });
        }
    }
    Ok(crls)
}

/// Parses one CRL and checks its issuer and signature against the CA certificates.
fn check(der: &CertificateRevocationListDer<'_>, ca: &[CertificateDer<'_>]) -> Result<Vec<String>, String> {
    let (rest, crl) =
        CertificateRevocationList::from_der(der.as_ref()).map_err(|e| format!("not a CRL: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the CRL", rest.len()));
    }
    let issuer = crl.issuer();
    let mut named = false;
    for cert in ca {
        let (_, cert) =
            X509Certificate::from_der(cert.as_ref()).map_err(|e| format!("CA certificate: {e}"))?;
        if cert.subject().as_raw() != issuer.as_raw() {
            continue;
        }
        named = true;
        if crl.verify_signature(cert.public_key()).is_ok() {
            return Ok(crl.iter_revoked_certificates().map(|r| format!("{:x}", r.serial())).collect());
        }
    }
    Err(if named {
        format!("signature does not verify with the CA's key ({issuer})")
    } else {
        format!("issued by {issuer}, not by this collector's CA")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, IsCa, Issuer, KeyPair,
        KeyUsagePurpose, RevokedCertParams, SerialNumber,
    };

    fn ca(name: &str) -> (rcgen::Certificate, KeyPair, CertificateParams) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap(), key, params)
    }

    fn crl_of(params: &CertificateParams, key: &KeyPair) -> String {
        let now = time::OffsetDateTime::now_utc();
        let crl = CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(30),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(vec![0xab, 0x01]),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        crl.signed_by(&Issuer::from_params(params, key)).unwrap().pem().unwrap()
    }

    #[test]
    fn only_lists_of_our_ca_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let (ours, key, params) = ca("ZDN sensor CA");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let good = write("good.pem", &crl_of(&params, &key));
        let roots = [ours.der().clone()];
        let loaded = load(&[&good], &roots).unwrap();
        assert_eq!(loaded[0].revoked, ["ab01"]);
        let error = |path: PathBuf| load(&[path], &roots).unwrap_err().to_string();
        assert!(error(write("ca.pem", &ours.pem())).contains("holds no X509 CRL"));
        assert!(error(write("empty.pem", "")).contains("not a CRL"));
        assert!(error(write("garbage.der", "garbage")).contains("not a CRL"));
        assert!(error(dir.path().join("missing")).contains("No such file"));
        // A list of another CA, and one in our CA's name signed by another key.
        let (_, other_key, other) = ca("Another CA");
        assert!(
            error(write("other.pem", &crl_of(&other, &other_key))).contains("not by this collector's CA")
        );
        let (_, forger_key, _) = ca("ZDN sensor CA");
        assert!(
            error(write("forged.pem", &crl_of(&params, &forger_key))).contains("signature does not verify")
        );
    }
}
