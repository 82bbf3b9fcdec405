//! Link, network and transport layers: from a captured frame to addresses, ports and payload.
//!
//! pnet's packet views give field access; every offset and length that comes from the packet is
//! checked here before slicing, so no input can make decoding panic or read out of bounds.
//! Decoding borrows from the frame and allocates nothing.
//!
//! Covered now: Ethernet, 802.1Q / QinQ, PPPoE sessions, Linux SLL and SLL2, raw IP, BSD
//! loopback, PPP, Cisco HDLC; IPv4 (with options), IPv6 with hop-by-hop / routing /
//! destination-options / fragment headers; TCP, UDP, ICMP. Tunnels are opened and the inner
//! packet decoded (what a mirror port delivers is the inner traffic): GRE, ERSPAN I/II/III,
//! VXLAN (UDP 4789), Geneve (UDP 6081), IP in IP (4, 41), nested at most [`MAX_ENCAPSULATION`] deep; an inner
//! packet that does not decode leaves the outer one as it is.
//! An IP fragment decodes to [`Transport::Fragment`]; [`crate::defrag`] puts datagrams back
//! together and [`transport_of`] decodes the whole.

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
    Tcp {
        src_port: u16,
        dst_port: u16,
        seq: u32,
        flags: u8,
        payload: &'a [u8],
    },
    Udp {
        src_port: u16,
        dst_port: u16,
        payload: &'a [u8],
    },
    Icmp,
    Other(u8),
    /// A piece of a fragmented IP datagram, waiting for reassembly.
    Fragment {
        proto: u8,
        id: u32,
        offset: u16,
        more: bool,
        payload: &'a [u8],
    },
}

impl Transport<'_> {
    pub fn proto_name(&self) -> &'static str {
        match self {
            Transport::Tcp { .. } => "tcp",
            Transport::Udp { .. } => "udp",
            Transport::Icmp => "icmp",
            Transport::Other(_) => "other",
            Transport::Fragment { .. } => "fragment",
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
}

impl DecodeError {
    /// A stable short name for counters.
    pub fn counter_name(&self) -> &'static str {
        match self {
            DecodeError::Truncated(_) => "truncated",
            DecodeError::NotIp(_) => "not_ip",
            DecodeError::BadIp => "bad_ip",
        }
    }
}

const SLL_LEN: usize = 16;
const SLL2_LEN: usize = 20;
/// VLAN tags we peel before giving up (QinQ is two).
const MAX_VLAN_TAGS: usize = 4;
/// IPv6 extension headers we walk before giving up.
const MAX_IPV6_EXTENSIONS: usize = 8;
/// Tunnels (GRE, ERSPAN, VXLAN, Geneve) we open inside each other before reading the packet
/// as it is.
const MAX_ENCAPSULATION: u8 = 4;

pub fn decode(link: LinkType, frame: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    match link {
        LinkType::Ethernet => ethernet(frame, 0),
        // pnet's SLL views under-report their minimum size (found by the robustness test), so
        // the header lengths are checked here before a view is made.
        LinkType::LinuxSll => {
            let header = frame.get(..SLL_LEN).ok_or(DecodeError::Truncated("sll"))?;
            let sll = SLLPacket::new(header).ok_or(DecodeError::Truncated("sll"))?;
            ethertype(sll.get_protocol().0, &frame[SLL_LEN..], 0)
        }
        LinkType::LinuxSll2 => {
            let header = frame.get(..SLL2_LEN).ok_or(DecodeError::Truncated("sll2"))?;
            let sll = SLL2Packet::new(header).ok_or(DecodeError::Truncated("sll2"))?;
            ethertype(sll.get_protocol_type().0, &frame[SLL2_LEN..], 0)
        }
        LinkType::RawIp => raw_ip(frame, 0),
        LinkType::Loopback => {
            // The family is 2 for IPv4 and 24, 28 or 30 for IPv6 depending on the BSD; the IP
            // version nibble decides, which also covers either byte order.
            let payload = frame.get(4..).ok_or(DecodeError::Truncated("loopback"))?;
            raw_ip(payload, 0)
        }
        LinkType::Ppp => {
            // Address/control (0xff 0x03) may be compressed away; the protocol follows, in one
            // byte when compressed too (RFC 1661 protocol-field compression: an odd first byte).
            let rest = frame.strip_prefix(&[0xff, 0x03]).unwrap_or(frame);
            let (protocol, header) = match *rest {
                [b, ..] if b & 1 == 1 => (u16::from(b), 1),
                [hi, lo, ..] => (u16::from_be_bytes([hi, lo]), 2),
                _ => return Err(DecodeError::Truncated("ppp")),
            };
            match protocol {
                0x0021 => ipv4(&rest[header..], 0),
                0x0057 => ipv6(&rest[header..], 0),
                other => Err(DecodeError::NotIp(other)),
            }
        }
        LinkType::CiscoHdlc => {
            let [_, _, hi, lo, ..] = *frame else { return Err(DecodeError::Truncated("c-hdlc")) };
            ethertype(u16::from_be_bytes([hi, lo]), &frame[4..], 0)
        }
    }
}

