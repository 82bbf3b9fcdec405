//! `AnalystService`: what analysts ask, answered through their role's view.

use super::{Shared, blocking};
use crate::access::View;
use crate::export;
use crate::shutdown::stopping;
use crate::store::{CorrelationFilter, SightingFilter};
use futures::Stream;
use std::pin::Pin;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tonic::{Request, Response, Status};
use zdn_proto::kind_from_wire;
use zdn_proto::v1::{self, analyst_service_server::AnalystService};
use zdn_timestamps::now_ms;
use zdn_transport::Role;

pub struct Analyst {
    pub shared: Shared,
}

const DEFAULT_LIMIT: u32 = 100;
pub(super) const MAX_LIMIT: u32 = 1000;

fn limit(requested: u32) -> u32 {
    match requested {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

pub(super) fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn non_zero(ms: i64) -> Option<i64> {
    (ms != 0).then_some(ms)
}

/// Most sightings one export holds; narrow the time range for more.
pub(super) const MAX_EXPORT: usize = 100_000;

/// Every sighting `filter` matches, page by page, newest first; `None` if more than `max`.
pub(super) fn every_sighting(
    store: &dyn crate::store::Store,
    mut filter: SightingFilter<'_>,
    max: usize,
) -> Result<Option<Vec<v1::StoredSighting>>, crate::store::StoreError> {
    let mut all = Vec::new();
    loop {
        let (page, next) = store.sightings(&filter)?;
        all.extend(page);
        if all.len() > max {
            return Ok(None);
        }
        match next {
            Some(n) => filter.before_row = Some(n),
            None => return Ok(Some(all)),
        }
    }
}

/// Largest piece of an exported document in one message.
const EXPORT_CHUNK: usize = 1 << 20;

/// `document` as a stream of chunks; an empty document is still one (empty) chunk, so the
/// caller learns the media type.
fn chunked(
    document: Vec<u8>,
    media_type: &str,
    sightings: u32,
) -> Pin<Box<dyn Stream<Item = Result<v1::ExportChunk, Status>> + Send>> {
    let pieces: Vec<&[u8]> =
        if document.is_empty() { vec![&[][..]] } else { document.chunks(EXPORT_CHUNK).collect() };
    let chunks: Vec<Result<v1::ExportChunk, Status>> = pieces
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            Ok(v1::ExportChunk {
                media_type: if i == 0 { media_type.to_owned() } else { String::new() },
                sightings: if i == 0 { sightings } else { 0 },
                data: data.to_vec(),
            })
        })
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

#[tonic::async_trait]
impl AnalystService for Analyst {
    async fn list_correlations(
        &self,
        request: Request<v1::ListCorrelationsRequest>,
    ) -> Result<Response<v1::ListCorrelationsResponse>, Status> {
        let view = self.view(&request, "list_correlations").await?;
        let r = request.into_inner();
        let kind = match r.kind {
            0 => None,
            k => Some(kind_from_wire(k).map_err(|e| Status::invalid_argument(e.to_string()))?),
        };
        let filter = CorrelationFilter {
            since_ms: non_zero(r.since_unix_ms),
            min_participants: r.min_participants,
            kind,
            campaign: non_empty(&r.campaign).map(str::to_owned),
            campaigns: r.campaigns,
            limit: limit(r.limit),
        };
        let store = self.shared.store.clone();
        let mut correlations = blocking(move || store.correlations(&filter)).await?;
        for c in &mut correlations {
            view.redact_correlation(c);
        }
        Ok(Response::new(v1::ListCorrelationsResponse { correlations }))
    }

    async fn list_sightings(
        &self,
        request: Request<v1::ListSightingsRequest>,
    ) -> Result<Response<v1::ListSightingsResponse>, Status> {
        let participant = self.scoped(&request, "list_sightings", |r| &r.participant).await?;
        let r = request.into_inner();
        let before_row = match non_empty(&r.page_token) {
            None => None,
            Some(t) => Some(t.parse::<i64>().map_err(|_| Status::invalid_argument("bad page_token"))?),
        };
        let store = self.shared.store.clone();
        let (sightings, next) = blocking(move || {
            store.sightings(&SightingFilter {
                indicator: non_empty(&r.indicator),
                participant: participant.as_deref(),
                since_ms: non_zero(r.since_unix_ms),
                until_ms: non_zero(r.until_unix_ms),
                before_row,
                limit: limit(r.page_size),
            })
        })
        .await?;
        Ok(Response::new(v1::ListSightingsResponse {
            sightings,
            next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }

    async fn get_indicator(
        &self,
        request: Request<v1::GetIndicatorRequest>,
    ) -> Result<Response<v1::IndicatorDetail>, Status> {
        let view = self.view(&request, "get_indicator").await?;
        let indicator = request.into_inner().indicator;
        let store = self.shared.store.clone();
        let key = indicator.clone();
        let mut detail = blocking(move || store.indicator(&key))
            .await?
            .ok_or_else(|| Status::not_found(format!("no sightings of {indicator:?}")))?;
        view.redact_indicator(&mut detail);
        Ok(Response::new(detail))
    }

    async fn fleet_status(
        &self,
        request: Request<v1::FleetStatusRequest>,
    ) -> Result<Response<v1::FleetStatusResponse>, Status> {
        let view = self.view(&request, "fleet_status").await?;
        let store = self.shared.store.clone();
        let stale_ms = self.shared.config.stale_after_ms();
        let mut agents = blocking(move || store.fleet(now_ms(), stale_ms)).await?;
        if let View::Own(me) = &view {
            agents.retain(|a| &a.participant == me);
        }
        Ok(Response::new(v1::FleetStatusResponse { agents }))
    }

    type WatchCorrelationsStream = Pin<Box<dyn Stream<Item = Result<v1::CorrelationEvent, Status>> + Send>>;

    async fn watch_correlations(
        &self,
        request: Request<v1::WatchCorrelationsRequest>,
    ) -> Result<Response<Self::WatchCorrelationsStream>, Status> {
        // Subscribed before the call is audited: the audit entry means the watcher receives
        // every event from then on (a refusal drops the subscription unused).
        let subscription = self.shared.events.subscribe();
        let view = self.view(&request, "watch_correlations").await?;
        let events = BroadcastStream::new(subscription).map(move |event| match event {
            Ok(mut event) => {
                view.redact_event(&mut event);
                Ok(event)
            }
            // A subscriber too slow to keep up is told so, not silently skipped.
            Err(BroadcastStreamRecvError::Lagged(n)) => Err(Status::resource_exhausted(format!(
                "watcher fell behind by {n} events; list correlations to catch up"
            ))),
        });
        let events = futures::StreamExt::take_until(events, stopping(self.shared.shutdown.clone()));
        Ok(Response::new(Box::pin(events)))
    }

    async fn mark_false_positive(
        &self,
        request: Request<v1::MarkFalsePositiveRequest>,
    ) -> Result<Response<v1::MarkFalsePositiveResponse>, Status> {
        let refusal = "only CERT analysts and admins mark false positives; ask the CERT";
        let peer = self.cert_only(&request, "mark_false_positive", refusal).await?;
        let r = request.into_inner();
        if r.indicator.is_empty() || r.indicator.len() > zdn_proto::limits::MAX_VALUE {
            return Err(Status::invalid_argument(format!(
                "indicator must be 1-{} bytes",
                zdn_proto::limits::MAX_VALUE
            )));
        }
        let reason = r.reason.trim().to_owned();
        if reason.is_empty() || reason.len() > 1000 {
            return Err(Status::invalid_argument("a reason (1-1000 bytes) is required"));
        }
        let (store, indicator) = (self.shared.store.clone(), r.indicator.clone());
        let closed =
            blocking(move || store.mark_false_positive(&indicator, &peer.identity, &reason, now_ms()))
                .await?;
        let publishing = self.shared.publishing.clone();
        let indicator = r.indicator.clone();
        let version = match tokio::task::spawn_blocking(move || publishing.withdraw(&indicator)).await {
            Ok(version) => version,
            Err(e) => return Err(Status::internal(format!("republishing task failed: {e}"))),
        };
        let change = v1::correlation_event::Change::ClosedFalsePositive as i32;
        let closed_count = closed.iter().filter(|e| e.change == change).count() as u32;
        if !self.shared.events_from_store {
            for event in closed {
                let _ = self.shared.events.send(event);
            }
        }
        tracing::info!(indicator = %r.indicator, version, "indicator marked as a false positive and withdrawn");
        Ok(Response::new(v1::MarkFalsePositiveResponse {
            correlations_closed: closed_count,
            published_version: version,
        }))
    }

    async fn import_indicators(
        &self,
        mut request: Request<tonic::Streaming<v1::ImportIndicatorsRequest>>,
    ) -> Result<Response<v1::ImportIndicatorsResponse>, Status> {
        // The first message names the import, for the audit entry; nothing more is read
        // before the call is admitted.
        let first = request.get_mut().message().await?.unwrap_or_default();
        let path = first.files.first().map_or("", |f| f.path.as_str());
        let detail = format!("name {:?}: streamed, first path {path:?}, force {}", first.name, first.force);
        self.audited_as(&request, Role::Admin, "import_indicators", detail).await?;
        super::import::import(&self.shared, first, request.into_inner()).await.map(Response::new)
    }

    async fn top_indicators(
        &self,
        request: Request<v1::TopIndicatorsRequest>,
    ) -> Result<Response<v1::TopIndicatorsResponse>, Status> {
        // Counts of institutions only: every analyst may see the ranking (see `redact_top`).
        let view = self.view(&request, "top_indicators").await?;
        let r = request.into_inner();
        let store = self.shared.store.clone();
        let since = if r.since_unix_ms == 0 { i64::MIN } else { r.since_unix_ms };
        let mut indicators = blocking(move || store.top_indicators(since, limit(r.limit))).await?;
        for t in &mut indicators {
            view.redact_top(t);
        }
        Ok(Response::new(v1::TopIndicatorsResponse { indicators }))
    }

    async fn list_suspect_hosts(
        &self,
        request: Request<v1::ListSuspectHostsRequest>,
    ) -> Result<Response<v1::ListSuspectHostsResponse>, Status> {
        let participant = self.scoped(&request, "list_suspect_hosts", |r| &r.participant).await?;
        let r = request.into_inner();
        let store = self.shared.store.clone();
        let hosts = blocking(move || store.suspect_hosts(participant.as_deref(), limit(r.limit))).await?;
        Ok(Response::new(v1::ListSuspectHostsResponse { hosts }))
    }

    type ExportSightingsStream = Pin<Box<dyn Stream<Item = Result<v1::ExportChunk, Status>> + Send>>;

    async fn export_sightings(
        &self,
        request: Request<v1::ExportSightingsRequest>,
    ) -> Result<Response<Self::ExportSightingsStream>, Status> {
        use v1::export_sightings_request::Format as Wire;
        let participant = self.scoped(&request, "export_sightings", |r| &r.participant).await?;
        let r = request.into_inner();
        let format = match Wire::try_from(r.format) {
            Ok(Wire::Stix) => export::Format::Stix,
            Ok(Wire::Misp) => export::Format::Misp,
            Ok(Wire::Csv) => export::Format::Csv,
            _ => return Err(Status::invalid_argument("format must be stix, misp or csv")),
        };
        let (store, producer) = (self.shared.store.clone(), self.shared.config.cert_participant.clone());
        let (document, count) = blocking(move || {
            let filter = SightingFilter {
                indicator: non_empty(&r.indicator),
                participant: participant.as_deref(),
                since_ms: non_zero(r.since_unix_ms),
                until_ms: non_zero(r.until_unix_ms),
                before_row: None,
                limit: MAX_LIMIT,
            };
            let Some(all) = every_sighting(store.as_ref(), filter, MAX_EXPORT)? else { return Ok(None) };
            let false_positives = store.false_positives()?.into_iter().collect();
            let naming = export::Naming {
                false_positives: &false_positives,
                producer: &producer,
                institutions: r.name_institutions,
            };
            let document = export::document(format, &all, &naming, now_ms());
            Ok(Some((document, all.len() as u32)))
        })
        .await?
        .ok_or_else(|| {
            Status::out_of_range(format!("more than {MAX_EXPORT} sightings match; narrow the time range"))
        })?;
        Ok(Response::new(chunked(document, format.media_type(), count)))
    }

    type ExportParticipantStream = Pin<Box<dyn Stream<Item = Result<v1::ExportChunk, Status>> + Send>>;

    async fn export_participant(
        &self,
        request: Request<v1::ExportParticipantRequest>,
    ) -> Result<Response<Self::ExportParticipantStream>, Status> {
        self.audited(&request, Role::Admin, "export_participant").await?;
        let participant = request.into_inner().participant;
        zdn_transport::identity::validate_participant(&participant)
            .map_err(|e| Status::invalid_argument(format!("participant: {e}")))?;
        let store = self.shared.store.clone();
        let stale_ms = self.shared.config.stale_after_ms();
        let (document, count) = blocking(move || {
            let filter = SightingFilter {
                indicator: None,
                participant: Some(&participant),
                since_ms: None,
                until_ms: None,
                before_row: None,
                limit: MAX_LIMIT,
            };
            let sightings = every_sighting(store.as_ref(), filter, usize::MAX)?.unwrap_or_default();
            let timelines = store.timelines_of(&participant)?;
            let mut agents = store.fleet(now_ms(), stale_ms)?;
            agents.retain(|a| a.participant == participant);
            let audit = store.audit_of(&participant)?;
            let hosts = store.suspect_hosts(Some(&participant), MAX_LIMIT)?;
            let count = sightings.len() as u32;
            let held = export::Held {
                sightings: &sightings,
                timelines: &timelines,
                agents: &agents,
                audit: &audit,
                hosts: &hosts,
            };
            let document = export::participant_record(&participant, &held, now_ms());
            Ok((document, count))
        })
        .await?;
        Ok(Response::new(chunked(document, "application/json", count)))
    }

    async fn erase_participant(
        &self,
        request: Request<v1::EraseParticipantRequest>,
    ) -> Result<Response<v1::EraseParticipantResponse>, Status> {
        self.audited(&request, Role::Admin, "erase_participant").await?;
        let r = request.into_inner();
        zdn_transport::identity::validate_participant(&r.participant)
            .map_err(|e| Status::invalid_argument(format!("participant: {e}")))?;
        let store = self.shared.store.clone();
        let host = non_empty(&r.host).map(str::to_owned);
        let erased = blocking(move || store.erase(&r.participant, host.as_deref())).await?;
        tracing::warn!(?erased, "participant data erased on an admin's request");
        Ok(Response::new(v1::EraseParticipantResponse {
            sightings: erased.sightings,
            aggregates: erased.aggregates,
            agents: erased.agents,
            correlations_changed: erased.correlations_changed,
            correlations_removed: erased.correlations_removed,
        }))
    }

    async fn list_audit(
        &self,
        request: Request<v1::ListAuditRequest>,
    ) -> Result<Response<v1::ListAuditResponse>, Status> {
        self.audited(&request, Role::Admin, "list_audit").await?;
        let r = request.into_inner();
        let store = self.shared.store.clone();
        let entries = blocking(move || store.audit_log(r.since_unix_ms, limit(r.limit))).await?;
        Ok(Response::new(v1::ListAuditResponse { entries }))
    }

    async fn issue_console_token(
        &self,
        request: Request<v1::IssueConsoleTokenRequest>,
    ) -> Result<Response<v1::IssueConsoleTokenResponse>, Status> {
        self.issue_token(request).await
    }

    async fn revoke_console_token(
        &self,
        request: Request<v1::RevokeConsoleTokenRequest>,
    ) -> Result<Response<v1::RevokeConsoleTokenResponse>, Status> {
        self.revoke_token(request).await
    }

    async fn list_console_tokens(
        &self,
        request: Request<v1::ListConsoleTokensRequest>,
    ) -> Result<Response<v1::ListConsoleTokensResponse>, Status> {
        self.list_tokens(request).await
    }

    async fn start_hunt(
        &self,
        request: Request<v1::StartHuntRequest>,
    ) -> Result<Response<v1::HuntStatus>, Status> {
        self.start_hunt_call(request).await
    }

    async fn get_hunt(
        &self,
        request: Request<v1::GetHuntRequest>,
    ) -> Result<Response<v1::HuntStatus>, Status> {
        self.get_hunt_call(request).await
    }
}
