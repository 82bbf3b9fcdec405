//! The console's list pages: the correlations board, sightings, fleet, exports, audit log.
//!
//! Each page calls the analyst service with the session's identity and renders the same rows
//! `zdn` prints and the JSON API returns ([`zdn_answers::rows`]), through one table template, so the
//! three never disagree about what a field is called or what a role may see.

use super::AppState;
use super::session::Session;
use crate::http::{ApiError, http_status};
use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use zdn_answers::rows::{Row, agent_row, audit_row, correlation_row, sighting_row};
use zdn_proto::v1::{self, analyst_service_server::AnalystService};
use zdn_transport::Role;
use zdn_transport::server::Peer;

/// What every signed-in page shows around its content.
pub struct Frame {
    pub title: &'static str,
    pub user: String,
    /// What this view shows of other institutions.
    pub view: &'static str,
    pub admin: bool,
    /// The CERT's view (its analysts and admins): every institution by name, and the right to
    /// mark false positives.
    pub cert_view: bool,
    pub csrf: String,
}

impl Frame {
    pub fn new(title: &'static str, request: &Request, cert_participant: &str) -> Frame {
        let session = request.extensions().get::<Session>();
        let (user, admin, cert_view) = session.map_or((String::new(), false, false), |s| {
            let r = &s.record;
            let admin = s.role == Role::Admin;
            (
                format!("{} ({}, {})", r.name, r.participant, r.role),
                admin,
                admin || r.participant == cert_participant,
            )
        });
        Frame {
            title,
            user,
            view: if cert_view {
                "CERT view: every institution by name"
            } else {
                "your institution's view: others are counted, never named"
            },
            admin,
            cert_view,
            csrf: session.map(Session::csrf).unwrap_or_default(),
        }
    }
}

/// One table of rows, as `table.html` draws it.
pub struct Table {
    pub id: &'static str,
    /// Each column's field name (what the live board fills it from) and heading.
    pub columns: Vec<(&'static str, String)>,
    pub rows: Vec<TableRow>,
    /// What an empty table says.
    pub empty: &'static str,
}

pub struct TableRow {
    /// A CSS class (`stale`, `new`, `spreading`), or empty.
    pub class: &'static str,
    /// What the live board finds a row by (the indicator).
    pub key: String,
    pub cells: Vec<Cell>,
}

pub struct Cell {
    pub text: String,
    /// A link, or empty.
    pub href: String,
}

/// The link to an indicator's page.
pub fn indicator_href(value: &str) -> String {
    format!("/indicator?{}", serde_urlencoded::to_string([("value", value)]).unwrap_or_default())
}

/// The link to a campaign's page.
pub fn campaign_href(name: &str) -> String {
    format!("/campaign?{}", serde_urlencoded::to_string([("name", name)]).unwrap_or_default())
}

/// A JSON value as a cell's text: lists joined, `null` empty.
fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.iter().map(|v| text(Some(v))).collect::<Vec<_>>().join(", "),
        Some(other) => other.to_string(),
    }
}

impl Table {
    /// `columns` of `rows`; the `indicator` column links to the indicator's page (or the
    /// campaign's, for a campaign's incident) and `campaign` to the campaign's. A row is found
    /// by its indicator and, for incidents, its wave.
    pub fn of(
        id: &'static str,
        columns: &[&'static str],
        rows: &[Row],
        class: impl Fn(usize) -> &'static str,
        empty: &'static str,
    ) -> Table {
        let rows = rows
            .iter()
            .enumerate()
            .map(|(i, row)| TableRow {
                class: class(i),
                key: match row.get("wave") {
                    Some(wave) => format!("{}#{}", text(row.get("indicator")), text(Some(wave))),
                    None => text(row.get("indicator")),
                },
                cells: columns
                    .iter()
                    .map(|&c| {
                        let text = text(row.get(c));
                        let campaign_row = row.get("scope").and_then(Value::as_str) == Some("campaign");
                        let href = match c {
                            "indicator" if campaign_row => campaign_href(&text),
                            "indicator" => indicator_href(&text),
                            "campaign" if !text.is_empty() => campaign_href(&text),
                            _ => String::new(),
                        };
                        Cell { text, href }
                    })
                    .collect(),
            })
            .collect();
        let columns = columns.iter().map(|&c| (c, c.replace('_', " "))).collect();
        Table { id, columns, rows, empty }
    }
}

/// A page that could not be shown: the analyst service's refusal or error, as HTML.
pub struct PageError(pub tonic::Status);

impl From<tonic::Status> for PageError {
    fn from(status: tonic::Status) -> Self {
        PageError(status)
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e.0)
    }
}

impl From<QueryRejection> for PageError {
    fn from(rejection: QueryRejection) -> Self {
        PageError(tonic::Status::invalid_argument(rejection.body_text()))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: String,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = http_status(self.0.code());
        let page = ErrorPage { status: status.to_string(), message: self.0.message().to_owned() };
        render(&page, status)
    }
}