fn ethernet(frame: &[u8], depth: u8) -> Result<Decoded<'_>, DecodeError> {
    let eth = EthernetPacket::new(frame).ok_or(DecodeError::Truncated("ethernet"))?;
    ethertype(eth.get_ethertype().0, &frame[EthernetPacket::minimum_packet_size()..], depth)
}

fn raw_ip(frame: &[u8], depth: u8) -> Result<Decoded<'_>, DecodeError> {
    match frame.first().map(|b| b >> 4) {
        Some(4) => ipv4(frame, depth),
        Some(6) => ipv6(frame, depth),
        Some(_) => Err(DecodeError::BadIp),
        None => Err(DecodeError::Truncated("ip")),
    }
}

fn ethertype(mut ethertype: u16, mut payload: &[u8], depth: u8) -> Result<Decoded<'_>, DecodeError> {
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != EtherTypes::Vlan.0 && ethertype != EtherTypes::QinQ.0 && ethertype != 0x9100 {
            break;
        }
        let vlan = VlanPacket::new(payload).ok_or(DecodeError::Truncated("vlan"))?;
        ethertype = vlan.get_ethertype().0;
        payload = &payload[VlanPacket::minimum_packet_size()..];
    }
    match ethertype {
        0x0800 => ipv4(payload, depth),
        0x86dd => ipv6(payload, depth),
        // PPPoE session: version/type, code, session id, length, then the PPP protocol.
        0x8864 => {
            let [_, _, _, _, _, _, hi, lo, ..] = *payload else {
                return Err(DecodeError::Truncated("pppoe"));
            };
            match u16::from_be_bytes([hi, lo]) {
                0x0021 => ipv4(&payload[8..], depth),
                0x0057 => ipv6(&payload[8..], depth),
                other => Err(DecodeError::NotIp(other)),
            }
        }
        other => Err(DecodeError::NotIp(other)),
    }
}

fn ipv4(data: &[u8], depth: u8) -> Result<Decoded<'_>, DecodeError> {
    let ip = Ipv4Packet::new(data).ok_or(DecodeError::Truncated("ipv4"))?;
    let header_len = usize::from(ip.get_header_length()) * 4;
    let total_len = usize::from(ip.get_total_length());
    if ip.get_version() != 4 || header_len < 20 || header_len > data.len() {
        return Err(DecodeError::BadIp);
    }
    // Trust total_length only where it is plausible: captures with TSO or padding disagree.
    let end = if total_len >= header_len && total_len <= data.len() { total_len } else { data.len() };
    let (src, dst) = (IpAddr::V4(ip.get_source()), IpAddr::V4(ip.get_destination()));
    let proto = ip.get_next_level_protocol().0;
    let more = ip.get_flags() & 0b001 != 0;
    if ip.get_fragment_offset() != 0 || more {
        let (id, offset) = (u32::from(ip.get_identification()), ip.get_fragment_offset().wrapping_mul(8));
        let transport = Transport::Fragment { proto, id, offset, more, payload: &data[header_len..end] };
        return Ok(Decoded { src, dst, transport });
    }
    transport(src, dst, proto, &data[header_len..end], depth)
}

fn ipv6(data: &[u8], depth: u8) -> Result<Decoded<'_>, DecodeError> {
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
                let header = payload.get(..8).ok_or(DecodeError::Truncated("ipv6 fragment"))?;
                let field = u16::from_be_bytes([header[2], header[3]]);
                let (offset, more) = (field & !7, field & 1 != 0);
                let id = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                let payload = &payload[8..];
                if offset != 0 || more {
                    let transport = Transport::Fragment { proto: header[0], id, offset, more, payload };
                    return Ok(Decoded { src, dst, transport });
                }
                // An atomic fragment (RFC 6946): the whole datagram.
                return transport(src, dst, header[0], payload, depth);
            }
            _ => return transport(src, dst, next, payload, depth),
        }
    }
    Err(DecodeError::BadIp)
}

