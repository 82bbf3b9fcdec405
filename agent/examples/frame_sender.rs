//! A traffic sender for live-capture benchmarks, faster than tcpreplay: it loads the Ethernet
//! frames of capture files into memory once and sends them out of an interface through a raw
//! AF_PACKET socket, up to 256 frames per `sendmmsg(2)` call, bypassing the qdisc
//! (PACKET_QDISC_BYPASS). On a veth pair that is the kernel's fastest path short of a TX ring,
//! and it lets `agent/benches/live-veth.sh` find the rate where the agent starts to drop.
//!
//! ```text
//! frame_sender --interface veth-a [--pps=N | --topspeed] [--loop=N] CAPTURE...
//! frame_sender --write mix.pcap [--pps=N] [--loop=N] CAPTURE...
//! ```
//! With `--write`, the same frames go into one pcap file instead (timestamped at `--pps`,
//! 100,000/s by default): the large mixed capture of the whole-process `replay` benchmark.
//! Prints frames sent, seconds and the achieved rate; a damaged capture is sent up to the damage. Needs CAP_NET_RAW (root). Only for
//! interfaces the benchmark created itself (a veth between two namespaces).

use clap::Parser;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use zdn_agent::capture;
use zdn_agent::decode::LinkType;

/// Frames handed to the kernel per system call.
const BATCH: usize = 256;

#[derive(Parser)]
#[command(about = "Send capture files' Ethernet frames out of an interface with sendmmsg")]
struct Args {
    /// The interface to send on (e.g. veth-a).
    #[arg(long, required_unless_present = "write", conflicts_with = "write")]
    interface: Option<String>,
    /// Write the frames into this pcap file instead of sending them.
    #[arg(long)]
    write: Option<PathBuf>,
    /// Packets per second; without it (or with --topspeed), as fast as the kernel takes them.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pps: Option<u64>,
    /// As fast as possible (the default; tcpreplay's flag, accepted for symmetry).
    #[arg(long, conflicts_with = "pps")]
    topspeed: bool,
    /// How many times to send the captures.
    #[arg(long = "loop", default_value_t = 1)]
    loops: u64,
    /// Capture files (pcap or pcapng); frames of other link types are skipped and counted.
    #[arg(required = true)]
    captures: Vec<PathBuf>,
}

/// A bound raw socket that sends whole Ethernet frames.
struct FrameSocket {
    fd: libc::c_int,
}

impl FrameSocket {
    fn open(interface: &str) -> io::Result<FrameSocket> {
        let name = std::ffi::CString::new(interface).map_err(io::Error::other)?;
        // SAFETY: plain system calls on values we own; every result is checked.
        unsafe {
            let index = libc::if_nametoindex(name.as_ptr());
            if index == 0 {
                return Err(io::Error::other(format!("no interface {interface}")));
            }
            // Protocol 0: the socket sends only, it receives nothing.
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let socket = FrameSocket { fd };
            let mut address: libc::sockaddr_ll = std::mem::zeroed();
            address.sll_family = libc::AF_PACKET as u16;
            address.sll_ifindex = index as i32;
            let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            if libc::bind(fd, std::ptr::from_ref(&address).cast(), len) != 0 {
                return Err(io::Error::last_os_error());
            }
            socket.set(libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)?;
            socket.set(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 64 << 20)?;
            Ok(socket)
        }
    }

