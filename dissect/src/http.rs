//! HTTP/1.x requests: method, target, Host and User-Agent, parsed in place by `httparse`
//! (zero-copy, no allocation, hardened by years of use in hyper).

/// Headers examined per request at most; a request with more is refused (counted).
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpProgress<'a> {
    /// Looks like a request, but its headers have not ended yet.
    Incomplete,
    Complete(Request<'a>),
}

/// What a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target as sent: origin-form `/path?q`, or absolute-form `http://h/p`.
    pub target: &'a str,
    pub host: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("not an HTTP request")]
    NotHttp,
    #[error("malformed HTTP request: {0}")]
    Malformed(&'static str),
}

/// Methods that start a request; anything else is not HTTP (cheap first check per segment).
const METHODS: [&[u8]; 9] =
    [b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ", b"TRACE "];

/// Whether `data` can be the start of an HTTP request.
///
/// Asked of every TCP payload: the first octet turns away bulk data (TLS records, binary
/// protocols) before any method is compared.
pub fn looks_like_request(data: &[u8]) -> bool {
    let Some(first) = data.first() else { return false };
    METHODS
        .iter()
        .any(|m| m[0] == *first && (data.starts_with(m) || (data.len() < m.len() && m.starts_with(data))))
}

/// Parses the request at the start of `stream`.
pub fn parse_request(stream: &[u8]) -> Result<HttpProgress<'_>, HttpError> {
    if !looks_like_request(stream) {
        return Err(HttpError::NotHttp);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(stream) {
        Ok(httparse::Status::Partial) => Ok(HttpProgress::Incomplete),
        Ok(httparse::Status::Complete(_)) => {
            let header = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(str::trim)
            };
            let (host, user_agent) = (header("host"), header("user-agent"));
            Ok(HttpProgress::Complete(Request {
                method: req.method.ok_or(HttpError::Malformed("no method"))?,
                target: req.path.ok_or(HttpError::Malformed("no target"))?,
                host,
                user_agent,
            }))
        }
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::Malformed("too many headers")),
        Err(_) => Err(HttpError::Malformed("syntax")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_in_pieces_and_bad_ones() {
        let full = b"GET /a/b.exe?x=1 HTTP/1.1\r\nHost: Evil.Example:8080\r\nUser-Agent: curl/8\r\n\r\n";
        for cut in 1..full.len() {
            assert_eq!(parse_request(&full[..cut]), Ok(HttpProgress::Incomplete), "{cut}");
        }
        let HttpProgress::Complete(r) = parse_request(full).unwrap() else { panic!() };
        assert_eq!(
            (r.method, r.target, r.host, r.user_agent),
            ("GET", "/a/b.exe?x=1", Some("Evil.Example:8080"), Some("curl/8"))
        );
        assert_eq!(parse_request(b"\x16\x03\x01"), Err(HttpError::NotHttp));
        assert!(matches!(parse_request(b"GET /\x01 HTTP/1.1\r\n\r\n"), Err(HttpError::Malformed(_))));
        let many: Vec<u8> = [&b"GET / HTTP/1.1\r\n"[..], &b"X: y\r\n".repeat(70), b"\r\n"].concat();
        assert_eq!(parse_request(&many), Err(HttpError::Malformed("too many headers")));
    }
}
