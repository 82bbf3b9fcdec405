//! The analysts' web console: the correlations board, indicator pages, sightings search,
//! fleet, exports and (for admins) the audit log, served by the collector over HTTPS.
//!
//! ```text
//! browser ──HTTPS (own port, client cert optional)──▶ listener ──▶ security headers
//!    ├─ /login, /login/certificate, /static/*   (no session needed)
//!    └─ everything else ──▶ require_session ──▶ pages (HTML)    ──┐
//!                           (cookie → session,    /api/v1/* (JSON, SSE)┤──▶ Analyst (gRPC service,
//!                            CSRF on POST,                            │     in-process): roles,
//!                            Peer for the call)                       ┘     redaction, audit
//! ```
//!
//! Built on the same API and the same roles: every page is a call of [`Analyst`] with the
//! session's identity, so a participant analyst's page can only hold what its gRPC answer
//! holds — other institutions are counts, never names, in the HTML as in the JSON.
//!
//! Safe by construction:
//! - pages are askama templates, which HTML-escape every value; no value is ever marked safe;
//! - the one script (`static/console.js`) writes the live board with `textContent` only;
//! - a strict Content-Security-Policy (no inline script or style, same-origin only), no
//!   framing, no referrers, no caching of pages;
//! - sessions and CSRF as [`session`] explains; logging in needs a same-origin `Origin`.
//!
//! | module | job |
//! | --- | --- |
//! | [`listener`] | TLS (client certificate optional), one hyper connection per task |
//! | [`session`] | tokens, sessions, cookies' secrets, CSRF tokens |
//! | [`client_credentials`] | API clients without a session (TAXII): a console token as bearer or basic password, or a certificate, per request |
//! | [`sign_in_limit`] | sign-in attempts per client address |
//! | [`pages`] | the board, sightings, fleet, exports and audit pages |
//! | [`indicator`] | the indicator page: its incident (members in join order), timeline chart, false-positive button |
//! | [`campaign`] | the campaign page: its incidents (waves), its indicators, its likely compromised hosts |

pub mod campaign;
pub mod client_credentials;
pub mod indicator;
pub mod listener;
pub mod pages;
pub mod session;
pub mod sign_in_limit;

use crate::service::Shared;
use crate::service::analyst::Analyst;
use anyhow::{Context, Result};
use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Form, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cookie::{Cookie, SameSite};
use listener::Connection;
use serde::Deserialize;
use session::Session;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What every console handler shares.
pub struct Console {
    pub analyst: Analyst,
    pub shared: Shared,
    pub session_hours: u32,
    pub sign_in_limit: sign_in_limit::SignInLimit,
}

type AppState = Arc<Console>;

/// Binds the console's port and serves it in the background; returns its address.
pub async fn start(
    shared: Shared,
    listen: SocketAddr,
    tls: zdn_transport::server::ReloadableTls,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr> {
    let listener =
        TcpListener::bind(listen).await.with_context(|| format!("binding the console to {listen}"))?;
    let addr = listener.local_addr()?;
    let console = Arc::new(Console {
        analyst: Analyst { shared: shared.clone() },
        session_hours: shared.config.console.session_hours,
        sign_in_limit: sign_in_limit::SignInLimit::default(),
        shared,
    });
    tokio::spawn(listener::serve(listener, tls, router(console), shutdown));
    tracing::info!(url = %format!("https://{addr}/"), "web console listening");
    Ok(addr)
}

/// Every route of the console.
pub fn router(console: AppState) -> Router {
    let signed_in = Router::new()
        .route("/", get(pages::board))
        .route("/sightings", get(pages::sightings))
        .route("/fleet", get(pages::fleet))
        .route("/exports", get(pages::exports))
        .route("/audit", get(pages::audit))
        .route("/indicator", get(indicator::page))
        .route("/campaign", get(campaign::page))
        .route("/indicator/false-positive", post(indicator::mark_false_positive))
        .route("/logout", post(logout))
        .with_state(console.clone())
        .merge(crate::http::router(Arc::new(Analyst { shared: console.shared.clone() })))
        .layer(middleware::from_fn_with_state(console.clone(), require_session));
    // TAXII clients hold no session: each request carries its credentials.
    let taxii = crate::taxii::api::router(Arc::new(Analyst { shared: console.shared.clone() }))
        .layer(middleware::from_fn_with_state(console.clone(), client_credentials::require_credentials));
    Router::new()
        .route("/login", get(login_page).post(login_with_token))
        .route("/login/certificate", post(login_with_certificate))
        .route(
            "/static/console.css",
            get(|| asset("text/css; charset=utf-8", include_str!("static/console.css"))),
        )
        .route(
            "/static/console.js",
            get(|| asset("text/javascript; charset=utf-8", include_str!("static/console.js"))),
        )
        .with_state(console)
        .merge(signed_in)
        .merge(taxii)
        .layer(middleware::from_fn(security_headers))
}

async fn asset(media_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, media_type), (header::CACHE_CONTROL, "private, max-age=300")], body)
        .into_response()
}

