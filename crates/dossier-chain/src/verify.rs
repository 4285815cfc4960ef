use std::collections::HashMap;
use std::fmt;

use uuid::Uuid;

use crate::hash::{hash_body, Hash};
use crate::record::EventRecord;
use crate::GENESIS;

/// One stored event as read back from the log, in `seq` order. The columns
/// next to `body` are copies for indexing; verification checks they agree
/// with the hashed body.
#[derive(Clone, Copy, Debug)]
pub struct StoredRow<'a> {
    pub seq: i64,
    pub stream_id: Uuid,
    pub stream_version: i64,
    pub prev_hash: Hash,
    pub stream_prev_hash: Hash,
    pub hash: Hash,
    pub body: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// The stored hash is not the hash of the stored body.
    BadHash,
    /// `prev_hash` is not the hash of the event before it.
    BrokenLink,
    /// A seq is missing.
    Gap,
    /// A seq appears out of order, twice, or in a body stored under another seq.
    Reordered,
    /// `stream_prev_hash` or `stream_version` does not continue the customer's stream.
    StreamLinkBroken,
    /// The body is not a valid, canonical event, or disagrees with its indexed columns.
    Malformed,
}

impl ViolationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::BadHash => "bad hash",
            ViolationKind::BrokenLink => "broken link",
            ViolationKind::Gap => "gap",
            ViolationKind::Reordered => "reordered",
            ViolationKind::StreamLinkBroken => "stream link broken",
            ViolationKind::Malformed => "malformed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub seq: i64,
    pub kind: ViolationKind,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seq {}: {}: {}",
            self.seq,
            self.kind.as_str(),
            self.detail
        )
    }
}

impl std::error::Error for Violation {}

/// The linkage members of a body; everything else is skipped.
#[derive(serde::Deserialize)]
struct Links {
    seq: i64,
    stream_id: Uuid,
    stream_version: i64,
    prev_hash: Hash,
    stream_prev_hash: Hash,
}

/// Reads the link members from the end of a canonical body without parsing
/// the payload. In canonical order every link member comes after `payload`,
/// and the last `,"prev_hash":"` in the bytes is the top-level one (inside a
/// later string value its quotes would be escaped). The tail must parse as a
/// complete object ending the body; anything else returns `None` and the
/// caller parses the whole body.
fn links_from_tail(body: &[u8]) -> Option<Links> {
    const KEY: &[u8] = b",\"prev_hash\":\"";
    let at = body.windows(KEY.len()).rposition(|w| w == KEY)?;
    let mut tail = Vec::with_capacity(body.len() - at);
    tail.push(b'{');
    tail.extend_from_slice(&body[at + 1..]);
    serde_json::from_slice::<Links>(&tail).ok()
}

/// Streaming verifier: feed rows in ascending `seq` order, then call `finish`.
#[derive(Debug)]
pub struct Verifier {
    strict: bool,
    next_seq: i64,
    last_hash: Hash,
    streams: HashMap<Uuid, (i64, Hash)>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new()
    }
}

/// What a successful verification proved.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VerifiedHead {
    pub events: i64,
    pub streams: usize,
    pub head_seq: i64,
    pub head_hash: Hash,
}

impl Verifier {
    /// Checks integrity and that every body is a canonical, valid event.
    pub fn new() -> Verifier {
        Verifier {
            strict: true,
            ..Verifier::integrity_only()
        }
    }

    /// Checks integrity only: hashes, links, order, gaps, stream links and
    /// column agreement; about 20x faster than [`Verifier::new`].
    pub fn integrity_only() -> Verifier {
        Verifier {
            strict: false,
            next_seq: 1,
            last_hash: GENESIS,
            streams: HashMap::new(),
        }
    }

