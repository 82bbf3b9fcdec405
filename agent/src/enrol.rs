//! `zdn-agent enrol`: puts the credential bundle the CERT issued (`zdn-collector pki issue`
//! writes it as one file, `bundle.pem`) in place as the agent's identity directory, after
//! checking it the way the collector will: the certificate chains to the CA in the bundle and
//! is meant for client authentication, the private key belongs to the certificate, and the
//! identity in it is an agent's.
//!
//! Files: `cert.pem` and `ca.pem` mode 0644, `key.pem` mode 0640 with the service's group (so
//! the unprivileged service reads it, nobody else), each written to a temporary name and
//! renamed, so a crash never leaves half an identity. An existing identity is replaced only
//! with `--force`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zdn_transport::bundle::{CA_FILE, CERT_FILE, KEY_FILE};
use zdn_transport::{Identity, Role};

#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the bundle must hold the certificate, then the CA certificate, and one private key: {0}")]
    Shape(String),
    #[error("the certificate does not verify against the bundle's CA: {0}")]
    Chain(rustls::Error),
    #[error("the private key does not belong to the certificate: {0}")]
    Key(rustls::Error),
    #[error("the certificate's identity: {0}")]
    Identity(#[from] zdn_transport::IdentityError),
    #[error("the certificate is for role {0}; an agent needs an agent certificate")]
    NotAgent(Role),
    #[error("{0} already holds an identity (use --force to replace it)")]
    Exists(PathBuf),
    #[error("no group named {0:?} (the package creates it)")]
    NoGroup(String),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Checks the bundle in `pem` and installs it in `dir`; returns the identity enrolled.
pub fn enrol(pem: &[u8], dir: &Path, group: Option<&str>, force: bool) -> Result<Identity, EnrolError> {
    let shape = |m: &str| EnrolError::Shape(m.to_owned());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| EnrolError::Shape(e.to_string()))?;
    let key =
        PrivateKeyDer::from_pem_slice(pem).map_err(|e| EnrolError::Shape(format!("private key: {e}")))?;
    let [leaf, ca] =
        <[CertificateDer<'static>; 2]>::try_from(certs).map_err(|_| shape("expected two certificates"))?;

    let identity = Identity::from_certificate(&leaf)?;
    if identity.role != Role::Agent {
        return Err(EnrolError::NotAgent(identity.role));
    }
    let provider = zdn_transport::crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(EnrolError::Chain)?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| EnrolError::Chain(rustls::Error::General(e.to_string())))?;
    verifier.verify_client_cert(&leaf, &[], UnixTime::now()).map_err(EnrolError::Chain)?;
    rustls::sign::CertifiedKey::from_der(vec![leaf.clone()], key.clone_key(), &provider)
        .map_err(EnrolError::Key)?;

    if dir.join(CERT_FILE).exists() && !force {
        return Err(EnrolError::Exists(dir.to_owned()));
    }
    let gid = group.map(group_id).transpose()?;
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| EnrolError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let pem_of = |label: &str, der: &[u8]| pem::encode(&pem::Pem::new(label, der));
    install(&dir.join(CERT_FILE), pem_of("CERTIFICATE", &leaf).as_bytes(), 0o644, None)?;
    install(&dir.join(CA_FILE), pem_of("CERTIFICATE", &ca).as_bytes(), 0o644, None)?;
    install(&dir.join(KEY_FILE), pem_of("PRIVATE KEY", key.secret_der()).as_bytes(), 0o640, gid)?;
    Ok(identity)
}

/// Writes `bytes` to a temporary file beside `path` with `mode` (and group), then renames it.
fn install(path: &Path, bytes: &[u8], mode: u32, gid: Option<u32>) -> Result<(), EnrolError> {
    let tmp = path.with_extension("pem.new");
    let err = |source| EnrolError::Write { path: path.to_owned(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    // The umask may have narrowed the mode given at creation.
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode)).map_err(err)?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(&tmp, None, Some(gid)).map_err(err)?;
    }
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// The id of group `name`.
// getgrnam(3) has no safe wrapper in libc (and the std library has none).
#[allow(unsafe_code)]
fn group_id(name: &str) -> Result<u32, EnrolError> {
    let c = std::ffi::CString::new(name).map_err(|_| EnrolError::NoGroup(name.to_owned()))?;
    // SAFETY: getgrnam(3) with a NUL-terminated name; the result is read at once, before any
    // other call could reuse its static buffer.
    let group = unsafe { libc::getgrnam(c.as_ptr()) };
    if group.is_null() {
        return Err(EnrolError::NoGroup(name.to_owned()));
    }
    // SAFETY: non-null pointer to the static group record just returned.
    Ok(unsafe { (*group).gr_gid })
}
