//! The compiled on-disk form of a set: what `zdn-agent compile-indicators` writes and what the
//! agent maps at start instead of parsing 1.85M text lines again.
//!
//! ```text
//! magic "ZDNSET\0\2" | version u64 | entries u32 | text bytes u32 | wide u32 | runs u32 | metas bytes u32 | ids bytes u32
//! entries   8 bytes each: a u32, b u16, kind u8, exact_only u8 (little endian)
//! runs      8 bytes each: first entry u32, meta u32
//! text      every text value back to back (UTF-8)
//! wide      18 bytes each: address as IPv6 bits u128, prefix u8, is_ipv4 u8
//! metas     JSON array of metadata records
//! ids       JSON array of [entry, id]
//! crc32     of everything before it
//! ```
//!
//! The CRC catches torn and damaged files; authenticity is the signature's job when a set
//! arrives from the collector. Loading validates every index and range, so a damaged or
//! hostile file is an error, never a panic or an out-of-bounds read. `sources::build_set`
//! maps the file (memmap2) and decodes it, copying the sections out once; the lookup tables
//! are rebuilt from the entries.

use super::{Entry, IndicatorSet, KIND_V6_PORT};
use crate::model::Meta;
use ipnet::IpNet;
use std::io::Write;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use thiserror::Error;

const MAGIC: &[u8; 8] = b"ZDNSET\x00\x02";
const HEADER: usize = 8 + 8 + 4 * 6;

#[derive(Debug, Error)]
pub enum CompiledError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("not a compiled ZDN indicator set (bad magic or version of the format)")]
    NotASet,
    #[error("compiled set is damaged: {0}")]
    Damaged(&'static str),
}