/// No inline script or style, nothing from elsewhere, no framing: what an injected value could
/// do is nothing, even if one ever got past the templates' escaping.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: under it browsers send `Origin: null` with forms, and the
        // same-origin check below would refuse every one. `same-origin` still keeps console
        // URLs (which name indicators) from every other site.
        (header::REFERRER_POLICY, "same-origin"),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Largest form a state-changing request may carry.
const MAX_FORM: usize = 64 * 1024;

/// Lets a request through only with an active session (pages without one go to the login,
/// everything else is refused with 401), and a state-changing one only from this origin with
/// the session's CSRF token (header `x-csrf-token` or form field `csrf`). The session and the
/// caller's identity (`Peer`) travel on as request extensions.
async fn require_session(State(console): State<AppState>, request: Request, next: Next) -> Response {
    let secret = session_secret(request.headers());
    let session = match secret {
        Some(secret) => match session::resume(&console.shared.store, &secret).await {
            Ok(session) => session,
            Err(status) => return refuse(StatusCode::SERVICE_UNAVAILABLE, status.message()),
        },
        None => None,
    };
    let Some(session) = session else {
        let page = request.method() == Method::GET && !request.uri().path().starts_with("/api/");
        if page {
            return Redirect::to("/login").into_response();
        }
        // Read (bounded) before refusing, for the reason `check_csrf` gives.
        let _ = axum::body::to_bytes(request.into_body(), MAX_FORM).await;
        return refuse(StatusCode::UNAUTHORIZED, "sign in first: no valid session");
    };
    let request = if request.method() == Method::GET || request.method() == Method::HEAD {
        request
    } else {
        match check_csrf(request, &session).await {
            Ok(request) => request,
            Err(response) => return response,
        }
    };
    let Some(connection) = request.extensions().get::<Connection>().cloned() else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "no connection information");
    };
    let mut request = request;
    request.extensions_mut().insert(session.peer(connection.addr));
    request.extensions_mut().insert(session);
    next.run(request).await
}

async fn check_csrf(request: Request, session: &Session) -> Result<Request, Response> {
    // The body is read before any refusal: an HTTP/2 stream answered while the client is still
    // sending is reset, and clients report that instead of the refusal.
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| refuse(StatusCode::PAYLOAD_TOO_LARGE, "form too large"))?;
    if !same_origin(&parts.headers, &parts.uri) {
        return Err(refuse(StatusCode::FORBIDDEN, "cross-origin request refused"));
    }
    let presented = match parts.headers.get("x-csrf-token") {
        Some(header) => header.to_str().ok().map(str::to_owned),
        None => form_urlencoded_field(&bytes, "csrf"),
    };
    if !presented.is_some_and(|t| session::csrf_matches(&session.secret, &t)) {
        return Err(refuse(StatusCode::FORBIDDEN, "missing or wrong CSRF token"));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// Whether the request's `Origin` is this console (`https://` and the host it was asked as).
/// Browsers send `Origin` on every POST; a request without one is refused too.
fn same_origin(headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    matches!((host, origin), (Some(host), Some(origin)) if origin == format!("https://{host}"))
}

fn session_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == session::COOKIE)
        .map(|c| c.value().to_owned())
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// The session cookie carrying `secret`, living `max_age_s` (0: deleted).
fn session_cookie(secret: &str, max_age_s: i64) -> HeaderValue {
    let cookie = Cookie::build((session::COOKIE, secret.to_owned()))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age_s.max(0)))
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("cookie text is a valid header value")
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    error: String,
    /// Who the presented client certificate says the browser is, if any.
    certificate: String,
}