/// The transport layer of a whole IP payload — a reassembled datagram.
pub fn transport_of(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    transport(src, dst, proto, payload, 0)
}

fn transport(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    data: &[u8],
    depth: u8,
) -> Result<Decoded<'_>, DecodeError> {
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
            let (dst_port, payload) = (udp.get_destination(), &data[8..end]);
            if depth < MAX_ENCAPSULATION
                && let Some(inner) = udp_tunnel(dst_port, payload, depth + 1)
            {
                return Ok(inner);
            }
            Transport::Udp { src_port: udp.get_source(), dst_port, payload }
        }
        47 if depth < MAX_ENCAPSULATION => return gre(data, depth + 1).or(Ok(outer(src, dst, 47))),
        // IP in IP (IPv4 in 4, IPv6 in 41: 6in4, 6to4, IPv6 transition tunnels).
        4 if depth < MAX_ENCAPSULATION => return ipv4(data, depth + 1).or(Ok(outer(src, dst, 4))),
        41 if depth < MAX_ENCAPSULATION => return ipv6(data, depth + 1).or(Ok(outer(src, dst, 41))),
        1 | 58 => Transport::Icmp,
        other => Transport::Other(other),
    };
    Ok(Decoded { src, dst, transport })
}

fn outer(src: IpAddr, dst: IpAddr, proto: u8) -> Decoded<'static> {
    Decoded { src, dst, transport: Transport::Other(proto) }
}

const VXLAN_PORT: u16 = 4789;
const GENEVE_PORT: u16 = 6081;

/// The inner packet of a VXLAN or Geneve datagram; `None` leaves the datagram as plain UDP
/// (another protocol on the port, or an inner packet we cannot read).
fn udp_tunnel(dst_port: u16, payload: &[u8], depth: u8) -> Option<Decoded<'_>> {
    match dst_port {
        // VXLAN: flags (I bit), reserved, VNI, reserved; then an Ethernet frame.
        VXLAN_PORT if payload.len() > 8 && payload[0] & 0x08 != 0 => ethernet(&payload[8..], depth).ok(),
        // Geneve: version and option length (4-byte words), flags, protocol type, VNI.
        GENEVE_PORT if payload.len() >= 8 && payload[0] >> 6 == 0 => {
            let header = 8 + usize::from(payload[0] & 0x3f) * 4;
            let inner = payload.get(header..)?;
            match u16::from_be_bytes([payload[2], payload[3]]) {
                0x6558 => ethernet(inner, depth).ok(),
                other => ethertype(other, inner, depth).ok(),
            }
        }
        _ => None,
    }
}

