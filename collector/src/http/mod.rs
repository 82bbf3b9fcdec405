//! The analyst API over HTTP/JSON, on the same port and behind the same mutual TLS as gRPC.
//!
//! Why the same port: one certificate story, one firewall rule, and the caller's identity comes
//! from the same verified client certificate ([`Peer`], which tonic's connection layer puts on
//! every request, gRPC or not). Why call the gRPC service: each handler builds the gRPC request,
//! attaches the peer and calls [`Analyst`] directly, so roles, redaction, limits and the audit
//! log are the ones gRPC callers get, written once. Answers are the rows of [`zdn_answers::rows`],
//! exactly what `zdn --format json` prints. The OpenAPI document (`openapi.json`, served at
//! `/api/v1/openapi.json`) describes every route; a test keeps the two in step.
//!
//! Errors are JSON (`{"error": "..."}`) with the HTTP status of the gRPC code.

use crate::service::analyst::Analyst;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use zdn_answers::rows::{
    agent_row, audit_row, change_name, correlation_row, event_row, host_row, hunt_answer_row, indicator_rows,
    member_rows, sighting_row, top_row,
};
use zdn_indicators::Kind;
use zdn_proto::v1::{self, analyst_service_server::AnalystService};
use zdn_transport::server::Peer;

/// The OpenAPI 3.1 description of these routes.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route, as the OpenAPI document lists it.
pub const ROUTES: &[&str] = &[
    "/api/v1/openapi.json",
    "/api/v1/correlations",
    "/api/v1/correlations/watch",
    "/api/v1/sightings",
    "/api/v1/indicator",
    "/api/v1/fleet",
    "/api/v1/audit",
    "/api/v1/export",
    "/api/v1/hosts",
    "/api/v1/top",
    "/api/v1/hunt",
];

pub fn router(analyst: Arc<Analyst>) -> Router {
    Router::new()
        .route(ROUTES[0], get(openapi))
        .route(ROUTES[1], get(correlations))
        .route(ROUTES[2], get(watch))
        .route(ROUTES[3], get(sightings))
        .route(ROUTES[4], get(indicator))
        .route(ROUTES[5], get(fleet))
        .route(ROUTES[6], get(audit))
        .route(ROUTES[7], get(export))
        .route(ROUTES[8], get(hosts))
        .route(ROUTES[9], get(top))
        .route(ROUTES[10], get(hunt_status).post(start_hunt))
        .with_state(analyst)
}

/// A failed call: the gRPC status mapped to HTTP, with its message as JSON.
pub struct ApiError(pub tonic::Status);

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        ApiError(status)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError(tonic::Status::invalid_argument(rejection.body_text()))
    }
}

