//! Wire enums ⇄ the shared model. Unknown wire values are an error the caller reports (a newer
//! peer may send kinds this build does not know), never a silent default.

use crate::v1;
use std::sync::Arc;
use zdn_indicators::model::Meta;
use zdn_indicators::{Indicator, Kind, Via};

/// A wire enum value this build does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownEnum {
    pub name: &'static str,
    pub value: i32,
}

impl std::fmt::Display for UnknownEnum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown {} value {}", self.name, self.value)
    }
}

impl std::error::Error for UnknownEnum {}

impl From<Kind> for v1::IndicatorKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Domain => v1::IndicatorKind::Domain,
            Kind::Ipv4 => v1::IndicatorKind::Ipv4,
            Kind::Ipv6 => v1::IndicatorKind::Ipv6,
            Kind::Cidr => v1::IndicatorKind::Cidr,
            Kind::IpPort => v1::IndicatorKind::IpPort,
            Kind::Url => v1::IndicatorKind::Url,
            Kind::Ja3 => v1::IndicatorKind::Ja3,
            Kind::Ja4 => v1::IndicatorKind::Ja4,
        }
    }
}

impl TryFrom<v1::IndicatorKind> for Kind {
    type Error = UnknownEnum;
    fn try_from(kind: v1::IndicatorKind) -> Result<Self, UnknownEnum> {
        Ok(match kind {
            v1::IndicatorKind::Domain => Kind::Domain,
            v1::IndicatorKind::Ipv4 => Kind::Ipv4,
            v1::IndicatorKind::Ipv6 => Kind::Ipv6,
            v1::IndicatorKind::Cidr => Kind::Cidr,
            v1::IndicatorKind::IpPort => Kind::IpPort,
            v1::IndicatorKind::Url => Kind::Url,
            v1::IndicatorKind::Ja3 => Kind::Ja3,
            v1::IndicatorKind::Ja4 => Kind::Ja4,
            v1::IndicatorKind::Unspecified => return Err(UnknownEnum { name: "IndicatorKind", value: 0 }),
        })
    }
}

impl From<Via> for v1::Via {
    fn from(via: Via) -> Self {
        match via {
            Via::IpDst => v1::Via::IpDst,
            Via::DnsQuery => v1::Via::DnsQuery,
            Via::DnsAnswer => v1::Via::DnsAnswer,
            Via::TlsSni => v1::Via::TlsSni,
            Via::QuicSni => v1::Via::QuicSni,
            Via::HttpHost => v1::Via::HttpHost,
            Via::HttpUrl => v1::Via::HttpUrl,
            Via::Ja3 => v1::Via::Ja3,
            Via::Ja4 => v1::Via::Ja4,
        }
    }
}

impl TryFrom<v1::Via> for Via {
    type Error = UnknownEnum;
    fn try_from(via: v1::Via) -> Result<Self, UnknownEnum> {
        Ok(match via {
            v1::Via::IpDst => Via::IpDst,
            v1::Via::DnsQuery => Via::DnsQuery,
            v1::Via::DnsAnswer => Via::DnsAnswer,
            v1::Via::TlsSni => Via::TlsSni,
            v1::Via::QuicSni => Via::QuicSni,
            v1::Via::HttpHost => Via::HttpHost,
            v1::Via::HttpUrl => Via::HttpUrl,
            v1::Via::Ja3 => Via::Ja3,
            v1::Via::Ja4 => Via::Ja4,
            v1::Via::Unspecified => return Err(UnknownEnum { name: "Via", value: 0 }),
        })
    }
}

/// Decodes a raw wire `kind` field (prost keeps unknown values as `i32`).
pub fn kind_from_wire(value: i32) -> Result<Kind, UnknownEnum> {
    v1::IndicatorKind::try_from(value)
        .map_err(|_| UnknownEnum { name: "IndicatorKind", value })
        .and_then(Kind::try_from)
}

/// Decodes a raw wire `via` field.
pub fn via_from_wire(value: i32) -> Result<Via, UnknownEnum> {
    v1::Via::try_from(value).map_err(|_| UnknownEnum { name: "Via", value }).and_then(Via::try_from)
}

/// An indicator as a delta carries it (metadata inline; 0 times are unbounded).
pub fn indicator_to_wire(i: &Indicator) -> v1::Indicator {
    let m = &i.meta;
    v1::Indicator {
        id: i.id.clone().unwrap_or_default(),
        kind: v1::IndicatorKind::from(i.kind) as i32,
        value: i.value.clone(),
        source: m.source.clone(),
        event: m.event.clone(),
        tlp: m.tlp.clone(),
        confidence: u32::from(m.confidence),
        valid_from_unix_ms: m.valid_from_unix_ms.unwrap_or(0),
        valid_until_unix_ms: m.valid_until_unix_ms.unwrap_or(0),
        tags: m.tags.clone(),
        exact_only: i.exact_only,
    }
}

/// The indicator a delta carries. A confidence above 255 cannot come from this collector; it
/// is kept at 255, and the rebuilt set then fails its signature check.
pub fn indicator_from_wire(w: v1::Indicator) -> Result<Indicator, UnknownEnum> {
    let kind = kind_from_wire(w.kind)?;
    let meta = Meta {
        source: w.source,
        event: w.event,
        tlp: w.tlp,
        confidence: u8::try_from(w.confidence).unwrap_or(u8::MAX),
        valid_from_unix_ms: (w.valid_from_unix_ms != 0).then_some(w.valid_from_unix_ms),
        valid_until_unix_ms: (w.valid_until_unix_ms != 0).then_some(w.valid_until_unix_ms),
        tags: w.tags,
    };
    Ok(Indicator {
        id: (!w.id.is_empty()).then_some(w.id),
        kind,
        value: w.value,
        meta: Arc::new(meta),
        exact_only: w.exact_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_indicator_round_trips_through_the_wire() {
        let meta = Meta {
            source: "feed".into(),
            event: "emotet".into(),
            tlp: "amber".into(),
            confidence: 80,
            valid_from_unix_ms: Some(5),
            valid_until_unix_ms: None,
            tags: vec!["a".into()],
        };
        let i = Indicator {
            id: Some("uuid-1".into()),
            kind: Kind::Domain,
            value: "evil.example".into(),
            meta: Arc::new(meta),
            exact_only: true,
        };
        assert_eq!(indicator_from_wire(indicator_to_wire(&i)).unwrap(), i);
        let unknown = v1::Indicator { kind: 0, ..indicator_to_wire(&i) };
        assert!(indicator_from_wire(unknown).is_err());
    }

    #[test]
    fn every_model_value_round_trips_and_unknowns_are_errors() {
        for k in Kind::ALL {
            assert_eq!(kind_from_wire(v1::IndicatorKind::from(k) as i32), Ok(k));
        }
        for v in Via::ALL {
            assert_eq!(via_from_wire(v1::Via::from(v) as i32), Ok(v));
        }
        assert!(kind_from_wire(0).is_err());
        assert!(kind_from_wire(99).is_err());
        assert!(via_from_wire(-1).is_err());
    }
}