pub type PageResult = Result<Response, PageError>;

/// A template as an HTML response.
pub fn render(page: &impl Template, status: StatusCode) -> Response {
    match page.render() {
        Ok(body) => super::html(body, status),
        Err(e) => {
            tracing::error!(error = %e, "console: a template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

/// The analyst service's request for `message`, as the signed-in caller.
pub fn call<T>(request: &Request, message: T) -> tonic::Request<T> {
    let mut call = tonic::Request::new(message);
    if let Some(peer) = request.extensions().get::<Peer>() {
        call.extensions_mut().insert(peer.clone());
    }
    call
}

const HOUR_MS: i64 = 3_600_000;

/// The board's columns; `change` says whether an incident is new, spreading or closed.
pub const BOARD: &[&str] = &[
    "change",
    "indicator",
    "kind",
    "wave",
    "participants",
    "sightings",
    "first_seen",
    "last_seen",
    "campaign",
    "status",
];

#[derive(Template)]
#[template(path = "board.html")]
struct BoardPage {
    frame: Frame,
    indicators: Table,
    campaigns: Table,
}

/// Rows of `correlations` with their `change`: `closed` (no longer open), `new` (opened in
/// the last hour), `spreading` (joined by an institution in the last hour), else empty; and
/// its CSS class.
pub fn board_rows(correlations: &[v1::Correlation], now: i64) -> (Vec<Row>, Vec<&'static str>) {
    correlations
        .iter()
        .map(|c| {
            let change = if c.status != "open" {
                "closed"
            } else if now - c.opened_unix_ms < HOUR_MS {
                "new"
            } else if c.updated_unix_ms > c.opened_unix_ms && now - c.updated_unix_ms < HOUR_MS {
                "spreading"
            } else {
                ""
            };
            let mut row = correlation_row(c);
            row.insert("change".into(), change.into());
            (row, change)
        })
        .unzip()
}

/// The live correlations board: most recently changed first; `console.js` adds what opens
/// and escalates while the page is open.
pub async fn board(State(console): State<AppState>, request: Request) -> PageResult {
    let analyst = &console.analyst;
    let now = zdn_timestamps::now_ms();
    let listed = |campaigns| v1::ListCorrelationsRequest { limit: 200, campaigns, ..Default::default() };
    let indicators =
        analyst.list_correlations(call(&request, listed(false))).await?.into_inner().correlations;
    let campaigns = analyst.list_correlations(call(&request, listed(true))).await?.into_inner().correlations;
    let (rows, classes) = board_rows(&indicators, now);
    let indicators = Table::of("board", BOARD, &rows, |i| classes[i], "No correlations yet.");
    let (rows, classes) = board_rows(&campaigns, now);
    let campaigns =
        Table::of("campaigns", BOARD, &rows, |i| classes[i], "No campaign-level correlations yet.");
    let frame = Frame::new("Correlations", &request, &console.shared.config.cert_participant);
    Ok(render(&BoardPage { frame, indicators, campaigns }, StatusCode::OK))
}

#[derive(Template)]
#[template(path = "sightings.html")]
struct SightingsPage {
    frame: Frame,
    filter: SightingsQuery,
    table: Table,
    /// The next page's link, or empty.
    next: String,
}

#[derive(Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SightingsQuery {
    indicator: String,
    participant: String,
    since: String,
    until: String,
    /// Sightings per page (default 100, at most 1000).
    limit: Option<u32>,
    page_token: String,
}

const SIGHTINGS: &[&str] = &[
    "first_seen",
    "last_seen",
    "participant",
    "agent",
    "indicator",
    "via",
    "observed",
    "resolved_name",
    "src",
    "dst_ip",
    "dst_port",
    "proto",
    "count",
];

/// Sightings, newest first, a page at a time, filtered by indicator, participant and time.
pub async fn sightings(
    State(console): State<AppState>,
    query: Result<Query<SightingsQuery>, QueryRejection>,
    request: Request,
) -> PageResult {
    let Query(filter) = query?;
    let message = v1::ListSightingsRequest {
        indicator: filter.indicator.trim().to_owned(),
        participant: filter.participant.trim().to_owned(),
        since_unix_ms: crate::http::time(Some(filter.since.trim()))?,
        until_unix_ms: crate::http::time(Some(filter.until.trim()))?,
        page_size: filter.limit.unwrap_or(100),
        page_token: filter.page_token.clone(),
    };
    let answer = console.analyst.list_sightings(call(&request, message)).await?.into_inner();
    let rows: Vec<Row> = answer.sightings.iter().map(sighting_row).collect();
    let table = Table::of("sightings", SIGHTINGS, &rows, |_| "", "No sightings match.");
    let next = if answer.next_page_token.is_empty() {
        String::new()
    } else {
        let next = SightingsQuery { page_token: answer.next_page_token, ..filter.clone_filters() };
        format!("/sightings?{}", serde_urlencoded::to_string(&next).unwrap_or_default())
    };
    let frame = Frame::new("Sightings", &request, &console.shared.config.cert_participant);
    Ok(render(&SightingsPage { frame, filter, table, next }, StatusCode::OK))
}

impl SightingsQuery {
    fn clone_filters(&self) -> SightingsQuery {
        SightingsQuery {
            indicator: self.indicator.clone(),
            participant: self.participant.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            limit: self.limit,
            page_token: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "table_page.html")]
struct TablePage {
    frame: Frame,
    intro: &'static str,
    table: Table,
}

const FLEET: &[&str] = &[
    "status",
    "participant",
    "agent",
    "last_heartbeat",
    "version",
    "indicator_version",
    "indicators",
    "packets",
    "kernel_drops",
    "ring_full",
    "capture",
    "blind_spots",
    "sent",
    "queued",
    "held_back",
];

/// Agents and their health; stale agents (no heartbeat for `stale_after_seconds`) stand out,
/// so "no sightings" can be told from "sensor down".
pub async fn fleet(State(console): State<AppState>, request: Request) -> PageResult {
    let agents =
        console.analyst.fleet_status(call(&request, v1::FleetStatusRequest {})).await?.into_inner().agents;
    let rows: Vec<Row> = agents
        .iter()
        .map(|a| {
            let mut row = agent_row(a);
            let spots: Vec<String> = a.blind_spots.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            row.insert("blind_spots".into(), spots.join(", ").into());
            row
        })
        .collect();
    let table = Table::of(
        "fleet",
        FLEET,
        &rows,
        |i| if agents[i].stale { "stale" } else { "" },
        "No agent has reported yet.",
    );
    let intro = "Every agent that sent a heartbeat. A stale agent has not reported within the collector's \
        stale_after_seconds: its silence says nothing about its network.";
    let frame = Frame::new("Fleet", &request, &console.shared.config.cert_participant);
    Ok(render(&TablePage { frame, intro, table }, StatusCode::OK))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuditQuery {
    since: String,
}

/// The audit log (admins; the analyst service refuses others, and records the attempt).
pub async fn audit(
    State(console): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
    request: Request,
) -> PageResult {
    let Query(q) = query?;
    let message =
        v1::ListAuditRequest { since_unix_ms: crate::http::time(Some(q.since.trim()))?, limit: 500 };
    let entries = console.analyst.list_audit(call(&request, message)).await?.into_inner().entries;
    let rows: Vec<Row> = entries.iter().map(audit_row).collect();
    let columns = &["at", "participant", "name", "role", "action", "detail"];
    let table = Table::of("audit", columns, &rows, |_| "", "Nothing audited yet.");
    let intro = "Who asked what, when: every analyst query and admin change, newest first (500 at most).";
    let frame = Frame::new("Audit log", &request, &console.shared.config.cert_participant);
    Ok(render(&TablePage { frame, intro, table }, StatusCode::OK))
}

#[derive(Template)]
#[template(path = "exports.html")]
struct ExportsPage {
    frame: Frame,
}

/// Download forms for STIX 2.1, MISP sightings and CSV (served by `/api/v1/export`).
pub async fn exports(State(console): State<AppState>, request: Request) -> PageResult {
    let frame = Frame::new("Exports", &request, &console.shared.config.cert_participant);
    Ok(render(&ExportsPage { frame }, StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_marks_closed_incidents_closed_however_recent() {
        let now = 10 * HOUR_MS;
        let incident = |status: &str, opened: i64, updated: i64| v1::Correlation {
            indicator: "evil.example".into(),
            status: status.into(),
            opened_unix_ms: opened,
            updated_unix_ms: updated,
            wave: 1,
            ..Default::default()
        };
        let (rows, classes) = board_rows(
            &[
                incident("false_positive", now - 60_000, now - 30_000),
                incident("closed", now - 60_000, now - 30_000),
                incident("open", now - 60_000, now - 60_000),
                incident("open", now - 5 * HOUR_MS, now - 60_000),
                incident("open", now - 5 * HOUR_MS, now - 5 * HOUR_MS),
            ],
            now,
        );
        assert_eq!(classes, ["closed", "closed", "new", "spreading", ""]);
        let table = Table::of("board", BOARD, &rows, |i| classes[i], "");
        assert_eq!(table.rows[0].key, "evil.example#1", "a row is its subject's wave");
        let campaign = v1::Correlation {
            scope: "campaign".into(),
            indicator: "kraken".into(),
            ..incident("open", 1, 1)
        };
        let (rows, _) = board_rows(&[campaign], now);
        let table = Table::of("campaigns", BOARD, &rows, |_| "", "");
        let link = &table.rows[0].cells[1].href;
        assert_eq!(link, "/campaign?name=kraken", "a campaign's row links to its page, not an indicator's");
    }
}
