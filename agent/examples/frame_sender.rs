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
use zdn_dissect::decode::LinkType;

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

/// The frames to send, and what was left out of them.
struct Frames {
    frames: Vec<Vec<u8>>,
    not_ethernet: u64,
    too_long: u64,
    damaged: u64,
}

/// The Ethernet frames of `captures` that fit an interface of `mtu`. A damaged capture gives
/// its frames up to the damage (some test captures are cut short on purpose).
fn load(captures: &[PathBuf], mtu: usize) -> Result<Frames, String> {
    let mut out = Frames { frames: Vec::new(), not_ethernet: 0, too_long: 0, damaged: 0 };
    for path in captures {
        let read = capture::read_file(path, |frame| match frame.link {
            // Ethernet header, and room for an 802.1Q tag.
            Some(LinkType::Ethernet) if frame.data.len() > mtu.saturating_add(18) => out.too_long += 1,
            Some(LinkType::Ethernet) if frame.data.len() >= 14 => out.frames.push(frame.data.to_vec()),
            _ => out.not_ethernet += 1,
        });
        if let Err(e) = read {
            eprintln!("{e} (its frames up to the error are kept)");
            out.damaged += 1;
        }
    }
    match out.frames.is_empty() {
        true => Err("the captures hold no Ethernet frames".into()),
        false => Ok(out),
    }
}

/// The MTU of `interface`, which frames must fit.
fn mtu_of(interface: &str) -> Result<usize, String> {
    let mtu_file = format!("/sys/class/net/{interface}/mtu");
    let text = std::fs::read_to_string(&mtu_file)
        .map_err(|e| format!("no interface {interface} ({mtu_file}: {e})"))?;
    text.trim().parse().map_err(|e| format!("{mtu_file}: {e}"))
}

/// How long the kernel may refuse every frame before the sender gives up.
const STALL_LIMIT: Duration = Duration::from_secs(5);

/// Sends `total` frames, cycling through `frames`, one frame per `interval` if paced. Returns
/// how many calls found the send buffer full.
fn send(socket: &FrameSocket, frames: &[Vec<u8>], total: u64, interval: Option<Duration>) -> io::Result<u64> {
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
    let (start, mut sent, mut full, mut progress) = (Instant::now(), 0u64, 0u64, Instant::now());
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
            0 if progress.elapsed() > STALL_LIMIT => {
                return Err(io::Error::other(format!("the kernel took no frame for {STALL_LIMIT:?}")));
            }
            0 => {
                full += 1;
                std::thread::yield_now();
            }
            n => {
                sent += n as u64;
                progress = Instant::now();
            }
        }
    }
    Ok(full)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // Frames longer than the interface takes (captures of offloaded segments) are skipped.
    let mtu = match &args.interface {
        Some(interface) => mtu_of(interface)?,
        None => usize::MAX,
    };
    let loaded = load(&args.captures, mtu)?;
    let (frames, total) = (&loaded.frames, loaded.frames.len() as u64 * args.loops);
    let skipped = format!(
        "{} per pass; {} not Ethernet and {} over the MTU skipped, {} damaged captures",
        frames.len(),
        loaded.not_ethernet,
        loaded.too_long,
        loaded.damaged
    );
    if let Some(path) = &args.write {
        write_capture(path, frames, total, args.pps.unwrap_or(100_000))?;
        println!("wrote {total} frames ({skipped}) to {}", path.display());
        return Ok(());
    }
    let socket = FrameSocket::open(args.interface.as_deref().unwrap_or_default())?;
    let interval = args.pps.filter(|_| !args.topspeed).map(|pps| Duration::from_secs_f64(1.0 / pps as f64));
    let start = Instant::now();
    let full = send(&socket, frames, total, interval)?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "sent {total} frames ({skipped}) in {seconds:.3} s = {:.0} packets/s; {full} calls found the send buffer full",
        total as f64 / seconds
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from([&["frame_sender"], args].concat())
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert!(parse(&["--interface", "veth-a", "--pps=0", "x.pcap"]).is_err(), "a rate of zero");
        assert!(parse(&["--interface", "veth-a", "--write", "out.pcap", "x.pcap"]).is_err(), "both outputs");
        assert!(parse(&["x.pcap"]).is_err(), "no output");
        assert!(parse(&["--write", "out.pcap"]).is_err(), "no capture");
        assert!(parse(&["--interface", "veth-a", "--pps=230000", "--loop=3", "x.pcap"]).is_ok());
        let err = mtu_of("zdn-no-such-if").unwrap_err();
        assert!(err.contains("no interface zdn-no-such-if"), "{err}");
    }

    #[test]
    fn frames_are_loaded_and_written_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("one.pcap"), dir.path().join("two.pcap"));
        zdn_sample_traffic::write_storm(&one, 3, 3, 1000).unwrap();
        zdn_sample_traffic::write_storm(&two, 2, 2, 1000).unwrap();
        let missing = dir.path().join("missing.pcap");
        let loaded = load(&[one.clone(), missing.clone(), two], usize::MAX).unwrap();
        assert_eq!((loaded.frames.len(), loaded.damaged, loaded.not_ethernet), (5, 1, 0));
        // An MTU too small for a SYN frame (54 bytes) skips every frame, which is an error.
        assert!(load(std::slice::from_ref(&one), 20).err().unwrap().contains("no Ethernet frames"));
        assert!(load(&[missing], usize::MAX).is_err());

        let out = dir.path().join("out.pcap");
        write_capture(&out, &loaded.frames, 12, 100_000).unwrap();
        let mut read = Vec::new();
        capture::read_file(&out, |f| read.push((f.ts_ns, f.data.to_vec()))).unwrap();
        assert_eq!(read.len(), 12);
        for (i, (ts_ns, data)) in read.iter().enumerate() {
            assert_eq!(data, &loaded.frames[i % 5], "frame {i} cycles through the loaded ones");
            assert_eq!(*ts_ns, i as i64 * 10_000, "100,000 frames/s of packet time");
        }
    }
}
