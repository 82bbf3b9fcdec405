//! QUIC Initial packets (v1 RFC 9000/9001, v2 RFC 9369, draft-29): remove header protection,
//! decrypt with the keys every observer can derive from the client's destination connection
//! id, and collect the CRYPTO frames that carry the TLS ClientHello — which may be spread over
//! several frames and several Initial packets (large post-quantum hellos are).
//!
//! Cryptography is `ring`'s (HKDF, AES-128-GCM, the QUIC header-protection mask), already in
//! the build through rustls. Per-connection state (the keys and the CRYPTO bytes so far) is
//! kept only for clients whose hello is incomplete, bounded like the TCP stream table.

use ring::aead::{self, quic};
use ring::hkdf;

use crate::fifo::FifoMap;
use crate::stream::FlowKey;

const V1: u32 = 0x0000_0001;
const V2: u32 = 0x6b33_43cf;
const DRAFT_29: u32 = 0xff00_001d;
const SALT_V1: [u8; 20] = hex20(b"38762cf7f55934b34d179ae6a4c80cadccbb7f0a");
const SALT_V2: [u8; 20] = hex20(b"0dede3def700a6db819381be6e269dcbf9bd2ed9");
const SALT_DRAFT_29: [u8; 20] = hex20(b"afbfec289993d24c9e9786f19c6111e04390a899");

/// Clients with an incomplete hello followed at once, and CRYPTO bytes kept per client.
pub const MAX_CLIENTS: usize = 1024;
pub const MAX_CRYPTO: usize = 16 * 1024;

