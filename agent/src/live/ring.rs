//! Reading an interface through a TPACKET_V3 ring: a block at a time, its packets borrowed in
//! place and handed to the packet path, the block returned to the kernel when done.

use super::{LiveError, STATS_EVERY, TICK, Worker, now_ns};
use crate::capture::Frame;
use crate::config::CaptureConfig;
use crate::pipeline::Pipeline;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
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

/// Feeds `pipeline` from `ring` until `stop` is set or the socket fails.
pub(super) fn run(
    mut ring: Ring,
    mut worker: Worker,
    pipeline: &mut Pipeline,
    stop: &AtomicBool,
) -> Result<(), LiveError> {
    let mut stats_due = Instant::now() + STATS_EVERY;
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        if Instant::now() >= stats_due {
            report(&ring, &mut worker, pipeline);
            stats_due += STATS_EVERY;
        }
        match ring.next_block(TICK) {
            Ok(Some(block)) => {
                for packet in block.packets() {
                    worker.read += 1;
                    pipeline.frame(&Frame {
                        ts_ns: packet.ts_ns,
                        link: Some(LinkType::Ethernet),
                        linktype: 1,
                        data: packet.data,
                    });
                }
            }
            Ok(None) => pipeline.tick(now_ns() / 1_000_000),
            Err(source) => break Err(worker.read_error(source)),
        }
    };
    report(&ring, &mut worker, pipeline);
    result
}

fn report(ring: &Ring, worker: &mut Worker, pipeline: &Pipeline) {
    let stats = ring.statistics().unwrap_or_default();
    worker.report(pipeline, stats.drops, stats.freezes);
}
