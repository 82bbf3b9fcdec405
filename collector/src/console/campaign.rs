//! The campaign page: the campaign's incidents (one row per wave), its indicators that became
//! incidents of their own, and the hosts flagged as likely compromised by it. The board's
//! campaign rows link here.

use super::AppState;
use super::pages::{BOARD, Frame, PageResult, Table, board_rows, call, render};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use serde::Deserialize;
use zdn_answers::rows::host_row;
use zdn_proto::v1::{self, analyst_service_server::AnalystService};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignQuery {
    name: String,
}

#[derive(askama::Template)]
#[template(path = "campaign.html")]
struct CampaignPage {
    frame: Frame,
    name: String,
    waves: Table,
    indicators: Table,
    hosts: Table,
}

const HOSTS: &[&str] = &["participant", "host", "indicators", "first_seen", "last_seen"];

pub async fn page(
    State(console): State<AppState>,
    query: Result<Query<CampaignQuery>, QueryRejection>,
    request: Request,
) -> PageResult {
    let Query(q) = query.map_err(|e| tonic::Status::invalid_argument(e.body_text()))?;
    let analyst = &console.analyst;
    let listed = |campaigns| v1::ListCorrelationsRequest {
        campaign: q.name.clone(),
        campaigns,
        limit: 1000,
        ..Default::default()
    };
    let waves = analyst.list_correlations(call(&request, listed(true))).await?.into_inner().correlations;
    let indicators =
        analyst.list_correlations(call(&request, listed(false))).await?.into_inner().correlations;
    if waves.is_empty() && indicators.is_empty() {
        return Err(tonic::Status::not_found(format!("no incident of the campaign {:?}", q.name)).into());
    }
    let hosts = analyst
        .list_suspect_hosts(call(&request, v1::ListSuspectHostsRequest { limit: 1000, ..Default::default() }))
        .await?
        .into_inner()
        .hosts;
    let hosts: Vec<_> = hosts.iter().filter(|h| h.campaign == q.name).map(host_row).collect();
    let now = zdn_timestamps::now_ms();
    let (rows, classes) = board_rows(&waves, now);
    let waves = Table::of("campaign-waves", BOARD, &rows, |i| classes[i], "No campaign-level incident yet.");
    let (rows, classes) = board_rows(&indicators, now);
    let indicators = Table::of(
        "campaign-indicators",
        BOARD,
        &rows,
        |i| classes[i],
        "None of its indicators correlates alone.",
    );
    let hosts = Table::of("campaign-hosts", HOSTS, &hosts, |_| "", "No host is flagged for this campaign.");
    let frame = Frame::new("Campaign", &request, &console.shared.config.cert_participant);
    Ok(render(&CampaignPage { frame, name: q.name, waves, indicators, hosts }, StatusCode::OK))
}
