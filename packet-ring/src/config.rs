//! The ring's shape: how many blocks of what size, and how long a block may wait for more
//! packets before it is handed over anyway.

use std::time::Duration;

/// Page size the kernel requires block sizes to be a multiple of (x86-64, aarch64 4K pages).
const PAGE: u32 = 4096;

/// How a ring is laid out. The defaults suit a 10 GbE gateway: 64 blocks of 2 MiB (128 MiB
/// per ring) hold about 0.1 s of a saturated 10 Gbit/s link, so a reader that stalls for that
/// long (a page fault storm, an indicator-set swap) loses nothing; a 10 ms retire timeout keeps
/// the latency of a quiet link low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Bytes per block: a power of two, at least 4 KiB. A packet larger than a block is cut.
    pub block_size: u32,
    /// Blocks in the ring (at least 2).
    pub block_count: u32,
    /// Longest a block with packets in it waits to be handed over.
    pub retire_timeout: Duration,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig { block_size: 2 << 20, block_count: 64, retire_timeout: Duration::from_millis(10) }
    }
}

/// A ring the kernel would refuse, or that could not hold a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingConfigError(pub String);

impl std::fmt::Display for RingConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RingConfigError {}

impl RingConfig {
    /// Largest ring accepted: 16 GiB, far beyond any sane setting, well inside what the
    /// kernel's `tpacket_req3` (32-bit sizes) and our offsets can describe.
    const MAX_BYTES: u64 = 16 << 30;

    /// Checks the layout before the kernel sees it, with an error that names the setting.
    pub fn check(&self) -> Result<(), RingConfigError> {
        let fail = |s: String| Err(RingConfigError(s));
        if !self.block_size.is_power_of_two() || self.block_size < PAGE {
            return fail(format!(
                "ring block size {} must be a power of two of at least {PAGE}",
                self.block_size
            ));
        }
        if self.block_count < 2 {
            return fail(format!("ring block count {} must be at least 2", self.block_count));
        }
        if self.bytes() > Self::MAX_BYTES {
            return fail(format!("ring of {} bytes is larger than {} bytes", self.bytes(), Self::MAX_BYTES));
        }
        let ms = self.retire_timeout.as_millis();
        if !(1..=1000).contains(&ms) {
            return fail(format!("ring retire timeout {ms} ms must be between 1 and 1000 ms"));
        }
        Ok(())
    }

    /// Bytes of memory the ring takes.
    pub fn bytes(&self) -> u64 {
        u64::from(self.block_size) * u64::from(self.block_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_bad_layouts_are_refused_by_name() {
        assert_eq!(RingConfig::default().check(), Ok(()));
        assert_eq!(RingConfig::default().bytes(), 128 << 20);
        let bad = [
            (RingConfig { block_size: 3 << 20, ..RingConfig::default() }, "power of two"),
            (RingConfig { block_size: 2048, ..RingConfig::default() }, "power of two"),
            (RingConfig { block_count: 1, ..RingConfig::default() }, "block count"),
            (RingConfig { block_size: 1 << 30, block_count: 17, ..RingConfig::default() }, "larger than"),
            (RingConfig { retire_timeout: Duration::ZERO, ..RingConfig::default() }, "retire timeout"),
            (
                RingConfig { retire_timeout: Duration::from_secs(2), ..RingConfig::default() },
                "retire timeout",
            ),
        ];
        for (config, says) in bad {
            let error = config.check().unwrap_err().to_string();
            assert!(error.contains(says), "{config:?}: {error}");
        }
    }
}
