//! Helpers shared by the integration tests: export files, random chains and
//! the single mutations a verifier must catch.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};

use chrono::DateTime;
use dossier_chain::{
    hash_body, Actor, EncodedEvent, EventRecord, Hash, StoredRow, Timestamp, VerifiedHead,
    Verifier, Violation, ViolationKind, GENESIS, MAX_SAFE_INTEGER,
};
use proptest::prelude::*;
use serde_json::{Map, Value};
use uuid::Uuid;

#[path = "../../examples/gen_vectors.rs"]
pub mod gen_vectors;

#[allow(unused_imports)] // not every test crate uses both
pub use gen_vectors::{Expected, ExportLine};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn vectors_dir() -> PathBuf {
    gen_vectors::vectors_dir()
}

/// An owned stored row (what one export line carries).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub seq: i64,
    pub stream_id: Uuid,
    pub stream_version: i64,
    pub prev_hash: Hash,
    pub stream_prev_hash: Hash,
    pub hash: Hash,
    pub body: Vec<u8>,
}

impl Row {
    pub fn of(e: &EncodedEvent) -> Row {
        Row {
            seq: e.record.seq,
            stream_id: e.record.stream_id,
            stream_version: e.record.stream_version,
            prev_hash: e.record.prev_hash,
            stream_prev_hash: e.record.stream_prev_hash,
            hash: e.hash,
            body: e.body.clone(),
        }
    }

    pub fn stored(&self) -> StoredRow<'_> {
        StoredRow {
            seq: self.seq,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            prev_hash: self.prev_hash,
            stream_prev_hash: self.stream_prev_hash,
            hash: self.hash,
            body: &self.body,
        }
    }

    pub fn export_line(&self) -> String {
        serde_json::to_string(&ExportLine {
            seq: self.seq,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            prev_hash: self.prev_hash,
            stream_prev_hash: self.stream_prev_hash,
            hash: self.hash,
            body: String::from_utf8(self.body.clone()).expect("rows under test have UTF-8 bodies"),
        })
        .unwrap()
    }
}

pub fn read_jsonl(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let l: ExportLine = serde_json::from_str(l).unwrap();
            Row {
                seq: l.seq,
                stream_id: l.stream_id,
                stream_version: l.stream_version,
                prev_hash: l.prev_hash,
                stream_prev_hash: l.stream_prev_hash,
                hash: l.hash,
                body: l.body.into_bytes(),
            }
        })
        .collect()
}

pub fn to_jsonl(rows: &[Row]) -> String {
    rows.iter().map(|r| r.export_line() + "\n").collect()
}

/// Runs the Rust verifier. `expected_head` is the published head seq, if any.
pub fn verify(rows: &[Row], expected_head: Option<i64>) -> Result<VerifiedHead, Violation> {
    let mut v = Verifier::new();
    for r in rows {
        v.push(r.stored())?;
    }
    v.finish(expected_head)
}

/// `ViolationKind` as snake_case (its serde name, and what verify_chain.py prints).
pub fn kind_name(kind: ViolationKind) -> String {
    serde_json::to_value(kind)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------------------
// Random chains

/// Any Unicode scalar values, including controls, quotes and astral characters.
pub fn arb_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..max)
            .prop_map(|v| v.into_iter().collect::<String>()),
        "[a-zA-Z0-9 _.-]{0,12}",
        prop::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('/'),
                Just('\u{0}'),
                Just('\u{1f}'),
                Just('\u{7f}'),
                Just('é'),
                Just('中'),
                Just('\u{fb33}'),
                Just('\u{ff4e}'),
                Just('😀'),
                Just('\u{10ffff}'),
            ],
            0..6
        )
        .prop_map(|v| v.into_iter().collect::<String>()),
    ]
}

pub fn arb_safe_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        -MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER,
        Just(MAX_SAFE_INTEGER),
        Just(-MAX_SAFE_INTEGER),
        Just(0),
        -1000i64..1000,
    ]
}

pub fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_safe_int().prop_map(Value::from),
        arb_text(10).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(arb_text(6), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

pub fn arb_payload() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(arb_text(8), arb_json(), 0..5).prop_map(|m| m.into_iter().collect())
}

/// Microseconds from 0000-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z.
pub fn arb_timestamp() -> impl Strategy<Value = Timestamp> {
    (-62_167_219_200_000_000i64..=253_402_300_799_999_999)
        .prop_map(|us| Timestamp::new(DateTime::from_timestamp_micros(us).unwrap()))
}