    pub fn push(&mut self, row: StoredRow<'_>) -> Result<(), Violation> {
        let fail = |kind, detail: String| Violation {
            seq: row.seq,
            kind,
            detail,
        };
        if row.seq < self.next_seq {
            return Err(fail(
                ViolationKind::Reordered,
                format!("expected seq {} next", self.next_seq),
            ));
        }
        if row.seq > self.next_seq {
            return Err(Violation {
                seq: self.next_seq,
                kind: ViolationKind::Gap,
                detail: format!(
                    "seq {} is missing; next stored seq is {}",
                    self.next_seq, row.seq
                ),
            });
        }
        let computed = hash_body(row.body);
        if computed != row.hash {
            return Err(fail(
                ViolationKind::BadHash,
                format!("stored {} but body hashes to {}", row.hash, computed),
            ));
        }
        // Strict mode decodes the whole body: a body that is not a valid,
        // canonical dossier-chain/1 event is rejected even if its hash matches,
        // so every strict verifier accepts exactly the same logs. Integrity mode
        // reads only the link members: the hash already proves the bytes are
        // unchanged since they were written (docs/chain-format.md, "Levels").
        let event = if self.strict {
            let e = EventRecord::decode(row.body).map_err(|e| {
                fail(
                    ViolationKind::Malformed,
                    format!("body is not a valid event: {e}"),
                )
            })?;
            Links {
                seq: e.seq,
                stream_id: e.stream_id,
                stream_version: e.stream_version,
                prev_hash: e.prev_hash,
                stream_prev_hash: e.stream_prev_hash,
            }
        } else {
            match links_from_tail(row.body) {
                Some(links) => links,
                None => serde_json::from_slice::<Links>(row.body).map_err(|e| {
                    fail(
                        ViolationKind::Malformed,
                        format!("body does not parse: {e}"),
                    )
                })?,
            }
        };
        if event.seq != row.seq {
            return Err(fail(
                ViolationKind::Reordered,
                format!(
                    "stored under seq {} but its body says seq {}",
                    row.seq, event.seq
                ),
            ));
        }
        if event.stream_id != row.stream_id
            || event.stream_version != row.stream_version
            || event.prev_hash != row.prev_hash
            || event.stream_prev_hash != row.stream_prev_hash
        {
            return Err(fail(
                ViolationKind::Malformed,
                "indexed columns disagree with the hashed body".into(),
            ));
        }
        if event.prev_hash != self.last_hash {
            return Err(fail(
                ViolationKind::BrokenLink,
                format!(
                    "prev_hash {} but seq {} hashes to {}",
                    event.prev_hash,
                    row.seq - 1,
                    self.last_hash
                ),
            ));
        }
        let (want_version, want_prev) = match self.streams.get(&event.stream_id) {
            Some(&(v, h)) => (v + 1, h),
            None => (1, GENESIS),
        };
        if event.stream_version != want_version || event.stream_prev_hash != want_prev {
            return Err(fail(
                ViolationKind::StreamLinkBroken,
                format!(
                    "stream {} expects version {} after {}, found version {} after {}",
                    event.stream_id,
                    want_version,
                    want_prev,
                    event.stream_version,
                    event.stream_prev_hash
                ),
            ));
        }
        self.streams
            .insert(event.stream_id, (event.stream_version, computed));
        self.last_hash = computed;
        self.next_seq += 1;
        Ok(())
    }

    /// The head that was proved. `expected_head` is the seq the log claims to
    /// end at (from the chain head row): fewer rows than that is a gap at the end.
    pub fn finish(self, expected_head: Option<i64>) -> Result<VerifiedHead, Violation> {
        let head_seq = self.next_seq - 1;
        if let Some(expected) = expected_head {
            if expected > head_seq {
                return Err(Violation {
                    seq: head_seq + 1,
                    kind: ViolationKind::Gap,
                    detail: format!(
                        "the chain head says seq {expected}, but the log ends at {head_seq}"
                    ),
                });
            }
        }
        Ok(VerifiedHead {
            events: head_seq,
            streams: self.streams.len(),
            head_seq,
            head_hash: self.last_hash,
        })
    }
}

/// One line of the export format (docs/chain-format.md, "Export format"):
/// the stored row with its body as a JSON string. The body of a valid event is
/// UTF-8 JSON; bytes that are not UTF-8 are exported lossily, and then fail
/// verification on the reader's side.
pub fn export_line(row: &StoredRow<'_>) -> String {
    serde_json::json!({
        "seq": row.seq,
        "stream_id": row.stream_id,
        "stream_version": row.stream_version,
        "prev_hash": row.prev_hash,
        "stream_prev_hash": row.stream_prev_hash,
        "hash": row.hash,
        "body": String::from_utf8_lossy(row.body),
    })
    .to_string()
}
