//! Who may do what, and what they may see.
//!
//! The identity comes from the client certificate (`zdn_transport::server::Peer`, attached by
//! the TLS listener), never from a message field. Roles:
//! - agent: `Report`, `Sync`, `Heartbeat` only;
//! - analyst of the CERT (`cert_participant`) and admin: every query, every participant's name;
//! - analyst of another participant: its own sightings in full; for correlations and
//!   indicator timelines only how many other institutions, never which.

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

/// The authenticated peer of a request, if it may act in `role`.
pub fn authorise<T>(request: &Request<T>, role: Role) -> Result<Peer, Status> {
    let peer = request
        .extensions()
        .get::<Peer>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated peer on this connection"))?;
    if !peer.may(role) {
        return Err(Status::permission_denied(format!("{} may not act as {role}", peer.identity)));
    }
    Ok(peer)
}

/// The view of an analyst or admin.
pub fn view(peer: &Peer, cert_participant: &str) -> View {
    let id = &peer.identity;
    if peer.insecure || id.role == Role::Admin || id.participant == cert_participant {
        View::All
    } else {
        View::Own(id.participant.clone())
    }
}

impl View {
    /// Removes other participants' names from a correlation.
    pub fn redact_correlation(&self, c: &mut v1::Correlation) {
        if let View::Own(me) = self {
            c.includes_caller = c.participants.iter().any(|p| p == me);
            c.participants.clear();
        }
    }

    /// Removes other participants' names from an indicator timeline.
    pub fn redact_indicator(&self, d: &mut v1::IndicatorDetail) {
        if let View::Own(me) = self {
            for t in &mut d.participants {
                if &t.participant != me {
                    t.participant.clear();
                }
            }
            if let Some(c) = &mut d.correlation {
                self.redact_correlation(c);
            }
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
        let mut req = Request::new(());
        assert_eq!(authorise(&req, Role::Analyst).unwrap_err().code(), tonic::Code::Unauthenticated);
        req.extensions_mut().insert(peer("umc", Role::Agent));
        assert_eq!(authorise(&req, Role::Analyst).unwrap_err().code(), tonic::Code::PermissionDenied);
        assert!(authorise(&req, Role::Agent).is_ok());
        assert!(peer("x", Role::Admin).may(Role::Analyst));
        assert!(!peer("x", Role::Analyst).may(Role::Agent));
        assert_eq!(view(&peer("z-cert", Role::Analyst), "z-cert"), View::All);
        assert_eq!(view(&peer("umc", Role::Analyst), "z-cert"), View::Own("umc".into()));
    }

    #[test]
    fn participant_views_lose_other_names() {
        let mut c = v1::Correlation {
            participants: vec!["a".into(), "b".into()],
            participant_count: 2,
            ..Default::default()
        };
        View::Own("b".into()).redact_correlation(&mut c);
        assert!(c.participants.is_empty() && c.includes_caller && c.participant_count == 2);
        let mut d = v1::IndicatorDetail {
            participants: vec![
                v1::ParticipantTimeline { participant: "a".into(), ..Default::default() },
                v1::ParticipantTimeline { participant: "b".into(), ..Default::default() },
            ],
            ..Default::default()
        };
        View::Own("b".into()).redact_indicator(&mut d);
        assert_eq!(d.participants[0].participant, "");
        assert_eq!(d.participants[1].participant, "b");
    }
}
