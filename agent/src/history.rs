//! The agent's side of the destination history (`zdn_destination_history`): each capture
//! worker's [`Tap`] records what its internal hosts contacted, and [`retro_hunt`] turns the
//! contacts with newly published indicators into sightings marked `retro`.
//!
//! - Recording costs the packet path a keyed hash per key and a map update; the host's
//!   pseudonym (an HMAC) is cached per address. The bucket of the hour is written when the
//!   hour ends and every [`SNAPSHOT_MS`] of packet time before that, so a crash loses at most
//!   that much; the write happens on the capture thread, a few milliseconds an hour.
//! - A retro sighting covers one indicator, one host and one hour, with the history's first and
//!   last minute and count; its id is a keyed hash of those, so a hunt repeated (after a restart,
//!   or a version that adds the indicator again) stores nothing twice at the collector.

use crate::packet_path::Contacted;
use crate::pseudonym::Pseudonymiser;
use crate::sighting::Sighting;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use zdn_destination_history::history::Recorder;
use zdn_destination_history::{History, Observed, Probe};
use zdn_dissect::extract::Value;
use zdn_indicators::{IndicatorSet, Kind, Via};

/// Packet time between two snapshots of the hour's bucket.
pub const SNAPSHOT_MS: i64 = 5 * 60_000;

/// Hosts whose pseudonym is cached per worker at most (the cache starts afresh when full).
const HOST_CACHE: usize = 65_536;

/// One capture worker's recording into the history.
pub struct Tap {
    history: Arc<History>,
    recorder: Recorder,
    pseudonyms: Pseudonymiser,
    hosts: HashMap<IpAddr, u64>,
    next_snapshot_ms: i64,
}

impl Tap {
    pub fn new(history: Arc<History>, pseudonyms: Pseudonymiser, worker: usize) -> Tap {
        let recorder = Recorder::new(history.keyer().clone(), worker);
        Tap { history, recorder, pseudonyms, hosts: HashMap::new(), next_snapshot_ms: i64::MIN }
    }

    /// Records one contact seen at `ts_ms`.
    pub fn record(&mut self, contacted: Contacted<'_>, ts_ms: i64) {
        let observed = match (contacted.via, contacted.value) {
            (_, Value::Ip(ip)) => Observed::Address(ip),
            (_, Value::IpPort(ip, port)) => Observed::AddressPort(ip, port),
            (_, Value::Name(name)) => Observed::Name(name),
            (Via::HttpUrl, Value::Text(url)) => Observed::Url(url),
            (Via::Ja3, Value::Text(text)) => Observed::Ja3(text),
            (Via::Ja4, Value::Text(text)) => Observed::Ja4(text),
            _ => return,
        };
        if self.hosts.len() >= HOST_CACHE {
            self.hosts.clear();
        }
        let pseudonyms = &self.pseudonyms;
        let host =
            *self.hosts.entry(contacted.host).or_insert_with(|| pseudonyms.pseudonym_bits(contacted.host));
        let via = zdn_proto::v1::Via::from(contacted.via) as u8;
        if let Some(finished) = self.recorder.record(observed, via, host, ts_ms) {
            self.seal(&finished);
        }
        if ts_ms >= self.next_snapshot_ms {
            if self.next_snapshot_ms != i64::MIN {
                self.snapshot();
            }
            self.next_snapshot_ms = ts_ms + SNAPSHOT_MS;
        }
    }

    /// Writes the hour recorded so far (at stop, and every [`SNAPSHOT_MS`]).
    pub fn snapshot(&mut self) {
        if let Some(current) = self.recorder.current() {
            self.seal(current);
        }
    }

    fn seal(&self, bucket: &zdn_destination_history::bucket::Bucket) {
        if let Err(e) = self.history.seal(bucket, self.recorder.worker()) {
            tracing::error!(error = %e, "destination history: an hour not written (retro-hunts will miss it)");
        }
    }
}

/// What one hunt found and reported.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Hunted {
    pub indicators: usize,
    /// Indicators that cannot be looked up (a network too wide to expand).
    pub unhuntable: usize,
    pub buckets: u64,
    pub unreadable: u64,
    pub sightings: Vec<Sighting>,
}

