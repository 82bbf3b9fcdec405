//! One block of the ring while it is ours, and the packets in it.
//!
//! The block's memory is the kernel's layout (`tpacket_block_desc`, then `tpacket3_hdr`
//! records chained by `tp_next_offset`); it is read here as bytes, every offset checked, so a
//! block the kernel filled in some other way ends early instead of being read out of bounds.

use libc::{tpacket_block_desc, tpacket_hdr_v1, tpacket3_hdr};
use std::marker::PhantomData;
use std::mem::offset_of;
use std::sync::atomic::{AtomicU32, Ordering};

/// Offsets in a block descriptor (the header union holds only `bh1`).
const HDR: usize = offset_of!(tpacket_block_desc, hdr);
pub(crate) const BLOCK_STATUS: usize = HDR + offset_of!(tpacket_hdr_v1, block_status);
const NUM_PKTS: usize = HDR + offset_of!(tpacket_hdr_v1, num_pkts);
const FIRST_PKT: usize = HDR + offset_of!(tpacket_hdr_v1, offset_to_first_pkt);

/// One captured packet, borrowed from its block.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'b> {
    /// When the kernel received it, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// The frame as captured (cut to the block if it was larger).
    pub data: &'b [u8],
    /// The frame's length on the wire; more than `data.len()` when it was cut.
    pub original_len: u32,
}

/// A block the kernel handed over: ours until dropped, when it goes back to the kernel.
pub struct Block<'r> {
    base: *mut u8,
    len: usize,
    /// A block borrows its ring mutably: one block at a time, returned before the next.
    ring: PhantomData<&'r mut ()>,
}

impl<'r> Block<'r> {
    /// The block at `base` if the kernel has handed it over (its status says "user").
    // SAFETY (for callers): `base` is the start of a block of `len` bytes inside a live ring
    // mapping, aligned as the kernel aligns blocks (page-aligned), and no other `Block` of it
    // exists.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn ready(base: *mut u8, len: usize) -> Option<Block<'r>> {
        // SAFETY: as the caller promises.
        unsafe { handed_over(base) }.then_some(Block { base, len, ring: PhantomData })
    }

    /// The packets in the block, in the order the kernel received them.
    pub fn packets(&self) -> Packets<'_> {
        // SAFETY: the block is ours (its status said "user") until `self` is dropped, and the
        // kernel does not write a block it has handed over, so its bytes do not change while
        // this borrow of `self` lives; `drop` (which hands it back) cannot run meanwhile.
        #[allow(unsafe_code)]
        let bytes = unsafe { std::slice::from_raw_parts(self.base.cast_const(), self.len) };
        Packets::new(bytes)
    }
}

/// Whether the kernel has handed the block at `base` over. A check only: making a [`Block`]
/// and dropping it would hand the block back unread.
// SAFETY (for callers): `base` is the start of a block inside a live ring mapping.
#[allow(unsafe_code)]
pub(crate) unsafe fn handed_over(base: *mut u8) -> bool {
    // SAFETY: the status word is 4-byte aligned inside the block; the kernel writes it, so it
    // is read atomically. Acquire pairs with the kernel's write barrier before it sets the
    // status, so the packets it wrote are visible once we see "user".
    let status = unsafe { AtomicU32::from_ptr(base.add(BLOCK_STATUS).cast()) };
    status.load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        // SAFETY: as in `ready`; no borrow of the block's bytes outlives `&self`. Release makes
        // our reads of the block happen before the kernel may write it again.
        #[allow(unsafe_code)]
        let status = unsafe { AtomicU32::from_ptr(self.base.add(BLOCK_STATUS).cast()) };
        status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }
}

/// The packets of one block.
pub struct Packets<'b> {
    bytes: &'b [u8],
    offset: usize,
    remaining: u32,
}

impl<'b> Packets<'b> {
    fn new(bytes: &'b [u8]) -> Packets<'b> {
        // No more records than fit: a count the chain does not hold cannot make the walk long.
        let fit = (bytes.len() / size_of::<tpacket3_hdr>()) as u32;
        let count = read_u32(bytes, NUM_PKTS).unwrap_or(0).min(fit);
        let first = read_u32(bytes, FIRST_PKT).map_or(0, |o| o as usize);
        Packets { bytes, offset: first, remaining: count }
    }
}

impl<'b> Iterator for Packets<'b> {
    type Item = Packet<'b>;

    fn next(&mut self) -> Option<Packet<'b>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let Some((packet, next)) = packet_at(self.bytes, self.offset) else {
            self.remaining = 0;
            return None;
        };
        // Each record lies after the one before: an offset that does not move forward ends it.
        match next as usize {
            next if next < size_of::<tpacket3_hdr>() => self.remaining = 0,
            next => self.offset += next,
        }
        Some(packet)
    }
}

