//! Wire enums ⇄ the shared model. Unknown wire values are an error the caller reports (a newer
//! peer may send kinds this build does not know), never a silent default.

use crate::v1;
use zdn_indicators::{Kind, Via};

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

#[cfg(test)]
mod tests {
    use super::*;

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
