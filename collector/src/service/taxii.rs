//! What the TAXII API root (`crate::taxii::api`) asks of the analyst service: admission (the
//! role, the audit entry) and the caller's view of the sightings.

use super::analyst::{Analyst, MAX_EXPORT, MAX_LIMIT, every_sighting};
use super::blocking;
use crate::access::View;
use crate::store::SightingFilter;
use tonic::{Request, Status};
use zdn_proto::v1;

/// One TAXII read, as the audit log records it.
#[derive(Debug)]
pub struct TaxiiRead {
    pub path: String,
    pub query: String,
}

impl Analyst {
    /// Admits a TAXII read by an analyst or admin (audited as `taxii`), with the caller's view.
    pub async fn taxii_view(&self, request: &Request<TaxiiRead>) -> Result<View, Status> {
        self.view(request, "taxii").await
    }

    /// Every sighting in `view` (newest first), at most as many as an export may hold.
    pub async fn taxii_sightings(&self, view: &View) -> Result<Vec<v1::StoredSighting>, Status> {
        let participant = match view {
            View::All => None,
            View::Own(me) => Some(me.clone()),
        };
        let store = self.shared.store.clone();
        blocking(move || {
            let filter = SightingFilter {
                indicator: None,
                participant: participant.as_deref(),
                since_ms: None,
                until_ms: None,
                before_row: None,
                limit: MAX_LIMIT,
            };
            every_sighting(store.as_ref(), filter, MAX_EXPORT)
        })
        .await?
        .ok_or_else(|| {
            Status::out_of_range(format!(
                "more than {MAX_EXPORT} sightings: use zdn export with a time range"
            ))
        })
    }
}