/// Looks the indicators of `added` up in `history` over its whole retention, and makes a
/// retro sighting of each (indicator, host, hour) contact found.
pub fn retro_hunt(
    history: &History,
    added: &IndicatorSet,
    since_ms: i64,
) -> Result<Hunted, zdn_destination_history::HistoryError> {
    let mut hunted = Hunted::default();
    let mut probes = Vec::new();
    let mut indicators = Vec::new();
    for found in added.iter() {
        hunted.indicators += 1;
        let Some(probe) = probe_of(found.kind(), &found.value(), found.exact_only()) else {
            hunted.unhuntable += 1;
            continue;
        };
        if history.keyer().of_probe(&probe).is_empty() {
            hunted.unhuntable += 1;
            continue;
        }
        probes.push(probe);
        indicators.push(found);
    }
    let (contacts, stats) = history.hunt(&probes, since_ms)?;
    hunted.buckets = stats.buckets;
    hunted.unreadable = stats.unreadable;
    for contact in contacts {
        let indicator = &indicators[contact.probe];
        let via = zdn_proto::via_from_wire(i32::from(contact.via)).unwrap_or(Via::DnsQuery);
        for host in &contact.hosts {
            let value = indicator.value().into_owned();
            let id = retro_id(history, &value, indicator.kind(), *host, contact.hour);
            hunted.sightings.push(Sighting {
                id,
                indicator: value.clone(),
                indicator_id: indicator.id().into_owned(),
                kind: indicator.kind(),
                via,
                observed: value,
                first_seen_unix_ms: contact.first_ms,
                last_seen_unix_ms: contact.last_ms,
                count: u64::from(contact.count),
                src: Pseudonymiser::pseudonym_text(*host),
                dst_ip: String::new(),
                dst_port: 0,
                proto: String::new(),
                resolved_name: String::new(),
                retro: true,
                host: IpAddr::from([0, 0, 0, 0]),
            });
        }
    }
    Ok(hunted)
}

/// After a new set went live: hunts the indicators `new` has and `old` had not over the whole
/// retention, and queues the retro sightings in `spool` like any other. Blocking.
pub fn hunt_added(
    history: &History,
    old: &IndicatorSet,
    new: &IndicatorSet,
    spool: &crate::spool::Spool,
    retention_days: u32,
    counters: &crate::counters::Counters,
) {
    let added: Vec<zdn_indicators::Indicator> =
        new.iter().filter(|m| !old.contains(m.kind(), &m.value())).map(|m| m.to_indicator()).collect();
    if added.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let since_ms = zdn_timestamps::now_ms() - i64::from(retention_days) * 86_400_000;
    match retro_hunt(history, &IndicatorSet::new(added), since_ms) {
        Ok(hunted) => {
            let wire: Vec<_> = hunted.sightings.iter().map(Sighting::to_proto).collect();
            let pushed = spool.push(&wire);
            counters.retro_sightings.inc_by(pushed.queued);
            counters.history_unreadable.inc_by(hunted.unreadable);
            tracing::info!(
                indicators = hunted.indicators,
                unhuntable = hunted.unhuntable,
                hours_searched = hunted.buckets,
                unreadable_hours = hunted.unreadable,
                retro_sightings = hunted.sightings.len(),
                queued = pushed.queued,
                already_reported = pushed.duplicate,
                refused_spool_full = pushed.refused_full,
                seconds = started.elapsed().as_secs_f64(),
                "retro-hunt of the newly published indicators in the destination history"
            );
        }
        Err(e) => tracing::error!(error = %e, "retro-hunt failed: the history could not be read"),
    }
}

/// An analyst's hunt, as the agent answers it: refused unless signed by the pinned key; else
/// the indicator looked up back to the request's `since` (what the history holds of it), its
/// retro sightings queued, and the request written to the agent's log — the participant sees
/// what was asked of its history.
pub fn answer_hunt(
    history: Option<&History>,
    pinned: &zdn_indicators::signing::VerifyingKey,
    hunt: &zdn_proto::v1::HuntRequest,
    spool: &crate::spool::Spool,
    counters: &crate::counters::Counters,
) -> zdn_proto::v1::HuntAnswer {
    let mut answer = zdn_proto::v1::HuntAnswer { hunt_id: hunt.id.clone(), ..Default::default() };
    if !zdn_proto::hunt::verify(pinned, hunt) {
        tracing::warn!(hunt = %hunt.id, "hunt request refused: not signed by the pinned publishing key");
        answer.not_searched = "refused: not signed by the pinned publishing key".into();
        counters.hunts_refused.inc();
        return answer;
    }
    if !zdn_proto::hunt::is_active(hunt, zdn_timestamps::now_ms()) {
        tracing::warn!(hunt = %hunt.id, issued = %zdn_timestamps::format_unix_ms(hunt.issued_unix_ms), "hunt request refused: issued more than a day ago (or in the future)");
        answer.not_searched = "refused: issued more than a day ago".into();
        counters.hunts_refused.inc();
        return answer;
    }
    let indicator = hunt.indicator.clone().map(zdn_proto::indicator_from_wire);
    let Some(Ok(indicator)) = indicator else {
        answer.not_searched = "no indicator this agent knows".into();
        return answer;
    };
    tracing::warn!(
        hunt = %hunt.id,
        indicator = %indicator.value,
        kind = indicator.kind.as_str(),
        since = %zdn_timestamps::format_unix_ms(hunt.since_unix_ms),
        requested_by = %hunt.requested_by,
        "the CERT asked for a retro-hunt in the destination history"
    );
    counters.hunts_answered.inc();
    let Some(history) = history else {
        answer.not_searched = "history off (history.retention_days = 0)".into();
        return answer;
    };
    match retro_hunt(history, &IndicatorSet::new(vec![indicator]), hunt.since_unix_ms) {
        Ok(hunted) => {
            let wire: Vec<_> = hunted.sightings.iter().map(Sighting::to_proto).collect();
            counters.retro_sightings.inc_by(spool.push(&wire).queued);
            counters.history_unreadable.inc_by(hunted.unreadable);
            answer.sightings = u32::try_from(hunted.sightings.len()).unwrap_or(u32::MAX);
            answer.hours_searched = u32::try_from(hunted.buckets).unwrap_or(u32::MAX);
            if hunted.unhuntable > 0 {
                answer.not_searched =
                    "the indicator is too wide to look up (a network wider than 256 prefixes)".into();
            }
            tracing::info!(hunt = %hunt.id, found = hunted.sightings.len(), hours = hunted.buckets, "retro-hunt answered");
        }
        Err(e) => answer.not_searched = format!("the history could not be read: {e}"),
    }
    answer
}

