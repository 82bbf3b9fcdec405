//! `pki revoke`: marks certificates revoked in the register and writes the CA's revocation
//! list, `<pki>/ca/crl.pem`, with every certificate revoked so far. The collector enforces it
//! once the file is in its `revocation_lists` (checked to be a CRL of this CA at start-up,
//! re-read on SIGHUP).

use super::register::{self, Issued};
use super::{PkiError, load_issuer};
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use std::path::{Path, PathBuf};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// Which certificates to revoke.
pub enum Which<'a> {
    Serial(&'a str),
    /// Every certificate issued to this holder (participant, name) not yet revoked.
    Holder {
        participant: &'a str,
        name: &'a str,
    },
}

/// The list is not enforced to expire (rustls ignores `nextUpdate` unless told), but tools
/// that check it see a year.
const CRL_VALIDITY_DAYS: i64 = 365;

/// Revokes the certificates `which` names, writes the CRL and returns its path and the
/// certificates revoked now.
pub fn revoke(dir: &Path, which: &Which<'_>) -> Result<(PathBuf, Vec<Issued>), PkiError> {
    let mut entries = register::read(dir)?;
    let now = OffsetDateTime::now_utc();
    let stamp = now.format(&Rfc3339).map_err(|e| PkiError::Register(e.to_string()))?;
    let mut revoked = Vec::new();
    for entry in entries.iter_mut().filter(|e| e.revoked.is_none()) {
        let hit = match which {
            Which::Serial(serial) => entry.serial == normalise(serial),
            Which::Holder { participant, name } => entry.participant == *participant && entry.name == *name,
        };
        if hit {
            entry.revoked = Some(stamp.clone());
            revoked.push(entry.clone());
        }
    }
    if revoked.is_empty() {
        return Err(PkiError::NothingToRevoke(match which {
            Which::Serial(serial) => format!("serial {serial}"),
            Which::Holder { participant, name } => format!("{name} of {participant}"),
        }));
    }
    let crl = write_crl(dir, &entries, now)?;
    register::write(dir, &entries)?;
    Ok((crl, revoked))
}

/// Writes `<pki>/ca/crl.pem` listing every revoked entry, signed by the CA.
fn write_crl(dir: &Path, entries: &[Issued], now: OffsetDateTime) -> Result<PathBuf, PkiError> {
    let mut revoked_certs = Vec::new();
    for entry in entries {
        let Some(at) = &entry.revoked else { continue };
        let bytes = hex::decode(pad(&entry.serial))
            .map_err(|e| PkiError::Register(format!("serial {}: {e}", entry.serial)))?;
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from(bytes),
            revocation_time: OffsetDateTime::parse(at, &Rfc3339).unwrap_or(now),
            reason_code: None,
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + Duration::days(CRL_VALIDITY_DAYS),
        // Increasing with every list written: the issue time in seconds.
        crl_number: SerialNumber::from(u64::try_from(now.unix_timestamp()).unwrap_or(0)),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let (issuer, _) = load_issuer(dir)?;
    let pem = params.signed_by(&issuer)?.pem()?;
    let path = dir.join("ca").join("crl.pem");
    super::write(&path, pem.as_bytes(), false)?;
    Ok(path)
}

/// Serials are compared as lower-case hex without separators or leading zeros.
pub fn normalise(serial: &str) -> String {
    let hex: String = serial.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() { "0".into() } else { trimmed.into() }
}

fn pad(serial: &str) -> String {
    if serial.len() % 2 == 1 { format!("0{serial}") } else { serial.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdn_transport::Role;

    #[test]
    fn serials_are_named_as_pki_list_or_openssl_shows_them_and_unknown_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        super::super::init(dir.path(), &[]).unwrap();
        super::super::issue(dir.path(), &super::super::Request::new("umc-noord", Role::Agent, None)).unwrap();
        let serial = register::read(dir.path()).unwrap()[1].serial.clone();
        // Upper case with colons and a leading zero byte names the same certificate.
        let colons: Vec<String> =
            pad(&serial).as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into()).collect();
        let spelled = format!("00:{}", colons.join(":").to_ascii_uppercase());
        assert!(matches!(revoke(dir.path(), &Which::Serial("ffff")), Err(PkiError::NothingToRevoke(_))));
        let (crl, revoked) = revoke(dir.path(), &Which::Serial(&spelled)).unwrap();
        assert_eq!(revoked[0].serial, serial);
        assert!(std::fs::read_to_string(crl).unwrap().contains("BEGIN X509 CRL"));
        // A damaged register is an error naming the line, not an empty list.
        std::fs::write(register::path(dir.path()), "{\"serial\":\n").unwrap();
        let err = register::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("issued.jsonl line 1"), "{err}");
    }
}
