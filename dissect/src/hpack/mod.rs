//! HPACK (RFC 7541): the header compression of HTTP/2, decoded for one header block.
//!
//! We read the first request of an h2c connection, so a decoder here always starts from an
//! empty dynamic table and sees one block. The crates we tried could not serve the packet
//! path: `loona-hpack` (and `hpack`, its origin) build their Huffman tables as hash maps for
//! every string they decode and then walk them bit by bit (≈ 2 µs per request, a quarter of the
//! agent's whole packet budget on the test suite); `httlib-hpack` is table-driven but panics on
//! malformed blocks; `h2` keeps its decoder private. This one is small, bounded and checked
//! against `loona-hpack` as an oracle (tests and the `hpack` fuzz target decode the same random
//! blocks with both).
//!
//! Bounds: integers of at most 5 octets (as `loona-hpack`), a dynamic table of 4 KiB (the
//! HTTP/2 default; a client may not announce more without the server's SETTINGS, which we do
//! not follow), size updates only at the start of the block (RFC 7541, 4.2).

mod huffman;
mod static_table;

use std::borrow::Cow;
use std::collections::VecDeque;

pub use huffman::HuffmanError;

/// The dynamic table's size limit: HTTP/2's default SETTINGS_HEADER_TABLE_SIZE.
const MAX_TABLE_SIZE: usize = 4096;

/// Why a header block is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    #[error("HPACK integer truncated or longer than 5 octets")]
    Integer,
    #[error("HPACK string longer than the block")]
    Truncated,
    #[error("HPACK Huffman string invalid: {0:?}")]
    Huffman(HuffmanError),
    #[error("HPACK index {0} names no table entry")]
    Index(usize),
    #[error("HPACK dynamic table size update not at the block's start, above 4 KiB, or alone")]
    SizeUpdate,
}

/// The dynamic table: newest entry first, each costing its name and value plus 32 octets.
struct DynamicTable {
    entries: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.entries.get(index).map(|(name, value)| (name.as_slice(), value.as_slice()))
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let Some((name, value)) = self.entries.pop_back() else { break };
            self.size -= name.len() + value.len() + 32;
        }
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + 32;
        // An entry larger than the table empties it and is not kept (RFC 7541, 4.4).
        self.evict_to(self.max_size.saturating_sub(size));
        if size <= self.max_size {
            self.size += size;
            self.entries.push_front((name, value));
        }
    }
}

/// A decoded name and value: borrowed from the block or the static table where possible.
type Field<'b> = (Cow<'b, [u8]>, Cow<'b, [u8]>);

/// A decoding context for one header block.
struct Decoder<'b> {
    block: &'b [u8],
    at: usize,
    table: DynamicTable,
}

impl<'b> Decoder<'b> {
    /// An integer with an `n`-bit prefix (RFC 7541, 5.1), at most 5 octets.
    fn integer(&mut self, n: u8) -> Result<usize, HpackError> {
        let mask = (1u16 << n) as usize - 1;
        let first = usize::from(*self.block.get(self.at).ok_or(HpackError::Integer)?) & mask;
        self.at += 1;
        if first < mask {
            return Ok(first);
        }
        let mut value = first;
        for shift in [0, 7, 14, 21] {
            let octet = *self.block.get(self.at).ok_or(HpackError::Integer)?;
            self.at += 1;
            value += usize::from(octet & 0x7f) << shift;
            if octet & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(HpackError::Integer)
    }

    /// A string literal (RFC 7541, 5.2): borrowed when sent raw, decoded when Huffman-coded.
    fn string(&mut self) -> Result<Cow<'b, [u8]>, HpackError> {
        let huffman = self.block.get(self.at).ok_or(HpackError::Truncated)? & 0x80 != 0;
        let len = self.integer(7)?;
        let raw = self.block.get(self.at..self.at.saturating_add(len)).ok_or(HpackError::Truncated)?;
        self.at += len;
        if !huffman {
            return Ok(Cow::Borrowed(raw));
        }
        let mut decoded = Vec::new();
        huffman::decode(raw, &mut decoded).map_err(HpackError::Huffman)?;
        Ok(Cow::Owned(decoded))
    }

    /// The entry at a 1-based index of the static table followed by the dynamic one.
    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match index {
            0 => Err(HpackError::Index(0)),
            _ => match static_table::ENTRIES.get(index - 1) {
                Some(&(name, value)) => Ok((name, value)),
                None => {
                    self.table.get(index - 1 - static_table::ENTRIES.len()).ok_or(HpackError::Index(index))
                }
            },
        }
    }

    /// A literal field whose name is indexed (when `index` ≠ 0) or follows as a string.
    fn literal(&mut self, prefix: u8) -> Result<Field<'b>, HpackError> {
        let index = self.integer(prefix)?;
        let name = match index {
            0 => self.string()?,
            // A static name is borrowed; a dynamic one is copied, as the table may change.
            _ => match static_table::ENTRIES.get(index - 1) {
                Some(&(name, _)) => Cow::Borrowed(name),
                None => Cow::Owned(self.entry(index)?.0.to_vec()),
            },
        };
        Ok((name, self.string()?))
    }
}

/// Decodes one header block (all its HEADERS and CONTINUATION fragments joined) from an empty
/// dynamic table, calling `field` with each name and value in order.
pub fn decode_block(block: &[u8], mut field: impl FnMut(&[u8], &[u8])) -> Result<(), HpackError> {
    let mut decoder = Decoder {
        block,
        at: 0,
        table: DynamicTable { entries: VecDeque::new(), size: 0, max_size: MAX_TABLE_SIZE },
    };
    let mut fields_seen = false;
    while let Some(&first) = block.get(decoder.at) {
        if first & 0x80 != 0 {
            // Indexed field (6.1).
            let index = decoder.integer(7)?;
            let (name, value) = decoder.entry(index)?;
            field(name, value);
        } else if first & 0xc0 == 0x40 {
            // Literal with incremental indexing (6.2.1): reported, then kept in the table.
            let (name, value) = decoder.literal(6)?;
            field(&name, &value);
            decoder.table.insert(name.into_owned(), value.into_owned());
        } else if first & 0xe0 == 0x20 {
            // Dynamic table size update (6.3): only before the first field, and some field
            // must follow (as `loona-hpack` and h2 require).
            let size = decoder.integer(5)?;
            if fields_seen || size > MAX_TABLE_SIZE {
                return Err(HpackError::SizeUpdate);
            }
            decoder.table.max_size = size;
            decoder.table.evict_to(size);
            continue;
        } else {
            // Literal without indexing (6.2.2) or never indexed (6.2.3).
            let (name, value) = decoder.literal(4)?;
            field(&name, &value);
        }
        fields_seen = true;
    }
    match fields_seen || block.is_empty() {
        true => Ok(()),
        false => Err(HpackError::SizeUpdate),
    }
}

#[cfg(test)]
pub(crate) mod tests;
