//! A small certificate authority, so nobody needs openssl to start: `zdn-collector pki init`
//! creates the CA and the collector's server certificate, `pki issue` a certificate for an
//! agent, analyst or admin, written as a credential bundle (see `zdn_transport::bundle`),
//! `pki revoke` revokes one ([`revoke`]: the CA's CRL), `pki list` shows the [`register`].
//!
//! ```text
//! <pki>/ca/ca.pem, ca.key            the CA (keep ca.key offline in production)
//! <pki>/ca/issued.jsonl              every certificate issued, and when it was revoked
//! <pki>/ca/crl.pem                   the revocation list (`pki revoke` writes it)
//! <pki>/collector/                   the collector's bundle (server certificate)
//! <pki>/issued/<participant>/<name>/  one bundle per issued certificate (name defaults to the role)
//! ```
//!
//! Keys are ECDSA P-256 (rcgen's default), key files mode 0600.

pub mod register;
pub mod revoke;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};
use zdn_transport::bundle::{BUNDLE_FILE, CA_FILE, CERT_FILE, KEY_FILE};
use zdn_transport::{Identity, Role};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{0} already holds a CA; refusing to overwrite it")]
    Exists(PathBuf),
    #[error("no CA in {0}: run `zdn-collector pki init` first")]
    NoCa(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error(transparent)]
    Identity(#[from] zdn_transport::IdentityError),
    #[error("indicator publishing key: {0}")]
    PublishKey(#[from] zdn_indicators::signing::SignedError),
    #[error("bad name {0:?}: use letters, digits, '.', '_' and '-'")]
    BadName(String),
    #[error(
        "admin is a role of the CERT's participant ({cert}) only: an admin of {participant} could read, \
         export and erase every institution's data; issue it an analyst certificate, or name the CERT \
         with --cert-participant"
    )]
    AdminOutsideCert { participant: String, cert: String },
    #[error("certificate register: {0}")]
    Register(String),
    #[error("no certificate to revoke: {0} is not in the register, or already revoked (see `pki list`)")]
    NothingToRevoke(String),
}

/// The indicator publishing key, beside the CA (see `Config::publish_key_path`).
pub const PUBLISH_KEY: &str = "publish.key";

const CA_VALIDITY_DAYS: i64 = 3650;
const LEAF_VALIDITY_DAYS: i64 = 397;

/// Creates the CA, the collector's server bundle, valid for `server_names` (DNS names or IP
/// addresses; `localhost`, `127.0.0.1` and `::1` are always included), and the indicator
/// publishing key `<pki>/publish.key` (kept if it exists).
pub fn init(dir: &Path, server_names: &[String]) -> Result<PathBuf, PkiError> {
    let ca_dir = dir.join("ca");
    if ca_dir.join("ca.pem").exists() {
        return Err(PkiError::Exists(ca_dir));
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "ZDN sensor CA");
    params.distinguished_name.push(DnType::OrganizationName, "ZDN");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, CA_VALIDITY_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write(&ca_dir.join("ca.pem"), cert.pem().as_bytes(), false)?;
    write(&ca_dir.join("ca.key"), key.serialize_pem().as_bytes(), true)?;

    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    names.extend(server_names.iter().filter(|n| !names.contains(n)).cloned().collect::<Vec<_>>());
    let mut server = CertificateParams::new(names)?;
    server.distinguished_name.push(DnType::CommonName, "zdn-collector");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let out = dir.join("collector");
    let holder = Holder { participant: "-", role: "server", name: "zdn-collector" };
    sign_into(dir, server, &out, &holder)?;
    zdn_indicators::signing::Publisher::load_or_create(&dir.join(PUBLISH_KEY))?;
    Ok(out)
}

/// What to issue: a certificate for `participant` in `role`.
pub struct Request<'a> {
    pub participant: &'a str,
    pub role: Role,
    /// Holder name (common name); defaults to the role.
    pub name: Option<&'a str>,
    /// Bundle directory; defaults to `<pki>/issued/<participant>/<name>`.
    pub out: Option<&'a Path>,
    /// The CERT's participant: the only one that may hold admin certificates.
    pub cert_participant: &'a str,
}

impl<'a> Request<'a> {
    /// A certificate for `participant` in `role`, written under the PKI directory, with the
    /// default CERT participant.
    pub fn new(participant: &'a str, role: Role, name: Option<&'a str>) -> Request<'a> {
        Request {
            participant,
            role,
            name,
            out: None,
            cert_participant: crate::config::DEFAULT_CERT_PARTICIPANT,
        }
    }
}

