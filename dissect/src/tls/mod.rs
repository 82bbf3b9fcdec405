//! TLS ClientHello: server name (SNI), ALPN, and the JA3 and JA4 fingerprints — from TCP
//! streams and from QUIC's CRYPTO frames alike.
//!
//! Why our own parser and not `tls-parser`: that crate builds vectors of every cipher and
//! extension per hello; here a hello is walked in place, bounds-checked at every length, and
//! the fingerprints are hashed while walking (MD5 for JA3, SHA-256 for JA4), so a hello costs
//! no allocation. We need a dozen fields, not a TLS implementation.
//!
//! JA3 (Salesforce): MD5 of `version,ciphers,extensions,groups,point_formats`, decimal values
//! joined by `-`, GREASE values left out. JA4 (FoxIO, the published specification):
//! `{t|q}{version}{d|i}{ciphers:02}{extensions:02}{alpn first+last}_{sha256(sorted ciphers)[..12]}_
//! {sha256(sorted extensions without SNI/ALPN "_" signature algorithms)[..12]}`.

use md5::Md5;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Ciphers and extensions considered for fingerprints; more are counted but not hashed. Real
/// hellos carry under 100 of each; the bound keeps the stack arrays small.
const MAX_LIST: usize = 128;
/// Longest server name we report (DNS limit).
const MAX_NAME: usize = 253;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("not a TLS handshake")]
    NotHandshake,
    #[error("not a ClientHello")]
    NotClientHello,
    #[error("ClientHello malformed: {0}")]
    Malformed(&'static str),
}

/// What a stream prefix holds so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A ClientHello needing `total` bytes of stream (record headers included); wait for more.
    Incomplete { total: usize },
    /// A whole ClientHello is inside the first `len` bytes of the stream.
    Complete { len: usize },
}

/// Most TLS records one ClientHello may be split over. Splitting a hello into many small
/// records is a known way to slip a server name past middleboxes that read only the first; we
/// follow it, boundedly (the stream table also bounds the bytes).
const MAX_RECORDS: usize = 64;

/// Whether `stream` (a TCP client stream from its first byte) starts with a ClientHello, and
/// how much of it is there. The hello may be split over several handshake records; the
/// complete length then covers every record up to the one that completes it.
pub fn client_hello_progress(stream: &[u8]) -> Result<Progress, TlsError> {
    if stream.len() < 6 {
        return if stream.first().is_none_or(|&b| b == 22) {
            Ok(Progress::Incomplete { total: 6 })
        } else {
            Err(TlsError::NotHandshake)
        };
    }
    if stream[0] != 22 || stream[1] != 3 {
        return Err(TlsError::NotHandshake);
    }
    if stream[5] != 1 {
        return Err(TlsError::NotClientHello);
    }
    // The handshake message's first four bytes (type, length) and how many of its bytes the
    // complete records so far hold.
    let (mut head, mut head_len, mut have, mut at) = ([0u8; 4], 0, 0usize, 0);
    for _ in 0..MAX_RECORDS {
        let Some(header) = stream.get(at..at + 5) else { return Ok(Progress::Incomplete { total: at + 5 }) };
        if header[0] != 22 || header[1] != 3 {
            return Err(TlsError::Malformed("ClientHello records interleaved with another record type"));
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 {
            return Err(TlsError::Malformed("empty handshake record"));
        }
        let end = at + 5 + len;
        // The single-record case needs only the first record's header to know its length.
        if at == 0 && stream.len() >= 9 {
            let hello =
                (usize::from(stream[6]) << 16) | (usize::from(stream[7]) << 8) | usize::from(stream[8]);
            if hello + 4 <= len {
                return Ok(if stream.len() >= end {
                    Progress::Complete { len: end }
                } else {
                    Progress::Incomplete { total: end }
                });
            }
        }
        let Some(payload) = stream.get(at + 5..end) else { return Ok(Progress::Incomplete { total: end }) };
        for &b in payload.iter().take(4 - head_len) {
            head[head_len] = b;
            head_len += 1;
        }
        have += len;
        if head_len == 4 {
            let need =
                4 + ((usize::from(head[1]) << 16) | (usize::from(head[2]) << 8) | usize::from(head[3]));
            if have >= need {
                return Ok(Progress::Complete { len: end });
            }
        }
        at = end;
    }
    Err(TlsError::Malformed("ClientHello split over too many records"))
}

/// The ClientHello handshake message at the start of `stream`: borrowed when one record holds
/// it (the common case), put together from the records' payloads when it is split.
pub fn handshake_of(stream: &[u8]) -> Result<Cow<'_, [u8]>, TlsError> {
    let Progress::Complete { len } = client_hello_progress(stream)? else {
        return Err(TlsError::Malformed("incomplete record"));
    };
    let first = 5 + usize::from(u16::from_be_bytes([stream[3], stream[4]]));
    if first == len {
        return Ok(Cow::Borrowed(&stream[5..len]));
    }
    let mut message = Vec::with_capacity(len);
    let mut rest = &stream[..len];
    while let [_, _, _, hi, lo, after @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*hi, *lo]));
        message.extend_from_slice(&after[..n]);
        rest = &after[n..];
    }
    Ok(Cow::Owned(message))
}

