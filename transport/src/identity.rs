//! Who a certificate says its holder is.
//!
//! A ZDN certificate carries exactly one subject alternative name URI of the form
//! `zdn://participant/<participant-id>/<role>`; its common name is the holder's display name
//! (an agent's host name, an analyst's name). The collector trusts these only because the
//! certificate chains to its CA, so the identity never comes from a message field.

use std::fmt;
use thiserror::Error;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// What a certificate's holder may do at the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reports sightings, syncs indicators, sends heartbeats. Nothing else.
    Agent,
    /// Queries. A CERT analyst (participant = the collector's own CERT id) sees everything; a
    /// participant analyst sees its own institution's data and only counts of the others.
    Analyst,
    /// Administers the collector; sees everything an analyst of the CERT sees.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Agent, Role::Analyst, Role::Admin].into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated identity of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub participant: String,
    pub role: Role,
    /// The certificate's common name.
    pub name: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("certificate cannot be parsed: {0}")]
    Unparsable(String),
    #[error("certificate carries no zdn://participant/<id>/<role> SAN URI")]
    Missing,
    #[error("certificate carries more than one zdn:// SAN URI")]
    Ambiguous,
    #[error("bad participant id {0:?}: use 1-63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")]
    BadParticipant(String),
    #[error("unknown role {0:?} (agent, analyst or admin)")]
    BadRole(String),
}

const URI_PREFIX: &str = "zdn://participant/";

impl Identity {
    /// The SAN URI that encodes this identity.
    pub fn uri(participant: &str, role: Role) -> String {
        format!("{URI_PREFIX}{participant}/{role}")
    }

    /// Parses a `zdn://participant/<id>/<role>` URI.
    pub fn from_uri(uri: &str, name: &str) -> Result<Identity, IdentityError> {
        let rest = uri.strip_prefix(URI_PREFIX).ok_or(IdentityError::Missing)?;
        let (participant, role) = rest.split_once('/').ok_or(IdentityError::Missing)?;
        validate_participant(participant)?;
        let role = Role::parse(role).ok_or_else(|| IdentityError::BadRole(role.to_owned()))?;
        Ok(Identity { participant: participant.to_owned(), role, name: name.to_owned() })
    }

    /// Reads the identity from a DER certificate (already verified by the TLS layer).
    pub fn from_certificate(der: &[u8]) -> Result<Identity, IdentityError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| IdentityError::Unparsable(e.to_string()))?;
        let name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        let san = cert.subject_alternative_name().map_err(|e| IdentityError::Unparsable(e.to_string()))?;
        let mut uris = san.iter().flat_map(|ext| ext.value.general_names.iter()).filter_map(|gn| match gn {
            GeneralName::URI(uri) if uri.starts_with("zdn://") => Some(*uri),
            _ => None,
        });
        let uri = uris.next().ok_or(IdentityError::Missing)?;
        if uris.next().is_some() {
            return Err(IdentityError::Ambiguous);
        }
        Identity::from_uri(uri, &name)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ({})", self.participant, self.role, self.name)
    }
}

/// Participant ids appear in URIs, file names and SQL parameters: keep them boring.
pub fn validate_participant(id: &str) -> Result<(), IdentityError> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(IdentityError::BadParticipant(id.to_owned())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with_sans(uris: &[&str]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "gw-1");
        for uri in uris {
            params.subject_alt_names.push(rcgen::SanType::URI((*uri).try_into().unwrap()));
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_identity_from_certificate() {
        let der = cert_with_sans(&["zdn://participant/umc-zuid/agent"]);
        let id = Identity::from_certificate(&der).unwrap();
        assert_eq!(id, Identity { participant: "umc-zuid".into(), role: Role::Agent, name: "gw-1".into() });
    }

    #[test]
    fn refuses_certificates_without_one_clear_identity() {
        assert_eq!(Identity::from_certificate(&cert_with_sans(&[])), Err(IdentityError::Missing));
        let two = cert_with_sans(&["zdn://participant/a/agent", "zdn://participant/b/agent"]);
        assert_eq!(Identity::from_certificate(&two), Err(IdentityError::Ambiguous));
        let role = cert_with_sans(&["zdn://participant/a/root"]);
        assert_eq!(Identity::from_certificate(&role), Err(IdentityError::BadRole("root".into())));
        let id = cert_with_sans(&["zdn://participant/A%20B/agent"]);
        assert!(matches!(Identity::from_certificate(&id), Err(IdentityError::BadParticipant(_))));
        assert!(matches!(Identity::from_certificate(b"junk"), Err(IdentityError::Unparsable(_))));
    }
}