async fn login_page(request: Request) -> Response {
    let certificate = request
        .extensions()
        .get::<Connection>()
        .and_then(|c| c.certificate.as_ref())
        .map(|i| i.to_string())
        .unwrap_or_default();
    pages::render(&LoginPage { error: String::new(), certificate }, StatusCode::OK)
}

#[derive(Deserialize)]
struct TokenForm {
    token: String,
}

/// Refuses the attempt if its address has tried too often (see [`sign_in_limit`]).
fn throttled(console: &Console, connection: Option<&Connection>) -> Option<Response> {
    let wait = console.sign_in_limit.admit(connection?.addr.ip()).err()?;
    tracing::warn!(peer = ?connection.map(|c| c.addr), "console: sign-in attempts throttled");
    let mut response = refuse(StatusCode::TOO_MANY_REQUESTS, "too many sign-in attempts; wait a minute");
    let seconds = HeaderValue::from(wait.as_secs().max(1));
    response.headers_mut().insert(header::RETRY_AFTER, seconds);
    Some(response)
}

async fn login_with_token(
    State(console): State<AppState>,
    connection: Option<Extension<Connection>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Some(refused) = throttled(&console, connection.as_deref()) {
        return refused;
    }
    if !same_origin(&headers, &uri) {
        return refuse(StatusCode::FORBIDDEN, "cross-origin sign-in refused");
    }
    let Ok(Form(form)) = form else {
        return refuse(StatusCode::BAD_REQUEST, "expected a form with a token");
    };
    signed_in(
        session::with_token(
            &console.shared.store,
            &form.token,
            console.session_hours,
            &console.shared.config.cert_participant,
        )
        .await,
    )
}

async fn login_with_certificate(State(console): State<AppState>, request: Request) -> Response {
    if let Some(refused) = throttled(&console, request.extensions().get::<Connection>()) {
        return refused;
    }
    if !same_origin(request.headers(), request.uri()) {
        return refuse(StatusCode::FORBIDDEN, "cross-origin sign-in refused");
    }
    let certificate = request.extensions().get::<Connection>().and_then(|c| c.certificate.clone());
    let Some(identity) = certificate else {
        return refuse(StatusCode::UNAUTHORIZED, "this connection presented no client certificate");
    };
    signed_in(
        session::with_certificate(
            &console.shared.store,
            &identity,
            console.session_hours,
            &console.shared.config.cert_participant,
        )
        .await,
    )
}

fn signed_in(result: Result<(String, zdn_proto::v1::ConsoleToken), session::SignInError>) -> Response {
    match result {
        Ok((secret, record)) => {
            tracing::info!(session = %record.id, holder = %record.name, by = %record.issued_by, "console sign-in");
            let max_age = (record.expires_unix_ms - zdn_timestamps::now_ms()) / 1000;
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(header::SET_COOKIE, session_cookie(&secret, max_age));
            response
        }
        Err(e) => {
            tracing::warn!(reason = %e, "console sign-in refused");
            let page = LoginPage { error: e.public().to_owned(), certificate: String::new() };
            pages::render(&page, StatusCode::UNAUTHORIZED)
        }
    }
}

async fn logout(State(console): State<AppState>, request: Request) -> Response {
    if let Some(session) = request.extensions().get::<Session>() {
        let (store, id) = (console.shared.store.clone(), session.record.id.clone());
        let now = zdn_timestamps::now_ms();
        if let Err(e) = crate::service::blocking(move || store.revoke_console_token(&id, now)).await {
            tracing::error!(error = %e, "console: could not end a session");
        }
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie("", 0));
    response
}

/// The console's HTML as a response.
pub fn html(body: String, status: StatusCode) -> Response {
    (status, Html(body)).into_response()
}
