//! Who is signed in to the console, and how they got there.
//!
//! Two ways in, one kind of session:
//! - a **token** an admin issued (`zdn admin token issue`): the browser posts it once, gets a
//!   session, and the token itself never travels again;
//! - a **client certificate** the browser presented on this TLS connection, verified against
//!   the CA and revocation lists like on the gRPC port.
//!
//! Either way the collector stores a session record (a [`v1::ConsoleToken`] of kind `session`)
//! under the SHA-256 of a fresh random secret, and the browser keeps the secret in the
//! `__Host-zdn-session` cookie (`Secure`, `HttpOnly`, `SameSite=Strict`, `Path=/`). Every
//! request looks the session up again, so revoking a token ends its sessions at once.
//!
//! CSRF: every state-changing request must carry a token derived from the session secret
//! (HMAC-SHA256 of a fixed label under the secret). A page embeds it; another site cannot read
//! it (the cookie is `HttpOnly`, pages are same-origin only) and cannot compute it.

use crate::service::blocking;
use crate::store::Store;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};
use std::net::SocketAddr;
use std::sync::Arc;
use tonic::Status;
use zdn_proto::v1;
use zdn_timestamps::now_ms;
use zdn_transport::server::Peer;
use zdn_transport::{Identity, Role};

/// The cookie's name; the `__Host-` prefix makes browsers refuse it unless it is `Secure`,
/// has `Path=/` and no `Domain`.
pub const COOKIE: &str = "__Host-zdn-session";

/// Prefix of issued tokens, so a leaked one is recognisable (e.g. by secret scanners).
const TOKEN_PREFIX: &str = "zdnc_";

pub const KIND_TOKEN: &str = "token";
pub const KIND_SESSION: &str = "session";

/// A new random secret: the prefix and 32 random bytes in hex.
pub fn new_secret() -> String {
    format!("{TOKEN_PREFIX}{}", hex::encode(random::<32>()))
}

/// A new public id for a token or session.
pub fn new_id() -> String {
    hex::encode(random::<8>())
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).expect("the operating system's random source works");
    bytes
}

/// What the store keeps of a secret.
pub fn hash(secret: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, secret.as_bytes()))
}

/// The CSRF token of the session whose secret is `secret`.
pub fn csrf_token(secret: &str) -> String {
    hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()), b"zdn-console-csrf"))
}

/// Whether `presented` is the CSRF token of `secret` (in constant time).
pub fn csrf_matches(secret: &str, presented: &str) -> bool {
    let Ok(tag) = hex::decode(presented) else { return false };
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()), b"zdn-console-csrf", &tag).is_ok()
}

/// Whether a record may be used at `now_ms`.
pub fn active(t: &v1::ConsoleToken, now_ms: i64) -> bool {
    t.revoked_unix_ms == 0 && now_ms < t.expires_unix_ms
}

/// A signed-in browser.
#[derive(Clone)]
pub struct Session {
    pub record: v1::ConsoleToken,
    /// The cookie's secret, from which the CSRF token derives.
    pub secret: String,
    pub role: Role,
}

impl Session {
    /// The caller as the analyst service sees it: the session's identity, marked as coming
    /// through the console in the audit log.
    pub fn peer(&self, addr: SocketAddr) -> Peer {
        let identity = Identity {
            participant: self.record.participant.clone(),
            role: self.role,
            name: format!("{} (console)", self.record.name),
        };
        Peer { addr, identity: Arc::new(identity), insecure: false }
    }

    pub fn csrf(&self) -> String {
        csrf_token(&self.secret)
    }
}

/// Why a sign-in was refused. Deliberately vague towards the browser ([`SignInError::public`]):
/// which tokens exist is nobody's business; the log has the detail.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("unknown token")]
    Unknown,
    #[error("token {0} is revoked or expired")]
    Inactive(String),
    #[error("{0} may not use the console (agents cannot; admin is the CERT's role only)")]
    Role(String),
    #[error("{0}")]
    Store(#[from] Status),
}

impl SignInError {
    pub fn public(&self) -> &'static str {
        match self {
            SignInError::Store(_) => "the collector cannot check sign-ins right now; try again",
            SignInError::Role(_) => "this certificate may not use the console",
            _ => "unknown, expired or revoked token",
        }
    }
}