/// GRE (RFC 2784/2890) and what mirror ports send through it: ERSPAN type I, II and III.
fn gre(data: &[u8], depth: u8) -> Result<Decoded<'_>, DecodeError> {
    let [f_hi, _, p_hi, p_lo, ..] = *data else { return Err(DecodeError::Truncated("gre")) };
    let (checksum, key, sequence) = (f_hi & 0x80 != 0, f_hi & 0x20 != 0, f_hi & 0x10 != 0);
    let header = 4 + 4 * (usize::from(checksum) + usize::from(key) + usize::from(sequence));
    let inner = data.get(header..).ok_or(DecodeError::Truncated("gre"))?;
    match u16::from_be_bytes([p_hi, p_lo]) {
        0x6558 => ethernet(inner, depth),
        // ERSPAN type II carries a sequence number and an 8-byte header; type I neither.
        0x88be if sequence => ethernet(inner.get(8..).ok_or(DecodeError::Truncated("erspan"))?, depth),
        0x88be => ethernet(inner, depth),
        // ERSPAN type III: 12 bytes, 8 more when the O flag announces a platform subheader.
        0x22eb => {
            let base = inner.get(..12).ok_or(DecodeError::Truncated("erspan"))?;
            let len = if base[11] & 0x01 != 0 { 20 } else { 12 };
            ethernet(inner.get(len..).ok_or(DecodeError::Truncated("erspan"))?, depth)
        }
        other => ethertype(other, inner, depth),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, proto, 0, 0];
        p.extend(src);
        p.extend(dst);
        p.extend(payload);
        p
    }

    fn udp(dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let len = (8 + payload.len()) as u16;
        let mut u =
            vec![0x9c, 0x40, (dst_port >> 8) as u8, dst_port as u8, (len >> 8) as u8, len as u8, 0, 0];
        u.extend(payload);
        u
    }

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend(ethertype.to_be_bytes());
        f.extend(payload);
        f
    }

    /// The traffic a mirror port would carry: 10.1.1.1 asking 10.9.9.9 on port 53.
    fn inner() -> Vec<u8> {
        eth(0x0800, &ipv4([10, 1, 1, 1], [10, 9, 9, 9], 17, &udp(53, b"query")))
    }

    fn outer_udp(port: u16, tunnel_header: &[u8], inner: &[u8]) -> Vec<u8> {
        eth(0x0800, &ipv4([192, 0, 2, 1], [192, 0, 2, 2], 17, &udp(port, &[tunnel_header, inner].concat())))
    }

    fn outer_gre(gre: &[u8], inner: &[u8]) -> Vec<u8> {
        eth(0x0800, &ipv4([192, 0, 2, 1], [192, 0, 2, 2], 47, &[gre, inner].concat()))
    }

    fn assert_inner(frame: &[u8]) {
        let d = decode(LinkType::Ethernet, frame).unwrap();
        assert_eq!(
            (d.src.to_string(), d.dst.to_string(), d.transport.dst_port()),
            ("10.1.1.1".into(), "10.9.9.9".into(), 53)
        );
    }

    #[test]
    fn tunnels_are_opened_to_the_inner_packet() {
        assert_inner(&outer_udp(VXLAN_PORT, &[0x08, 0, 0, 0, 0, 0, 1, 0], &inner()));
        assert_inner(&outer_udp(GENEVE_PORT, &[0, 0, 0x65, 0x58, 0, 0, 1, 0], &inner()));
        // Geneve with one 4-byte option, carrying IPv4 directly.
        let ip_only = &inner()[14..];
        assert_inner(&eth(
            0x0800,
            &ipv4(
                [192, 0, 2, 1],
                [192, 0, 2, 2],
                17,
                &udp(GENEVE_PORT, &[&[1u8, 0, 8, 0, 0, 0, 1, 0, 9, 9, 9, 9][..], ip_only].concat()),
            ),
        ));
        assert_inner(&outer_gre(&[0, 0, 0x65, 0x58], &inner())); // transparent Ethernet bridging
        assert_inner(&outer_gre(&[0, 0, 0x08, 0x00], ip_only)); // plain GRE
        assert_inner(&outer_gre(&[0x20, 0, 0x08, 0x00, 0, 0, 0, 7], ip_only)); // with a key
        assert_inner(&outer_gre(&[0, 0, 0x88, 0xbe], &inner())); // ERSPAN I
        assert_inner(&outer_gre(&[0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0, 0, 0, 0, 0, 0, 0], &inner())); // ERSPAN II
        let erspan3 =
            [&[0x10u8, 0, 0x22, 0xeb, 0, 0, 0, 1][..], &[0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], &[0; 8]]
                .concat();
        assert_inner(&outer_gre(&erspan3, &inner())); // ERSPAN III with platform subheader
        let pppoe = eth(0x8864, &[&[0x11u8, 0, 0, 1, 0, 0, 0x00, 0x21][..], ip_only].concat());
        assert_inner(&pppoe);
        assert_inner(&eth(0x0800, &ipv4([192, 0, 2, 1], [192, 0, 2, 2], 4, ip_only))); // IP in IP
    }

    #[test]
    fn nesting_is_bounded_and_bad_inner_packets_leave_the_outer() {
        let mut frame = inner();
        for _ in 0..10 {
            frame = outer_udp(VXLAN_PORT, &[0x08, 0, 0, 0, 0, 0, 1, 0], &frame);
        }
        let d = decode(LinkType::Ethernet, &frame).unwrap();
        assert_eq!(d.transport.dst_port(), VXLAN_PORT, "beyond the bound the packet is read as it is");
        let broken = outer_udp(VXLAN_PORT, &[0x08, 0, 0, 0, 0, 0, 1, 0], &[1, 2, 3]);
        assert_eq!(decode(LinkType::Ethernet, &broken).unwrap().dst.to_string(), "192.0.2.2");
        let gre_garbage = outer_gre(&[0, 0, 0x08, 0x00], &[0x45, 1]);
        assert_eq!(decode(LinkType::Ethernet, &gre_garbage).unwrap().transport, Transport::Other(47));
    }
}
