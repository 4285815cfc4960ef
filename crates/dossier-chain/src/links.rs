//! The link members of a body (`seq`, `stream_id`, `stream_version`,
//! `prev_hash`, `stream_prev_hash`), read without decoding the rest: what
//! integrity verification needs from each body.

use uuid::Uuid;

use crate::hash::Hash;

/// The linkage members of a body; everything else is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct Links {
    pub seq: i64,
    pub stream_id: Uuid,
    pub stream_version: i64,
    pub prev_hash: Hash,
    pub stream_prev_hash: Hash,
}

/// Reads the links of a body that has not been checked for canonical form.
///
/// Three readers, each tried when the one before gives up, so that the
/// result is always the one `from_tail` (else a full parse) gives:
/// [`canonical_tail`] accepts only the exact canonical spelling of the tail
/// and never disagrees with `from_tail`, which accepts any JSON spelling of it.
pub(crate) fn read(body: &[u8]) -> Result<Links, serde_json::Error> {
    if let Some(links) = canonical_tail(body) {
        return Ok(links);
    }
    match from_tail(body) {
        Some(links) => Ok(links),
        None => serde_json::from_slice::<Links>(body),
    }
}

const PREV_HASH_KEY: &[u8] = b",\"prev_hash\":\"";

/// Where the last `,"prev_hash":"` starts. In canonical order every link
/// member comes after `payload`, and the last occurrence in the bytes is the
/// top-level one (inside a later string value its quotes would be escaped).
fn prev_hash_key(body: &[u8]) -> Option<usize> {
    let last = body.len().checked_sub(PREV_HASH_KEY.len())?;
    (0..=last)
        .rev()
        .find(|&i| body[i] == b',' && body[i..i + PREV_HASH_KEY.len()] == *PREV_HASH_KEY)
}

/// The tail from the last `,"prev_hash":"` on, parsed as a JSON object that
/// must end the body. `None` if it does not parse.
pub(crate) fn from_tail(body: &[u8]) -> Option<Links> {
    let at = prev_hash_key(body)?;
    let mut tail = Vec::with_capacity(body.len() - at);
    tail.push(b'{');
    tail.extend_from_slice(&body[at + 1..]);
    serde_json::from_slice::<Links>(&tail).ok()
}

/// The tail in exactly its canonical spelling, read in place:
/// `,"prev_hash":"<hex>","reason":<null|string>,"recorded_at":"<ascii>",`
/// `"schema_version":<int>,"seq":<int>,"stream_id":"<uuid>",`
/// `"stream_prev_hash":"<hex>","stream_version":<int>}` ending the body.
/// Every spelling accepted here is valid JSON that [`from_tail`] reads to the
/// same values (its `,"prev_hash":"` is the last one in the body, since none
/// can follow inside a valid string); anything else gives `None`.
///
/// Read from the end backwards, so only the tail's bytes are looked at.
pub(crate) fn canonical_tail(body: &[u8]) -> Option<Links> {
    let mut c = Back {
        b: body,
        end: body.len(),
    };
    c.lit(b"}")?;
    let stream_version = c.int()?;
    c.lit(b"\",\"stream_version\":")?;
    let stream_prev_hash = c.hash()?;
    c.lit(b"\",\"stream_prev_hash\":\"")?;
    let stream_id = c.uuid()?;
    c.lit(b",\"stream_id\":\"")?;
    let seq = c.int()?;
    c.lit(b",\"seq\":")?;
    c.int()?;
    c.lit(b",\"schema_version\":")?;
    c.plain_string()?;
    c.lit(b",\"recorded_at\":")?;
    if c.lit(b"null").is_none() {
        c.string()?;
    }
    c.lit(b"\",\"reason\":")?;
    let prev_hash = c.hash()?;
    c.lit(PREV_HASH_KEY)?;
    Some(Links {
        seq,
        stream_id,
        stream_version,
        prev_hash,
        stream_prev_hash,
    })
}

/// Reads `b[..end]` from its end backwards.
struct Back<'a> {
    b: &'a [u8],
    end: usize,
}

/// The value of each lowercase hex digit; 0xff for every other byte.
const HEX: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        t[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Lowercase hex digits into bytes (two digits per byte).
fn hex_into(digits: &[u8], out: &mut [u8]) -> Option<()> {
    // Branch-free: an invalid digit sets bits above the low four in `seen`.
    let mut seen = 0u8;
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (hi, lo) = (HEX[usize::from(pair[0])], HEX[usize::from(pair[1])]);
        seen |= hi | lo;
        *o = hi << 4 | lo;
    }
    (seen < 16).then_some(())
}

