//! Reading an interface through pnet's AF_PACKET socket, one `recvfrom` per packet: the
//! fallback to the ring (`capture.method = "socket"`).
//!
//! The socket is opened here and handed to pnet (`Config::socket_fd`) so that its receive
//! buffer can be enlarged first and its kernel statistics read.

use super::{LiveError, TICK, Worker, now_ns};
use crate::capture::Frame;
use crate::pipeline::Pipeline;
use zdn_dissect::decode::LinkType;

/// Largest frame read: GRO/GSO hand the socket segments far above the MTU.
const MAX_FRAME: usize = 256 * 1024;

/// Bytes of kernel receive buffer asked for per socket: room for ~0.1 s of a busy gigabit
/// link, so bursts wait in the kernel instead of being dropped.
const RECEIVE_BUFFER: i32 = 32 << 20;

/// A receiving socket on one interface.
pub(super) struct Socket {
    rx: Box<dyn pnet_datalink::DataLinkReceiver>,
    /// The socket pnet reads from (pnet owns and closes it), for PACKET_STATISTICS.
    fd: i32,
}

impl Socket {
    /// Opens a socket on `iface`, in fanout group `fanout` if given.
    // socket(2) for AF_PACKET: pnet opens its own socket only without fanout options we need
    // to set first (the receive buffer), so we open it and hand the descriptor over.
    #[allow(unsafe_code)]
    pub(super) fn open(
        iface: &pnet_datalink::NetworkInterface,
        promiscuous: bool,
        fanout: Option<u16>,
    ) -> Result<Socket, LiveError> {
        let open_err = |source| LiveError::Open { interface: iface.name.clone(), source };
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
            linux_fanout: fanout.map(|group_id| pnet_datalink::FanoutOption {
                group_id,
                fanout_type: pnet_datalink::FanoutType::HASH,
                defrag: true,
                rollover: false,
            }),
            socket_fd: Some(fd),
            ..pnet_datalink::Config::default()
        };
        match pnet_datalink::channel(iface, config) {
            Ok(pnet_datalink::Channel::Ethernet(_tx, rx)) => Ok(Socket { rx, fd }),
            Ok(_) => Err(LiveError::NotEthernet(iface.name.clone())),
            Err(source) => Err(open_err(source)),
        }
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
}

impl super::Read for Socket {
    fn step(&mut self, worker: &mut Worker, pipeline: &mut Pipeline) -> std::io::Result<()> {
        let now_ns = now_ns();
        match self.rx.next() {
            Ok(data) => {
                worker.read += 1;
                pipeline.frame(&Frame { ts_ns: now_ns, link: Some(LinkType::Ethernet), linktype: 1, data });
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {
                pipeline.tick(now_ns / 1_000_000)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn kernel_counts(&self) -> (u64, u64) {
        (self.kernel_drops(), 0)
    }
}

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