const fn hex20(text: &[u8; 40]) -> [u8; 20] {
    const fn nibble(c: u8) -> u8 {
        if c >= b'a' { c - b'a' + 10 } else { c - b'0' }
    }
    let mut out = [0u8; 20];
    let mut i = 0;
    while i < 20 {
        out[i] = nibble(text[2 * i]) << 4 | nibble(text[2 * i + 1]);
        i += 1;
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuicError {
    #[error("not a QUIC Initial packet")]
    NotInitial,
    #[error("QUIC version {0:#x} not decrypted")]
    UnknownVersion(u32),
    #[error("malformed QUIC packet: {0}")]
    Malformed(&'static str),
    #[error("QUIC Initial does not decrypt")]
    Decrypt,
}

/// Counters of QUIC.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QuicStats {
    pub initials: u64,
    pub undecryptable: u64,
    pub hellos: u64,
}

/// The client Initial keys of one connection.
struct Keys {
    packet: aead::LessSafeKey,
    iv: [u8; 12],
    header: quic::HeaderProtectionKey,
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(secret: &hkdf::Prk, label: &[u8], out: &mut [u8]) {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let length = (out.len() as u16).to_be_bytes();
    let label_len = [(6 + label.len()) as u8];
    let info: [&[u8]; 5] = [&length, &label_len, b"tls13 ", label, &[0]];
    secret.expand(&info, Len(out.len())).and_then(|okm| okm.fill(out)).expect("lengths within HKDF limits");
}

impl Keys {
    fn client_initial(version: u32, dcid: &[u8]) -> Result<Keys, QuicError> {
        let (salt, v2) = match version {
            V1 => (&SALT_V1, false),
            V2 => (&SALT_V2, true),
            DRAFT_29 => (&SALT_DRAFT_29, false),
            other => return Err(QuicError::UnknownVersion(other)),
        };
        let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(dcid);
        let mut client = [0u8; 32];
        expand_label(&initial, b"client in", &mut client);
        let client = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &client);
        let (key_label, iv_label, hp_label): (&[u8], &[u8], &[u8]) = if v2 {
            (b"quicv2 key", b"quicv2 iv", b"quicv2 hp")
        } else {
            (b"quic key", b"quic iv", b"quic hp")
        };
        let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
        expand_label(&client, key_label, &mut key);
        expand_label(&client, iv_label, &mut iv);
        expand_label(&client, hp_label, &mut hp);
        Ok(Keys {
            packet: aead::LessSafeKey::new(
                aead::UnboundKey::new(&aead::AES_128_GCM, &key).expect("16-byte key"),
            ),
            iv,
            header: quic::HeaderProtectionKey::new(&quic::AES_128, &hp).expect("16-byte key"),
        })
    }
}

/// A QUIC variable-length integer at the start of `b`: (value, length).
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(..len)?;
    let mut v = u64::from(first & 0x3f);
    for &x in &bytes[1..] {
        v = (v << 8) | u64::from(x);
    }
    Some((v, len))
}

/// CRYPTO stream bytes of one client, in order from offset 0.
struct Client {
    keys: Keys,
    crypto: Vec<u8>,
    /// Frames beyond the contiguous prefix, kept until the gap fills (bounded by MAX_CRYPTO).
    ahead: Vec<(u64, Vec<u8>)>,
}

#[derive(Default)]
pub struct QuicTable {
    clients: FifoMap<FlowKey, Client>,
    pub stats: QuicStats,
}

impl QuicTable {
    /// Whether `key` is a client whose hello is still incomplete.
    pub fn follows(&self, key: &FlowKey) -> bool {
        self.clients.contains_key(key)
    }

    /// Offers a UDP datagram from client to server. When the CRYPTO stream holds a whole
    /// ClientHello handshake message, calls `hello` with it.
    pub fn offer(
        &mut self,
        key: FlowKey,
        datagram: &[u8],
        hello: impl FnOnce(&[u8]),
    ) -> Result<(), QuicError> {
        let mut rest = datagram;
        let mut complete = None;
        // Coalesced packets: Initial first, others (0-RTT, Handshake) after it are skipped.
        while !rest.is_empty() && complete.is_none() {
            let (consumed, done) = self.packet(key, rest)?;
            rest = &rest[consumed..];
            complete = done;
        }
        if let Some(bytes) = complete {
            self.stats.hellos += 1;
            hello(&bytes);
        }
        Ok(())
    }

    /// One long-header packet; returns its length and, when the hello became complete, it.
    fn packet(&mut self, key: FlowKey, p: &[u8]) -> Result<(usize, Option<Vec<u8>>), QuicError> {
        let malformed = QuicError::Malformed;
        let first = *p.first().ok_or(malformed("empty"))?;
        if first & 0xc0 != 0xc0 || p.len() < 7 {
            return Err(QuicError::NotInitial);
        }
        let version = u32::from_be_bytes([p[1], p[2], p[3], p[4]]);
        let kind = (first >> 4) & 3;
        let initial = if version == V2 { kind == 1 } else { kind == 0 };
        let dcid_len = usize::from(p[5]);
        let mut at = 6 + dcid_len;
        let dcid = p.get(6..at).ok_or(malformed("dcid"))?;
        let scid_len = usize::from(*p.get(at).ok_or(malformed("scid"))?);
        at += 1 + scid_len;
        if initial {
            let (token_len, n) = varint(p.get(at..).ok_or(malformed("token"))?).ok_or(malformed("token"))?;
            at += n + usize::try_from(token_len).map_err(|_| malformed("token"))?;
        }
        let (length, n) = varint(p.get(at..).ok_or(malformed("length"))?).ok_or(malformed("length"))?;
        at += n;
        let end = at
            .checked_add(usize::try_from(length).map_err(|_| malformed("length"))?)
            .ok_or(malformed("length"))?;
        if end > p.len() || dcid_len > 20 {
            return Err(malformed("length"));
        }
        if !initial {
            return Ok((end, None));
        }
        self.stats.initials += 1;
        let followed = self.clients.contains_key(&key);
        if !followed {
            let keys = Keys::client_initial(version, dcid)?;
            self.insert(key, keys);
        }
        let client = self.clients.get_mut(&key).expect("inserted above");
        let payload = match unprotect(&client.keys, &p[..end], at) {
            Ok(payload) => payload,
            // A first packet that does not open with client keys is most likely a server's
            // Initial (servers pad theirs too): not ours, not a failure.
            Err(_) if !followed => {
                self.clients.remove(&key);
                return Err(QuicError::NotInitial);
            }
            Err(e) => {
                self.stats.undecryptable += 1;
                self.clients.remove(&key);
                return Err(e);
            }
        };
        collect_crypto(client, &payload)?;
        match hello_length(&client.crypto) {
            Some(len) if client.crypto.len() >= len => {
                let mut c = self.clients.remove(&key).expect("present");
                c.crypto.truncate(len);
                Ok((end, Some(c.crypto)))
            }
            _ => Ok((end, None)),
        }
    }

    fn insert(&mut self, key: FlowKey, keys: Keys) {
        if self.clients.len() >= MAX_CLIENTS {
            self.clients.pop_oldest();
        }
        self.clients.insert(key, Client { keys, crypto: Vec::new(), ahead: Vec::new() });
    }
}

/// Length of the handshake message at the start of the CRYPTO stream, once its header is in.
fn hello_length(crypto: &[u8]) -> Option<usize> {
    let h = crypto.get(..4)?;
    Some(4 + ((usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3])))
}