/// A parsed ClientHello: borrowed fields and the fingerprints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// Lower-cased host name from the SNI extension.
    pub sni: Option<SniName>,
    /// The first ALPN protocol offered (e.g. `h2`).
    pub alpn: Option<&'a [u8]>,
    /// Encrypted Client Hello offered: the real server name is hidden (a blind spot).
    pub ech: bool,
    pub ja3: [u8; 32],
    pub ja4: Ja4,
}

/// A server name in a fixed buffer (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SniName {
    buf: [u8; MAX_NAME],
    len: u8,
}

impl SniName {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).expect("ASCII checked on parse")
    }
}

impl std::fmt::Debug for SniName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JA4 fingerprint, 36 ASCII bytes (`t13d1516h2_8daaf6152771_e5627efa2ab1`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ja4([u8; 36]);

impl Ja4 {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII by construction")
    }
}

impl std::fmt::Debug for Ja4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// JA3 hex digest as text.
pub fn ja3_str(ja3: &[u8; 32]) -> &str {
    std::str::from_utf8(ja3).expect("hex digits")
}

/// Bounds-checked reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TlsError> {
        if self.0.len() < n {
            return Err(TlsError::Malformed(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, TlsError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, TlsError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], TlsError> {
        let n = usize::from(self.u8(what)?);
        self.take(n, what)
    }
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], TlsError> {
        let n = usize::from(self.u16(what)?);
        self.take(n, what)
    }
}

/// GREASE values (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// Up to [`MAX_LIST`] u16 values on the stack.
struct List {
    items: [u16; MAX_LIST],
    len: usize,
    /// All non-GREASE values seen, including those beyond the bound.
    count: usize,
}

impl List {
    fn new() -> List {
        List { items: [0; MAX_LIST], len: 0, count: 0 }
    }
    fn push(&mut self, v: u16) {
        self.count += 1;
        if self.len < MAX_LIST {
            self.items[self.len] = v;
            self.len += 1;
        }
    }
    fn as_slice(&self) -> &[u16] {
        &self.items[..self.len]
    }
}