/// The active issued token `token`, checked as a sign-in checks it (kind, not revoked or
/// expired, admin only for the CERT).
pub async fn issued_token(
    store: &Arc<dyn Store>,
    token: &str,
    cert_participant: &str,
) -> Result<v1::ConsoleToken, SignInError> {
    let (s, h) = (store.clone(), hash(token.trim()));
    let record = blocking(move || s.console_token(&h)).await?.ok_or(SignInError::Unknown)?;
    if record.kind != KIND_TOKEN {
        return Err(SignInError::Unknown);
    }
    if !active(&record, now_ms()) {
        return Err(SignInError::Inactive(record.id));
    }
    // Tokens made before admin became the CERT's role only: refused, not downgraded.
    if record.role == Role::Admin.as_str() && record.participant != cert_participant {
        return Err(SignInError::Role(format!("token {} ({} admin)", record.id, record.participant)));
    }
    Ok(record)
}

/// The identity an issued token carries (the name marks it as a token's).
pub fn token_identity(record: &v1::ConsoleToken) -> Option<Identity> {
    let role = Role::parse(&record.role).filter(|r| *r != Role::Agent)?;
    Some(Identity {
        participant: record.participant.clone(),
        role,
        name: format!("{} (token {})", record.name, record.id),
    })
}

/// Signs in with an issued token: a new session under the token's identity, ending when
/// the token does or after `hours`, whichever is first.
pub async fn with_token(
    store: &Arc<dyn Store>,
    token: &str,
    hours: u32,
    cert_participant: &str,
) -> Result<(String, v1::ConsoleToken), SignInError> {
    let record = issued_token(store, token, cert_participant).await?;
    let now = now_ms();
    let session = v1::ConsoleToken {
        id: new_id(),
        kind: KIND_SESSION.into(),
        participant: record.participant.clone(),
        role: record.role.clone(),
        name: record.name.clone(),
        created_unix_ms: now,
        expires_unix_ms: record.expires_unix_ms.min(now + i64::from(hours) * 3_600_000),
        revoked_unix_ms: 0,
        issued_by: format!("token {}", record.id),
        parent: record.id,
    };
    store_session(store, session).await
}

/// Signs in with the client certificate of this connection.
pub async fn with_certificate(
    store: &Arc<dyn Store>,
    identity: &Identity,
    hours: u32,
    cert_participant: &str,
) -> Result<(String, v1::ConsoleToken), SignInError> {
    if identity.role == Role::Agent
        || (identity.role == Role::Admin && identity.participant != cert_participant)
    {
        return Err(SignInError::Role(identity.to_string()));
    }
    let now = now_ms();
    let session = v1::ConsoleToken {
        id: new_id(),
        kind: KIND_SESSION.into(),
        participant: identity.participant.clone(),
        role: identity.role.as_str().into(),
        name: identity.name.clone(),
        created_unix_ms: now,
        expires_unix_ms: now + i64::from(hours) * 3_600_000,
        revoked_unix_ms: 0,
        issued_by: format!("certificate {identity}"),
        parent: String::new(),
    };
    store_session(store, session).await
}

async fn store_session(
    store: &Arc<dyn Store>,
    session: v1::ConsoleToken,
) -> Result<(String, v1::ConsoleToken), SignInError> {
    let secret = new_secret();
    let (s, h, record) = (store.clone(), hash(&secret), session.clone());
    blocking(move || s.put_console_token(&record, &h)).await?;
    Ok((secret, session))
}

/// The session a cookie's secret names, if it is one and still active.
pub async fn resume(store: &Arc<dyn Store>, secret: &str) -> Result<Option<Session>, Status> {
    if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 128 {
        return Ok(None);
    }
    let (s, h) = (store.clone(), hash(secret));
    let Some(record) = blocking(move || s.console_token(&h)).await? else { return Ok(None) };
    let role = Role::parse(&record.role).filter(|r| *r != Role::Agent);
    match role {
        Some(role) if record.kind == KIND_SESSION && active(&record, now_ms()) => {
            Ok(Some(Session { record, secret: secret.to_owned(), role }))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_and_csrf_tokens_belong_to_their_session() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(hash(&a).len(), 64);
        assert!(csrf_matches(&a, &csrf_token(&a)));
        assert!(!csrf_matches(&a, &csrf_token(&b)));
        assert!(!csrf_matches(&a, ""));
        assert!(!csrf_matches(&a, "not hex"));
    }

    #[test]
    fn revoked_or_expired_records_are_inactive() {
        let t = v1::ConsoleToken { expires_unix_ms: 1_000, ..Default::default() };
        assert!(active(&t, 999));
        assert!(!active(&t, 1_000));
        assert!(!active(&v1::ConsoleToken { revoked_unix_ms: 5, ..t }, 10));
    }
}
