//! `IndicatorService.Sync`: the indicator set the collector publishes, as agents receive it.
//!
//! [`Published`] is one signed version (made by `super::publishing`). An agent that names
//! another version gets the whole signed set, in chunks of at most [`CHUNK`] bytes; the stream
//! then stays open and every later version is pushed on it as it is published, until the
//! collector stops. An agent one of the last few versions behind gets the signed deltas from
//! its version instead of the whole set (`super::delta`).

use crate::access::authorise_agent;
use futures::{Stream, StreamExt};
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use zdn_indicators::set::delta::{Change, diff_sources};
use zdn_indicators::signing::{self, Publisher};
use zdn_indicators::{IndicatorSet, Kind, Screened};
use zdn_proto::v1::{self, indicator_service_server::IndicatorService};

/// Largest piece of a signed set in one message, well under the message size limits.
pub const CHUNK: usize = 1 << 20;

/// One version of the published set, signed.
pub struct Published {
    pub version: u64,
    pub key_id: String,
    /// The signed compiled set; empty when nothing is published.
    pub signed: Vec<u8>,
    /// The set itself, for what ingest asks of it (an indicator's campaign).
    set: IndicatorSet,
    /// The steps from earlier versions to this one (see `delta`), oldest first.
    deltas: Vec<Arc<v1::IndicatorUpdate>>,
    /// When each indicator was added, worked out once when first asked (see [`AddedTimes`]).
    added: OnceLock<AddedTimes>,
}

/// When each indicator of a version was added, as far as the remembered steps tell: the
/// version (its publishing time) of the last step that added it, else the time of the version
/// the steps start from. A collector that restarts starts with no steps: everything then
/// counts as added at the first version it publishes.
#[derive(Debug)]
pub struct AddedTimes {
    base_ms: i64,
    by_indicator: HashMap<(Kind, String), i64>,
}

impl AddedTimes {
    fn of_chain(version: u64, chain: &[Arc<v1::IndicatorUpdate>]) -> AddedTimes {
        let ms = |version: u64| i64::try_from(version).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
        let base = chain.first().map_or(version, |step| step.base_version);
        let mut by_indicator = HashMap::new();
        for step in chain {
            for added in &step.added {
                if let Ok(kind) = zdn_proto::kind_from_wire(added.kind) {
                    by_indicator.insert((kind, added.value.clone()), ms(step.version));
                }
            }
        }
        AddedTimes { base_ms: ms(base), by_indicator }
    }

    /// When the indicator `found` was added (Unix milliseconds).
    pub fn of(&self, found: &zdn_indicators::set::Match<'_>) -> i64 {
        if self.by_indicator.is_empty() {
            return self.base_ms;
        }
        let key = (found.kind(), found.value().into_owned());
        self.by_indicator.get(&key).copied().unwrap_or(self.base_ms)
    }
}

impl Published {
    pub fn new(version: u64, set: IndicatorSet, publisher: &Publisher) -> Published {
        let signed = if set.is_empty() { Vec::new() } else { publisher.sign(&set, version) };
        Published {
            version,
            key_id: publisher.public_hex(),
            signed,
            set,
            deltas: Vec::new(),
            added: OnceLock::new(),
        }
    }

    /// The version after this one, holding what the screened `sources` hold: the change
    /// between them and this set (found without building them), applied to this set, so agents
    /// can do the same from a delta and get the signed bytes. Returns it with the load report.
    pub(super) fn next(&self, version: u64, sources: Screened, publisher: &Publisher) -> (Published, String) {
        if self.signed.is_empty() {
            let built = sources.build();
            let summary = built.summary();
            return (Published::new(version, built.set, publisher), summary);
        }
        let change = diff_sources(&self.set, sources.sources());
        let built = sources.into_built(self.set.apply(&change));
        let summary = built.summary();
        (self.with(version, built.set, &change, publisher), summary)
    }

    /// The version after this one: this set with `change` applied (an analyst's withdrawal
    /// needs no rebuild from the sources).
    pub(super) fn changed(&self, version: u64, change: &Change, publisher: &Publisher) -> Published {
        self.with(version, self.set.apply(change), change, publisher)
    }