/// The history lookup of an indicator as the live matcher means it.
fn probe_of(kind: Kind, value: &str, exact_only: bool) -> Option<Probe> {
    Some(match kind {
        Kind::Domain => Probe::Domain { name: value.to_owned(), exact: exact_only },
        Kind::Ipv4 | Kind::Ipv6 => Probe::Address(value.parse().ok()?),
        Kind::Cidr => Probe::Network(value.parse().ok()?),
        Kind::IpPort => {
            let (ip, port) = value.rsplit_once(':')?;
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            Probe::AddressPort(ip.parse().ok()?, port.parse().ok()?)
        }
        Kind::Url => Probe::Url(value.to_owned()),
        Kind::Ja3 => Probe::Ja3(value.to_owned()),
        Kind::Ja4 => Probe::Ja4(value.to_owned()),
    })
}

/// An id that one (indicator, host, hour) always gets from this agent: 128 bits keyed by its
/// secret, so it says nothing of the indicator or the host by itself.
fn retro_id(history: &History, value: &str, kind: Kind, host: u64, hour: i64) -> String {
    let text = format!("retro|{}|{value}|{host:016x}|{hour}", kind.as_str());
    let keyer = history.keyer();
    format!("r-{:016x}{:016x}", keyer.of_label(&text, 0), keyer.of_label(&text, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdn_indicators::signing::{Publisher, parse_public_key};
    use zdn_proto::v1;

    #[test]
    fn a_hunt_is_answered_only_when_signed_by_the_pinned_key() {
        let dir = tempfile::tempdir().unwrap();
        let publisher = Publisher::load_or_create(&dir.path().join("publish.key")).unwrap();
        let pinned = parse_public_key(&publisher.public_hex()).unwrap();
        let pseudonyms = Pseudonymiser::ephemeral();
        let keyer = zdn_destination_history::Keyer::new(pseudonyms.history_key());
        let history = Arc::new(History::open(&dir.path().join("history"), keyer, 14, u64::MAX).unwrap());
        let now = zdn_timestamps::now_ms();
        let mut tap = Tap::new(history.clone(), pseudonyms, 0);
        let host: IpAddr = "10.0.0.7".parse().unwrap();
        tap.record(
            Contacted { via: Via::DnsQuery, value: Value::Name("c2.evil.example"), host },
            now - 3_600_000,
        );
        tap.snapshot();
        let spool = crate::spool::Spool::open(&dir.path().join("spool.sqlite"), 1 << 20).unwrap();
        let counters = crate::counters::Counters::default();
        let mut hunt = v1::HuntRequest {
            id: "h1".into(),
            indicator: Some(v1::Indicator {
                kind: v1::IndicatorKind::from(Kind::Domain) as i32,
                value: "evil.example".into(),
                ..Default::default()
            }),
            since_unix_ms: now - 86_400_000,
            issued_unix_ms: now,
            requested_by: "ann".into(),
            signature: Vec::new(),
        };
        let unsigned = answer_hunt(Some(&history), &pinned, &hunt, &spool, &counters);
        assert!(unsigned.not_searched.starts_with("refused"), "{unsigned:?}");
        zdn_proto::hunt::sign(&publisher, &mut hunt);
        let mut tampered = hunt.clone();
        tampered.since_unix_ms -= 86_400_000;
        assert!(
            answer_hunt(Some(&history), &pinned, &tampered, &spool, &counters)
                .not_searched
                .starts_with("refused")
        );
        assert!(spool.is_empty(), "nothing searched, nothing queued");
        let answered = answer_hunt(Some(&history), &pinned, &hunt, &spool, &counters);
        assert_eq!((answered.sightings, answered.not_searched.as_str()), (1, ""), "{answered:?}");
        assert_eq!(spool.len(), 1);
        let mut replayed = hunt.clone();
        replayed.issued_unix_ms = now - 2 * 86_400_000;
        zdn_proto::hunt::sign(&publisher, &mut replayed);
        let old = answer_hunt(Some(&history), &pinned, &replayed, &spool, &counters);
        assert!(old.not_searched.contains("more than a day ago"), "a signed but old request: {old:?}");
        let off = answer_hunt(None, &pinned, &hunt, &spool, &counters);
        assert!(off.not_searched.contains("history off"), "{off:?}");
        assert_eq!(
            (counters.hunts_refused.get(), counters.hunts_answered.get(), counters.retro_sightings.get()),
            (3, 2, 1)
        );
    }
}
