//! Analysts' retro-hunts as they travel to agents: what a [`v1::HuntRequest`]'s signature
//! covers, and its signing and checking. The collector signs with the publishing key; an agent
//! honours only a request that verifies against the key it pins for indicator sets, so a hunt
//! can come only from whoever may publish indicators.

use crate::v1;
use zdn_indicators::signing::{Publisher, VerifyingKey, verify_message};

/// A hunt is carried to agents, and honoured by them, this long after it was issued: a
/// collector stops sending it then, and an agent refuses an older one (a signed request
/// replayed later asks nothing).
pub const ACTIVE_MS: i64 = 24 * 3_600_000;

/// How far ahead of an agent's clock a hunt may be issued (clocks differ a little).
const CLOCK_SKEW_MS: i64 = 10 * 60_000;

/// Whether `hunt` is still to be carried and answered at `now`.
pub fn is_active(hunt: &v1::HuntRequest, now: i64) -> bool {
    let age = now - hunt.issued_unix_ms;
    age > -CLOCK_SKEW_MS && age < ACTIVE_MS
}

/// The signature's context: a hunt's signature is never valid for anything else.
const CONTEXT: &[u8] = b"zdn hunt request v1";

/// What the signature covers: every field but the signature, each length-prefixed.
pub fn signed_bytes(h: &v1::HuntRequest) -> Vec<u8> {
    let indicator = h.indicator.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut put = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    put(h.id.as_bytes());
    put(&indicator.kind.to_be_bytes());
    put(indicator.value.as_bytes());
    put(&h.since_unix_ms.to_be_bytes());
    put(&h.issued_unix_ms.to_be_bytes());
    put(h.requested_by.as_bytes());
    out
}

/// Signs `h` in place.
pub fn sign(publisher: &Publisher, h: &mut v1::HuntRequest) {
    h.signature = publisher.sign_message(CONTEXT, &signed_bytes(h)).to_vec();
}

/// Whether `h` was signed by `pinned`, unchanged.
pub fn verify(pinned: &VerifyingKey, h: &v1::HuntRequest) -> bool {
    verify_message(pinned, CONTEXT, &signed_bytes(h), &h.signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unchanged_request_signed_by_the_pinned_key_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let publisher = Publisher::load_or_create(&dir.path().join("k")).unwrap();
        let other = Publisher::load_or_create(&dir.path().join("other")).unwrap();
        let pinned = zdn_indicators::signing::parse_public_key(&publisher.public_hex()).unwrap();
        let mut h = v1::HuntRequest {
            id: "h1".into(),
            indicator: Some(v1::Indicator { kind: 1, value: "evil.example".into(), ..Default::default() }),
            since_unix_ms: 1,
            issued_unix_ms: 2,
            requested_by: "ann".into(),
            signature: Vec::new(),
        };
        assert!(!verify(&pinned, &h), "unsigned");
        sign(&publisher, &mut h);
        assert!(verify(&pinned, &h));
        let mut tampered = h.clone();
        tampered.indicator.as_mut().unwrap().value = "other.example".into();
        assert!(!verify(&pinned, &tampered), "another indicator");
        let mut longer = h.clone();
        longer.since_unix_ms = 0;
        assert!(!verify(&pinned, &longer), "a longer look back");
        let mut foreign = h.clone();
        sign(&other, &mut foreign);
        assert!(!verify(&pinned, &foreign), "another key");
        assert!(is_active(&h, 2) && !is_active(&h, 2 + ACTIVE_MS) && !is_active(&h, 2 - CLOCK_SKEW_MS));
    }
}
