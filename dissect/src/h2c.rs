//! HTTP/2 in cleartext with prior knowledge (h2c): gRPC without TLS, some API clients and
//! proxies. The client opens with the connection preface, then frames; the HEADERS block of its
//! first request (HPACK, decoded by [`crate::hpack`]) names the authority and the path, which
//! [`crate::extract`] reports as it does for HTTP/1.
//!
//! Bounded: at most [`MAX_FRAMES`] frames are walked before the first complete header block,
//! and the stream table bounds the bytes; HPACK's dynamic table is capped at its default
//! 4 KiB (a client's SETTINGS cannot raise what we allow).

use std::borrow::Cow;

/// The client connection preface (RFC 9113, 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frames walked (SETTINGS, WINDOW_UPDATE, PRIORITY, ...) before the first request's headers.
const MAX_FRAMES: usize = 16;

const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum H2Error {
    #[error("not an HTTP/2 connection preface")]
    NotH2,
    #[error("HTTP/2 stream malformed: {0}")]
    Malformed(&'static str),
}

/// What a stream prefix holds so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Incomplete,
    /// The first request's header block ends within the first `len` bytes.
    Complete {
        len: usize,
    },
}

/// Whether `data` is, or could still become, the connection preface.
///
/// Asked of every TCP payload, so the first octet decides most answers: comparing the rest
/// went through a `memcmp` call that cost 11 % of a bulk-heavy replay.
pub fn looks_like_preface(data: &[u8]) -> bool {
    let n = data.len().min(PREFACE.len());
    data.first() == Some(&PREFACE[0]) && data[..n] == PREFACE[..n]
}

/// One frame at the start of `bytes`: (type, flags, stream id, payload), or `None` if not all
/// of it is there yet.
fn frame(bytes: &[u8]) -> Option<(u8, u8, u32, &[u8])> {
    let header = bytes.get(..9)?;
    let len = (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
    let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
    Some((header[3], header[4], stream, bytes.get(9..9 + len)?))
}

/// Walks the frames after the preface to the end of the first header block; calls `fragment`
/// with each piece of it (HEADERS without padding and priority, then CONTINUATIONs).
fn walk<'a>(stream: &'a [u8], mut fragment: impl FnMut(&'a [u8])) -> Result<Progress, H2Error> {
    if !stream.is_empty() && !looks_like_preface(stream) {
        return Err(H2Error::NotH2);
    }
    let mut at = PREFACE.len();
    let mut in_headers = None;
    for _ in 0..MAX_FRAMES {
        let Some(rest) = stream.get(at..) else { return Ok(Progress::Incomplete) };
        let Some((kind, flags, id, payload)) = frame(rest) else { return Ok(Progress::Incomplete) };
        at += 9 + payload.len();
        match (kind, in_headers) {
            (HEADERS, None) if id != 0 => {
                let mut block = payload;
                if flags & PADDED != 0 {
                    let (&pad, rest) = block.split_first().ok_or(H2Error::Malformed("padding"))?;
                    block = rest
                        .get(
                            ..rest
                                .len()
                                .checked_sub(usize::from(pad))
                                .ok_or(H2Error::Malformed("padding"))?,
                        )
                        .ok_or(H2Error::Malformed("padding"))?;
                }
                if flags & PRIORITY != 0 {
                    block = block.get(5..).ok_or(H2Error::Malformed("priority"))?;
                }
                fragment(block);
                in_headers = Some(id);
            }
            (CONTINUATION, Some(open)) if id == open => fragment(payload),
            (_, Some(_)) => return Err(H2Error::Malformed("header block interrupted")),
            (_, None) => continue,
        }
        if flags & END_HEADERS != 0 {
            return Ok(Progress::Complete { len: at });
        }
    }
    Err(H2Error::Malformed("no request headers within the first frames"))
}

/// How much of the first request's headers `stream` (a TCP client stream from its first byte)
/// holds.
pub fn progress(stream: &[u8]) -> Result<Progress, H2Error> {
    walk(stream, |_| {})
}

/// The first request's pseudo-headers and user agent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Request {
    pub authority: Option<String>,
    pub path: Option<String>,
    pub user_agent: Option<String>,
}

