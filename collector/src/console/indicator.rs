//! The indicator page: who saw it and when (a timeline per institution, drawn as an SVG
//! chart), through which mechanisms, what the published set says about it, and the
//! false-positive button.

use super::AppState;
use super::pages::{Frame, PageError, PageResult, call, indicator_href, render};
use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Extension, Form, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use zdn_proto::v1::{self, analyst_service_server::AnalystService};
use zdn_proto::{kind_from_wire, via_from_wire};
use zdn_timestamps::format_unix_ms;
use zdn_transport::server::Peer;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicatorQuery {
    value: String,
    /// Set after a false-positive mark: the version of the set it was withdrawn from.
    marked: Option<u64>,
}

#[derive(Template)]
#[template(path = "indicator.html")]
struct IndicatorPage {
    frame: Frame,
    value: String,
    kind: String,
    sightings: u64,
    first_seen: String,
    last_seen: String,
    mechanisms: String,
    /// The latest incident's status (`open`, `closed`, `false_positive`), or empty.
    status: String,
    /// How many institutions are in its incident (or, for the CERT, saw it at all); empty
    /// where the caller may not know.
    institutions: String,
    /// The latest incident: wave, times, why it closed.
    incident: Vec<(&'static str, String)>,
    /// Its members in join order (the spread); a participant analyst's holds its own only.
    members: Vec<Vec<String>>,
    facts: Vec<(&'static str, String)>,
    timelines: Vec<Timeline>,
    chart: Chart,
    /// Whether this caller may mark false positives (CERT analysts and admins).
    may_mark: bool,
    marked: Option<u64>,
}

struct Timeline {
    who: String,
    first_seen: String,
    last_seen: String,
    sightings: u64,
    vias: String,
}

/// The timeline chart's geometry: one bar per institution from its first to its last
/// sighting, on one time axis. Numbers only; labels are escaped by the template.
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
}

pub struct Bar {
    pub y: f64,
    pub x1: f64,
    pub x2: f64,
    pub label: String,
    /// The tooltip: counts and times.
    pub title: String,
    /// The caller's own institution (drawn in another colour for participant analysts).
    pub own: bool,
}

pub struct Tick {
    pub x: f64,
    pub label: String,
    /// `start`, `middle` or `end`: the outer labels stay inside the chart.
    pub anchor: &'static str,
}

const CHART_WIDTH: u32 = 760;
const LABELS: f64 = 190.0;
const PLOT: f64 = 540.0;
const ROW: f64 = 26.0;

/// Draws `timelines` of `(label, own, first_ms, last_ms, sightings)`.
pub fn chart(timelines: &[(String, bool, i64, i64, u64)]) -> Chart {
    let t0 = timelines.iter().map(|t| t.2).min().unwrap_or(0);
    let t1 = timelines.iter().map(|t| t.3).max().unwrap_or(0).max(t0 + 60_000);
    let x = |t: i64| LABELS + (t - t0) as f64 / (t1 - t0) as f64 * PLOT;
    let bars = timelines
        .iter()
        .enumerate()
        .map(|(i, (label, own, first, last, sightings))| Bar {
            y: 30.0 + i as f64 * ROW,
            x1: x(*first),
            x2: x(*last).max(x(*first) + 2.0),
            label: label.clone(),
            title: format!(
                "{label}: {sightings} sightings, {} – {}",
                format_unix_ms(*first),
                format_unix_ms(*last)
            ),
            own: *own,
        })
        .collect();
    let ticks = [(t0, "start"), (t0 + (t1 - t0) / 2, "middle"), (t1, "end")]
        .into_iter()
        .map(|(t, anchor)| Tick { x: x(t), label: format_unix_ms(t), anchor })
        .collect();
    let height = 40 + (timelines.len() as u32) * ROW as u32;
    Chart { width: CHART_WIDTH, height, bars, ticks }
}

pub async fn page(
    State(console): State<AppState>,
    query: Result<Query<IndicatorQuery>, QueryRejection>,
    request: Request,
) -> PageResult {
    let Query(q) = query?;
    let detail = console
        .analyst
        .get_indicator(call(&request, v1::GetIndicatorRequest { indicator: q.value.clone() }))
        .await?
        .into_inner();
    let frame = Frame::new("Indicator", &request, &console.shared.config.cert_participant);
    let own = request.extensions().get::<super::session::Session>().map(|s| s.record.participant.clone());
    let kind = kind_from_wire(detail.kind).ok();
    let mut mechanisms: Vec<&str> = Vec::new();
    let mut timelines = Vec::new();
    let mut bars = Vec::new();
    for p in &detail.participants {
        let vias: Vec<&str> =
            p.vias.iter().filter_map(|v| via_from_wire(*v).ok()).map(|v| v.as_str()).collect();
        mechanisms.extend(&vias);
        let who =
            if p.participant.is_empty() { "another institution".to_owned() } else { p.participant.clone() };
        let mine = own.as_deref() == Some(p.participant.as_str());
        bars.push((who.clone(), mine, p.first_seen_unix_ms, p.last_seen_unix_ms, p.sightings));
        timelines.push(Timeline {
            who,
            first_seen: format_unix_ms(p.first_seen_unix_ms),
            last_seen: format_unix_ms(p.last_seen_unix_ms),
            sightings: p.sightings,
            vias: vias.join(", "),
        });
    }
    mechanisms.sort_unstable();
    mechanisms.dedup();
    let first = detail.participants.iter().map(|p| p.first_seen_unix_ms).min().unwrap_or(0);
    let last = detail.participants.iter().map(|p| p.last_seen_unix_ms).max().unwrap_or(0);
    let published = console.shared.publishing.subscribe().borrow().clone();
    let meta = kind.and_then(|k| published.meta_of(k, &detail.indicator));
    let mut facts =
        vec![("published", if meta.is_some() { "yes" } else { "not in the set published now" }.to_owned())];
    if let Some(m) = meta {
        facts.extend([
            ("source", m.source.clone()),
            ("campaign / event", m.event.clone()),
            ("TLP", m.tlp.clone()),
            ("confidence", if m.confidence == 0 { String::new() } else { m.confidence.to_string() }),
            ("tags", plain_tags(&m.tags).join(", ")),
            ("warninglists", warninglists(&m.tags).join(", ")),
        ]);
    }
    facts.retain(|(_, v)| !v.is_empty());
    let (incident, members) = detail.correlation.as_ref().map(incident_facts).unwrap_or_default();
    let institutions = match (&detail.correlation, frame.cert_view) {
        (Some(c), _) => c.participant_count.to_string(),
        (None, true) => detail.participants.len().to_string(),
        (None, false) => String::new(),
    };
    let page = IndicatorPage {
        may_mark: frame.cert_view,
        frame,
        value: detail.indicator.clone(),
        kind: kind.map_or("unknown", |k| k.as_str()).to_owned(),
        sightings: detail.sightings,
        first_seen: format_unix_ms(first),
        last_seen: format_unix_ms(last),
        mechanisms: mechanisms.join(", "),
        status: detail.correlation.as_ref().map(|c| c.status.clone()).unwrap_or_default(),
        institutions,
        incident,
        members,
        facts,
        timelines,
        chart: chart(&bars),
        marked: q.marked,
    };
    Ok(render(&page, StatusCode::OK))
}

/// An incident's facts and its members as table rows (order, institution, joined, first seen,
/// last seen, sightings).
fn incident_facts(c: &v1::Correlation) -> (Vec<(&'static str, String)>, Vec<Vec<String>>) {
    let when = |t: i64| if t == 0 { String::new() } else { format_unix_ms(t) };
    let others: Vec<String> = c.other_join_times_unix_ms.iter().map(|t| format_unix_ms(*t)).collect();
    let mut facts = vec![
        ("wave", c.wave.to_string()),
        ("status", c.status.clone()),
        ("closed because", c.close_reason.replace('_', " ")),
        ("opened", when(c.opened_unix_ms)),
        ("last changed", when(c.updated_unix_ms)),
        ("closed", when(c.closed_unix_ms)),
        ("others joined", others.join(", ")),
    ];
    facts.retain(|(_, v)| !v.is_empty());
    let members = c
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            vec![
                (i + 1).to_string(),
                m.participant.clone(),
                when(m.joined_unix_ms),
                when(m.first_seen_unix_ms),
                when(m.last_seen_unix_ms),
                m.sightings.to_string(),
            ]
        })
        .collect();
    (facts, members)
}

