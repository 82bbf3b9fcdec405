//! # zdn-sample-traffic
//!
//! Synthetic, deterministic traffic of three institutions, for `zdn-demo` and the end-to-end
//! tests. Written as ordinary pcap files, so every tool (tshark, the agent) reads them.
//!
//! The scenario: a campaign's domain and C2 address, seen at several hospitals, among benign
//! browsing and DNS. What should correlate is known by construction:
//! - `updates.evil-cdn.example` (domain, via `cdn.updates.evil-cdn.example` queries) at
//!   `umc-noord` and `ziekenhuis-zuid`;
//! - `203.0.113.66` (IPv4) at `umc-noord` and `ggz-oost`;
//! - `198.51.100.23:8443` (IP:port) at `ziekenhuis-zuid` only: a sighting, not a correlation.

#![forbid(unsafe_code)]

use pcap_file::pcap::{PcapPacket, PcapWriter};
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::{self, MutableIpv4Packet};
use pnet_packet::tcp::{self, MutableTcpPacket, TcpFlags};
use pnet_packet::udp::{self, MutableUdpPacket};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The indicator list of the demo scenario, in the plain-text list format.
pub const DEMO_INDICATORS: &str = "\
# ZDN demo indicators (documentation ranges and the reserved .example TLD)
updates.evil-cdn.example
203.0.113.66
198.51.100.23:8443
hxxp://phish-login[.]example/portal   # defanged, as analysts paste them
";

/// One institution of the demo.
pub struct DemoSite {
    pub participant: &'static str,
    pub home_net: &'static str,
    pub events: Vec<Event>,
}

/// One thing a host does; each becomes one packet.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// Host asks the site resolver for `name`.
    Dns { at_s: u64, host: u8, name: &'static str },
    /// Host opens a TCP connection to `dst:port`.
    Syn { at_s: u64, host: u8, dst: [u8; 4], port: u16 },
}

/// Where the demo's packet clock starts: two hours before the current hour, so a capture
/// written now is recent traffic to the collector (which keeps sightings older than its
/// `max_age_days` out of incidents, as it would an agent whose clock is far behind).
pub fn demo_epoch_s() -> u64 {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    now / 3600 * 3600 - 7200
}

pub fn demo_sites() -> Vec<DemoSite> {
    use Event::{Dns, Syn};
    vec![
        DemoSite {
            participant: "umc-noord",
            home_net: "10.10.0.0/16",
            events: vec![
                Dns { at_s: 0, host: 21, name: "intranet.umc-noord.example" },
                Dns { at_s: 5, host: 21, name: "www.wikipedia.org" },
                Syn { at_s: 6, host: 21, dst: [192, 0, 2, 10], port: 443 },
                Dns { at_s: 60, host: 37, name: "cdn.updates.evil-cdn.example" },
                Dns { at_s: 61, host: 37, name: "cdn.updates.evil-cdn.example" },
                Syn { at_s: 62, host: 37, dst: [203, 0, 113, 66], port: 443 },
                Syn { at_s: 65, host: 37, dst: [203, 0, 113, 66], port: 443 },
            ],
        },
        DemoSite {
            participant: "ziekenhuis-zuid",
            home_net: "10.20.0.0/16",
            events: vec![
                Dns { at_s: 1800, host: 5, name: "mail.ziekenhuis-zuid.example" },
                Dns { at_s: 1830, host: 9, name: "updates.evil-cdn.example" },
                Syn { at_s: 1831, host: 9, dst: [198, 51, 100, 23], port: 8443 },
                Syn { at_s: 1900, host: 5, dst: [192, 0, 2, 10], port: 443 },
            ],
        },
        DemoSite {
            participant: "ggz-oost",
            home_net: "10.30.0.0/16",
            events: vec![
                Dns { at_s: 3600, host: 14, name: "portal.ggz-oost.example" },
                Syn { at_s: 3700, host: 14, dst: [203, 0, 113, 66], port: 80 },
                Syn { at_s: 3701, host: 14, dst: [192, 0, 2, 10], port: 443 },
            ],
        },
    ]
}

impl DemoSite {
    fn host_ip(&self, host: u8) -> Ipv4Addr {
        let base: ipnet::Ipv4Net = self.home_net.parse().expect("demo home_net is valid");
        let o = base.network().octets();
        Ipv4Addr::new(o[0], o[1], 1, host)
    }

    fn resolver(&self) -> Ipv4Addr {
        self.host_ip(53)
    }

    /// Writes this site's capture to `dir/<participant>.pcap` and returns the path.
    pub fn write_capture(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join(format!("{}.pcap", self.participant));
        let file = std::fs::File::create(&path)?;
        let mut writer = PcapWriter::new(file).map_err(std::io::Error::other)?;
        let epoch = demo_epoch_s();
        for (i, event) in self.events.iter().enumerate() {
            let (at_s, frame) = match *event {
                Event::Dns { at_s, host, name } => (
                    at_s,
                    udp_frame(
                        self.host_ip(host),
                        self.resolver(),
                        40_000 + i as u16,
                        53,
                        &dns_query(i as u16, name),
                    ),
                ),
                Event::Syn { at_s, host, dst, port } => {
                    (at_s, syn_frame(self.host_ip(host), Ipv4Addr::from(dst), 50_000 + i as u16, port))
                }
            };
            let timestamp = Duration::from_secs(epoch + at_s);
            let packet = PcapPacket::new(timestamp, frame.len() as u32, &frame);
            writer.write_packet(&packet).map_err(std::io::Error::other)?;
        }
        Ok(path)
    }
}

