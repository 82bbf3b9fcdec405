//! `IndicatorService.Sync`: the indicator set the collector publishes.
//!
//! Now: the lists named in `indicators` of the configuration, loaded at start, sent as one full
//! set whenever the agent's version differs; the stream then stays open for later versions.
//! Not yet: deltas, new versions while running, and Ed25519 signatures (the `signature` field
//! stays empty) — those belong to the indicator-engine issue, and agents must not trust an
//! unsigned set once that lands.

use crate::access::authorise;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use zdn_indicators::Indicator;
use zdn_proto::v1::{self, indicator_service_server::IndicatorService};
use zdn_transport::Role;

/// One version of the published set.
pub struct Published {
    pub version: u64,
    pub indicators: Vec<v1::Indicator>,
}

impl Published {
    pub fn new(version: u64, indicators: &[Indicator]) -> Published {
        let indicators = indicators
            .iter()
            .map(|i| v1::Indicator {
                id: i.id.clone(),
                kind: v1::IndicatorKind::from(i.kind) as i32,
                value: i.value.clone(),
                source: i.source.to_string(),
                event: i.event.clone(),
                tlp: i.tlp.clone(),
                confidence: u32::from(i.confidence),
                valid_from_unix_ms: i.valid_from_unix_ms.unwrap_or(0),
                valid_until_unix_ms: i.valid_until_unix_ms.unwrap_or(0),
                tags: i.tags.clone(),
                exact_only: i.exact_only,
            })
            .collect();
        Published { version, indicators }
    }
}

pub struct Indicators {
    pub published: Arc<Published>,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

#[tonic::async_trait]
impl IndicatorService for Indicators {
    type SyncStream = Pin<Box<dyn Stream<Item = Result<v1::IndicatorUpdate, Status>> + Send>>;

    async fn sync(&self, request: Request<v1::SyncRequest>) -> Result<Response<Self::SyncStream>, Status> {
        authorise(&request, Role::Agent)?;
        let current = request.into_inner().current_version;
        let published = self.published.clone();
        let first = (current != published.version).then(|| {
            Ok(v1::IndicatorUpdate {
                version: published.version,
                base_version: 0,
                added: published.indicators.clone(),
                removed_ids: Vec::new(),
                signature: Vec::new(),
                key_id: String::new(),
            })
        });
        // Keep the stream open (later versions will be pushed on it) until the collector stops.
        let stream = futures::stream::iter(first)
            .chain(futures::stream::pending())
            .take_until(super::stopping(self.shutdown.clone()));
        Ok(Response::new(Box::pin(stream)))
    }
}