    /// The version after this one, `set` (this set with `change` applied), and the step to it.
    fn with(&self, version: u64, set: IndicatorSet, change: &Change, publisher: &Publisher) -> Published {
        let mut next = Published::new(version, set, publisher);
        // Nothing left to publish: no set, so no step to it either.
        let Some(signature) = signing::signature_of(&next.signed) else { return next };
        let step = super::delta::step(self.version, version, change, signature, &next.key_id);
        tracing::info!(
            version,
            added = change.added.len(),
            removed = change.removed.len(),
            delta = step.is_some(),
            "indicator changes since the last version"
        );
        next.deltas = super::delta::extend(&self.deltas, step);
        next
    }

    /// The event or campaign `value` (an indicator of `kind`, canonical, as a sighting names
    /// it) belongs to in this version, if it is published and its source gives one.
    /// Indicators in the set.
    pub fn indicator_count(&self) -> usize {
        self.set.len()
    }

    /// The set itself.
    pub fn set(&self) -> &IndicatorSet {
        &self.set
    }

    /// When each indicator in this version was added.
    pub fn added_times(&self) -> &AddedTimes {
        self.added.get_or_init(|| AddedTimes::of_chain(self.version, &self.deltas))
    }

    pub fn campaign_of(&self, kind: Kind, value: &str) -> Option<&str> {
        let event = self.meta_of(kind, value)?.event.as_str();
        (!event.is_empty()).then_some(event)
    }

    /// What the published set says about `value` (an indicator of `kind`, canonical): its
    /// source, event, TLP, confidence, validity and tags.
    pub fn meta_of(&self, kind: Kind, value: &str) -> Option<&zdn_indicators::model::Meta> {
        let found = match kind {
            Kind::Domain => self.set.match_domain(value)?,
            Kind::Ipv4 | Kind::Ipv6 => self.set.match_ip(value.parse().ok()?)?,
            Kind::IpPort => {
                let (ip, port) = value.rsplit_once(':')?;
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                self.set.match_ip_port(ip.parse().ok()?, port.parse().ok()?)?
            }
            Kind::Cidr => self.set.match_ip(value.split('/').next()?.parse().ok()?)?,
            Kind::Url | Kind::Ja3 | Kind::Ja4 => self.set.match_text(kind, value)?,
        };
        Some(found.meta())
    }

    /// The (kind, value) of the indicators in this version whose value is `value`. One pass
    /// over the set (a tenth of a second for the trails): simpler and surer than guessing the
    /// kind a value was published as.
    pub(super) fn holding(&self, value: &str) -> Vec<(Kind, String)> {
        self.set.iter().filter(|m| m.value() == value).map(|m| (m.kind(), value.to_owned())).collect()
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
    pub published: watch::Receiver<Arc<Published>>,
    /// Analysts' active retro-hunts: each goes to every agent once per stream.
    pub hunts: watch::Receiver<Arc<Vec<v1::HuntRequest>>>,
    pub shutdown: watch::Receiver<bool>,
}

/// The state of one agent's subscription: the version it has, what is still to send.
struct Subscription {
    published: watch::Receiver<Arc<Published>>,
    has: u64,
    /// The agent asked for whole sets only.
    full: bool,
    pending: VecDeque<v1::IndicatorUpdate>,
    hunts: watch::Receiver<Arc<Vec<v1::HuntRequest>>>,
    /// Hunts already sent on this stream.
    hunts_sent: std::collections::HashSet<String>,
}

impl Subscription {
    /// The next message for the agent: a chunk of a version it lacks, waiting for the next
    /// version when it has the current one. `None` ends the stream (the collector stops).
    async fn next(mut self) -> Option<(Result<v1::IndicatorUpdate, Status>, Subscription)> {
        loop {
            if let Some(update) = self.pending.pop_front() {
                return Some((Ok(update), self));
            }
            let current = self.published.borrow_and_update().clone();
            if current.version != self.has && !current.signed.is_empty() {
                let chain = if self.full { None } else { super::delta::from(&current.deltas, self.has) };
                self.pending = chain.unwrap_or_else(|| current.updates()).into();
                self.has = current.version;
                continue;
            }
            let hunts = self.hunts.borrow_and_update().clone();
            let now = zdn_timestamps::now_ms();
            for hunt in hunts.iter().filter(|h| zdn_proto::hunt::is_active(h, now)) {
                if self.hunts_sent.insert(hunt.id.clone()) {
                    self.pending
                        .push_back(v1::IndicatorUpdate { hunt: Some(hunt.clone()), ..Default::default() });
                }
            }
            if !self.pending.is_empty() {
                continue;
            }
            tokio::select! {
                changed = self.published.changed() => changed.ok()?,
                changed = self.hunts.changed() => changed.ok()?,
            }
        }
    }
}

#[tonic::async_trait]
impl IndicatorService for Indicators {
    type SyncStream = Pin<Box<dyn Stream<Item = Result<v1::IndicatorUpdate, Status>> + Send>>;

