//! Who may do what, and what they may see.
//!
//! The identity comes from the client certificate (`zdn_transport::server::Peer`, attached by
//! the TLS listener), never from a message field. Roles:
//! - agent: `Report`, `Sync`, `Heartbeat` only;
//! - analyst of the CERT (`cert_participant`): every query, every participant's name;
//! - admin: what the CERT's analysts do, plus imports, exports, erasure, console tokens and
//!   the audit log. Admin is a role **of the CERT only**: an admin certificate or console token
//!   naming any other participant is refused for every call (it could otherwise read, export
//!   and erase other institutions' data), and `pki issue` and `IssueConsoleToken` refuse to
//!   make one;
//! - analyst of another participant: its own sightings in full; of incidents and indicator
//!   timelines, only how many other institutions joined and when the incident opened and last
//!   changed (collector clock) — never which, nor their times or counts. The join times of
//!   the others are shown only when at least [`K_ANONYMITY`] others joined: with one or two, a
//!   time is enough to tell which institution it was.

use tonic::{Request, Status};
use zdn_proto::v1;
use zdn_transport::Role;
use zdn_transport::server::Peer;

/// What a caller may see of other participants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    All,
    /// Only this participant's own data by name.
    Own(String),
}

/// The authenticated peer of an analyst or admin call, if it may act in `role`. An admin
/// credential of a participant other than `cert_participant` is refused whatever the call.
pub fn authorise<T>(request: &Request<T>, role: Role, cert_participant: &str) -> Result<Peer, Status> {
    let peer = peer_of(request)?;
    let id = &peer.identity;
    if id.role == Role::Admin && !peer.insecure && id.participant != cert_participant {
        return Err(Status::permission_denied(format!(
            "{id}: admin is a role of the CERT's participant ({cert_participant}) only; this credential is refused"
        )));
    }
    permitted(peer, role)
}

/// The authenticated peer of an agent's call (`Report`, `Sync`, `Heartbeat`).
pub fn authorise_agent<T>(request: &Request<T>) -> Result<Peer, Status> {
    permitted(peer_of(request)?, Role::Agent)
}

fn peer_of<T>(request: &Request<T>) -> Result<Peer, Status> {
    request
        .extensions()
        .get::<Peer>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated peer on this connection"))
}

fn permitted(peer: Peer, role: Role) -> Result<Peer, Status> {
    if peer.may(role) {
        Ok(peer)
    } else {
        Err(Status::permission_denied(format!("{} may not act as {role}", peer.identity)))
    }
}

/// The view of an analyst or admin (admins are the CERT's, see [`authorise`]).
pub fn view(peer: &Peer, cert_participant: &str) -> View {
    if peer.insecure || peer.identity.participant == cert_participant {
        View::All
    } else {
        View::Own(peer.identity.participant.clone())
    }
}

/// Fewer other institutions than this: not even their join times are shown.
pub const K_ANONYMITY: usize = 3;

impl View {
    /// Removes what a participant analyst may not see of other institutions from an incident:
    /// names, members, and the packet times and count summed over them (the caller's own
    /// stay in its member row).
    pub fn redact_correlation(&self, c: &mut v1::Correlation) {
        let View::Own(me) = self else { return };
        c.includes_caller = c.participants.iter().any(|p| p == me);
        c.participants.clear();
        let (own, others): (Vec<_>, Vec<_>) = c.members.drain(..).partition(|m| &m.participant == me);
        c.other_join_times_unix_ms = if others.len() >= K_ANONYMITY {
            let mut times: Vec<i64> = others.iter().map(|m| m.joined_unix_ms).collect();
            times.sort_unstable();
            times
        } else {
            Vec::new()
        };
        c.members = own;
        c.first_seen_unix_ms = 0;
        c.last_seen_unix_ms = 0;
        c.sightings = 0;
    }

    /// The same for an event: who joined is a count only.
    pub fn redact_event(&self, e: &mut v1::CorrelationEvent) {
        if let View::Own(_) = self {
            e.joined.clear();
            if let Some(c) = &mut e.correlation {
                self.redact_correlation(c);
            }
        }
    }

    /// The ranking: how many institutions, but not the sightings or last time summed over
    /// them (with two institutions, a sum minus one's own is the other's).
    pub fn redact_top(&self, t: &mut v1::TopIndicator) {
        if let View::Own(_) = self {
            t.sightings = 0;
            t.last_seen_unix_ms = 0;
        }
    }