/// Parses a ClientHello handshake message (type byte first): from [`handshake_of`] over TCP,
/// from QUIC's CRYPTO frames. `quic` selects JA4's `q` prefix.
pub fn parse_handshake(msg: &[u8], quic: bool) -> Result<ClientHello<'_>, TlsError> {
    let mut r = Reader(msg);
    if r.u8("handshake type")? != 1 {
        return Err(TlsError::NotClientHello);
    }
    let len = r.take(3, "handshake length")?;
    let len = (usize::from(len[0]) << 16) | (usize::from(len[1]) << 8) | usize::from(len[2]);
    let mut r = Reader(r.take(len, "ClientHello body")?);
    let legacy_version = r.u16("version")?;
    r.take(32, "random")?;
    r.vec8("session id")?;
    let suites = r.vec16("cipher suites")?;
    if suites.len() % 2 != 0 {
        return Err(TlsError::Malformed("odd cipher suite list"));
    }
    r.vec8("compression methods")?;
    let extensions = if r.0.is_empty() { &[][..] } else { r.vec16("extensions")? };

    let mut ciphers = List::new();
    for pair in suites.chunks_exact(2) {
        let v = u16::from_be_bytes([pair[0], pair[1]]);
        if !is_grease(v) {
            ciphers.push(v);
        }
    }
    let mut exts = List::new();
    let (mut sni, mut alpn, mut ech) = (None, None, false);
    let (mut groups, mut formats, mut sigalgs): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    let mut best_version = None::<u16>;
    let mut er = Reader(extensions);
    while !er.0.is_empty() {
        let ty = er.u16("extension type")?;
        let body = er.vec16("extension body")?;
        if is_grease(ty) {
            continue;
        }
        exts.push(ty);
        let mut b = Reader(body);
        match ty {
            0x0000 => sni = server_name(body)?,
            0x0010 => {
                let list = b.vec16("ALPN list")?;
                let first = Reader(list).vec8("ALPN protocol")?;
                alpn = (!first.is_empty()).then_some(first);
            }
            0x000a => groups = b.vec16("supported groups")?,
            0x000b => formats = b.vec8("point formats")?,
            0x000d => sigalgs = b.vec16("signature algorithms")?,
            0x002b => {
                for pair in b.vec8("supported versions")?.chunks_exact(2) {
                    let v = u16::from_be_bytes([pair[0], pair[1]]);
                    if !is_grease(v) {
                        best_version = Some(best_version.map_or(v, |b| b.max(v)));
                    }
                }
            }
            0xfe0d => ech = true,
            _ => {}
        }
    }
    let ja3 = ja3(legacy_version, &ciphers, &exts, groups, formats);
    let version = best_version.unwrap_or(legacy_version);
    let ja4 = ja4(quic, version, sni.is_some(), &ciphers, &exts, alpn, sigalgs);
    Ok(ClientHello { sni, alpn, ech, ja3, ja4 })
}

/// The host name of a server_name extension, lower-cased; names that are not DNS-like ASCII
/// are refused (they match nothing and would only confuse the log).
fn server_name(body: &[u8]) -> Result<Option<SniName>, TlsError> {
    let mut r = Reader(Reader(body).vec16("server name list")?);
    while !r.0.is_empty() {
        let kind = r.u8("server name type")?;
        let name = r.vec16("server name")?;
        if kind != 0 {
            continue;
        }
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(TlsError::Malformed("server name length"));
        }
        let mut out = SniName { buf: [0; MAX_NAME], len: name.len() as u8 };
        for (dst, &c) in out.buf.iter_mut().zip(name) {
            if !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_')) {
                return Err(TlsError::Malformed("server name characters"));
            }
            *dst = c.to_ascii_lowercase();
        }
        return Ok(Some(out));
    }
    Ok(None)
}

/// Hex digits of `bytes`, lower-case, into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
}

fn ja3(version: u16, ciphers: &List, exts: &List, groups: &[u8], formats: &[u8]) -> [u8; 32] {
    /// Feeds `values` in decimal joined by `-` into the hasher.
    fn dashed(h: &mut Md5, values: impl Iterator<Item = u16>) {
        for (i, v) in values.enumerate() {
            if i > 0 {
                h.update(b"-");
            }
            h.update(decimal(v, &mut [0; 5]));
        }
    }
    let groups = groups.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])).filter(|v| !is_grease(*v));
    let mut h = Md5::new();
    h.update(decimal(version, &mut [0; 5]));
    h.update(b",");
    dashed(&mut h, ciphers.as_slice().iter().copied());
    h.update(b",");
    dashed(&mut h, exts.as_slice().iter().copied());
    h.update(b",");
    dashed(&mut h, groups);
    h.update(b",");
    dashed(&mut h, formats.iter().map(|&f| u16::from(f)));
    let mut out = [0u8; 32];
    hex_into(&h.finalize(), &mut out);
    out
}

