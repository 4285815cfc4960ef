use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;

use uuid::Uuid;

use crate::hash::{hash_body, Hash};
use crate::links::{self, Links};
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

// The violations of §6, spelled the same wherever they are found (a range
// linked later reports exactly what a sequential pass would have).

fn reordered(seq: i64, next_seq: i64) -> Violation {
    Violation {
        seq,
        kind: ViolationKind::Reordered,
        detail: format!("expected seq {next_seq} next"),
    }
}

fn gap(next_seq: i64, found: i64) -> Violation {
    Violation {
        seq: next_seq,
        kind: ViolationKind::Gap,
        detail: format!("seq {next_seq} is missing; next stored seq is {found}"),
    }
}

fn broken_link(seq: i64, prev_hash: Hash, last_hash: Hash) -> Violation {
    Violation {
        seq,
        kind: ViolationKind::BrokenLink,
        detail: format!(
            "prev_hash {prev_hash} but seq {} hashes to {last_hash}",
            seq - 1
        ),
    }
}

/// An event's place in its stream: what check 7 looks at.
#[derive(Clone, Copy, Debug)]
struct StreamLink {
    seq: i64,
    stream_id: Uuid,
    version: i64,
    prev_hash: Hash,
}

impl StreamLink {
    fn of(event: &Links) -> StreamLink {
        StreamLink {
            seq: event.seq,
            stream_id: event.stream_id,
            version: event.stream_version,
            prev_hash: event.stream_prev_hash,
        }
    }

    /// Check 7: the event continues its stream, whose last event so far is
    /// `last` (version, hash).
    fn check(&self, last: Option<(i64, Hash)>) -> Result<(), Violation> {
        let (want_version, want_prev) = match last {
            Some((v, h)) => (v + 1, h),
            None => (1, GENESIS),
        };
        if self.version != want_version || self.prev_hash != want_prev {
            return Err(Violation {
                seq: self.seq,
                kind: ViolationKind::StreamLinkBroken,
                detail: format!(
                    "stream {} expects version {} after {}, found version {} after {}",
                    self.stream_id, want_version, want_prev, self.version, self.prev_hash
                ),
            });
        }
        Ok(())
    }
}

/// Checks 2–5 of one row: its hash, its body, the body's seq and the indexed
/// columns. Returns the body's links and the row's hash.
fn check_body(strict: bool, row: &StoredRow<'_>) -> Result<(Links, Hash), Violation> {
    let fail = |kind, detail: String| Violation {
        seq: row.seq,
        kind,
        detail,
    };
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
    let event = if strict {
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
        links::read(row.body).map_err(|e| {
            fail(
                ViolationKind::Malformed,
                format!("body does not parse: {e}"),
            )
        })?
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
    Ok((event, computed))
}

/// Streaming verifier: feed rows in ascending `seq` order, then call `finish`.
///
/// Later parts of the log can be checked at the same time by
/// [`RangeVerifier`]s and joined in order with [`Verifier::link`].
#[derive(Debug)]
pub struct Verifier {
    strict: bool,
    next_seq: i64,
    last_hash: Hash,
    /// Each stream's last (version, hash) among the rows pushed here ...
    streams: HashMap<Uuid, (i64, Hash)>,
    /// ... and in the ranges linked since, oldest first: merged only if
    /// rows are pushed after a link, as merging large maps is costly.
    linked: Vec<HashMap<Uuid, (i64, Hash)>>,
    stream_count: usize,
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

/// The checks of a row that a [`RangeVerifier`] cannot make because they
/// depend on rows before its range.
#[derive(Debug, Default)]
struct Unresolved {
    first: FirstRow,
    /// The first event of each stream in the range (check 7), in seq order.
    stream_starts: Vec<StreamLink>,
}

#[derive(Debug, Default, PartialEq)]
enum FirstRow {
    /// The range has no rows (yet).
    #[default]
    Unseen,
    /// Its seq (check 1) and, once checks 2–5 passed for it, its `prev_hash`
    /// (check 6).
    Pushed { seq: i64, prev_hash: Option<Hash> },
    /// It could not be read at all ([`RangeVerifier::reject`]).
    Rejected,
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
            linked: Vec::new(),
            stream_count: 0,
        }
    }

    pub fn push(&mut self, row: StoredRow<'_>) -> Result<(), Violation> {
        self.check(row, None)
    }

    /// The checks of §6 for one row. With `open`, the rows before this one
    /// are unknown: the first row's seq and `prev_hash` and the first event
    /// of each stream are recorded there instead of checked.
    fn check(
        &mut self,
        row: StoredRow<'_>,
        mut open: Option<&mut Unresolved>,
    ) -> Result<(), Violation> {
        let first = match open.as_deref_mut() {
            Some(open) if open.first == FirstRow::Unseen => {
                open.first = FirstRow::Pushed {
                    seq: row.seq,
                    prev_hash: None,
                };
                self.next_seq = row.seq;
                true
            }
            _ => false,
        };
        if row.seq < self.next_seq {
            return Err(reordered(row.seq, self.next_seq));
        }
        if row.seq > self.next_seq {
            return Err(gap(self.next_seq, row.seq));
        }
        let (event, computed) = check_body(self.strict, &row)?;
        if !self.linked.is_empty() {
            self.merge_linked();
        }
        match open.as_deref_mut() {
            Some(Unresolved {
                first: FirstRow::Pushed { prev_hash, .. },
                ..
            }) if first => *prev_hash = Some(event.prev_hash),
            _ if event.prev_hash != self.last_hash => {
                return Err(broken_link(row.seq, event.prev_hash, self.last_hash))
            }
            _ => {}
        }
        match self.streams.entry(event.stream_id) {
            Entry::Occupied(mut last) => {
                StreamLink::of(&event).check(Some(*last.get()))?;
                last.insert((event.stream_version, computed));
            }
            Entry::Vacant(slot) => {
                match open {
                    Some(open) => open.stream_starts.push(StreamLink::of(&event)),
                    None => StreamLink::of(&event).check(None)?,
                }
                slot.insert((event.stream_version, computed));
                self.stream_count += 1;
            }
        }
        self.last_hash = computed;
        self.next_seq += 1;
        Ok(())
    }

    /// Continues with a range of the log that was checked on its own, as if
    /// its rows had been pushed here: the result (the head, or the first
    /// violation with its seq, kind and detail) is the same.
    ///
    /// The checks the range could not make (its first row's seq and
    /// `prev_hash`, and the first event of each of its streams) are made
    /// here, in the order a sequential pass would have made them, and
    /// before the range's own violation, which comes after all of them.
    pub fn link(&mut self, range: UnlinkedRange) -> Result<(), Violation> {
        let UnlinkedRange {
            open,
            end,
            violation,
        } = range;
        let own_violation = || {
            violation
                .clone()
                .expect("a range that stopped at a row has a violation")
        };
        let (first_seq, first_prev) = match open.first {
            // No rows: nothing changes.
            FirstRow::Unseen => return Ok(()),
            FirstRow::Rejected => return Err(own_violation()),
            FirstRow::Pushed { seq, prev_hash } => (seq, prev_hash),
        };
        if first_seq < self.next_seq {
            return Err(reordered(first_seq, self.next_seq));
        }
        if first_seq > self.next_seq {
            return Err(gap(self.next_seq, first_seq));
        }
        // Without a prev_hash the first row failed checks 2–5 itself.
        let first_prev = first_prev.ok_or_else(own_violation)?;
        if first_prev != self.last_hash {
            return Err(broken_link(first_seq, first_prev, self.last_hash));
        }
        let mut new_streams = 0;
        for start in &open.stream_starts {
            let last = self.last_of(start.stream_id);
            start.check(last)?;
            new_streams += usize::from(last.is_none());
        }
        if let Some(v) = violation {
            return Err(v);
        }
        self.next_seq = end.next_seq;
        self.last_hash = end.last_hash;
        self.stream_count += new_streams;
        // A range verifier never links, so its rows are all in `streams`.
        self.linked.push(end.streams);
        Ok(())
    }

    /// The stream's last (version, hash) so far.
    fn last_of(&self, stream: Uuid) -> Option<(i64, Hash)> {
        self.linked
            .iter()
            .rev()
            .chain(std::iter::once(&self.streams))
            .find_map(|m| m.get(&stream).copied())
    }

    fn merge_linked(&mut self) {
        for later in std::mem::take(&mut self.linked) {
            if self.streams.len() < later.len() {
                // Keep the larger map and move the smaller one over; the
                // later entries win.
                let earlier = std::mem::replace(&mut self.streams, later);
                for (stream, last) in earlier {
                    self.streams.entry(stream).or_insert(last);
                }
            } else {
                self.streams.extend(later);
            }
        }
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
            streams: self.stream_count,
            head_seq,
            head_hash: self.last_hash,
        })
    }
}

