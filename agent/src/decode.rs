//! Link, network and transport layers: from a captured frame to addresses, ports and payload.
//!
//! pnet's packet views give field access; every offset and length that comes from the packet is
//! checked here before slicing, so no input can make decoding panic or read out of bounds.
//! Decoding borrows from the frame and allocates nothing.
//!
//! Covered now: Ethernet, 802.1Q / QinQ, Linux SLL and SLL2, raw IP, BSD loopback, PPP, Cisco HDLC; IPv4 (with options),
//! IPv6 with hop-by-hop / routing / destination-options / fragment headers; TCP, UDP, ICMP.
//! Non-first fragments are reported as [`DecodeError::Fragment`] (reassembly is issue 3).

use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::sll::SLLPacket;
use pnet_packet::sll2::SLL2Packet;
use pnet_packet::tcp::{TcpFlags, TcpPacket};
use pnet_packet::udp::UdpPacket;
use pnet_packet::vlan::VlanPacket;
use std::net::IpAddr;
use thiserror::Error;

/// The link types we decode, by their pcap LINKTYPE numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    LinuxSll,
    LinuxSll2,
    /// Raw IPv4 or IPv6, version from the first nibble (LINKTYPE_RAW, _IPV4, _IPV6).
    RawIp,
    /// BSD loopback: a 4-byte address family in the capturing host's byte order (NULL, LOOP).
    Loopback,
    /// PPP in HDLC-like framing and Cisco HDLC: address, control, then a 2-byte protocol.
    Ppp,
    CiscoHdlc,
}

impl LinkType {
    pub fn from_pcap(linktype: u32) -> Option<LinkType> {
        match linktype {
            1 => Some(LinkType::Ethernet),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            12 | 14 | 101 | 228 | 229 => Some(LinkType::RawIp),
            0 | 108 => Some(LinkType::Loopback),
            9 => Some(LinkType::Ppp),
            104 => Some(LinkType::CiscoHdlc),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    Tcp { src_port: u16, dst_port: u16, seq: u32, flags: u8, payload: &'a [u8] },
    Udp { src_port: u16, dst_port: u16, payload: &'a [u8] },
    Icmp,
    Other(u8),
}

impl Transport<'_> {
    pub fn proto_name(&self) -> &'static str {
        match self {
            Transport::Tcp { .. } => "tcp",
            Transport::Udp { .. } => "udp",
            Transport::Icmp => "icmp",
            Transport::Other(_) => "other",
        }
    }

    pub fn src_port(&self) -> u16 {
        match *self {
            Transport::Tcp { src_port, .. } | Transport::Udp { src_port, .. } => src_port,
            _ => 0,
        }
    }

    pub fn dst_port(&self) -> u16 {
        match *self {
            Transport::Tcp { dst_port, .. } | Transport::Udp { dst_port, .. } => dst_port,
            _ => 0,
        }
    }

    /// A TCP connection attempt: SYN without ACK.
    pub fn is_tcp_syn(&self) -> bool {
        matches!(*self, Transport::Tcp { flags, .. } if flags & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN)
    }
}

/// One decoded packet, borrowing from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub transport: Transport<'a>,
}

/// Why a frame could not be decoded. Each is counted by the caller, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("truncated {0} header")]
    Truncated(&'static str),
    #[error("not IP (ethertype {0:#06x})")]
    NotIp(u16),
    #[error("bad IP header")]
    BadIp,
    #[error("non-first IP fragment")]
    Fragment,
}

impl DecodeError {
    /// A stable short name for counters.
    pub fn counter_name(&self) -> &'static str {
        match self {
            DecodeError::Truncated(_) => "truncated",
            DecodeError::NotIp(_) => "not_ip",
            DecodeError::BadIp => "bad_ip",
            DecodeError::Fragment => "fragment",
        }
    }
}

const SLL_LEN: usize = 16;
const SLL2_LEN: usize = 20;
/// VLAN tags we peel before giving up (QinQ is two).
const MAX_VLAN_TAGS: usize = 4;
/// IPv6 extension headers we walk before giving up.
const MAX_IPV6_EXTENSIONS: usize = 8;

pub fn decode(link: LinkType, frame: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    match link {
        LinkType::Ethernet => {
            let eth = EthernetPacket::new(frame).ok_or(DecodeError::Truncated("ethernet"))?;
            ethertype(eth.get_ethertype().0, &frame[EthernetPacket::minimum_packet_size()..])
        }
        // pnet's SLL views under-report their minimum size (found by the robustness test), so
        // the header lengths are checked here before a view is made.
        LinkType::LinuxSll => {
            let header = frame.get(..SLL_LEN).ok_or(DecodeError::Truncated("sll"))?;
            let sll = SLLPacket::new(header).ok_or(DecodeError::Truncated("sll"))?;
            ethertype(sll.get_protocol().0, &frame[SLL_LEN..])
        }
        LinkType::LinuxSll2 => {
            let header = frame.get(..SLL2_LEN).ok_or(DecodeError::Truncated("sll2"))?;
            let sll = SLL2Packet::new(header).ok_or(DecodeError::Truncated("sll2"))?;
            ethertype(sll.get_protocol_type().0, &frame[SLL2_LEN..])
        }
        LinkType::RawIp => raw_ip(frame),
        LinkType::Loopback => {
            // The family is 2 for IPv4 and 24, 28 or 30 for IPv6 depending on the BSD; the IP
            // version nibble decides, which also covers either byte order.
            let payload = frame.get(4..).ok_or(DecodeError::Truncated("loopback"))?;
            raw_ip(payload)
        }
        LinkType::Ppp => {
            // Address/control (0xff 0x03) may be compressed away; the protocol follows.
            let rest = frame.strip_prefix(&[0xff, 0x03]).unwrap_or(frame);
            let [hi, lo, ..] = *rest else { return Err(DecodeError::Truncated("ppp")) };
            match u16::from_be_bytes([hi, lo]) {
                0x0021 => ipv4(&rest[2..]),
                0x0057 => ipv6(&rest[2..]),
                other => Err(DecodeError::NotIp(other)),
            }
        }
        LinkType::CiscoHdlc => {
            let [_, _, hi, lo, ..] = *frame else { return Err(DecodeError::Truncated("c-hdlc")) };
            ethertype(u16::from_be_bytes([hi, lo]), &frame[4..])
        }
    }
}

