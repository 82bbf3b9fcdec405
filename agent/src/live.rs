//! Live capture through pnet's AF_PACKET datalink: `workers` threads per interface, joined in
//! one PACKET_FANOUT group hashed by flow, so each flow's packets reach one worker (whose
//! stream reassembly and aggregation then see all of it).
//!
//! The socket is opened here and handed to pnet (`Config::socket_fd`) so that its kernel
//! statistics (PACKET_STATISTICS: packets the kernel dropped because the worker was too slow)
//! can be read every [`STATS_EVERY`] and counted. Opening needs CAP_NET_RAW (and CAP_NET_ADMIN
//! for promiscuous mode); without it the error says so. Frames are stamped with the wall clock
//! when read. The read times out every [`TICK`] so an idle link still closes aggregation
//! windows, flushes the spool buffer, and sees the stop flag.
//! Known limit: no TPACKET_V3 ring yet; pnet copies each frame out of the socket with one
//! `recvfrom`.

use crate::capture::Frame;
use crate::pipeline::Pipeline;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zdn_dissect::decode::LinkType;

/// Longest a worker blocks in a read.
pub const TICK: Duration = Duration::from_millis(100);
/// How often the kernel's drop counter is read.
pub const STATS_EVERY: Duration = Duration::from_secs(1);
/// Largest frame read: GRO/GSO hand the socket segments far above the MTU.
const MAX_FRAME: usize = 256 * 1024;

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

/// Bytes of kernel receive buffer asked for per socket: room for ~0.1 s of a busy gigabit
/// link, so bursts wait in the kernel instead of being dropped.
const RECEIVE_BUFFER: i32 = 32 << 20;

/// Asks for [`RECEIVE_BUFFER`]: beyond `net.core.rmem_max` with CAP_NET_ADMIN
/// (SO_RCVBUFFORCE), else as much as the sysctl allows (SO_RCVBUF).
// setsockopt(2) has no safe wrapper in pnet or libc.
#[allow(unsafe_code)]
fn enlarge_receive_buffer(fd: i32) {
    let size = RECEIVE_BUFFER;
    let set = |option| {
        // SAFETY: setsockopt(2) with a correctly sized int on a socket we own.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&raw const size).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            ) == 0
        }
    };
    if !set(libc::SO_RCVBUFFORCE) && !set(libc::SO_RCVBUF) {
        tracing::warn!(error = %std::io::Error::last_os_error(), "capture receive buffer left at its default");
    }
}

/// A receiving socket on one interface.
pub struct LiveCapture {
    interface: String,
    rx: Box<dyn pnet_datalink::DataLinkReceiver>,
    /// The socket pnet reads from (pnet owns and closes it), for PACKET_STATISTICS.
    fd: i32,
}

impl LiveCapture {
    /// Opens `workers` sockets on `interface`, in one fanout group when there are several;
    /// fails at once (not in the workers) if the agent lacks the privilege.
    // socket(2) for AF_PACKET: pnet opens its own socket only without fanout options we need
    // to set first (the receive buffer), so we open it and hand the descriptor over.
    #[allow(unsafe_code)]
    pub fn open(interface: &str, promiscuous: bool, workers: usize) -> Result<Vec<LiveCapture>, LiveError> {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == interface)
            .ok_or_else(|| LiveError::NoSuchInterface(interface.to_owned()))?;
        let open_err = |source| LiveError::Open { interface: interface.to_owned(), source };
        // One group per agent process and interface.
        let group_id = (std::process::id() as u16) ^ (iface.index as u16).rotate_left(8);
        let fanout = (workers > 1).then_some(pnet_datalink::FanoutOption {
            group_id,
            fanout_type: pnet_datalink::FanoutType::HASH,
            defrag: true,
            rollover: false,
        });
        (0..workers.max(1))
            .map(|_| {
                // SAFETY: a plain socket(2) call; the descriptor is handed to pnet, which closes it.
                let fd = unsafe {
                    libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from((libc::ETH_P_ALL as u16).to_be()))
                };
                if fd < 0 {
                    return Err(open_err(std::io::Error::last_os_error()));
                }
                enlarge_receive_buffer(fd);
                let config = pnet_datalink::Config {
                    read_timeout: Some(TICK),
                    read_buffer_size: MAX_FRAME,
                    promiscuous,
                    linux_fanout: fanout,
                    socket_fd: Some(fd),
                    ..pnet_datalink::Config::default()
                };
                match pnet_datalink::channel(&iface, config) {
                    Ok(pnet_datalink::Channel::Ethernet(_tx, rx)) => {
                        Ok(LiveCapture { interface: interface.to_owned(), rx, fd })
                    }
                    Ok(_) => Err(LiveError::NotEthernet(interface.to_owned())),
                    Err(source) => Err(open_err(source)),
                }
            })
            .collect()
    }

    /// Packets the kernel dropped for this socket since the last call (the counter resets
    /// when read).
    // getsockopt(2) for PACKET_STATISTICS has no safe wrapper in pnet or libc.
    #[allow(unsafe_code)]
    fn kernel_drops(&self) -> u64 {
        let mut stats = libc::tpacket_stats { tp_packets: 0, tp_drops: 0 };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: getsockopt(2) into a correctly sized struct, on a socket pnet keeps open
        // while `self` lives.
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &raw mut len,
            )
        };
        if rc == 0 { u64::from(stats.tp_drops) } else { 0 }
    }

    /// Feeds `pipeline` until `stop` is set, then flushes it.
    pub fn run(mut self, pipeline: &mut Pipeline, stop: &AtomicBool) -> Result<(), LiveError> {
        let mut stats_due = std::time::Instant::now() + STATS_EVERY;
        let result = loop {
            if stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            if std::time::Instant::now() >= stats_due {
                pipeline.kernel_drops(self.kernel_drops());
                stats_due += STATS_EVERY;
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
        pipeline.kernel_drops(self.kernel_drops());
        pipeline.finish();
        result
    }
}
