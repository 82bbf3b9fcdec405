//! The socket and its mapped ring: opening (in the order the kernel requires), waiting for a
//! block, the kernel's drop counters, closing.

use crate::block::Block;
use crate::config::RingConfig;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// The `tp_frame_size` the kernel is told. TPACKET_V3 packs records of any size into a block,
/// so this only has to satisfy the kernel's arithmetic (`frame_nr` = frames per block × blocks).
const FRAME_SIZE: u32 = 2048;

/// What the kernel counted since the last reading (reading resets its counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Statistics {
    /// Packets the socket was offered, dropped ones included.
    pub packets: u64,
    /// Packets dropped because the ring was full.
    pub drops: u64,
    /// Times the ring filled up (every block ours), so that the kernel froze the queue.
    pub freezes: u64,
}

/// An AF_PACKET socket bound to one interface, with its TPACKET_V3 receive ring mapped.
pub struct Ring {
    fd: OwnedFd,
    map: *mut u8,
    config: RingConfig,
    /// The block the kernel fills next: blocks are handed over in ring order.
    next: u32,
}

// SAFETY: the mapping belongs to this value alone (nothing else holds its address); moving a
// `Ring` to another thread moves the sole owner, as with a `Vec`.
#[allow(unsafe_code)]
unsafe impl Send for Ring {}

impl Ring {
    /// Opens a ring on the interface with index `ifindex`. With `fanout`, the socket joins
    /// that PACKET_FANOUT group, hashed by flow (IP fragments defragmented first, so a
    /// datagram's pieces reach one reader). Needs CAP_NET_RAW.
    pub fn open(
        ifindex: u32,
        config: &RingConfig,
        promiscuous: bool,
        fanout: Option<u16>,
    ) -> io::Result<Ring> {
        config.check().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // Protocol 0: the socket queues nothing until it is bound, after the ring is in place.
        let fd = cvt(sys::socket())?;
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        #[allow(unsafe_code)]
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = fd.as_raw_fd();
        sys::set(raw, libc::PACKET_VERSION, &(libc::tpacket_versions::TPACKET_V3 as libc::c_int))?;
        let request = libc::tpacket_req3 {
            tp_block_size: config.block_size,
            tp_block_nr: config.block_count,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: config.block_size / FRAME_SIZE * config.block_count,
            tp_retire_blk_tov: config.retire_timeout.as_millis() as u32,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        sys::set(raw, libc::PACKET_RX_RING, &request)?;
        let map = sys::map(raw, config.bytes() as usize)?;
        let ring = Ring { fd, map, config: *config, next: 0 };
        sys::bind(raw, ifindex)?;
        if promiscuous {
            let mreq = libc::packet_mreq {
                mr_ifindex: ifindex as libc::c_int,
                mr_type: libc::PACKET_MR_PROMISC as u16,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            sys::set(raw, libc::PACKET_ADD_MEMBERSHIP, &mreq)?;
        }
        if let Some(group) = fanout {
            let mode = libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG;
            sys::set(raw, libc::PACKET_FANOUT, &(u32::from(group) | (mode << 16)))?;
        }
        Ok(ring)
    }

    /// The next block of packets, waiting up to `timeout` for the kernel to hand one over;
    /// `None` when none came (or a signal interrupted the wait). An error is the socket's own
    /// (the interface went away: `ENETDOWN`).
    pub fn next_block(&mut self, timeout: Duration) -> io::Result<Option<Block<'_>>> {
        if !self.ready() {
            match sys::wait(self.fd.as_raw_fd(), timeout) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
                other => other?,
            }
            if !self.ready() {
                return Ok(None);
            }
        }
        let index = self.next;
        self.next = (index + 1) % self.config.block_count;
        Ok(self.block(index))
    }

    /// Whether the kernel has handed the next block over.
    fn ready(&self) -> bool {
        // SAFETY: the start of a block inside the mapping (see `block`).
        #[allow(unsafe_code)]
        unsafe {
            crate::block::handed_over(self.block_start(self.next))
        }
    }