/// Everything about an event except its position and links.
#[derive(Clone, Debug)]
pub struct EventSpec {
    pub stream: usize,
    pub event_id: u128,
    pub event_type: String,
    pub schema_version: i32,
    pub recorded_at: Timestamp,
    pub effective_at: Timestamp,
    pub actor: (u128, String, String),
    pub reason: Option<String>,
    pub correlation_id: u128,
    pub causation_id: Option<u128>,
    pub payload: Map<String, Value>,
}

pub fn arb_event(streams: usize) -> impl Strategy<Value = EventSpec> {
    (
        (0..streams, any::<u128>(), arb_text(12), any::<i32>()),
        (arb_timestamp(), arb_timestamp()),
        (any::<u128>(), arb_text(8), arb_text(8)),
        (
            prop::option::of(arb_text(12)),
            any::<u128>(),
            prop::option::of(any::<u128>()),
        ),
        arb_payload(),
    )
        .prop_map(
            |(
                (stream, event_id, event_type, schema_version),
                (recorded_at, effective_at),
                actor,
                (reason, correlation_id, causation_id),
                payload,
            )| EventSpec {
                stream,
                event_id,
                event_type,
                schema_version,
                recorded_at,
                effective_at,
                actor,
                reason,
                correlation_id,
                causation_id,
                payload,
            },
        )
}

/// 1 to 4 streams, 1 to 12 events.
pub fn arb_chain() -> impl Strategy<Value = Vec<EncodedEvent>> {
    (1usize..=4)
        .prop_flat_map(|n| {
            (
                prop::collection::vec(any::<u128>(), n),
                prop::collection::vec(arb_event(n), 1..=12),
            )
        })
        .prop_map(|(streams, events)| build_chain(&streams, &events))
}

pub fn build_chain(streams: &[u128], events: &[EventSpec]) -> Vec<EncodedEvent> {
    let mut out: Vec<EncodedEvent> = Vec::new();
    for (i, spec) in events.iter().enumerate() {
        let stream_id = Uuid::from_u128(streams[spec.stream]);
        let last = out.iter().rev().find(|e| e.record.stream_id == stream_id);
        let record = EventRecord {
            seq: i as i64 + 1,
            event_id: Uuid::from_u128(spec.event_id),
            stream_id,
            stream_version: last.map_or(1, |e| e.record.stream_version + 1),
            event_type: spec.event_type.clone(),
            schema_version: spec.schema_version,
            recorded_at: spec.recorded_at,
            effective_at: spec.effective_at,
            actor: Actor {
                id: Uuid::from_u128(spec.actor.0),
                name: spec.actor.1.clone(),
                role: spec.actor.2.clone(),
            },
            reason: spec.reason.clone(),
            correlation_id: Uuid::from_u128(spec.correlation_id),
            causation_id: spec.causation_id.map(Uuid::from_u128),
            payload: Value::Object(spec.payload.clone()),
            prev_hash: out.last().map_or(GENESIS, |e| e.hash),
            stream_prev_hash: last.map_or(GENESIS, |e| e.hash),
        };
        out.push(record.encode().expect("generated events are valid"));
    }
    out
}

// ---------------------------------------------------------------------------
// Single mutations

#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flip one bit of one body byte; the stored hash is left alone.
    FlipBodyBit { row: usize, byte: usize, bit: u8 },
    /// Flip one bit of a stored hash.
    FlipHashBit { row: usize, byte: usize, bit: u8 },
    /// Delete a row (a deleted last row needs the published head to be noticed).
    Drop { row: usize },
    /// Swap two lines of the export.
    SwapLines { a: usize, b: usize },
    /// Swap the seq columns of two rows, then read back in seq order.
    SwapSeqs { a: usize, b: usize },
    /// Repeat a row right after itself.
    Duplicate { row: usize },
    /// Re-encode an event with a wrong stream_prev_hash (consistently re-hashed).
    StreamPrevHash { row: usize, byte: usize },
    /// Re-encode an event with a wrong stream_version (consistently re-hashed).
    StreamVersion { row: usize, delta: i64 },
    /// Re-encode an event with a wrong prev_hash (consistently re-hashed).
    PrevHash { row: usize, byte: usize },
    /// Change the indexed stream_version column only.
    Column { row: usize },
    /// Re-spell a body non-canonically (a space after the first `{`) and re-hash it.
    NonCanonical { row: usize },
}