impl<'a> Back<'a> {
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        self.b[..self.end].ends_with(s).then(|| self.end -= s.len())
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let start = self.end.checked_sub(n)?;
        let s = &self.b[start..self.end];
        self.end = start;
        Some(s)
    }

    fn hash(&mut self) -> Option<Hash> {
        let mut h = [0u8; 32];
        hex_into(self.take(64)?, &mut h)?;
        Some(Hash(h))
    }

    /// A lowercase, hyphenated UUID.
    fn uuid(&mut self) -> Option<Uuid> {
        let s = self.take(36)?;
        let mut u = [0u8; 16];
        for (dash, (from, to)) in [(8, (0, 4)), (13, (4, 6)), (18, (6, 8)), (23, (8, 10))] {
            if s[dash] != b'-' {
                return None;
            }
            hex_into(&s[dash - (to - from) * 2..dash], &mut u[from..to])?;
        }
        hex_into(&s[24..], &mut u[10..])?;
        Some(Uuid::from_bytes(u))
    }

    /// An integer without leading zeros, small enough never to overflow i64.
    fn int(&mut self) -> Option<i64> {
        let digits = self.b[..self.end]
            .iter()
            .rev()
            .take_while(|d| d.is_ascii_digit())
            .count();
        let s = self.take(digits)?;
        if s.is_empty() || s.len() > 18 || (s[0] == b'0' && s.len() > 1) {
            return None;
        }
        let n = s.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        Some(if self.lit(b"-").is_some() { -n } else { n })
    }

    /// A string of printable ASCII without escapes (a timestamp).
    fn plain_string(&mut self) -> Option<()> {
        self.lit(b"\"")?;
        let len = self.b[..self.end]
            .iter()
            .rev()
            .take_while(|&&c| c != b'"')
            .count();
        let s = self.take(len)?;
        if !s.iter().all(|&c| (0x20..0x7f).contains(&c) && c != b'\\') {
            return None;
        }
        self.lit(b"\"")
    }

    /// Any JSON string: UTF-8 text without control characters, with valid
    /// escapes only.
    fn string(&mut self) -> Option<()> {
        let close = self.end.checked_sub(1)?;
        if self.b[close] != b'"' {
            return None;
        }
        // The opening quote is the nearest one before that is not escaped,
        // i.e. not preceded by an odd run of backslashes; a valid string has
        // no such quote inside. Checked forwards from there.
        let mut open = close;
        loop {
            open = self.b[..open].iter().rposition(|&c| c == b'"')?;
            let backslashes = self.b[..open]
                .iter()
                .rev()
                .take_while(|&&c| c == b'\\')
                .count();
            if backslashes % 2 == 0 {
                break;
            }
        }
        if string_end(self.b, open + 1)? != close {
            return None;
        }
        self.end = open;
        Some(())
    }
}