    /// Block `index` (< block_count), if handed over; one exists at a time, as it borrows the
    /// ring and `next_block` takes `&mut self`.
    fn block(&mut self, index: u32) -> Option<Block<'_>> {
        // SAFETY: `block_start` lies inside the mapping, which lives as long as `self`, at a
        // multiple of the (page-sized) block size.
        #[allow(unsafe_code)]
        unsafe {
            Block::ready(self.block_start(index), self.config.block_size as usize)
        }
    }

    fn block_start(&self, index: u32) -> *mut u8 {
        // In bounds: `index` < block_count, so the offset is below the mapping's length.
        self.map.wrapping_add(index as usize * self.config.block_size as usize)
    }

    /// What the kernel counted since the last call: dropped packets and queue freezes.
    pub fn statistics(&self) -> io::Result<Statistics> {
        let stats: libc::tpacket_stats_v3 = sys::get(self.fd.as_raw_fd(), libc::PACKET_STATISTICS)?;
        Ok(Statistics {
            packets: u64::from(stats.tp_packets),
            drops: u64::from(stats.tp_drops),
            freezes: u64::from(stats.tp_freeze_q_cnt),
        })
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        sys::unmap(self.map, self.config.bytes() as usize);
    }
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// The system calls, each with the one `unsafe` it needs.
#[allow(unsafe_code)]
mod sys {
    use super::cvt;
    use std::io;
    use std::time::Duration;

    pub fn socket() -> libc::c_int {
        // SAFETY: socket(2) with constant arguments; the result is checked by the caller.
        unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) }
    }

    /// setsockopt(2) at SOL_PACKET with a value of its exact type.
    pub fn set<T>(fd: libc::c_int, option: libc::c_int, value: &T) -> io::Result<()> {
        let len = size_of::<T>() as libc::socklen_t;
        // SAFETY: `value` points at `len` readable bytes of the type the option expects.
        cvt(unsafe { libc::setsockopt(fd, libc::SOL_PACKET, option, (value as *const T).cast(), len) })
            .map(drop)
    }

    /// getsockopt(2) of a plain-integer struct `T` (all-zero is a valid value of it).
    pub fn get<T: Copy>(fd: libc::c_int, option: libc::c_int) -> io::Result<T> {
        // SAFETY: `T` is a C struct of integers, for which all-zero bytes are a valid value.
        let mut value: T = unsafe { std::mem::zeroed() };
        let mut len = size_of::<T>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `value`.
        cvt(unsafe {
            libc::getsockopt(fd, libc::SOL_PACKET, option, (&raw mut value).cast(), &raw mut len)
        })?;
        Ok(value)
    }

    /// Maps the ring the kernel allocated for `fd`.
    pub fn map(fd: libc::c_int, len: usize) -> io::Result<*mut u8> {
        // SAFETY: a new shared mapping of the socket's ring; no existing memory is affected.
        let map = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        };
        if map == libc::MAP_FAILED { Err(io::Error::last_os_error()) } else { Ok(map.cast()) }
    }

    pub fn unmap(map: *mut u8, len: usize) {
        // SAFETY: `map` and `len` are what `map` returned; the ring owning them is being
        // dropped, so no block borrows the mapping any more.
        unsafe { libc::munmap(map.cast(), len) };
    }

    /// Binds to every protocol on interface `ifindex`.
    pub fn bind(fd: libc::c_int, ifindex: u32) -> io::Result<()> {
        // SAFETY: all-zero is a valid sockaddr_ll; the fields that matter are set below.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        address.sll_ifindex = ifindex as libc::c_int;
        let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `address` is a sockaddr_ll of `len` bytes.
        cvt(unsafe { libc::bind(fd, (&raw const address).cast(), len) }).map(drop)
    }

    /// Waits until the ring has a block for us or `timeout` passes; an error the socket holds
    /// (the interface went down or away) is returned.
    pub fn wait(fd: libc::c_int, timeout: Duration) -> io::Result<()> {
        let mut poll = libc::pollfd { fd, events: libc::POLLIN | libc::POLLERR, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        cvt(unsafe { libc::poll(&raw mut poll, 1, ms) })?;
        if poll.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            let mut error: libc::c_int = 0;
            let mut len = size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: SO_ERROR writes one int.
            cvt(unsafe {
                libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&raw mut error).cast(), &raw mut len)
            })?;
            let error = if error != 0 { error } else { libc::EBADF };
            return Err(io::Error::from_raw_os_error(error));
        }
        Ok(())
    }
}