    fn set(&self, level: libc::c_int, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
        let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: setsockopt(2) with a correctly sized int on a socket we own.
        match unsafe { libc::setsockopt(self.fd, level, option, std::ptr::from_ref(&value).cast(), size) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// Sends as many of `messages` as the kernel takes now; `Ok(0)` when its buffer is full.
    fn send(&self, messages: &mut [libc::mmsghdr]) -> io::Result<usize> {
        // SAFETY: every header points at an iovec and a frame that outlive the call.
        let sent = unsafe { libc::sendmmsg(self.fd, messages.as_mut_ptr(), messages.len() as u32, 0) };
        match sent {
            n if n >= 0 => Ok(n as usize),
            _ => match io::Error::last_os_error() {
                e if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) => Ok(0),
                e => Err(e),
            },
        }
    }
}

impl Drop for FrameSocket {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // Frames longer than the interface takes (captures of offloaded segments) are skipped.
    let mtu: usize = match &args.interface {
        Some(interface) => {
            let mtu_file = format!("/sys/class/net/{interface}/mtu");
            std::fs::read_to_string(&mtu_file)
                .map_err(|e| format!("no interface {interface} ({mtu_file}: {e})"))?
                .trim()
                .parse()?
        }
        None => usize::MAX - 18,
    };
    let (mut frames, mut skipped, mut too_long) = (Vec::<Vec<u8>>::new(), 0u64, 0u64);
    let mut damaged = 0;
    for path in &args.captures {
        let read = capture::read_file(path, |frame| match frame.link {
            // Ethernet header, and room for an 802.1Q tag.
            Some(LinkType::Ethernet) if frame.data.len() > mtu + 18 => too_long += 1,
            Some(LinkType::Ethernet) if frame.data.len() >= 14 => frames.push(frame.data.to_vec()),
            _ => skipped += 1,
        });
        // Some test captures are cut short on purpose: their frames up to the damage are sent.
        if let Err(e) = read {
            eprintln!("{e} (frames before it are kept)");
            damaged += 1;
        }
    }
    if frames.is_empty() {
        return Err("the captures hold no Ethernet frames".into());
    }
    let total = frames.len() as u64 * args.loops;
    if let Some(path) = &args.write {
        write_capture(path, &frames, total, args.pps.unwrap_or(100_000))?;
        println!(
            "wrote {total} frames ({} per pass, {skipped} not Ethernet skipped) to {}",
            frames.len(),
            path.display()
        );
        return Ok(());
    }
    let socket = FrameSocket::open(args.interface.as_deref().unwrap_or_default())?;
    // One iovec and one message header per frame, built once; a batch is a window over them.
    let mut iovecs: Vec<libc::iovec> = frames
        .iter()
        .map(|f| libc::iovec { iov_base: f.as_ptr().cast_mut().cast(), iov_len: f.len() })
        .collect();
    let mut messages: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: an all-zero mmsghdr is valid (no name, no control data).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();

    let interval = args.pps.filter(|_| !args.topspeed).map(|pps| Duration::from_secs_f64(1.0 / pps as f64));
    let (start, mut sent, mut full) = (Instant::now(), 0u64, 0u64);
    while sent < total {
        let at = (sent % frames.len() as u64) as usize;
        let want = BATCH.min(frames.len() - at).min((total - sent) as usize);
        if let Some(interval) = interval {
            // Paced: wait until the first frame of this batch is due.
            let due = start + interval.mul_f64(sent as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        match socket.send(&mut messages[at..at + want])? {
            0 => {
                full += 1;
                std::thread::yield_now();
            }
            n => sent += n as u64,
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} frames ({} per pass, {skipped} not Ethernet and {too_long} over the MTU skipped, {damaged} damaged captures) in {seconds:.3} s = {:.0} packets/s; \
         {full} calls found the send buffer full",
        frames.len(),
        sent as f64 / seconds
    );
    Ok(())
}

/// Writes `total` frames, cycling through `frames`, into a pcap timestamped `pps` apart.
fn write_capture(
    path: &std::path::Path,
    frames: &[Vec<u8>],
    total: u64,
    pps: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut writer = pcap_file::pcap::PcapWriter::new(file)?;
    let gap_ns = 1_000_000_000 / pps;
    for i in 0..total {
        let frame = &frames[(i % frames.len() as u64) as usize];
        let at = Duration::from_nanos(i * gap_ns);
        writer.write_packet(&pcap_file::pcap::PcapPacket::new(at, frame.len() as u32, frame))?;
    }
    Ok(())
}
