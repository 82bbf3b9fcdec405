//! Live capture through pnet's AF_PACKET datalink: one worker thread per interface.
//!
//! Opening the socket needs CAP_NET_RAW (and CAP_NET_ADMIN for promiscuous mode); without it
//! the error says so. Frames are stamped with the wall clock when read. The read times out
//! every [`TICK`] so an idle link still closes aggregation windows and flushes the spool
//! buffer, and the worker sees the stop flag.
//! Not yet (issue 3): PACKET_FANOUT across several workers, a TPACKET_V3 ring, and the
//! kernel's drop counters (pnet does not expose the socket to read PACKET_STATISTICS).

use crate::capture::Frame;
use crate::decode::LinkType;
use crate::pipeline::Pipeline;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest a worker blocks in a read.
pub const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no interface named {0:?} (see `ip link`)")]
    NoSuchInterface(String),
    #[error(
        "cannot capture on {interface}: {source} (the agent needs CAP_NET_RAW, and CAP_NET_ADMIN for promiscuous mode)"
    )]
    Open { interface: String, source: std::io::Error },
    #[error("{0}: not an Ethernet-framed interface")]
    NotEthernet(String),
    #[error("capture on {interface} failed: {source}")]
    Read { interface: String, source: std::io::Error },
}

/// A receiving socket on one interface.
pub struct LiveCapture {
    interface: String,
    rx: Box<dyn pnet_datalink::DataLinkReceiver>,
}

impl LiveCapture {
    /// Opens `interface`; fails at once (not in the worker) if the agent lacks the privilege.
    pub fn open(interface: &str, promiscuous: bool) -> Result<LiveCapture, LiveError> {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == interface)
            .ok_or_else(|| LiveError::NoSuchInterface(interface.to_owned()))?;
        let config = pnet_datalink::Config {
            read_timeout: Some(TICK),
            promiscuous,
            ..pnet_datalink::Config::default()
        };
        match pnet_datalink::channel(&iface, config) {
            Ok(pnet_datalink::Channel::Ethernet(_tx, rx)) => {
                Ok(LiveCapture { interface: interface.to_owned(), rx })
            }
            Ok(_) => Err(LiveError::NotEthernet(interface.to_owned())),
            Err(source) => Err(LiveError::Open { interface: interface.to_owned(), source }),
        }
    }

    /// Feeds `pipeline` until `stop` is set, then flushes it.
    pub fn run(mut self, pipeline: &mut Pipeline, stop: &AtomicBool) -> Result<(), LiveError> {
        let result = loop {
            if stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            let now_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
            match self.rx.next() {
                Ok(data) => pipeline.frame(&Frame {
                    ts_ns: now_ns,
                    link: Some(LinkType::Ethernet),
                    linktype: 1,
                    data,
                }),
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) =>
                {
                    pipeline.tick(now_ns / 1_000_000)
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => break Err(LiveError::Read { interface: self.interface.clone(), source }),
            }
        };
        pipeline.finish();
        result
    }
}