/// Encodes `set` with its `version`.
pub fn encode(set: &IndicatorSet, version: u64) -> Vec<u8> {
    let metas = serde_json::to_vec(&set.metas).expect("metas serialise");
    let mut ids: Vec<(&u32, &Box<str>)> = set.ids.iter().collect();
    ids.sort();
    let ids = serde_json::to_vec(&ids).expect("ids serialise");
    let mut out =
        Vec::with_capacity(HEADER + set.entries.len() * 12 + set.text.len() + metas.len() + ids.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    for n in [set.entries.len(), set.text.len(), set.wide.len(), set.meta_runs.len(), metas.len(), ids.len()]
    {
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    for e in &set.entries {
        out.extend_from_slice(&e.a.to_le_bytes());
        out.extend_from_slice(&e.b.to_le_bytes());
        out.extend_from_slice(&[e.kind, e.exact_only]);
    }
    for &(first, meta) in &set.meta_runs {
        out.extend_from_slice(&first.to_le_bytes());
        out.extend_from_slice(&meta.to_le_bytes());
    }
    out.extend_from_slice(set.text.as_bytes());
    for net in &set.wide {
        let (bits, v4) = match net.addr() {
            IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), 1),
            IpAddr::V6(v6) => (u128::from(v6), 0),
        };
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(&[net.prefix_len(), v4]);
    }
    out.extend_from_slice(&metas);
    out.extend_from_slice(&ids);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Writes the compiled set atomically (a temporary file renamed into place).
pub fn write(set: &IndicatorSet, version: u64, path: &Path) -> Result<(), CompiledError> {
    let io = |source| CompiledError::Io { path: path.display().to_string(), source };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(&encode(set, version)).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Decodes a compiled set from bytes.
pub fn decode(bytes: &[u8]) -> Result<(IndicatorSet, u64), CompiledError> {
    use CompiledError::Damaged;
    if bytes.len() < HEADER + 4 || &bytes[..8] != MAGIC {
        return Err(CompiledError::NotASet);
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(Damaged("checksum mismatch"));
    }
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes")) as usize;
    let version = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    let (n_entries, text_len, n_wide) = (u32_at(16), u32_at(20), u32_at(24));
    let (n_runs, metas_len, ids_len) = (u32_at(28), u32_at(32), u32_at(36));
    let mut reader = Reader { bytes: body, at: HEADER };
    let entry_bytes = reader.take(n_entries.checked_mul(8).ok_or(Damaged("entry count"))?)?;
    let run_bytes = reader.take(n_runs.checked_mul(8).ok_or(Damaged("run count"))?)?;
    let text = std::str::from_utf8(reader.take(text_len)?).map_err(|_| Damaged("text is not UTF-8"))?;
    let wide_bytes = reader.take(n_wide.checked_mul(18).ok_or(Damaged("network count"))?)?;
    let metas: Vec<Meta> =
        serde_json::from_slice(reader.take(metas_len)?).map_err(|_| Damaged("metadata"))?;
    let ids: Vec<(u32, Box<str>)> =
        serde_json::from_slice(reader.take(ids_len)?).map_err(|_| Damaged("ids"))?;
    if reader.at != body.len() {
        return Err(Damaged("trailing bytes"));
    }
    let wide: Vec<IpNet> = wide_bytes
        .chunks_exact(18)
        .map(|c| {
            let bits = u128::from_le_bytes(c[..16].try_into().expect("16 bytes"));
            let addr = match (c[17], Ipv6Addr::from(bits).to_ipv4_mapped()) {
                (1, Some(v4)) => IpAddr::V4(v4),
                (1, None) => return Err(Damaged("IPv4 network with an IPv6 address")),
                _ => IpAddr::V6(Ipv6Addr::from(bits)),
            };
            IpNet::new(addr, c[16]).map_err(|_| Damaged("network prefix"))
        })
        .collect::<Result<_, _>>()?;
    let mut entries = Vec::with_capacity(n_entries);
    for c in entry_bytes.chunks_exact(8) {
        let e = Entry {
            a: u32::from_le_bytes(c[..4].try_into().expect("4 bytes")),
            b: u16::from_le_bytes(c[4..6].try_into().expect("2 bytes")),
            kind: c[6],
            exact_only: c[7],
        };
        check_entry(&e, text, &wide)?;
        entries.push(e);
    }
    let meta_runs: Vec<(u32, u32)> = run_bytes
        .chunks_exact(8)
        .map(|c| {
            (
                u32::from_le_bytes(c[..4].try_into().expect("4 bytes")),
                u32::from_le_bytes(c[4..].try_into().expect("4 bytes")),
            )
        })
        .collect();
    let ordered = meta_runs.windows(2).all(|w| w[0].0 < w[1].0);
    let in_range =
        meta_runs.iter().all(|&(first, m)| (first as usize) < entries.len() && (m as usize) < metas.len());
    let starts_at_zero = entries.is_empty() || meta_runs.first().is_some_and(|&(first, _)| first == 0);
    if !ordered || !in_range || !starts_at_zero {
        return Err(Damaged("metadata runs"));
    }
    if ids.iter().any(|(i, _)| *i as usize >= entries.len()) {
        return Err(Damaged("id of a missing entry"));
    }
    let mut set = IndicatorSet {
        entries,
        text: text.to_owned(),
        wide,
        metas,
        meta_runs,
        ids: ids.into_iter().collect(),
        ..IndicatorSet::default()
    };
    set.index();
    Ok((set, version))
}

/// Every index and range of an entry must point inside the file.
fn check_entry(e: &Entry, text: &str, wide: &[IpNet]) -> Result<(), CompiledError> {
    use CompiledError::Damaged;
    if e.kind > KIND_V6_PORT {
        return Err(Damaged("entry kind"));
    }
    let kind = super::kind_from_u8(e.kind);
    let uses_wide =
        matches!(kind, crate::model::Kind::Ipv6 | crate::model::Kind::Cidr) || e.kind == KIND_V6_PORT;
    let uses_text = matches!(
        kind,
        crate::model::Kind::Domain
            | crate::model::Kind::Url
            | crate::model::Kind::Ja3
            | crate::model::Kind::Ja4
    );
    if uses_wide && e.a as usize >= wide.len() {
        return Err(Damaged("network index"));
    }
    if uses_text {
        let (start, end) = (e.a as usize, e.a as usize + e.b as usize);
        if end > text.len() || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            return Err(Damaged("text range"));
        }
    }
    // IPv4 entries carry the address itself in `a`: any u32 is an address, nothing to check.
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CompiledError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(CompiledError::Damaged("section past the end"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::parse_plain;

    fn sample() -> IndicatorSet {
        let mut inds = parse_plain("f", "evil.example\n203.0.113.9\n198.51.100.1:8443\n[2001:db8::2]:443\n2001:db8::1\n10.0.0.0/8\n2001:db8::/32\nevil.example/x\n").indicators;
        inds[0].id = Some("uuid-1".into());
        IndicatorSet::new(inds)
    }

    #[test]
    fn round_trips_every_indicator_and_the_version() {
        let set = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set.zdn");
        write(&set, 42, &path).unwrap();
        let (back, version) = decode(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(version, 42);
        let all = |s: &IndicatorSet| s.iter().map(|m| m.to_indicator()).collect::<Vec<_>>();
        assert_eq!(all(&back), all(&set));
        assert!(back.match_domain("a.evil.example").is_some());
        assert!(back.match_ip("10.9.9.9".parse().unwrap()).is_some());
    }

    #[test]
    fn damaged_files_are_errors_never_panics() {
        let bytes = encode(&sample(), 1);
        assert!(matches!(decode(b"not a set"), Err(CompiledError::NotASet)));
        for cut in [bytes.len() - 1, HEADER + 3, 20] {
            assert!(decode(&bytes[..cut]).is_err());
        }
        let mut flipped = bytes.clone();
        flipped[HEADER + 5] ^= 0x40;
        assert!(matches!(decode(&flipped), Err(CompiledError::Damaged("checksum mismatch"))));
        // A well-formed checksum over hostile content: indexes are checked one by one.
        let mut hostile = bytes[..bytes.len() - 4].to_vec();
        hostile[HEADER..HEADER + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        hostile[HEADER + 6] = 5; // a URL whose text lies far outside the file
        let crc = crc32fast::hash(&hostile);
        hostile.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(decode(&hostile), Err(CompiledError::Damaged(_))));
    }
}
