//! Reading an interface through a TPACKET_V3 ring: a block at a time, its packets borrowed in
//! place and handed to the packet path, the block returned to the kernel when done.

use super::{LiveError, TICK, Worker, now_ns};
use crate::capture::Frame;
use crate::config::CaptureConfig;
use crate::pipeline::Pipeline;
use zdn_dissect::decode::LinkType;
use zdn_packet_ring::Ring;

/// A ring on `iface` as `capture.ring` lays it out.
pub(super) fn open(
    iface: &pnet_datalink::NetworkInterface,
    capture: &CaptureConfig,
    fanout: Option<u16>,
) -> Result<Ring, LiveError> {
    Ring::open(iface.index, &capture.ring.ring(), capture.promiscuous, fanout).map_err(|source| {
        let interface = iface.name.clone();
        // Refused for want of privilege: the socket itself; anything else is the ring's setup.
        if matches!(source.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
            LiveError::Open { interface, source }
        } else {
            LiveError::Ring { interface, source }
        }
    })
}

impl super::Read for Ring {
    fn step(&mut self, worker: &mut Worker, pipeline: &mut Pipeline) -> std::io::Result<()> {
        match self.next_block(TICK)? {
            Some(block) => {
                for packet in block.packets() {
                    worker.read += 1;
                    let frame = Frame {
                        ts_ns: packet.ts_ns,
                        link: Some(LinkType::Ethernet),
                        linktype: 1,
                        data: packet.data,
                    };
                    pipeline.frame(&frame);
                }
            }
            None => pipeline.tick(now_ns() / 1_000_000),
        }
        Ok(())
    }

    fn kernel_counts(&self) -> (u64, u64) {
        let stats = self.statistics().unwrap_or_default();
        (stats.drops, stats.freezes)
    }
}
