//! Analysts' retro-hunts: `StartHunt` signs a request with the publishing key, every agent's
//! sync stream carries it (also to agents that connect later, for `zdn_proto::hunt::ACTIVE_MS`), agents
//! answer in their heartbeats, and `GetHunt` shows the coverage ("27 of 30 agents answered,
//! 2 hits"). The retro sightings themselves arrive like any sighting.
//!
//! Hunts live in memory: the request is in the audit log and its sightings in the store, but
//! the coverage of a hunt is lost when the collector restarts, and with several collector
//! instances each sees the answers of the agents heartbeating to it.

use super::analyst::Analyst;
use super::blocking;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use zdn_indicators::Kind;
use zdn_proto::v1;
use zdn_timestamps::now_ms;

/// Hunts remembered at most (the oldest is forgotten first).
const MAX_HUNTS: usize = 64;
const DEFAULT_DAYS: u32 = 14;

struct Hunt {
    request: v1::HuntRequest,
    asked: u32,
    answers: BTreeMap<(String, String), v1::HuntAgentAnswer>,
}

/// The hunts of this collector.
pub struct Hunts {
    active: watch::Sender<Arc<Vec<v1::HuntRequest>>>,
    hunts: Mutex<HashMap<String, Hunt>>,
}

impl Default for Hunts {
    fn default() -> Self {
        Hunts { active: watch::Sender::new(Arc::new(Vec::new())), hunts: Mutex::new(HashMap::new()) }
    }
}

impl Hunts {
    /// The active hunts, for a sync stream.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<v1::HuntRequest>>> {
        self.active.subscribe()
    }

    fn start(&self, request: v1::HuntRequest, asked: u32) {
        let mut hunts = self.hunts.lock().unwrap_or_else(|p| p.into_inner());
        if hunts.len() >= MAX_HUNTS
            && let Some(oldest) =
                hunts.values().min_by_key(|h| h.request.issued_unix_ms).map(|h| h.request.id.clone())
        {
            hunts.remove(&oldest);
        }
        hunts.insert(request.id.clone(), Hunt { request, asked, answers: BTreeMap::new() });
        let now = now_ms();
        let mut active: Vec<v1::HuntRequest> = hunts
            .values()
            .filter(|h| zdn_proto::hunt::is_active(&h.request, now))
            .map(|h| h.request.clone())
            .collect();
        active.sort_by_key(|h| h.issued_unix_ms);
        self.active.send_replace(Arc::new(active));
    }

    /// Records what an agent answered (answers to unknown hunts are ignored).
    pub fn answered(&self, participant: &str, agent: &str, answers: &[v1::HuntAnswer], now: i64) {
        let mut hunts = self.hunts.lock().unwrap_or_else(|p| p.into_inner());
        for a in answers {
            let Some(hunt) = hunts.get_mut(&a.hunt_id) else { continue };
            tracing::info!(hunt = %a.hunt_id, participant, agent, sightings = a.sightings, not_searched = %a.not_searched, "hunt answered");
            hunt.answers.insert(
                (participant.to_owned(), agent.to_owned()),
                v1::HuntAgentAnswer {
                    participant: participant.to_owned(),
                    agent: agent.to_owned(),
                    sightings: a.sightings,
                    hours_searched: a.hours_searched,
                    not_searched: a.not_searched.chars().take(200).collect(),
                    answered_unix_ms: now,
                },
            );
        }
    }

    fn status(&self, id: &str) -> Option<v1::HuntStatus> {
        let hunts = self.hunts.lock().unwrap_or_else(|p| p.into_inner());
        let hunt = hunts.get(id)?;
        let r = &hunt.request;
        let indicator = r.indicator.clone().unwrap_or_default();
        Some(v1::HuntStatus {
            id: r.id.clone(),
            indicator: indicator.value,
            kind: zdn_proto::kind_from_wire(indicator.kind).map_or("unknown", Kind::as_str).to_owned(),
            since_unix_ms: r.since_unix_ms,
            issued_unix_ms: r.issued_unix_ms,
            requested_by: r.requested_by.clone(),
            agents_asked: hunt.asked,
            answers: hunt.answers.values().cloned().collect(),
        })
    }
}

