//! # zdn-packet-ring
//!
//! Live capture without a system call per packet: an AF_PACKET socket with a TPACKET_V3
//! receive ring (the kernel's `Documentation/networking/packet_mmap.rst`), the way libpcap,
//! Suricata and Zeek capture on Linux.
//!
//! The kernel writes packets into a ring of blocks shared with us (mmap). A block is handed
//! over when it is full or when `retire_timeout` has passed since its first packet; the reader
//! walks its packets in place, then hands it back. One `poll(2)` waits for a block when none is
//! ready, so a busy link costs a system call per block (thousands of packets), not per packet.
//!
//! ```text
//!   kernel ──writes──▶ [block 0][block 1] … [block n-1]   (mmap, shared)
//!                          │ status USER: ours until dropped
//!   Ring::next_block ──▶ Block ──packets()──▶ Packet { ts_ns, data: &[u8] }
//!   drop(Block) ──▶ status KERNEL: the kernel may fill it again
//! ```
//!
//! When every block is ours the kernel drops packets and counts them; [`Ring::statistics`]
//! reads (and resets) those counts: packets dropped and queue freezes (times the ring was
//! full). Several rings on one interface share the traffic in a `PACKET_FANOUT` group hashed by
//! flow, so one flow always reaches one reader.
//!
//! Why our own code: pnet (the project's datalink crate) has no ring; `af_packet` is
//! GPL-3.0 and unmaintained since 2020; `netring` changes its API every few weeks and brings
//! a monitoring framework with it. The kernel interface is five system calls and a memory
//! layout that `libc` defines for us (`tpacket_req3`, `tpacket_block_desc`, `tpacket3_hdr`),
//! so what remains here is small. Every `unsafe` block says why it is sound; parsing a block
//! is safe code over a byte slice, bounds-checked against what the kernel wrote.
//!
//! Privilege: opening the socket and its ring needs CAP_NET_RAW, nothing more (the ring is the
//! socket's own memory; tested as `nobody` holding only that capability). Promiscuous mode is
//! asked for with `PACKET_ADD_MEMBERSHIP`; we have not tested it without CAP_NET_ADMIN.

#![deny(unsafe_code)]

mod block;
mod config;
mod socket;

pub use block::{Block, Packet, Packets};
pub use config::{RingConfig, RingConfigError};
pub use socket::{Ring, Statistics};