/// The packet whose `tpacket3_hdr` starts at `offset`, and its `tp_next_offset`; `None` when
/// the header or the frame would lie outside the block.
fn packet_at(bytes: &[u8], offset: usize) -> Option<(Packet<'_>, u32)> {
    let field = |at: usize| read_u32(bytes, offset.checked_add(at)?);
    let next = field(offset_of!(tpacket3_hdr, tp_next_offset))?;
    let sec = field(offset_of!(tpacket3_hdr, tp_sec))?;
    let nsec = field(offset_of!(tpacket3_hdr, tp_nsec))?;
    let snaplen = field(offset_of!(tpacket3_hdr, tp_snaplen))? as usize;
    let original_len = field(offset_of!(tpacket3_hdr, tp_len))?;
    let mac_at = offset.checked_add(offset_of!(tpacket3_hdr, tp_mac))?;
    let mac = u16::from_ne_bytes(bytes.get(mac_at..mac_at + 2)?.try_into().ok()?) as usize;
    let start = offset.checked_add(mac)?;
    let data = bytes.get(start..start.checked_add(snaplen)?)?;
    let ts_ns = i64::from(sec) * 1_000_000_000 + i64::from(nsec);
    Some((Packet { ts_ns, data, original_len }, next))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block as the kernel lays one out: descriptor, then records at 16-byte alignment.
    fn block(frames: &[&[u8]]) -> Vec<u8> {
        let mut bytes = vec![0u8; 4096];
        let put =
            |bytes: &mut Vec<u8>, at: usize, v: u32| bytes[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        let first = 48;
        put(&mut bytes, NUM_PKTS, frames.len() as u32);
        put(&mut bytes, FIRST_PKT, first as u32);
        let mut at = first;
        for (i, frame) in frames.iter().enumerate() {
            let mac = 68usize;
            let len = (mac + frame.len()).next_multiple_of(16);
            let next = if i + 1 == frames.len() { 0 } else { len as u32 };
            put(&mut bytes, at + offset_of!(tpacket3_hdr, tp_next_offset), next);
            put(&mut bytes, at + offset_of!(tpacket3_hdr, tp_sec), 1_700_000_000 + i as u32);
            put(&mut bytes, at + offset_of!(tpacket3_hdr, tp_nsec), 5);
            put(&mut bytes, at + offset_of!(tpacket3_hdr, tp_snaplen), frame.len() as u32);
            put(&mut bytes, at + offset_of!(tpacket3_hdr, tp_len), frame.len() as u32 + 1);
            let m = at + offset_of!(tpacket3_hdr, tp_mac);
            bytes[m..m + 2].copy_from_slice(&(mac as u16).to_ne_bytes());
            bytes[at + mac..at + mac + frame.len()].copy_from_slice(frame);
            at += len;
        }
        bytes
    }

    fn read(bytes: &[u8]) -> Vec<(i64, Vec<u8>, u32)> {
        Packets::new(bytes).map(|p| (p.ts_ns, p.data.to_vec(), p.original_len)).collect()
    }

    #[test]
    fn walks_the_records_of_a_block() {
        let bytes = block(&[b"first frame", b"second", b"3"]);
        let packets = read(&bytes);
        assert_eq!(packets.len(), 3);
        assert_eq!(packets[0], (1_700_000_000_000_000_005, b"first frame".to_vec(), 12));
        assert_eq!(packets[1].1, b"second");
        assert_eq!(packets[2], (1_700_000_002_000_000_005, b"3".to_vec(), 2));
    }

    #[test]
    fn a_block_that_points_outside_itself_ends_early_without_reading_beyond() {
        let mut bytes = block(&[b"first frame", b"second"]);
        // The second record's length runs past the block's end.
        let second = 48 + (68 + 11usize).next_multiple_of(16);
        let at = second + offset_of!(tpacket3_hdr, tp_snaplen);
        bytes[at..at + 4].copy_from_slice(&100_000u32.to_ne_bytes());
        assert_eq!(read(&bytes).len(), 1);
        // A count larger than the chain: the chain's end (next offset 0) ends the block.
        let mut bytes = block(&[b"only"]);
        bytes[NUM_PKTS..NUM_PKTS + 4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(read(&bytes).len(), 1);
        // Random bytes: whatever they say, the walk stays inside the block.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut bytes = block(&[b"a", b"bb", b"ccc"]);
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % 4096) as usize;
                bytes[at] = (state >> 32) as u8;
            }
            let _ = read(&bytes);
        }
    }
}