/// Where the JSON string whose contents start at `i` ends (its closing
/// quote), if it is valid: UTF-8 text without control characters, with
/// valid escapes only.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    loop {
        match *b.get(i)? {
            b'"' => break,
            b'\\' => {
                i += 1;
                match *b.get(i)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 1,
                    b'u' => {
                        hex_into(b.get(i + 1..i + 5)?, &mut [0u8; 2])?;
                        i += 5;
                    }
                    _ => return None,
                }
            }
            0..=0x1f => return None,
            _ => i += 1,
        }
    }
    std::str::from_utf8(&b[start..i]).ok()?;
    Some(i)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{Actor, EventRecord, Timestamp, MAX_SAFE_INTEGER};

    const TAIL: &str = r#","prev_hash":"00000000000000000000000000000000000000000000000000000000000000ff","reason":null,"recorded_at":"2025-03-14T09:26:53.589793Z","schema_version":1,"seq":42,"stream_id":"6f1c2a3e-8b4d-4e5f-9a0b-1c2d3e4f5a6b","stream_prev_hash":"ff00000000000000000000000000000000000000000000000000000000000000","stream_version":7}"#;

    fn body(tail: &str) -> Vec<u8> {
        format!(r#"{{"payload":{{"x":"a\",\"prev_hash\":\"1"}}{tail}"#).into_bytes()
    }

    #[test]
    fn reads_the_canonical_tail_like_the_json_parser() {
        let b = body(TAIL);
        let fast = canonical_tail(&b).unwrap();
        assert_eq!(Some(fast), from_tail(&b));
        assert_eq!(fast.seq, 42);
        assert_eq!(fast.stream_version, 7);
        assert_eq!(fast.prev_hash.0[31], 0xff);
        assert_eq!(fast.stream_prev_hash.0[0], 0xff);
        assert_eq!(
            fast.stream_id.to_string(),
            "6f1c2a3e-8b4d-4e5f-9a0b-1c2d3e4f5a6b"
        );
    }

    #[test]
    fn other_spellings_are_left_to_the_json_parser() {
        let cases = [
            // valid JSON that the canonical reader does not take
            TAIL.replace("\"reason\":null", "\"reason\": null"),
            TAIL.replace("\"seq\":42", "\"seq\":42.0"),
            TAIL.replace("\"seq\":42", "\"seq\":4.2e1"),
            TAIL.replace("\"schema_version\":1", "\"schema_version\":\"1\""),
            TAIL.replace("6f1c2a3e", "6F1C2A3E"),
            TAIL.replace(
                "6f1c2a3e-8b4d-4e5f-9a0b-1c2d3e4f5a6b",
                "6f1c2a3e8b4d4e5f9a0b1c2d3e4f5a6b",
            ),
            TAIL.replace("\"reason\":null", "\"reason\":\"\\u00E9\""),
            TAIL.replace("7}", "7} "),
            // not valid (or not the same values)
            TAIL.replace("00ff\"", "00FF\""),
            TAIL.replace("\"seq\":42", "\"seq\":042"),
            TAIL.replace("\"seq\":42", "\"seq\":99999999999999999999"),
            TAIL.replace("\"reason\":null", "\"reason\":\"a\u{1}b\""),
            TAIL.replace("\"reason\":null", "\"reason\":\"a\\xb\""),
            TAIL.replace("7}", "7}}"),
            TAIL.replace("7}", "7,\"seq\":1}"),
        ];
        for tail in &cases {
            let b = body(tail);
            assert_eq!(canonical_tail(&b), None, "{tail}");
        }
        // Where the JSON parser reads them, it agrees with itself on the values.
        assert_eq!(from_tail(&body(&cases[0])).unwrap().seq, 42);
        assert_eq!(from_tail(&body(&cases[7])).unwrap().seq, 42);
        assert!(from_tail(&body(&cases[9])).is_none());
    }

    #[test]
    fn strings_with_escapes_and_unicode_are_read() {
        let reason = r#""reason":"Grund: \"Umzug\" \\ 中文 😀 \u001f \n \/""#;
        let b = body(&TAIL.replace("\"reason\":null", reason));
        let fast = canonical_tail(&b);
        assert!(fast.is_some(), "{}", String::from_utf8_lossy(&b));
        assert_eq!(fast, from_tail(&b));
    }

    fn arb_event() -> impl Strategy<Value = EventRecord> {
        let text = prop_oneof![
            any::<String>(),
            "[a-z\"\\\\/\u{0}-\u{1f}\u{7f}é中😀,:{}]{0,12}",
            Just(r#"","prev_hash":""#.to_owned()),
        ];
        (
            (0..=MAX_SAFE_INTEGER, 1..=MAX_SAFE_INTEGER, any::<i32>()),
            (any::<u128>(), any::<[u8; 32]>(), any::<[u8; 32]>()),
            (prop::option::of(text.clone()), text.clone(), text),
        )
            .prop_map(
                |((seq, version, schema), (stream, prev, stream_prev), (reason, kind, note))| {
                    let at = Timestamp::new(chrono::DateTime::from_timestamp_micros(1).unwrap());
                    EventRecord {
                        seq,
                        event_id: Uuid::from_u128(stream ^ 1),
                        stream_id: Uuid::from_u128(stream),
                        stream_version: version,
                        event_type: kind,
                        schema_version: schema,
                        recorded_at: at,
                        effective_at: at,
                        actor: Actor {
                            id: Uuid::nil(),
                            name: note.clone(),
                            role: "r".into(),
                        },
                        reason,
                        correlation_id: Uuid::nil(),
                        causation_id: None,
                        payload: serde_json::json!({ "note": note }),
                        prev_hash: Hash(prev),
                        stream_prev_hash: Hash(stream_prev),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn canonical_bodies_take_the_canonical_reader(record in arb_event()) {
            let body = record.encode().unwrap().body;
            let fast = canonical_tail(&body);
            prop_assert!(fast.is_some(), "{}", String::from_utf8_lossy(&body));
            prop_assert_eq!(fast, from_tail(&body));
            let fast = fast.unwrap();
            let e = EventRecord::decode(&body).unwrap();
            prop_assert_eq!(
                (fast.seq, fast.stream_id, fast.stream_version, fast.prev_hash, fast.stream_prev_hash),
                (e.seq, e.stream_id, e.stream_version, e.prev_hash, e.stream_prev_hash)
            );
        }

        /// Whatever the canonical reader takes from a changed body, the JSON
        /// reader takes too, with the same values.
        #[test]
        fn changed_bodies_never_read_differently(
            record in arb_event(),
            from_end in 1usize..400,
            byte in any::<u8>(),
            insert in any::<bool>(),
        ) {
            let mut body = record.encode().unwrap().body;
            let at = body.len().saturating_sub(from_end);
            if insert {
                body.insert(at, byte);
            } else {
                body[at] = byte;
            }
            if let Some(fast) = canonical_tail(&body) {
                prop_assert_eq!(Some(fast), from_tail(&body));
            }
        }
    }
}
