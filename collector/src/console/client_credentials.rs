//! Who an API client (the TAXII API root, `crate::taxii::api`) on the console port is. TAXII clients cannot hold a console session, so
//! each request proves itself: a console token (`zdn admin token issue`) as a bearer token
//! (`Authorization: Bearer zdnc_…`) or as the password of HTTP basic authentication (any user
//! name: TAXII 2.1 requires servers to offer basic authentication and most clients speak
//! only that), or else the client certificate the connection presented. Refused: no
//! credentials, an unknown, revoked or expired token (counted against the address like failed
//! sign-ins, and throttled the same way), an agent's certificate.
//!
//! On the gRPC port none of this runs: the mTLS identity is already on every request.

use super::listener::Connection;
use super::{Console, session};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::sync::Arc;
use zdn_transport::Role;
use zdn_transport::server::Peer;

use crate::taxii::api::TaxiiError;

/// Lets a request through with the caller's [`Peer`], or answers 401 (429 when throttled).
pub async fn require_credentials(
    State(console): State<Arc<Console>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(connection) = request.extensions().get::<Connection>().cloned() else {
        return TaxiiError::new(StatusCode::INTERNAL_SERVER_ERROR, "error", "no connection information")
            .into_response();
    };
    let cert = &console.shared.config.cert_participant;
    let identity = match presented_token(request.headers()) {
        Some(token) => match session::issued_token(&console.shared.store, &token, cert).await {
            Ok(record) => session::token_identity(&record),
            Err(e) => {
                tracing::warn!(peer = %connection.addr, error = %e, "taxii: token refused");
                if console.sign_in_limit.admit(connection.addr.ip()).is_err() {
                    return TaxiiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too many requests",
                        "too many refused tokens; wait a minute",
                    )
                    .into_response();
                }
                None
            }
        },
        None => connection.certificate.as_deref().filter(|i| i.role != Role::Agent).cloned(),
    };
    let Some(identity) = identity else {
        let why =
            "a console token (bearer, or the password of basic authentication) or an analyst certificate";
        return TaxiiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why).into_response();
    };
    request.extensions_mut().insert(Peer {
        addr: connection.addr,
        identity: Arc::new(identity),
        insecure: false,
    });
    next.run(request).await
}

/// The token of a bearer or basic `Authorization` header.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        return decoded.split_once(':').map(|(_, password)| password.to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn tokens_are_read_from_bearer_and_basic_headers_only() {
        assert_eq!(presented_token(&with("Bearer zdnc_abc")).as_deref(), Some("zdnc_abc"));
        let basic = base64::engine::general_purpose::STANDARD.encode("analyst:zdnc_def");
        assert_eq!(presented_token(&with(&format!("Basic {basic}"))).as_deref(), Some("zdnc_def"));
        assert_eq!(presented_token(&with("Basic !!!")), None);
        assert_eq!(presented_token(&with("Digest x")), None);
        assert_eq!(presented_token(&HeaderMap::new()), None);
    }
}
