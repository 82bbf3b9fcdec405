//! DNS question names, straight from the wire.
//!
//! Only what the agent needs: is this a query, and which names does it ask for. Names are
//! decoded into a caller-provided buffer, lower-cased, without allocating. Compression pointers
//! are followed, forwards too as resolvers accept them, at most [`MAX_POINTERS`] per name, so
//! a pointer loop ends in an error, never a hang; truncation is an error, never a panic.

/// Longest name in presentation form (RFC 1035: 255 octets on the wire).
pub const MAX_NAME: usize = 255;
const MAX_POINTERS: usize = 16;
/// Questions we read from one message; real queries carry one.
pub const MAX_QUESTIONS: usize = 4;
const HEADER_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsError {
    Truncated,
    NotQuery,
    NotResponse,
    BadLabel,
    PointerLoop,
    NameTooLong,
}

/// Calls `each` with every question name of a DNS query message (lower-case, no trailing dot;
/// the root name is skipped). Responses are `Err(NotQuery)`, and so are NOTIFY and UPDATE,
/// whose "question" is a zone, not a lookup; other opcodes, unassigned ones included, are read
/// (a name asked about in an odd way is still asked about).
pub fn for_each_query_name(msg: &[u8], mut each: impl FnMut(&str)) -> Result<(), DnsError> {
    if msg.len() < HEADER_LEN {
        return Err(DnsError::Truncated);
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let opcode = (flags >> 11) & 0xf;
    if flags & 0x8000 != 0 || opcode == 4 || opcode == 5 {
        return Err(DnsError::NotQuery);
    }
    let questions = usize::from(u16::from_be_bytes([msg[4], msg[5]])).min(MAX_QUESTIONS);
    let mut pos = HEADER_LEN;
    let mut buf = [0u8; MAX_NAME];
    for _ in 0..questions {
        let (len, next) = read_name(msg, pos, &mut buf)?;
        // QTYPE and QCLASS follow the name.
        if next + 4 > msg.len() {
            return Err(DnsError::Truncated);
        }
        pos = next + 4;
        if len > 0 {
            // read_name only writes printable ASCII, so this cannot fail; stay total anyway.
            if let Ok(name) = std::str::from_utf8(&buf[..len]) {
                each(name);
            }
        }
    }
    Ok(())
}

/// Answer records read from one response at most.
pub const MAX_ANSWERS: usize = 32;

/// What an answer record says a name resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    Address(std::net::IpAddr),
    /// The canonical name (CNAME target), lower-case.
    Alias(&'a str),
}

/// Calls `each` with the (first) question name and the A, AAAA and CNAME data of a DNS
/// response's answer section (at most [`MAX_ANSWERS`] records). Anything but a response to a
/// standard query is `Err(NotResponse)`.
pub fn for_each_answer(msg: &[u8], mut each: impl FnMut(&str, Answer<'_>)) -> Result<(), DnsError> {
    if msg.len() < HEADER_LEN {
        return Err(DnsError::Truncated);
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & 0x8000 == 0 || (flags >> 11) & 0xf != 0 {
        return Err(DnsError::NotResponse);
    }
    let questions = usize::from(u16::from_be_bytes([msg[4], msg[5]]));
    let answers = usize::from(u16::from_be_bytes([msg[6], msg[7]])).min(MAX_ANSWERS);
    if questions > MAX_QUESTIONS {
        return Err(DnsError::Truncated);
    }
    let (mut buf, mut question) = ([0u8; MAX_NAME], [0u8; MAX_NAME]);
    let mut question_len = 0;
    let mut pos = HEADER_LEN;
    for i in 0..questions {
        let (len, next) = read_name(msg, pos, &mut buf)?;
        if i == 0 {
            question = buf;
            question_len = len;
        }
        pos = next + 4;
    }
    let question = std::str::from_utf8(&question[..question_len]).unwrap_or_default();
    for _ in 0..answers {
        let after_name = read_name(msg, pos, &mut buf)?.1;
        let fixed = msg.get(after_name..after_name + 10).ok_or(DnsError::Truncated)?;
        let (rtype, rdlen) =
            (u16::from_be_bytes([fixed[0], fixed[1]]), usize::from(u16::from_be_bytes([fixed[8], fixed[9]])));
        let rdata_at = after_name + 10;
        let rdata = msg.get(rdata_at..rdata_at + rdlen).ok_or(DnsError::Truncated)?;
        match (rtype, rdlen) {
            (1, 4) => each(
                question,
                Answer::Address(std::net::Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]).into()),
            ),
            (28, 16) => {
                let octets: [u8; 16] = rdata.try_into().expect("length checked");
                each(question, Answer::Address(std::net::Ipv6Addr::from(octets).into()));
            }
            (5, _) => {
                let (len, _) = read_name(msg, rdata_at, &mut buf)?;
                if let Ok(name) = std::str::from_utf8(&buf[..len])
                    && len > 0
                {
                    each(question, Answer::Alias(name));
                }
            }
            _ => {}
        }
        pos = rdata_at + rdlen;
    }
    Ok(())
}

/// Decodes the name at `start` into `out`; returns its length and the offset after the name
/// in the original position (after the first pointer, if any).
fn read_name(msg: &[u8], start: usize, out: &mut [u8; MAX_NAME]) -> Result<(usize, usize), DnsError> {
    let mut pos = start;
    let mut len = 0;
    let mut after = None;
    let mut pointers = 0;
    loop {
        let &b = msg.get(pos).ok_or(DnsError::Truncated)?;
        match b & 0xc0 {
            0x00 if b == 0 => return Ok((len, after.unwrap_or(pos + 1))),
            0x00 => {
                let label = msg.get(pos + 1..pos + 1 + usize::from(b)).ok_or(DnsError::Truncated)?;
                let dot = usize::from(len > 0);
                if len + dot + label.len() > MAX_NAME {
                    return Err(DnsError::NameTooLong);
                }
                if dot == 1 {
                    out[len] = b'.';
                }
                for (o, &c) in out[len + dot..].iter_mut().zip(label) {
                    // A '.' inside a label, or non-printable bytes, cannot be a name we match.
                    if c == b'.' || !c.is_ascii_graphic() {
                        return Err(DnsError::BadLabel);
                    }
                    *o = c.to_ascii_lowercase();
                }
                len += dot + label.len();
                pos += 1 + label.len();
            }
            0xc0 => {
                let &lo = msg.get(pos + 1).ok_or(DnsError::Truncated)?;
                let target = usize::from(u16::from_be_bytes([b & 0x3f, lo]));
                pointers += 1;
                if target == pos || pointers > MAX_POINTERS {
                    return Err(DnsError::PointerLoop);
                }
                after.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(DnsError::BadLabel),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(names: &[&str]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, names.len() as u8, 0, 0, 0, 0, 0, 0];
        for name in names {
            for label in name.split('.') {
                m.push(label.len() as u8);
                m.extend_from_slice(label.as_bytes());
            }
            m.extend_from_slice(&[0, 0, 1, 0, 1]);
        }
        m
    }

    fn names(msg: &[u8]) -> Result<Vec<String>, DnsError> {
        let mut out = Vec::new();
        for_each_query_name(msg, |n| out.push(n.to_owned()))?;
        Ok(out)
    }

    #[test]
    fn reads_question_names_lower_cased() {
        assert_eq!(names(&query(&["WWW.Evil.example"])).unwrap(), ["www.evil.example"]);
        assert_eq!(names(&query(&["a.example", "b.example"])).unwrap(), ["a.example", "b.example"]);
    }

    #[test]
    fn follows_pointers_both_ways_and_refuses_loops() {
        let mut m = query(&["evil.example"]);
        // Second question: "x" + pointer to offset 12 (the first name).
        m[5] = 2;
        m.extend_from_slice(&[1, b'x', 0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(names(&m).unwrap(), ["evil.example", "x.evil.example"]);
        let mut looped = query(&[]);
        looped[5] = 1;
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(names(&looped), Err(DnsError::PointerLoop));
        // Two pointers at each other: ended by the pointer bound.
        let mut pair = query(&[]);
        pair[5] = 1;
        pair.extend_from_slice(&[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(names(&pair), Err(DnsError::PointerLoop));
        // A forward pointer, as in Suricata's dns-forward-pointer capture.
        let mut forward = query(&[]);
        forward[5] = 2;
        forward.extend_from_slice(&[
            0xc0, 18, 0, 1, 0, 1, 4, b'e', b'v', b'i', b'l', 2, b'n', b'l', 0, 0, 1, 0, 1,
        ]);
        assert_eq!(names(&forward).unwrap(), ["evil.nl", "evil.nl"]);
    }

    #[test]
    fn reads_answers_with_compression_and_refuses_damage() {
        let mut m = query(&["www.evil.example"]);
        m[2] |= 0x80; // response
        m[7] = 3; // three answers
        // www.evil.example CNAME cdn.evil.example (pointer to "evil.example" at 16)
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, b'c', b'd', b'n', 0xc0, 16]);
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 66]);
        let mut aaaa = vec![0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16];
        aaaa.extend_from_slice(&"2001:db8::66".parse::<std::net::Ipv6Addr>().unwrap().octets());
        m.extend_from_slice(&aaaa);
        let mut seen = Vec::new();
        for_each_answer(&m, |q, a| seen.push(format!("{q} {a:?}"))).unwrap();
        assert_eq!(
            seen,
            [
                "www.evil.example Alias(\"cdn.evil.example\")",
                "www.evil.example Address(203.0.113.66)",
                "www.evil.example Address(2001:db8::66)"
            ]
        );
        for cut in 0..m.len() {
            let _ = for_each_answer(&m[..cut], |_, _| {});
        }
        assert_eq!(for_each_answer(&query(&["a.example"]), |_, _| {}), Err(DnsError::NotResponse));
    }

    #[test]
    fn refuses_responses_truncation_and_bad_labels() {
        let mut response = query(&["evil.example"]);
        response[2] |= 0x80;
        assert_eq!(names(&response), Err(DnsError::NotQuery));
        let mut update = query(&["zone.example"]);
        update[2] |= 5 << 3;
        assert_eq!(names(&update), Err(DnsError::NotQuery));
        let mut odd = query(&["evil.example"]);
        odd[2] |= 9 << 3;
        assert_eq!(names(&odd).unwrap(), ["evil.example"], "unassigned opcode 9");
        let full = query(&["evil.example"]);
        for cut in 0..full.len() {
            assert!(names(&full[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(names(&query(&["ev il.example"])), Err(DnsError::BadLabel));
        let long = query(&[&["a".repeat(63).as_str(); 5].join(".")]);
        assert_eq!(names(&long), Err(DnsError::NameTooLong));
    }
}