/// Verifies a contiguous range of the log without the rows before it, so
/// that the ranges of one log can be checked in parallel. Feed the range's
/// rows in ascending `seq` order, then hand [`RangeVerifier::finish`] to
/// [`Verifier::link`] of the verifier that has seen everything before it.
///
/// Everything is checked here except what depends on earlier rows: the
/// first row's seq and `prev_hash`, and the link of each stream's first
/// event in the range to that stream's earlier events.
#[derive(Debug)]
pub struct RangeVerifier {
    end: Verifier,
    open: Unresolved,
    violation: Option<Violation>,
}

/// A range checked by a [`RangeVerifier`], to be joined with [`Verifier::link`].
#[derive(Debug)]
pub struct UnlinkedRange {
    open: Unresolved,
    end: Verifier,
    violation: Option<Violation>,
}

impl RangeVerifier {
    /// `strict` as for [`Verifier::new`] (true) or
    /// [`Verifier::integrity_only`] (false).
    pub fn new(strict: bool) -> RangeVerifier {
        RangeVerifier {
            end: Verifier {
                strict,
                ..Verifier::integrity_only()
            },
            open: Unresolved::default(),
            violation: None,
        }
    }

    /// Checks the next row. Returns false once the range has a violation of
    /// its own: the rest of the range cannot change the outcome and need not
    /// be read (or pushed; it is ignored).
    pub fn push(&mut self, row: StoredRow<'_>) -> bool {
        if self.violation.is_some() {
            return false;
        }
        match self.end.check(row, Some(&mut self.open)) {
            Ok(()) => true,
            Err(v) => {
                self.violation = Some(v);
                false
            }
        }
    }

    /// Records a row that could not be read as a [`StoredRow`] at all (a
    /// hash column that is not 32 bytes): `violation` is reported at it,
    /// before any check of that row, as a sequential reader would report it
    /// instead of pushing the row. The range stops there.
    pub fn reject(&mut self, violation: Violation) {
        if self.violation.is_none() {
            if self.open.first == FirstRow::Unseen {
                self.open.first = FirstRow::Rejected;
            }
            self.violation = Some(violation);
        }
    }

    pub fn finish(self) -> UnlinkedRange {
        UnlinkedRange {
            open: self.open,
            end: self.end,
            violation: self.violation,
        }
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
