//! The admin calls that issue, revoke and list web-console tokens (see `console::session`).

use super::analyst::Analyst;
use super::blocking;
use crate::console::session::{self, KIND_TOKEN};
use tonic::{Request, Response, Status};
use zdn_proto::v1;
use zdn_timestamps::now_ms;
use zdn_transport::Role;

/// A token lives 8 hours unless the admin asks otherwise, at most 90 days.
const DEFAULT_TTL_HOURS: u32 = 8;
const MAX_TTL_HOURS: u32 = 90 * 24;

impl Analyst {
    pub(super) async fn issue_token(
        &self,
        request: Request<v1::IssueConsoleTokenRequest>,
    ) -> Result<Response<v1::IssueConsoleTokenResponse>, Status> {
        let admin = self.audited(&request, Role::Admin, "issue_console_token").await?;
        let r = request.into_inner();
        zdn_transport::identity::validate_participant(&r.participant)
            .map_err(|e| Status::invalid_argument(format!("participant: {e}")))?;
        let role = match Role::parse(&r.role) {
            Some(role @ (Role::Analyst | Role::Admin)) => role,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "role {:?}: expected analyst or admin",
                    r.role
                )));
            }
        };
        let cert = &self.shared.config.cert_participant;
        if role == Role::Admin && &r.participant != cert {
            return Err(Status::invalid_argument(format!(
                "admin is a role of the CERT's participant ({cert}) only; {} may have analysts",
                r.participant
            )));
        }
        let name = r.name.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(Status::invalid_argument("name must be 1-200 printable characters"));
        }
        let ttl_hours = match r.ttl_hours {
            0 => DEFAULT_TTL_HOURS,
            h if h <= MAX_TTL_HOURS => h,
            h => {
                return Err(Status::invalid_argument(format!(
                    "ttl_hours {h}: at most {MAX_TTL_HOURS} (90 days)"
                )));
            }
        };
        let now = now_ms();
        let token = v1::ConsoleToken {
            id: session::new_id(),
            kind: KIND_TOKEN.into(),
            participant: r.participant,
            role: role.as_str().into(),
            name: name.to_owned(),
            created_unix_ms: now,
            expires_unix_ms: now + i64::from(ttl_hours) * 3_600_000,
            revoked_unix_ms: 0,
            issued_by: admin.identity.to_string(),
            parent: String::new(),
        };
        let secret = session::new_secret();
        let (store, hash, record) = (self.shared.store.clone(), session::hash(&secret), token.clone());
        blocking(move || store.put_console_token(&record, &hash)).await?;
        tracing::info!(id = %token.id, holder = %token.name, participant = %token.participant, role = %token.role, "console token issued");
        Ok(Response::new(v1::IssueConsoleTokenResponse {
            id: token.id,
            token: secret,
            expires_unix_ms: token.expires_unix_ms,
        }))
    }

    pub(super) async fn revoke_token(
        &self,
        request: Request<v1::RevokeConsoleTokenRequest>,
    ) -> Result<Response<v1::RevokeConsoleTokenResponse>, Status> {
        self.audited(&request, Role::Admin, "revoke_console_token").await?;
        let id = request.into_inner().id;
        if id.is_empty() || id.len() > 64 {
            return Err(Status::invalid_argument("id must be 1-64 characters"));
        }
        let store = self.shared.store.clone();
        let key = id.clone();
        let revoked = blocking(move || store.revoke_console_token(&key, now_ms())).await?;
        tracing::info!(%id, revoked, "console token revoked");
        Ok(Response::new(v1::RevokeConsoleTokenResponse { revoked }))
    }

    pub(super) async fn list_tokens(
        &self,
        request: Request<v1::ListConsoleTokensRequest>,
    ) -> Result<Response<v1::ListConsoleTokensResponse>, Status> {
        self.audited(&request, Role::Admin, "list_console_tokens").await?;
        let store = self.shared.store.clone();
        let tokens = blocking(move || store.console_tokens()).await?;
        Ok(Response::new(v1::ListConsoleTokensResponse { tokens }))
    }
}