#[derive(Deserialize)]
pub struct FalsePositiveForm {
    value: String,
    reason: String,
}

/// The false-positive button: withdraws the indicator from the published set at once and
/// closes its correlation (the analyst service checks the role and audits the call).
pub async fn mark_false_positive(
    State(console): State<AppState>,
    Extension(peer): Extension<Peer>,
    form: Result<Form<FalsePositiveForm>, FormRejection>,
) -> PageResult {
    let Form(form) = form.map_err(|e| PageError(tonic::Status::invalid_argument(e.body_text())))?;
    let mut message = tonic::Request::new(v1::MarkFalsePositiveRequest {
        indicator: form.value.clone(),
        reason: form.reason.clone(),
    });
    message.extensions_mut().insert(peer);
    let answer = console.analyst.mark_false_positive(message).await?.into_inner();
    let back = format!("{}&marked={}", indicator_href(&form.value), answer.published_version);
    Ok(Redirect::to(&back).into_response())
}

/// The lists that flagged the indicator as a likely false positive (their `warninglist:` tags):
/// kept for analysts to weigh, not hidden among the source's own tags.
fn warninglists(tags: &[String]) -> Vec<&str> {
    tags.iter().filter_map(|t| t.strip_prefix(zdn_indicators::allowlist::FLAG_TAG)).collect()
}

fn plain_tags(tags: &[String]) -> Vec<&str> {
    tags.iter().map(String::as_str).filter(|t| !t.starts_with(zdn_indicators::allowlist::FLAG_TAG)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warninglist_flags_are_shown_apart_from_the_sources_tags() {
        let tags: Vec<String> =
            ["apt", "warninglist:amazon-aws", "c2", "warninglist:vpn-ipv4"].map(String::from).into();
        assert_eq!(warninglists(&tags), ["amazon-aws", "vpn-ipv4"]);
        assert_eq!(plain_tags(&tags), ["apt", "c2"]);
    }

    #[test]
    fn the_chart_spans_first_to_last_sighting_on_one_axis() {
        let chart = chart(&[
            ("a".into(), false, 1_000_000, 1_600_000, 3),
            ("b".into(), true, 1_300_000, 1_300_000, 1),
        ]);
        assert_eq!(chart.bars.len(), 2);
        let (a, b) = (&chart.bars[0], &chart.bars[1]);
        assert_eq!((a.x1, a.x2), (LABELS, LABELS + PLOT));
        assert!((b.x1 - (LABELS + PLOT / 2.0)).abs() < 1e-9, "b starts half-way: {}", b.x1);
        assert!(b.x2 > b.x1, "a single moment is still visible");
        assert!(b.y > a.y && b.own && !a.own);
        assert_eq!(chart.ticks.first().map(|t| t.x), Some(LABELS));
    }
}
