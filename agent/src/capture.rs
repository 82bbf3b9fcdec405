//! Capture files: pcap (micro- and nanosecond, either byte order) and pcapng (several
//! interfaces with their own link types and timestamp resolutions).
//!
//! The file is mapped into memory (mmap) and parsed in place with the `pcap-file` crate, so
//! frames are borrowed slices, never copies, and a large capture costs page cache, not heap. A corrupt record ends the file with an error that says
//! where; the frames before it have been delivered.

use pcap_file::pcapng::Block;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::{PcapError, pcap::PcapParser, pcapng::PcapNgParser};
use std::path::Path;
use thiserror::Error;
use zdn_dissect::decode::LinkType;

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// `None` for link types we do not decode (the pcap LINKTYPE is in `linktype`).
    pub link: Option<LinkType>,
    pub linktype: u32,
    pub data: &'a [u8],
}

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("cannot read capture {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is neither a pcap nor a pcapng file")]
    NotACapture { path: String },
    #[error("{path}: corrupt record at byte {offset}: {source}")]
    Corrupt { path: String, offset: usize, source: PcapError },
}

const PCAP_MAGICS: [[u8; 4]; 4] =
    [[0xd4, 0xc3, 0xb2, 0xa1], [0xa1, 0xb2, 0xc3, 0xd4], [0x4d, 0x3c, 0xb2, 0xa1], [0xa1, 0xb2, 0x3c, 0x4d]];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Reads the capture at `path` and calls `each` for every frame, in file order.
// Mapping a file is `unsafe` in memmap2's API (another process may change it under us); the
// mapping is what lets frames be borrowed in place instead of copied.
#[allow(unsafe_code)]
pub fn read_file(path: &Path, each: impl FnMut(Frame<'_>)) -> Result<(), CaptureError> {
    let name = path.display().to_string();
    let io = |source| CaptureError::Io { path: name.clone(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() == 0 {
        return Err(CaptureError::NotACapture { path: name });
    }
    // SAFETY: read-only mapping, dropped before returning. A capture file truncated by another
    // process while being read would fault (SIGBUS); capture files are inputs at rest.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    read_bytes(&name, &map, each)
}

/// As [`read_file`], over a capture already in memory.
pub fn read_bytes(name: &str, bytes: &[u8], each: impl FnMut(Frame<'_>)) -> Result<(), CaptureError> {
    let magic: [u8; 4] = bytes.get(..4).and_then(|m| m.try_into().ok()).unwrap_or_default();
    let corrupt = |rest: &[u8], source| CaptureError::Corrupt {
        path: name.to_owned(),
        offset: bytes.len() - rest.len(),
        source,
    };
    if PCAP_MAGICS.contains(&magic) {
        read_pcap(bytes, each).map_err(|(rest, e)| corrupt(rest, e))
    } else if magic == PCAPNG_MAGIC {
        read_pcapng(bytes, each).map_err(|(rest, e)| corrupt(rest, e))
    } else {
        Err(CaptureError::NotACapture { path: name.to_owned() })
    }
}

type Failure<'a> = (&'a [u8], PcapError);

fn read_pcap<'a>(bytes: &'a [u8], mut each: impl FnMut(Frame<'_>)) -> Result<(), Failure<'a>> {
    let (mut rest, parser) = PcapParser::new(bytes).map_err(|e| (bytes, e))?;
    let linktype = u32::from(parser.header().datalink);
    let link = LinkType::from_pcap(linktype);
    while !rest.is_empty() {
        let (next, packet) = parser.next_packet(rest).map_err(|e| (rest, e))?;
        let ts_ns = i64::try_from(packet.timestamp.as_nanos()).unwrap_or(i64::MAX);
        each(Frame { ts_ns, link, linktype, data: &packet.data });
        rest = next;
    }
    Ok(())
}

fn read_pcapng<'a>(bytes: &'a [u8], mut each: impl FnMut(Frame<'_>)) -> Result<(), Failure<'a>> {
    let (mut rest, mut parser) = PcapNgParser::new(bytes).map_err(|e| (bytes, e))?;
    while !rest.is_empty() {
        let (next, block) = parser.next_block(rest).map_err(|e| (rest, e))?;
        match block {
            Block::EnhancedPacket(epb) => {
                let (linktype, units_per_sec) = match parser.packet_interface(&epb) {
                    Some(idb) => (u32::from(idb.linktype), resolution(&idb.options)),
                    None => return Err((rest, PcapError::InvalidField("packet names an unknown interface"))),
                };
                // pcap-file hands the raw timestamp units over as if they were nanoseconds.
                let units = epb.timestamp.as_nanos();
                let ts_ns = i64::try_from(units * 1_000_000_000 / units_per_sec).unwrap_or(i64::MAX);
                each(Frame { ts_ns, link: LinkType::from_pcap(linktype), linktype, data: &epb.data });
            }
            Block::SimplePacket(spb) => {
                let linktype = parser.interfaces().first().map_or(0, |idb| u32::from(idb.linktype));
                each(Frame { ts_ns: 0, link: LinkType::from_pcap(linktype), linktype, data: &spb.data });
            }
            _ => {}
        }
        rest = next;
    }
    Ok(())
}

/// Timestamp units per second from an interface's `if_tsresol` (default: microseconds).
fn resolution(options: &[InterfaceDescriptionOption<'_>]) -> u128 {
    let tsresol = options.iter().find_map(|o| match o {
        InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
        _ => None,
    });
    match tsresol {
        Some(r) if r & 0x80 != 0 => 1u128 << (r & 0x7f).min(64),
        Some(r) => 10u128.pow(u32::from(r.min(18))),
        None => 1_000_000,
    }
    .max(1)
}