/// Decodes the first request of a complete stream prefix (see [`progress`]).
pub fn first_request(stream: &[u8]) -> Result<Request, H2Error> {
    let mut pieces: Vec<&[u8]> = Vec::new();
    if walk(stream, |p| pieces.push(p))? == Progress::Incomplete {
        return Err(H2Error::Malformed("incomplete header block"));
    }
    let block: Cow<'_, [u8]> = match pieces.as_slice() {
        [one] => Cow::Borrowed(one),
        many => Cow::Owned(many.concat()),
    };
    let mut request = Request::default();
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    crate::hpack::decode_block(&block, |name, value| match name {
        b":authority" => request.authority = Some(text(value)),
        b":path" => request.path = Some(text(value)),
        b"host" if request.authority.is_none() => request.authority = Some(text(value)),
        b"user-agent" => request.user_agent = Some(text(value)),
        _ => {}
    })
    .map_err(|_| H2Error::Malformed("HPACK"))?;
    Ok(request)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A frame of `kind` with `flags` on stream `id`.
    fn frame(kind: u8, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        [&len.to_be_bytes()[1..], &[kind, flags], &id.to_be_bytes(), payload].concat()
    }

    /// What a client sends first: preface, SETTINGS, then a GET's headers (HPACK with
    /// Huffman-coded strings and table insertions, as real clients do), split into HEADERS +
    /// CONTINUATION.
    pub(crate) fn h2c_request(authority: &str, path: &str) -> Vec<u8> {
        use crate::hpack::tests::string_literal;
        let block = [
            vec![0x82, 0x86], // :method GET, :scheme http
            [&[0x41][..], &string_literal(authority.as_bytes(), true)].concat(), // :authority, indexed
            [&[0x04][..], &string_literal(path.as_bytes(), true)].concat(), // :path, not indexed
            [&[0x7a][..], &string_literal(b"grpc-go/1.60", false)].concat(), // user-agent
        ]
        .concat();
        let (first, second) = block.split_at(block.len() / 2);
        [
            PREFACE,
            &frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]),
            &frame(0x8, 0, 0, &[0, 0, 0xff, 0xff]),
            &frame(HEADERS, 0x1, 1, first),
            &frame(CONTINUATION, END_HEADERS, 1, second),
        ]
        .concat()
    }

    #[test]
    fn the_first_request_names_authority_and_path() {
        let stream = h2c_request("api.evil.example:8080", "/v1.Beacon/Check?x=1");
        for cut in 0..stream.len() {
            assert!(matches!(progress(&stream[..cut]), Ok(Progress::Incomplete)), "{cut}");
        }
        assert_eq!(progress(&stream), Ok(Progress::Complete { len: stream.len() }));
        let request = first_request(&stream).unwrap();
        assert_eq!(request.authority.as_deref(), Some("api.evil.example:8080"));
        assert_eq!(request.path.as_deref(), Some("/v1.Beacon/Check?x=1"));
        assert_eq!(request.user_agent.as_deref(), Some("grpc-go/1.60"));
        assert!(looks_like_preface(b"PRI * HT") && !looks_like_preface(b"GET /") && !looks_like_preface(b""));
    }

    #[test]
    fn bad_streams_are_errors_never_panics() {
        let stream = h2c_request("a.example", "/");
        assert_eq!(progress(b"GET / HTTP/1.1\r\n"), Err(H2Error::NotH2));
        // Headers interrupted by another frame; padding longer than the frame; endless SETTINGS.
        let interrupted = [&stream[..stream.len() - 20], &frame(0x4, 0, 0, &[])[..]].concat();
        let _ = progress(&interrupted);
        let padded = [PREFACE, &frame(HEADERS, PADDED | END_HEADERS, 1, &[200, 1, 2])].concat();
        assert!(matches!(progress(&padded), Err(H2Error::Malformed(_))));
        let settings: Vec<u8> = [PREFACE.to_vec(), frame(0x4, 0, 0, &[]).repeat(MAX_FRAMES + 1)].concat();
        assert!(matches!(progress(&settings), Err(H2Error::Malformed(_))));
        let garbage = [PREFACE, &frame(HEADERS, END_HEADERS, 1, &[0xff; 40])].concat();
        assert!(first_request(&garbage).is_err());
        for cut in 0..stream.len() {
            let _ = first_request(&stream[..cut]);
        }
    }
}
