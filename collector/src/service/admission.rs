//! How an analyst call is admitted: the caller authorised for its role, a scope rule applied
//! (a participant analyst asks only about its own institution), and the call written to the
//! audit log *before* it is answered — as `<call>` when admitted, as `refused:<call>` when
//! refused, by role or by scope. A call that cannot be audited is not answered.

use super::analyst::{Analyst, non_empty};
use super::blocking;
use crate::access::{View, authorise, view};
use tonic::{Request, Status};
use zdn_timestamps::now_ms;
use zdn_transport::Role;
use zdn_transport::server::Peer;

/// The participant filter a caller may use: anything for the CERT's view, only its own
/// institution (also when it names none) for a participant analyst.
fn scope(view: &View, requested: &str) -> Result<Option<String>, Status> {
    match (view, non_empty(requested)) {
        (View::All, p) => Ok(p.map(str::to_owned)),
        (View::Own(me), None) => Ok(Some(me.clone())),
        (View::Own(me), Some(p)) if p == me => Ok(Some(me.clone())),
        (View::Own(_), Some(_)) => {
            Err(Status::permission_denied("participant analysts see only their own sightings"))
        }
    }
}

impl Analyst {
    /// The caller's view, once the call is in the audit log: a call that cannot be audited
    /// is not answered.
    pub(super) async fn view<T: std::fmt::Debug>(
        &self,
        request: &Request<T>,
        action: &'static str,
    ) -> Result<View, Status> {
        self.audited(request, Role::Analyst, action)
            .await
            .map(|peer| view(&peer, &self.shared.config.cert_participant))
    }

    /// The participant filter the caller may use (see [`scope`]); a filter naming another
    /// institution is refused and audited as `refused:<action>`.
    pub(super) async fn scoped<T: std::fmt::Debug>(
        &self,
        request: &Request<T>,
        action: &'static str,
        requested: impl FnOnce(&T) -> &str,
    ) -> Result<Option<String>, Status> {
        let cert = &self.shared.config.cert_participant;
        let detail = format!("{:?}", request.get_ref());
        let requested = requested(request.get_ref());
        let check = |peer: &Peer| scope(&view(peer, cert), requested);
        self.admitted(request, Role::Analyst, action, detail, check).await.map(|(_, scoped)| scoped)
    }

    /// [`Self::view`] for calls only the CERT's analysts and admins may make.
    pub(super) async fn cert_only<T: std::fmt::Debug>(
        &self,
        request: &Request<T>,
        action: &'static str,
        refusal: &'static str,
    ) -> Result<Peer, Status> {
        let cert = &self.shared.config.cert_participant;
        let check = |peer: &Peer| match view(peer, cert) {
            View::All => Ok(()),
            View::Own(_) => Err(Status::permission_denied(refusal)),
        };
        let detail = format!("{:?}", request.get_ref());
        self.admitted(request, Role::Analyst, action, detail, check).await.map(|(peer, ())| peer)
    }

    pub(super) async fn audited<T: std::fmt::Debug>(
        &self,
        request: &Request<T>,
        role: Role,
        action: &'static str,
    ) -> Result<Peer, Status> {
        self.audited_as(request, role, action, format!("{:?}", request.get_ref())).await
    }

    /// [`Self::audited`] with the arguments as `detail` says them (for calls whose request is
    /// too large to log whole).
    pub(super) async fn audited_as<T>(
        &self,
        request: &Request<T>,
        role: Role,
        action: &'static str,
        detail: String,
    ) -> Result<Peer, Status> {
        self.admitted(request, role, action, detail, |_| Ok(())).await.map(|(peer, ())| peer)
    }

    /// Authorises the call for `role`, applies `check` (a scope rule) and writes the audit
    /// entry: `action` when it is admitted, `refused:<action>` when either refused it (an
    /// agent or a participant's analyst trying what it may not is worth knowing about).
    async fn admitted<T, R>(
        &self,
        request: &Request<T>,
        role: Role,
        action: &'static str,
        detail: String,
        check: impl FnOnce(&Peer) -> Result<R, Status>,
    ) -> Result<(Peer, R), Status> {
        let decided = authorise(request, role, &self.shared.config.cert_participant)
            .and_then(|peer| check(&peer).map(|checked| (peer, checked)));
        match decided {
            Ok((peer, checked)) => {
                tracing::info!(caller = %peer.identity, action, "analyst query");
                let (store, identity) = (self.shared.store.clone(), peer.identity.clone());
                blocking(move || store.audit(now_ms(), &identity, action, &detail)).await?;
                Ok((peer, checked))
            }
            Err(refused) => {
                if let Some(peer) = request.extensions().get::<Peer>() {
                    let (store, identity) = (self.shared.store.clone(), peer.identity.clone());
                    let action = format!("refused:{action}");
                    if let Err(e) = blocking(move || store.audit(now_ms(), &identity, &action, &detail)).await
                    {
                        tracing::error!(error = %e, "could not audit a refused call");
                    }
                }
                Err(refused)
            }
        }
    }
}