/// The HTTP status that says what a gRPC status code says.
pub fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code;
    match code {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (http_status(self.0.code()), Json(json!({ "error": self.0.message() }))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The gRPC request for `message`, carrying the HTTP caller's verified identity.
pub(crate) fn grpc<T>(request: &Request, message: T) -> tonic::Request<T> {
    let mut grpc = tonic::Request::new(message);
    if let Some(peer) = request.extensions().get::<Peer>() {
        grpc.extensions_mut().insert(peer.clone());
    }
    grpc
}

/// `since`/`until`: RFC 3339, or an age like `24h` before now.
pub fn time(value: Option<&str>) -> Result<i64, ApiError> {
    match value {
        None | Some("") => Ok(0),
        Some(v) => zdn_timestamps::parse_time_or_age(v, zdn_timestamps::now_ms())
            .map_err(|e| ApiError(tonic::Status::invalid_argument(e.to_string()))),
    }
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrelationsQuery {
    since: Option<String>,
    #[serde(default)]
    min_participants: u32,
    kind: Option<String>,
    #[serde(default)]
    limit: u32,
    campaign: Option<String>,
    #[serde(default)]
    campaigns: bool,
}

async fn correlations(
    State(analyst): State<Arc<Analyst>>,
    query: Result<Query<CorrelationsQuery>, QueryRejection>,
    request: Request,
) -> ApiResult {
    let Query(q) = query?;
    let kind = match q.kind.as_deref() {
        None | Some("") => 0,
        Some(k) => Kind::parse(k)
            .map(|k| v1::IndicatorKind::from(k) as i32)
            .ok_or_else(|| ApiError(tonic::Status::invalid_argument(format!("unknown kind {k:?}"))))?,
    };
    let message = v1::ListCorrelationsRequest {
        since_unix_ms: time(q.since.as_deref())?,
        min_participants: q.min_participants,
        kind,
        limit: q.limit,
        campaign: q.campaign.unwrap_or_default(),
        campaigns: q.campaigns,
    };
    let answer = analyst.list_correlations(grpc(&request, message)).await?.into_inner();
    Ok(Json(json!({ "correlations": answer.correlations.iter().map(correlation_row).collect::<Vec<_>>() })))
}

/// Incidents as they open, grow, shrink and close, as server-sent events (`event:` the change,
/// `data:` the event row: change, who joined, the incident).
async fn watch(
    State(analyst): State<Arc<Analyst>>,
    request: Request,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let events =
        analyst.watch_correlations(grpc(&request, v1::WatchCorrelationsRequest {})).await?.into_inner();
    let events = events.map(|event| {
        Ok(match event {
            Ok(e) => {
                let change = change_name(e.change);
                Event::default().event(change).data(Value::Object(event_row(&e)).to_string())
            }
            Err(status) => {
                Event::default().event("error").data(json!({ "error": status.message() }).to_string())
            }
        })
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SightingsQuery {
    indicator: Option<String>,
    participant: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[serde(default)]
    limit: u32,
    page_token: Option<String>,
}

async fn sightings(
    State(analyst): State<Arc<Analyst>>,
    query: Result<Query<SightingsQuery>, QueryRejection>,
    request: Request,
) -> ApiResult {
    let Query(q) = query?;
    let message = v1::ListSightingsRequest {
        indicator: q.indicator.unwrap_or_default(),
        participant: q.participant.unwrap_or_default(),
        since_unix_ms: time(q.since.as_deref())?,
        until_unix_ms: time(q.until.as_deref())?,
        page_size: q.limit,
        page_token: q.page_token.unwrap_or_default(),
    };
    let answer = analyst.list_sightings(grpc(&request, message)).await?.into_inner();
    let next = (!answer.next_page_token.is_empty()).then_some(answer.next_page_token);
    Ok(Json(json!({
        "sightings": answer.sightings.iter().map(sighting_row).collect::<Vec<_>>(),
        "next_page_token": next,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndicatorQuery {
    value: String,
}

async fn indicator(
    State(analyst): State<Arc<Analyst>>,
    query: Result<Query<IndicatorQuery>, QueryRejection>,
    request: Request,
) -> ApiResult {
    let Query(q) = query?;
    let detail = analyst
        .get_indicator(grpc(&request, v1::GetIndicatorRequest { indicator: q.value }))
        .await?
        .into_inner();
    Ok(Json(json!({
        "indicator": detail.indicator,
        "sightings": detail.sightings,
        "participants": indicator_rows(&detail),
        "correlation": detail.correlation.as_ref().map(correlation_row),
        "members": detail.correlation.as_ref().map(member_rows).unwrap_or_default(),
        "other_join_times": detail.correlation.as_ref().map(|c| {
            c.other_join_times_unix_ms.iter().map(|t| zdn_timestamps::format_unix_ms(*t)).collect::<Vec<_>>()
        }),
    })))
}

async fn fleet(State(analyst): State<Arc<Analyst>>, request: Request) -> ApiResult {
    let answer = analyst.fleet_status(grpc(&request, v1::FleetStatusRequest {})).await?.into_inner();
    Ok(Json(json!({ "agents": answer.agents.iter().map(agent_row).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    since: Option<String>,
    #[serde(default)]
    limit: u32,
}

async fn audit(
    State(analyst): State<Arc<Analyst>>,
    query: Result<Query<AuditQuery>, QueryRejection>,
    request: Request,
) -> ApiResult {
    let Query(q) = query?;
    let message = v1::ListAuditRequest { since_unix_ms: time(q.since.as_deref())?, limit: q.limit };
    let answer = analyst.list_audit(grpc(&request, message)).await?.into_inner();
    Ok(Json(json!({ "entries": answer.entries.iter().map(audit_row).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopQuery {
    since: Option<String>,
    #[serde(default)]
    limit: u32,
}

async fn top(
    State(analyst): State<Arc<Analyst>>,
    query: Result<Query<TopQuery>, QueryRejection>,
    request: Request,
) -> ApiResult {
    let Query(q) = query?;
    let message = v1::TopIndicatorsRequest { since_unix_ms: time(q.since.as_deref())?, limit: q.limit };
    let answer = analyst.top_indicators(grpc(&request, message)).await?.into_inner();
    Ok(Json(json!({ "indicators": answer.indicators.iter().map(top_row).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsQuery {
    participant: Option<String>,
    #[serde(default)]
    limit: u32,
}

async fn hosts(
    State(analyst): State<Arc<Analyst>>,
    query: Result<Query<HostsQuery>, QueryRejection>,
    request: Request,
) -> ApiResult {
    let Query(q) = query?;
    let message =
        v1::ListSuspectHostsRequest { participant: q.participant.unwrap_or_default(), limit: q.limit };
    let answer = analyst.list_suspect_hosts(grpc(&request, message)).await?.into_inner();
    Ok(Json(json!({ "hosts": answer.hosts.iter().map(host_row).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartHuntQuery {
    indicator: String,
    #[serde(default)]
    days: u32,
}

/// Starts an analyst's retro-hunt (see `service::hunt`): every agent is asked.
async fn start_hunt(
    State(analyst): State<Arc<Analyst>>,
    query: Result<Query<StartHuntQuery>, QueryRejection>,
    request: Request,
) -> ApiResult {
    let Query(q) = query?;
    let message = v1::StartHuntRequest { indicator: q.indicator, days: q.days };
    let status = analyst.start_hunt(grpc(&request, message)).await?.into_inner();
    Ok(Json(hunt_json(&status)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HuntQuery {
    id: String,
}

/// A hunt's coverage so far.
async fn hunt_status(
    State(analyst): State<Arc<Analyst>>,
    query: Result<Query<HuntQuery>, QueryRejection>,
    request: Request,
) -> ApiResult {
    let Query(q) = query?;
    let status = analyst.get_hunt(grpc(&request, v1::GetHuntRequest { id: q.id })).await?.into_inner();
    Ok(Json(hunt_json(&status)))
}

fn hunt_json(s: &v1::HuntStatus) -> Value {
    let answers: Vec<Value> = s.answers.iter().map(|a| Value::Object(hunt_answer_row(a))).collect();
    json!({
        "id": s.id, "indicator": s.indicator, "kind": s.kind,
        "since": zdn_timestamps::format_unix_ms(s.since_unix_ms),
        "issued": zdn_timestamps::format_unix_ms(s.issued_unix_ms),
        "requested_by": s.requested_by, "agents_asked": s.agents_asked,
        "agents_answered": answers.len(), "answers": answers,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    format: String,
    indicator: Option<String>,
    participant: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[serde(default)]
    name_institutions: bool,
}

/// A download: the whole document, named for its format.
async fn export(
    State(analyst): State<Arc<Analyst>>,
    query: Result<Query<ExportQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    use v1::export_sightings_request::Format as Wire;
    let Query(q) = query?;
    let (format, file) = match q.format.as_str() {
        "stix" => (Wire::Stix, "zdn-sightings.stix.json"),
        "misp" => (Wire::Misp, "zdn-sightings.misp.json"),
        "csv" => (Wire::Csv, "zdn-sightings.csv"),
        other => {
            return Err(ApiError(tonic::Status::invalid_argument(format!(
                "format {other:?}: expected stix, misp or csv"
            ))));
        }
    };
    let message = v1::ExportSightingsRequest {
        format: format as i32,
        indicator: q.indicator.unwrap_or_default(),
        participant: q.participant.unwrap_or_default(),
        since_unix_ms: time(q.since.as_deref())?,
        until_unix_ms: time(q.until.as_deref())?,
        name_institutions: q.name_institutions,
    };
    let mut chunks = analyst.export_sightings(grpc(&request, message)).await?.into_inner();
    let (mut media_type, mut body) = (String::new(), Vec::new());
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if !chunk.media_type.is_empty() {
            media_type = chunk.media_type;
        }
        body.extend_from_slice(&chunk.data);
    }
    let disposition = format!("attachment; filename=\"{file}\"");
    Ok(([(header::CONTENT_TYPE, media_type), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let mut documented: Vec<&str> =
            doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
        let mut served = ROUTES.to_vec();
        documented.sort_unstable();
        served.sort_unstable();
        assert_eq!(documented, served);
    }
}
