//! A one-hash Bloom filter over the IPv4 address indicators: a miss in a /16 that holds
//! indicators (so past the /16 gate) usually ends at one bit here instead of a hash-table probe.
//!
//! Sized at 8 bits per address (rounded up to a power of two), so about one miss in nine
//! (1 − e^(−1/8)) still probes the table, at 1–2 bytes per address indicator. The hash is a
//! multiplication by a 64-bit odd constant, high bits kept (Fibonacci hashing): addresses in
//! feeds cluster in a few networks, and the multiplication spreads neighbours apart.

/// The filter's bits; empty (and always "maybe") before it is built.
#[derive(Debug, Default, Clone)]
pub(crate) struct AddressFilter {
    bits: Vec<u64>,
    /// 64 minus log2 of the number of bits: the shift that keeps a hash's top bits.
    shift: u32,
}

const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

impl AddressFilter {
    /// A filter over `addresses`, of which there are `count`.
    pub(crate) fn new(addresses: impl Iterator<Item = u32>, count: usize) -> AddressFilter {
        let bit_count = (count * 8).next_power_of_two().max(64);
        let mut filter =
            AddressFilter { bits: vec![0; bit_count / 64], shift: 64 - bit_count.trailing_zeros() };
        for address in addresses {
            let bit = filter.bit(address);
            filter.bits[bit / 64] |= 1 << (bit % 64);
        }
        filter
    }

    fn bit(&self, address: u32) -> usize {
        (u64::from(address).wrapping_mul(SPREAD) >> self.shift) as usize
    }

    /// False only if `address` is certainly not an indicator.
    #[inline]
    pub(crate) fn may_contain(&self, address: u32) -> bool {
        let bit = self.bit(address);
        self.bits.get(bit / 64).is_none_or(|w| w & (1 << (bit % 64)) != 0)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.bits.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_passes_and_most_others_do_not() {
        // 20,000 addresses crowded into one /16 and its neighbours, as feeds list them.
        let listed: Vec<u32> = (0..20_000u32).map(|i| 0x0a00_0000 + i * 3).collect();
        let filter = AddressFilter::new(listed.iter().copied(), listed.len());
        assert!(listed.iter().all(|&a| filter.may_contain(a)), "a Bloom filter never says no wrongly");
        let others = (0..20_000u32).map(|i| 0x0a00_0001 + i * 3);
        let passed = others.filter(|&a| filter.may_contain(a)).count();
        // Expected 1 − e^(−n/m) with m ≥ 8n: at most 11.8 %, so a fifth is a broken hash.
        assert!(passed < 4_000, "{passed} of 20,000 non-members passed");
        assert!(AddressFilter::default().may_contain(1), "an unbuilt filter only says maybe");
    }
}