/// `v` in decimal digits, written into the end of `buf`.
fn decimal(mut v: u16, buf: &mut [u8; 5]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

fn ja4(
    quic: bool,
    version: u16,
    has_sni: bool,
    ciphers: &List,
    exts: &List,
    alpn: Option<&[u8]>,
    sigalgs: &[u8],
) -> Ja4 {
    let mut out = [b'0'; 36];
    out[0] = if quic { b'q' } else { b't' };
    let v: &[u8; 2] = match version {
        0x0304 => b"13",
        0x0303 => b"12",
        0x0302 => b"11",
        0x0301 => b"10",
        0x0300 => b"s3",
        0x0002 => b"s2",
        0xfeff => b"d1",
        0xfefd => b"d2",
        0xfefc => b"d3",
        _ => b"00",
    };
    out[1..3].copy_from_slice(v);
    out[3] = if has_sni { b'd' } else { b'i' };
    let two = |n: usize| [b'0' + (n.min(99) / 10) as u8, b'0' + (n.min(99) % 10) as u8];
    out[4..6].copy_from_slice(&two(ciphers.count));
    out[6..8].copy_from_slice(&two(exts.count));
    let (a, b) = match alpn {
        None => (b'0', b'0'),
        Some(p) => {
            let (first, last) = (p[0], p[p.len() - 1]);
            if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
                (first, last)
            } else {
                let mut hex = [0u8; 4];
                hex_into(&[first, last], &mut hex);
                (hex[0], hex[3])
            }
        }
    };
    (out[8], out[9]) = (a, b);
    out[10] = b'_';
    out[23] = b'_';

    let mut sorted = ciphers.items;
    let sorted = &mut sorted[..ciphers.len];
    sorted.sort_unstable();
    hashed_list(sorted, None, &mut out[11..23]);

    let mut sorted_exts = [0u16; MAX_LIST];
    let mut n = 0;
    for &e in exts.as_slice() {
        if e != 0x0000 && e != 0x0010 {
            sorted_exts[n] = e;
            n += 1;
        }
    }
    let sorted_exts = &mut sorted_exts[..n];
    sorted_exts.sort_unstable();
    hashed_list(sorted_exts, Some(sigalgs), &mut out[24..36]);
    Ja4(out)
}

/// First 12 hex digits of SHA-256 over `values` as 4-digit hex joined by commas, then (if any)
/// `_` and the signature algorithms in their order; `000000000000` for an empty list.
fn hashed_list(values: &[u16], sigalgs: Option<&[u8]>, out: &mut [u8]) {
    if values.is_empty() {
        out.fill(b'0');
        return;
    }
    let mut h = Sha256::new();
    let mut item = [0u8; 5];
    for (i, v) in values.iter().enumerate() {
        item[0] = b',';
        hex_into(&v.to_be_bytes(), &mut item[1..]);
        h.update(if i == 0 { &item[1..] } else { &item[..] });
    }
    if let Some(sig) = sigalgs.filter(|s| s.len() >= 2) {
        h.update(b"_");
        for (i, pair) in sig.chunks_exact(2).enumerate() {
            item[0] = b',';
            hex_into(pair, &mut item[1..]);
            h.update(if i == 0 { &item[1..] } else { &item[..] });
        }
    }
    let digest = h.finalize();
    let mut hex = [0u8; 12];
    hex_into(&digest[..6], &mut hex);
    out.copy_from_slice(&hex);
}

#[cfg(test)]
pub(crate) mod tests;
