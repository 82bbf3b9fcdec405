//! `IndicatorService.Sync`: the indicator set the collector publishes.
//!
//! The sources named in `indicators` (with `allowlists` applied) are loaded at start, compiled
//! and signed with the publishing key (`publish_key`) as one version. An agent that names
//! another version gets the whole signed set, in chunks of at most [`CHUNK`] bytes; the stream
//! then stays open for later versions until the collector stops.
//! Not yet: deltas, and new versions while running (a restart publishes a new version).

use crate::access::authorise;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use zdn_indicators::IndicatorSet;
use zdn_indicators::signing::Publisher;
use zdn_proto::v1::{self, indicator_service_server::IndicatorService};
use zdn_transport::Role;

/// Largest piece of a signed set in one message, well under the message size limits.
pub const CHUNK: usize = 1 << 20;

/// One version of the published set, signed.
pub struct Published {
    pub version: u64,
    pub key_id: String,
    /// The signed compiled set; empty when nothing is published.
    pub signed: Vec<u8>,
}

impl Published {
    pub fn new(version: u64, set: &IndicatorSet, publisher: &Publisher) -> Published {
        let signed = if set.is_empty() { Vec::new() } else { publisher.sign(set, version) };
        Published { version, key_id: publisher.key_id_hex(), signed }
    }

    /// The messages that carry this version.
    fn updates(&self) -> Vec<v1::IndicatorUpdate> {
        let size = self.signed.len() as u64;
        self.signed
            .chunks(CHUNK)
            .scan(0u64, |offset, chunk| {
                let update = v1::IndicatorUpdate {
                    version: self.version,
                    key_id: self.key_id.clone(),
                    signed_set_chunk: chunk.to_vec(),
                    signed_set_offset: *offset,
                    signed_set_size: size,
                    ..Default::default()
                };
                *offset += chunk.len() as u64;
                Some(update)
            })
            .collect()
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
        let updates = if current != self.published.version { self.published.updates() } else { Vec::new() };
        // Keep the stream open (later versions will be pushed on it) until the collector stops.
        let stream = futures::stream::iter(updates.into_iter().map(Ok))
            .chain(futures::stream::pending())
            .take_until(super::stopping(self.shutdown.clone()));
        Ok(Response::new(Box::pin(stream)))
    }
}