/// Address of the storm's indicator (TEST-NET-3): list it to make every storm packet a hit.
pub const STORM_TARGET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 99);

/// Writes a capture of `packets` TCP SYNs to [`STORM_TARGET`]:443 at `pps` packets per second
/// of packet time, from `hosts` internal hosts in 10.0.0.0/8 taking turns — a false-positive
/// storm (an indicator matching everything) or, with one packet per host, many distinct
/// sightings. Frames are built once per host and rewritten in place, so millions are quick.
pub fn write_storm(path: &Path, hosts: u32, packets: u32, pps: u32) -> std::io::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut writer = PcapWriter::new(file).map_err(std::io::Error::other)?;
    let hosts = hosts.max(1);
    let frames: Vec<Vec<u8>> = (0..hosts)
        .map(|h| syn_frame(storm_host(h), STORM_TARGET, 40_000 + (h % 20_000) as u16, 443))
        .collect();
    let step_ns = 1_000_000_000 / u64::from(pps.max(1));
    let epoch = demo_epoch_s();
    for i in 0..packets {
        let frame = &frames[(i % hosts) as usize];
        let timestamp = Duration::from_secs(epoch) + Duration::from_nanos(u64::from(i) * step_ns);
        writer
            .write_packet(&PcapPacket::new(timestamp, frame.len() as u32, frame))
            .map_err(std::io::Error::other)?;
    }
    writer.into_writer().into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// Writes a capture of one TCP connection from `src` to `dst:port` that sends `payload` (an
/// HTTP request, say): the SYN, then the bytes in segments of at most 1,400, at
/// [`demo_epoch_s`].
pub fn write_tcp_request(
    path: &Path,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    port: u16,
    payload: &[u8],
) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut writer = PcapWriter::new(file).map_err(std::io::Error::other)?;
    let ports = (49_152, port);
    let isn = 0x1000_0000u32;
    let mut frames = vec![tcp_frame(src, dst, ports, isn, TcpFlags::SYN, &[])];
    for (i, chunk) in payload.chunks(1_400).enumerate() {
        let seq = isn + 1 + (i * 1_400) as u32;
        frames.push(tcp_frame(src, dst, ports, seq, TcpFlags::PSH | TcpFlags::ACK, chunk));
    }
    for (i, frame) in frames.iter().enumerate() {
        let timestamp = Duration::from_secs(demo_epoch_s()) + Duration::from_millis(i as u64);
        writer
            .write_packet(&PcapPacket::new(timestamp, frame.len() as u32, frame))
            .map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// The `i`-th internal host of a storm: 10.x.y.z, never .0 or .255 in the last octet.
pub fn storm_host(i: u32) -> Ipv4Addr {
    let n = 1 + (i / 254) * 256 + i % 254;
    Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff))
}

fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(18 + name.len());
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, one question
    for label in name.split('.') {
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.extend_from_slice(&[0, 0, 1, 0, 1]); // root, QTYPE A, QCLASS IN
    msg
}

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;

fn ipv4_frame(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; ETH_LEN + IPV4_LEN + l4.len()];
    let mut eth = MutableEthernetPacket::new(&mut frame).expect("sized above");
    eth.set_source([0x02, 0, 0, 0, 0, 1].into());
    eth.set_destination([0x02, 0, 0, 0, 0, 2].into());
    eth.set_ethertype(EtherTypes::Ipv4);
    let mut ip = MutableIpv4Packet::new(&mut frame[ETH_LEN..]).expect("sized above");
    ip.set_version(4);
    ip.set_header_length(5);
    ip.set_total_length((IPV4_LEN + l4.len()) as u16);
    ip.set_ttl(64);
    ip.set_next_level_protocol(pnet_packet::ip::IpNextHeaderProtocol(proto));
    ip.set_source(src);
    ip.set_destination(dst);
    ip.set_payload(l4);
    let checksum = ipv4::checksum(&ip.to_immutable());
    ip.set_checksum(checksum);
    frame
}

fn udp_frame(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + payload.len()];
    let mut udp = MutableUdpPacket::new(&mut l4).expect("sized above");
    udp.set_source(sport);
    udp.set_destination(dport);
    udp.set_length((8 + payload.len()) as u16);
    udp.set_payload(payload);
    let checksum = udp::ipv4_checksum(&udp.to_immutable(), &src, &dst);
    udp.set_checksum(checksum);
    ipv4_frame(src, dst, IpNextHeaderProtocols::Udp.0, &l4)
}

fn syn_frame(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    tcp_frame(src, dst, (sport, dport), 0x5a5a_0000 ^ u32::from(sport), TcpFlags::SYN, &[])
}

fn tcp_frame(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ports: (u16, u16),
    seq: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut l4 = vec![0u8; 20 + payload.len()];
    let mut tcp = MutableTcpPacket::new(&mut l4).expect("sized above");
    tcp.set_source(ports.0);
    tcp.set_destination(ports.1);
    tcp.set_sequence(seq);
    tcp.set_data_offset(5);
    tcp.set_flags(flags);
    tcp.set_window(64_240);
    tcp.set_payload(payload);
    let checksum = tcp::ipv4_checksum(&tcp.to_immutable(), &src, &dst);
    tcp.set_checksum(checksum);
    ipv4_frame(src, dst, IpNextHeaderProtocols::Tcp.0, &l4)
}
