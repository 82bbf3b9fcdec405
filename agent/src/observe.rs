//! `zdn-agent observe`: every observable the extractors find in capture files, matched or not
//! — for triage, and to compare the agent's eyes with other tools' (tshark, Suricata). The
//! frames take the packet path of live capture ([`PacketPath::observe`]), without a matcher.

use crate::capture::{self, CaptureError};
use crate::packet_path::{PacketPath, PathStats};
use serde::Serialize;
use std::net::IpAddr;
use std::path::Path;
use zdn_dissect::extract::Observation;
use zdn_timestamps::format_unix_ms;

/// One observable as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub time: String,
    /// The mechanism (`dns_query`, `tls_sni`, `ja4`, ...), for a blind spot `blind:<what>`,
    /// for context `tls_alpn` or `http_user_agent`.
    pub via: String,
    pub value: String,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub dst_port: u16,
}

/// Calls `each` with every observable of the captures, in order; returns the packet path's
/// counters.
pub fn observe(
    pcaps: &[impl AsRef<Path>],
    mut each: impl FnMut(Observed),
) -> Result<PathStats, CaptureError> {
    let mut path = PacketPath::default();
    for pcap in pcaps {
        capture::read_file(pcap.as_ref(), |frame| {
            let ts_ms = frame.ts_ns / 1_000_000;
            path.observe(&frame, |packet, o| {
                let (via, value) = match o {
                    Observation::Seen { via, value, .. } => (via.as_str().to_owned(), value.to_string()),
                    Observation::Blind { spot, value } => {
                        (format!("blind:{}", spot.name()), value.to_string())
                    }
                    Observation::Attribute { name, value } => (name.to_owned(), value.to_owned()),
                };
                each(Observed {
                    time: format_unix_ms(ts_ms),
                    via,
                    value,
                    src: packet.src,
                    dst: packet.dst,
                    dst_port: packet.transport.dst_port(),
                });
            });
        })?;
    }
    Ok(path.stats())
}