pub fn arb_mutation(n: usize) -> impl Strategy<Value = Mutation> {
    let row = 0..n;
    prop_oneof![
        (row.clone(), any::<prop::sample::Index>(), 0u8..8).prop_map(|(row, i, bit)| {
            Mutation::FlipBodyBit {
                row,
                byte: i.index(usize::MAX),
                bit,
            }
        }),
        (row.clone(), 0usize..32, 0u8..8).prop_map(|(row, byte, bit)| Mutation::FlipHashBit {
            row,
            byte,
            bit
        }),
        row.clone().prop_map(|row| Mutation::Drop { row }),
        (row.clone(), row.clone()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        (row.clone(), row.clone()).prop_map(|(a, b)| Mutation::SwapSeqs { a, b }),
        row.clone().prop_map(|row| Mutation::Duplicate { row }),
        (row.clone(), 0usize..32).prop_map(|(row, byte)| Mutation::StreamPrevHash { row, byte }),
        (row.clone(), prop_oneof![-3i64..=-1, 1i64..=3])
            .prop_map(|(row, delta)| Mutation::StreamVersion { row, delta }),
        (row.clone(), 0usize..32).prop_map(|(row, byte)| Mutation::PrevHash { row, byte }),
        row.clone().prop_map(|row| Mutation::Column { row }),
        row.prop_map(|row| Mutation::NonCanonical { row }),
    ]
}

fn flip(h: Hash, byte: usize, bit: u8) -> Hash {
    let mut b = h.0;
    b[byte] ^= 1 << bit;
    Hash(b)
}

fn reencode(e: &EncodedEvent, f: impl FnOnce(&mut EventRecord)) -> Row {
    let mut r = e.record.clone();
    f(&mut r);
    Row::of(&r.encode().unwrap())
}

/// Applies `m` to the chain's rows. Returns the rows, the published head seq to
/// check against (the chain's length), and the violation every verifier must
/// report first: (seq, kind). `None` if `m` does not apply (e.g. swapping a row with itself).
pub fn mutate(
    chain: &[EncodedEvent],
    m: &Mutation,
) -> Option<(Vec<Row>, i64, (i64, ViolationKind))> {
    use ViolationKind::*;
    let mut rows: Vec<Row> = chain.iter().map(Row::of).collect();
    let n = rows.len() as i64;
    let seq = |row: usize| row as i64 + 1;
    let expected = match *m {
        Mutation::FlipBodyBit { row, byte, bit } => {
            let len = rows[row].body.len();
            rows[row].body[byte % len] ^= 1 << bit;
            (seq(row), BadHash)
        }
        Mutation::FlipHashBit { row, byte, bit } => {
            rows[row].hash = flip(rows[row].hash, byte, bit);
            (seq(row), BadHash)
        }
        Mutation::Drop { row } => {
            rows.remove(row);
            (seq(row), Gap)
        }
        Mutation::SwapLines { a, b } => {
            let (a, b) = (a.min(b), a.max(b));
            if a == b {
                return None;
            }
            rows.swap(a, b);
            // Rows are read in file order: seq b+1 arrives where a+1 is due.
            (seq(a), Gap)
        }
        Mutation::SwapSeqs { a, b } => {
            let (a, b) = (a.min(b), a.max(b));
            if a == b {
                return None;
            }
            rows.swap(a, b);
            rows[a].seq = seq(a);
            rows[b].seq = seq(b);
            (seq(a), Reordered)
        }
        Mutation::Duplicate { row } => {
            rows.insert(row + 1, rows[row].clone());
            (seq(row), Reordered)
        }
        Mutation::StreamPrevHash { row, byte } => {
            rows[row] = reencode(&chain[row], |r| {
                r.stream_prev_hash = flip(r.stream_prev_hash, byte, 0)
            });
            (seq(row), StreamLinkBroken)
        }
        Mutation::StreamVersion { row, delta } => {
            rows[row] = reencode(&chain[row], |r| r.stream_version += delta);
            (seq(row), StreamLinkBroken)
        }
        Mutation::PrevHash { row, byte } => {
            rows[row] = reencode(&chain[row], |r| r.prev_hash = flip(r.prev_hash, byte, 0));
            (seq(row), BrokenLink)
        }
        Mutation::Column { row } => {
            rows[row].stream_version += 1;
            (seq(row), Malformed)
        }
        Mutation::NonCanonical { row } => {
            rows[row].body.insert(1, b' ');
            rows[row].hash = hash_body(&rows[row].body);
            (seq(row), Malformed)
        }
    };
    Some((rows, n, expected))
}