    /// An indicator's timeline: only the caller's own row, and the count of the others'.
    pub fn redact_indicator(&self, d: &mut v1::IndicatorDetail) {
        let View::Own(me) = self else { return };
        d.participants.retain(|t| &t.participant == me);
        d.sightings = d.participants.iter().map(|t| t.sightings).sum();
        if let Some(c) = &mut d.correlation {
            self.redact_correlation(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use zdn_transport::Identity;

    fn peer(participant: &str, role: Role) -> Peer {
        let identity = Identity { participant: participant.into(), role, name: "n".into() };
        Peer { addr: "127.0.0.1:1".parse().unwrap(), identity: Arc::new(identity), insecure: false }
    }

    #[test]
    fn roles_decide_what_may_be_called_and_seen() {
        let call = |p: Option<Peer>, role| {
            let mut req = Request::new(());
            if let Some(p) = p {
                req.extensions_mut().insert(p);
            }
            let peer =
                if role == Role::Agent { authorise_agent(&req) } else { authorise(&req, role, "z-cert") };
            peer.map(|_| ()).map_err(|e| e.code())
        };
        assert_eq!(call(None, Role::Analyst), Err(tonic::Code::Unauthenticated));
        assert_eq!(call(Some(peer("umc", Role::Agent)), Role::Analyst), Err(tonic::Code::PermissionDenied));
        assert_eq!(call(Some(peer("umc", Role::Agent)), Role::Agent), Ok(()));
        assert_eq!(call(Some(peer("z-cert", Role::Admin)), Role::Admin), Ok(()));
        assert_eq!(call(Some(peer("z-cert", Role::Admin)), Role::Analyst), Ok(()));
        // A participant's admin credential is no credential at all: not admin, not analyst.
        for role in [Role::Admin, Role::Analyst, Role::Agent] {
            assert_eq!(call(Some(peer("umc", Role::Admin)), role), Err(tonic::Code::PermissionDenied));
        }
        assert!(peer("x", Role::Admin).may(Role::Analyst));
        assert!(!peer("x", Role::Analyst).may(Role::Agent));
        assert_eq!(view(&peer("z-cert", Role::Analyst), "z-cert"), View::All);
        assert_eq!(view(&peer("umc", Role::Analyst), "z-cert"), View::Own("umc".into()));
    }

    #[test]
    fn participant_views_keep_only_counts_of_others() {
        let member = |p: &str, joined| v1::IncidentMember {
            participant: p.into(),
            joined_unix_ms: joined,
            sightings: 5,
            ..Default::default()
        };
        let mut c = v1::Correlation {
            participants: vec!["a".into(), "b".into(), "c".into()],
            participant_count: 3,
            members: vec![member("a", 10), member("b", 20), member("c", 30)],
            first_seen_unix_ms: 1,
            last_seen_unix_ms: 2,
            sightings: 15,
            ..Default::default()
        };
        let mut full = c.clone();
        View::All.redact_correlation(&mut full);
        assert_eq!(full.members.len(), 3, "the CERT sees everything");
        View::Own("b".into()).redact_correlation(&mut c);
        assert!(c.participants.is_empty() && c.includes_caller && c.participant_count == 3);
        assert_eq!(c.members, [member("b", 20)]);
        assert!(c.other_join_times_unix_ms.is_empty(), "two others: not even their join times");
        assert_eq!((c.first_seen_unix_ms, c.last_seen_unix_ms, c.sightings), (0, 0, 0));
        let mut four = v1::Correlation {
            members: vec![member("a", 10), member("b", 20), member("c", 30), member("d", 5)],
            ..Default::default()
        };
        View::Own("b".into()).redact_correlation(&mut four);
        assert_eq!(four.other_join_times_unix_ms, [5, 10, 30]);
        let mut d = v1::IndicatorDetail {
            participants: vec![
                v1::ParticipantTimeline { participant: "a".into(), sightings: 4, ..Default::default() },
                v1::ParticipantTimeline { participant: "b".into(), sightings: 1, ..Default::default() },
            ],
            sightings: 5,
            ..Default::default()
        };
        View::Own("b".into()).redact_indicator(&mut d);
        assert_eq!((d.participants.len(), d.participants[0].participant.as_str(), d.sightings), (1, "b", 1));
        let mut e = v1::CorrelationEvent { joined: vec!["a".into()], joined_count: 1, ..Default::default() };
        View::Own("b".into()).redact_event(&mut e);
        assert!(e.joined.is_empty() && e.joined_count == 1);
    }
}