impl Analyst {
    pub(super) async fn start_hunt_call(
        &self,
        request: Request<v1::StartHuntRequest>,
    ) -> Result<Response<v1::HuntStatus>, Status> {
        let refusal = "hunts are asked by the CERT's analysts";
        let peer = self.cert_only(&request, "start_hunt", refusal).await?;
        let r = request.into_inner();
        let days = match r.days {
            0 => DEFAULT_DAYS,
            d @ 1..=366 => d,
            d => return Err(Status::invalid_argument(format!("days {d}: 1 to 366"))),
        };
        let parsed = zdn_indicators::parse_plain("hunt", r.indicator.trim());
        let indicator = match (parsed.indicators.as_slice(), parsed.report.rejected.first()) {
            ([one], _) => one.clone(),
            (_, Some(rejected)) => {
                return Err(Status::invalid_argument(format!(
                    "indicator {:?}: {}",
                    r.indicator, rejected.reason
                )));
            }
            _ => return Err(Status::invalid_argument("name one indicator")),
        };
        let now = now_ms();
        let mut hunt = v1::HuntRequest {
            id: format!("hunt-{now:x}-{:04x}", rand_suffix()),
            indicator: Some(v1::Indicator {
                kind: v1::IndicatorKind::from(indicator.kind) as i32,
                value: indicator.value.clone(),
                ..Default::default()
            }),
            since_unix_ms: now - i64::from(days) * 86_400_000,
            issued_unix_ms: now,
            requested_by: peer.identity.to_string(),
            signature: Vec::new(),
        };
        self.shared.publishing.sign_hunt(&mut hunt);
        let (store, stale_ms) = (self.shared.store.clone(), self.shared.config.stale_after_ms());
        let agents = blocking(move || store.fleet(now, stale_ms)).await?;
        let asked = agents.iter().filter(|a| !a.stale).count() as u32;
        tracing::info!(hunt = %hunt.id, indicator = %indicator.value, days, asked, by = %peer.identity, "hunt started");
        let id = hunt.id.clone();
        self.shared.hunts.start(hunt, asked);
        Ok(Response::new(self.shared.hunts.status(&id).expect("just started")))
    }

    pub(super) async fn get_hunt_call(
        &self,
        request: Request<v1::GetHuntRequest>,
    ) -> Result<Response<v1::HuntStatus>, Status> {
        self.cert_only(&request, "get_hunt", "hunts are the CERT's").await?;
        let id = request.into_inner().id;
        self.shared.hunts.status(&id).map(Response::new).ok_or_else(|| {
            Status::not_found(format!("no hunt {id:?} on this collector (hunts last until it restarts)"))
        })
    }
}

fn rand_suffix() -> u16 {
    let mut bytes = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    u16::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str, issued: i64) -> v1::HuntRequest {
        v1::HuntRequest { id: id.into(), issued_unix_ms: issued, ..Default::default() }
    }

    #[test]
    fn answers_make_the_coverage_and_old_hunts_leave_the_streams() {
        let hunts = Hunts::default();
        let now = now_ms();
        hunts.start(request("old", now - zdn_proto::hunt::ACTIVE_MS - 1), 2);
        hunts.start(request("new", now), 3);
        let active = hunts.subscribe().borrow().clone();
        assert_eq!(active.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["new"]);
        let answer = |sightings| v1::HuntAnswer { hunt_id: "new".into(), sightings, ..Default::default() };
        hunts.answered("umc", "gw-1", &[answer(2)], now);
        hunts.answered("umc", "gw-1", &[answer(2)], now + 1);
        hunts.answered(
            "ggz",
            "gw-1",
            &[answer(0), v1::HuntAnswer { hunt_id: "unknown".into(), ..Default::default() }],
            now,
        );
        let status = hunts.status("new").unwrap();
        assert_eq!((status.agents_asked, status.answers.len()), (3, 2), "an agent counts once");
        assert_eq!(status.answers.iter().map(|a| a.sightings).sum::<u32>(), 2);
        assert!(hunts.status("unknown").is_none());
    }
}
