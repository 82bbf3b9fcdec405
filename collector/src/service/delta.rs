//! Indicator deltas as the collector serves them.
//!
//! Each published version remembers the steps that led to it (one [`v1::IndicatorUpdate`] per
//! version: what was added and removed since the version before, and the new version's
//! signature); an agent that names one of those versions gets the chain of steps from there
//! instead of the whole set. A step too large to be worth it (or to fit a message) breaks the
//! chain, and agents behind it get the whole set, as do agents on versions older than the
//! chain remembers. See `zdn_indicators::set::delta` for why the agent's result is exactly
//! the set the collector signed.

use std::sync::Arc;
use zdn_indicators::set::delta::Change;
use zdn_proto::indicator_to_wire;
use zdn_proto::v1;

/// Steps remembered: agents more versions behind get the whole set.
pub const MAX_CHAIN: usize = 16;

/// Indicators (added plus removed) in one step at most; a larger change is sent whole.
pub const MAX_STEP_INDICATORS: usize = 50_000;

/// Encoded size of one step at most, well under the message size limits.
pub const MAX_STEP_BYTES: usize = 2 << 20;

/// The update that takes an agent from `base_version` to `version` by `change`, if small
/// enough; `signature` is the signature of the whole set of `version`.
pub fn step(
    base_version: u64,
    version: u64,
    change: &Change,
    signature: [u8; 64],
    key_id: &str,
) -> Option<v1::IndicatorUpdate> {
    use prost::Message;
    if change.len() > MAX_STEP_INDICATORS {
        return None;
    }
    let removed = change.removed.iter().map(|(kind, value)| v1::Indicator {
        kind: v1::IndicatorKind::from(*kind) as i32,
        value: value.clone(),
        ..Default::default()
    });
    let update = v1::IndicatorUpdate {
        version,
        base_version,
        added: change.added.iter().map(indicator_to_wire).collect(),
        removed: removed.collect(),
        signature: signature.to_vec(),
        key_id: key_id.to_owned(),
        ..Default::default()
    };
    (update.encoded_len() <= MAX_STEP_BYTES).then_some(update)
}

/// The steps after `previous` (the chain that led to the version before) followed by `next`;
/// without `next`, the chain is broken and starts again empty.
pub fn extend(
    previous: &[Arc<v1::IndicatorUpdate>],
    next: Option<v1::IndicatorUpdate>,
) -> Vec<Arc<v1::IndicatorUpdate>> {
    let Some(next) = next else { return Vec::new() };
    let keep = previous.len().min(MAX_CHAIN - 1);
    let mut chain = previous[previous.len() - keep..].to_vec();
    chain.push(Arc::new(next));
    chain
}

/// The steps from version `has` to the end of `chain`, if `has` is on it.
pub fn from(chain: &[Arc<v1::IndicatorUpdate>], has: u64) -> Option<Vec<v1::IndicatorUpdate>> {
    let start = chain.iter().position(|s| s.base_version == has)?;
    Some(chain[start..].iter().map(|s| v1::IndicatorUpdate::clone(s)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdn_indicators::Kind;
    use zdn_indicators::formats::parse_plain;

    fn change(text: &str, removed: &[&str]) -> Change {
        Change {
            added: parse_plain("t", text).indicators,
            removed: removed.iter().map(|v| (Kind::Domain, (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn chains_are_bounded_broken_by_large_steps_and_found_by_base() {
        let s = |base, version| step(base, version, &change("x.example\n", &["y.example"]), [7; 64], "k");
        let one = s(1, 2).unwrap();
        assert_eq!((one.added.len(), one.removed.len(), one.signature.len()), (1, 1, 64));
        assert_eq!(one.removed[0].value, "y.example");
        let mut chain = Vec::new();
        for v in 1..=20 {
            chain = extend(&chain, s(v, v + 1));
        }
        assert_eq!(chain.len(), MAX_CHAIN);
        assert_eq!(chain.first().unwrap().base_version, 5);
        let tail = from(&chain, 18).unwrap();
        assert_eq!(tail.iter().map(|u| u.version).collect::<Vec<_>>(), [19, 20, 21]);
        assert!(from(&chain, 2).is_none(), "too far behind: the whole set");
        assert!(from(&chain, 21).is_none(), "nothing newer than what it has");

        let big: String = (0..=MAX_STEP_INDICATORS).map(|i| format!("d{i}.example\n")).collect();
        assert!(step(1, 2, &change(&big, &[]), [0; 64], "k").is_none());
        assert!(extend(&chain, None).is_empty(), "a whole-set step breaks the chain");
    }
}