fn raw_ip(frame: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    match frame.first().map(|b| b >> 4) {
        Some(4) => ipv4(frame),
        Some(6) => ipv6(frame),
        Some(_) => Err(DecodeError::BadIp),
        None => Err(DecodeError::Truncated("ip")),
    }
}

fn ethertype(mut ethertype: u16, mut payload: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != EtherTypes::Vlan.0 && ethertype != EtherTypes::QinQ.0 && ethertype != 0x9100 {
            break;
        }
        let vlan = VlanPacket::new(payload).ok_or(DecodeError::Truncated("vlan"))?;
        ethertype = vlan.get_ethertype().0;
        payload = &payload[VlanPacket::minimum_packet_size()..];
    }
    match ethertype {
        0x0800 => ipv4(payload),
        0x86dd => ipv6(payload),
        other => Err(DecodeError::NotIp(other)),
    }
}

fn ipv4(data: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let ip = Ipv4Packet::new(data).ok_or(DecodeError::Truncated("ipv4"))?;
    let header_len = usize::from(ip.get_header_length()) * 4;
    let total_len = usize::from(ip.get_total_length());
    if ip.get_version() != 4 || header_len < 20 || header_len > data.len() {
        return Err(DecodeError::BadIp);
    }
    // Trust total_length only where it is plausible: captures with TSO or padding disagree.
    let end = if total_len >= header_len && total_len <= data.len() { total_len } else { data.len() };
    if ip.get_fragment_offset() != 0 {
        return Err(DecodeError::Fragment);
    }
    let (src, dst) = (IpAddr::V4(ip.get_source()), IpAddr::V4(ip.get_destination()));
    transport(src, dst, ip.get_next_level_protocol().0, &data[header_len..end])
}

fn ipv6(data: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let ip = Ipv6Packet::new(data).ok_or(DecodeError::Truncated("ipv6"))?;
    if ip.get_version() != 6 {
        return Err(DecodeError::BadIp);
    }
    let (src, dst) = (IpAddr::V6(ip.get_source()), IpAddr::V6(ip.get_destination()));
    let header_len = Ipv6Packet::minimum_packet_size();
    let end = (header_len + usize::from(ip.get_payload_length())).min(data.len());
    let mut payload = &data[header_len..end.max(header_len)];
    let mut next = ip.get_next_header().0;
    for _ in 0..MAX_IPV6_EXTENSIONS {
        match next {
            0 | 43 | 60 => {
                let [nh, len, ..] = *payload else { return Err(DecodeError::Truncated("ipv6 extension")) };
                let ext_len = (usize::from(len) + 1) * 8;
                payload = payload.get(ext_len..).ok_or(DecodeError::Truncated("ipv6 extension"))?;
                next = nh;
            }
            44 => {
                let [nh, _, off_hi, off_lo, ..] = *payload else {
                    return Err(DecodeError::Truncated("ipv6 fragment"));
                };
                if (u16::from_be_bytes([off_hi, off_lo]) >> 3) != 0 {
                    return Err(DecodeError::Fragment);
                }
                payload = payload.get(8..).ok_or(DecodeError::Truncated("ipv6 fragment"))?;
                next = nh;
            }
            _ => return transport(src, dst, next, payload),
        }
    }
    Err(DecodeError::BadIp)
}

fn transport(src: IpAddr, dst: IpAddr, proto: u8, data: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let transport = match proto {
        6 => {
            let tcp = TcpPacket::new(data).ok_or(DecodeError::Truncated("tcp"))?;
            let offset = usize::from(tcp.get_data_offset()) * 4;
            let payload = if offset >= 20 { data.get(offset..).unwrap_or_default() } else { &[] };
            Transport::Tcp {
                src_port: tcp.get_source(),
                dst_port: tcp.get_destination(),
                seq: tcp.get_sequence(),
                flags: tcp.get_flags(),
                payload,
            }
        }
        17 => {
            let udp = UdpPacket::new(data).ok_or(DecodeError::Truncated("udp"))?;
            let len = usize::from(udp.get_length());
            let end = if (8..=data.len()).contains(&len) { len } else { data.len() };
            Transport::Udp {
                src_port: udp.get_source(),
                dst_port: udp.get_destination(),
                payload: &data[8..end],
            }
        }
        1 | 58 => Transport::Icmp,
        other => Transport::Other(other),
    };
    Ok(Decoded { src, dst, transport })
}