/// Issues a certificate and writes its bundle; returns the bundle directory.
pub fn issue(dir: &Path, request: &Request<'_>) -> Result<PathBuf, PkiError> {
    let Request { participant, role, name, out, cert_participant } = *request;
    zdn_transport::identity::validate_participant(participant)?;
    if role == Role::Admin && participant != cert_participant {
        return Err(PkiError::AdminOutsideCert {
            participant: participant.to_owned(),
            cert: cert_participant.to_owned(),
        });
    }
    let name = name.unwrap_or(role.as_str()).to_owned();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(PkiError::BadName(name));
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name.as_str());
    params.distinguished_name.push(DnType::OrganizationName, participant);
    let uri = Identity::uri(participant, role);
    params.subject_alt_names = vec![SanType::URI(uri.as_str().try_into()?)];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let out = out.map_or_else(|| dir.join("issued").join(participant).join(&name), Path::to_owned);
    sign_into(dir, params, &out, &Holder { participant, role: role.as_str(), name: &name })?;
    Ok(out)
}

/// Who a certificate is for, as the register records it.
struct Holder<'a> {
    participant: &'a str,
    role: &'a str,
    name: &'a str,
}

/// The CA in `dir` as an issuer, and its certificate's PEM.
fn load_issuer(dir: &Path) -> Result<(Issuer<'static, KeyPair>, String), PkiError> {
    let ca_pem_path = dir.join("ca").join("ca.pem");
    let ca_pem = std::fs::read_to_string(&ca_pem_path).map_err(|_| PkiError::NoCa(dir.to_owned()))?;
    let ca_key_path = dir.join("ca").join("ca.key");
    let ca_key_pem =
        std::fs::read_to_string(&ca_key_path).map_err(|source| PkiError::Io { path: ca_key_path, source })?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)?;
    Ok((Issuer::from_ca_cert_pem(&ca_pem, ca_key)?, ca_pem))
}

/// Signs `params` with the CA in `dir`, writes the bundle to `out` and records it in the
/// register.
fn sign_into(
    dir: &Path,
    mut params: CertificateParams,
    out: &Path,
    holder: &Holder<'_>,
) -> Result<(), PkiError> {
    let (issuer, ca_pem) = load_issuer(dir)?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, LEAF_VALIDITY_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    write(&out.join(CERT_FILE), cert.pem().as_bytes(), false)?;
    write(&out.join(KEY_FILE), key.serialize_pem().as_bytes(), true)?;
    write(&out.join(CA_FILE), ca_pem.as_bytes(), false)?;
    // The same three in one file, to hand to the holder (`zdn-agent enrol --bundle`).
    let bundle = [cert.pem(), key.serialize_pem(), ca_pem].concat();
    write(&out.join(BUNDLE_FILE), bundle.as_bytes(), true)?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.der()).map_err(|e| PkiError::Register(e.to_string()))?;
    let stamp =
        |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    register::append(
        dir,
        register::Issued {
            serial: format!("{:x}", parsed.serial),
            participant: holder.participant.into(),
            role: holder.role.into(),
            name: holder.name.into(),
            not_after: stamp(params.not_after),
            issued: stamp(OffsetDateTime::now_utc()),
            revoked: None,
        },
    )
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // An hour of slack for clocks that run behind.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

fn write(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io { path: path.to_owned(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdn_transport::Bundle;

    #[test]
    fn init_then_issue_gives_bundles_that_carry_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        let server = init(dir.path(), &["collector.example".into()]).unwrap();
        assert!(matches!(init(dir.path(), &[]), Err(PkiError::Exists(_))));
        Bundle::load(&server).unwrap();
        let request = Request::new;
        let agent = issue(dir.path(), &request("umc-noord", Role::Agent, Some("gw-1"))).unwrap();
        let bundle = Bundle::load(&agent).unwrap();
        let id = Identity::from_certificate(&bundle.certs[0]).unwrap();
        assert_eq!((id.participant.as_str(), id.role, id.name.as_str()), ("umc-noord", Role::Agent, "gw-1"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(agent.join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            issue(dir.path(), &request("Bad Id", Role::Agent, None)),
            Err(PkiError::Identity(_))
        ));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(issue(empty.path(), &request("a", Role::Agent, None)), Err(PkiError::NoCa(_))));
        // Admin only at the CERT: a participant's admin is refused before anything is written.
        let refused = issue(dir.path(), &request("umc-noord", Role::Admin, None));
        assert!(matches!(refused, Err(PkiError::AdminOutsideCert { .. })), "{refused:?}");
        assert!(!dir.path().join("issued/umc-noord/admin").exists());
        issue(dir.path(), &request("z-cert", Role::Admin, None)).unwrap();
    }
}