/// Removes header protection and decrypts the packet `p` whose packet number starts at `pn_at`.
fn unprotect(keys: &Keys, p: &[u8], pn_at: usize) -> Result<Vec<u8>, QuicError> {
    let sample = p.get(pn_at + 4..pn_at + 20).ok_or(QuicError::Malformed("too short to sample"))?;
    let mask = keys.header.new_mask(sample).map_err(|_| QuicError::Decrypt)?;
    let mut header = p[..pn_at + 4].to_vec();
    header[0] ^= mask[0] & 0x0f;
    let pn_len = usize::from(header[0] & 3) + 1;
    header.truncate(pn_at + pn_len);
    let mut pn = 0u64;
    for i in 0..pn_len {
        header[pn_at + i] ^= mask[1 + i];
        pn = (pn << 8) | u64::from(header[pn_at + i]);
    }
    let mut nonce = keys.iv;
    for (n, b) in nonce[4..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= b;
    }
    let mut payload = p[pn_at + pn_len..].to_vec();
    let plain = keys
        .packet
        .open_in_place(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(&header), &mut payload)
        .map_err(|_| QuicError::Decrypt)?;
    let len = plain.len();
    payload.truncate(len);
    Ok(payload)
}

/// Adds the CRYPTO frames of a decrypted Initial payload to the client's stream.
fn collect_crypto(client: &mut Client, mut frames: &[u8]) -> Result<(), QuicError> {
    let malformed = QuicError::Malformed;
    while let Some((ty, n)) = varint(frames) {
        frames = &frames[n..];
        match ty {
            0x00 | 0x01 => {} // PADDING, PING
            0x02 | 0x03 => {
                // ACK: largest, delay, range count, first range, ranges, [ECN counts]
                let mut fields = 4;
                let mut ranges = 0u64;
                let mut i = 0;
                while i < fields {
                    let (v, n) = varint(frames).ok_or(malformed("ack"))?;
                    frames = &frames[n..];
                    if i == 2 {
                        ranges = v.min(1024);
                        fields += 2 * ranges as usize + if ty == 0x03 { 3 } else { 0 };
                    }
                    i += 1;
                }
                let _ = ranges;
            }
            0x06 => {
                let (offset, n) = varint(frames).ok_or(malformed("crypto offset"))?;
                frames = &frames[n..];
                let (len, n) = varint(frames).ok_or(malformed("crypto length"))?;
                frames = &frames[n..];
                let len = usize::try_from(len).map_err(|_| malformed("crypto length"))?;
                let data = frames.get(..len).ok_or(malformed("crypto data"))?;
                frames = &frames[len..];
                add_crypto(client, offset, data)?;
            }
            0x1c | 0x1d => return Ok(()), // CONNECTION_CLOSE: nothing more for us
            _ => return Err(malformed("frame type not allowed in Initial")),
        }
    }
    Ok(())
}

fn add_crypto(client: &mut Client, offset: u64, data: &[u8]) -> Result<(), QuicError> {
    let end = offset.saturating_add(data.len() as u64);
    if end > MAX_CRYPTO as u64 {
        return Err(QuicError::Malformed("CRYPTO stream beyond the bound"));
    }
    client.ahead.push((offset, data.to_vec()));
    // Move every piece that now continues the contiguous prefix.
    loop {
        let have = client.crypto.len() as u64;
        let Some(i) = client.ahead.iter().position(|(o, d)| *o <= have && o + d.len() as u64 > have) else {
            client.ahead.retain(|(o, d)| o + d.len() as u64 > client.crypto.len() as u64);
            return Ok(());
        };
        let (o, d) = client.ahead.swap_remove(i);
        client.crypto.extend_from_slice(&d[(have - o) as usize..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9001 Appendix A: the client Initial keys for DCID 0x8394c8f03e515708.
    #[test]
    fn derives_the_rfc_9001_sample_keys() {
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, &SALT_V1).extract(&dcid);
        let mut client = [0u8; 32];
        expand_label(&initial, b"client in", &mut client);
        assert_eq!(hex::encode(client), "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea");
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &client);
        let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
        expand_label(&prk, b"quic key", &mut key);
        expand_label(&prk, b"quic iv", &mut iv);
        expand_label(&prk, b"quic hp", &mut hp);
        assert_eq!(hex::encode(key), "1f369613dd76d5467730efcbe3b1a22d");
        assert_eq!(hex::encode(iv), "fa044b2f42a3fd3b46fb255c");
        assert_eq!(hex::encode(hp), "9f50449e04a0e810283a1e9933adedd2");
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let key = FlowKey {
            src: "10.0.0.1".parse().unwrap(),
            dst: "192.0.2.1".parse().unwrap(),
            src_port: 5000,
            dst_port: 443,
        };
        let mut table = QuicTable::default();
        let mut packet = vec![0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x41, 0x00];
        packet.extend([0u8; 300]);
        for cut in 0..packet.len() {
            let _ = table.offer(key, &packet[..cut], |_| panic!("no hello in garbage"));
        }
        // Not decryptable with client keys and not a client we follow: taken for a server's
        // Initial, not counted as a failure.
        assert_eq!(table.offer(key, &packet, |_| {}), Err(QuicError::NotInitial));
        assert_eq!(table.stats.undecryptable, 0);
    }
}