    async fn sync(&self, request: Request<v1::SyncRequest>) -> Result<Response<Self::SyncStream>, Status> {
        authorise_agent(&request)?;
        let r = request.into_inner();
        let subscription = Subscription {
            published: self.published.clone(),
            has: r.current_version,
            full: r.full,
            pending: VecDeque::new(),
            hunts: self.hunts.clone(),
            hunts_sent: std::collections::HashSet::new(),
        };
        // Open until the collector stops: every version published meanwhile is pushed on it.
        let stream = futures::stream::unfold(subscription, Subscription::next)
            .take_until(crate::shutdown::stopping(self.shutdown.clone()));
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdn_indicators::Indicator;
    use zdn_indicators::model::Meta;

    /// Withdrawing the last indicator leaves nothing to sign: the version publishes no set and
    /// no step (it once expected a signature there, and would have panicked).
    #[test]
    fn withdrawing_the_last_indicator_publishes_an_empty_version() {
        let dir = tempfile::tempdir().unwrap();
        let publisher = Publisher::load_or_create(&dir.path().join("k")).unwrap();
        let set = IndicatorSet::new(zdn_indicators::parse_plain("t", "only.example\n").indicators);
        let first = Published::new(1, set, &publisher);
        let removed = first.holding("only.example");
        assert_eq!(removed, [(Kind::Domain, "only.example".to_owned())]);
        let next = first.changed(2, &Change { added: Vec::new(), removed }, &publisher);
        assert!(next.signed.is_empty() && next.deltas.is_empty() && next.set.is_empty());
        assert!(first.holding("other.example").is_empty());
    }

    #[test]
    fn an_indicator_names_its_campaign_in_the_published_version() {
        let emotet = Arc::new(Meta { event: "emotet".into(), ..Meta::default() });
        let none = Arc::new(Meta::default());
        let indicator = |kind, value: &str, meta: &Arc<Meta>| Indicator {
            id: None,
            kind,
            value: value.into(),
            meta: meta.clone(),
            exact_only: false,
        };
        let set = IndicatorSet::from_sources(&[vec![
            indicator(Kind::Domain, "evil.example", &emotet),
            indicator(Kind::Ipv4, "203.0.113.66", &emotet),
            indicator(Kind::IpPort, "198.51.100.23:8443", &emotet),
            indicator(Kind::Url, "evil.example/x.exe", &emotet),
            indicator(Kind::Domain, "plain.example", &none),
        ]]);
        let dir = tempfile::tempdir().unwrap();
        let publisher = Publisher::load_or_create(&dir.path().join("k")).unwrap();
        let published = Published::new(1, set, &publisher);
        for (kind, value) in [
            (Kind::Domain, "evil.example"),
            (Kind::Ipv4, "203.0.113.66"),
            (Kind::IpPort, "198.51.100.23:8443"),
            (Kind::Url, "evil.example/x.exe"),
        ] {
            assert_eq!(published.campaign_of(kind, value), Some("emotet"), "{value}");
        }
        assert_eq!(published.campaign_of(Kind::Domain, "plain.example"), None, "no event in its source");
        assert_eq!(published.campaign_of(Kind::Domain, "unknown.example"), None, "not published");
        assert_eq!(published.campaign_of(Kind::Ipv4, "not an address"), None);
    }
}
