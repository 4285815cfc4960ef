//! Regenerates the `dossier-chain/1` test vectors in `docs/chain-vectors/`:
//!
//! ```text
//! cargo run -p dossier-chain --example gen_vectors
//! ```
//!
//! Everything is derived from fixed inputs, so the output is deterministic.
//! The tests include this file (via `tests/common`); `tests/vectors.rs` fails if the committed vectors
//! differ from what it generates (set `DOSSIER_REGEN_VECTORS=1` when running
//! that test to rewrite them instead).

use std::path::{Path, PathBuf};

use dossier_chain::{Actor, EncodedEvent, EventRecord, Hash, Timestamp, GENESIS};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

/// One line of the export format (docs/chain-format.md, "Export format").
/// Member order here is the order `dossier export` writes; readers must not
/// depend on it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportLine {
    pub seq: i64,
    pub stream_id: Uuid,
    pub stream_version: i64,
    pub prev_hash: Hash,
    pub stream_prev_hash: Hash,
    pub hash: Hash,
    pub body: String,
}

impl ExportLine {
    pub fn of(e: &EncodedEvent) -> ExportLine {
        ExportLine {
            seq: e.record.seq,
            stream_id: e.record.stream_id,
            stream_version: e.record.stream_version,
            prev_hash: e.record.prev_hash,
            stream_prev_hash: e.record.stream_prev_hash,
            hash: e.hash,
            body: String::from_utf8(e.body.clone()).expect("canonical bodies are UTF-8"),
        }
    }
}

/// The failure a tampered file must produce.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Expected {
    pub file: String,
    /// `--expect-head` to pass, when the tampering is only visible against the published head.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expect_head: Option<String>,
    pub seq: i64,
    /// `ViolationKind` in snake_case, as printed by ops/verify_chain.py.
    pub kind: String,
    pub what: String,
}

/// A body that every verifier must reject as `malformed` (decode fails).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rejected {
    pub name: String,
    pub why: String,
    pub body: String,
}

/// The `docs/chain-vectors/` directory.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/chain-vectors")
}

pub const STREAM_A: &str = "6f1c2a3e-8b4d-4e5f-9a0b-1c2d3e4f5a6b";
pub const STREAM_B: &str = "3d8e5b70-1c2f-4a96-b5e4-7f0a9c2d6e13";

fn uuid(s: &str) -> Uuid {
    s.parse().unwrap()
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_wire(s).unwrap()
}

/// A version-7 event id for `at`, with fixed "random" bits so the vectors are stable.
fn event_id(at: Timestamp, n: u8) -> Uuid {
    let millis = at.get().timestamp_millis() as u64;
    uuid::Builder::from_unix_timestamp_millis(
        millis,
        &[n, 0x5a, 0x17, 0xc3, 0x8e, 0x42, 0x09, 0xd1, 0x6b, n],
    )
    .into_uuid()
}

fn actor(id: &str, name: &str, role: &str) -> Actor {
    Actor {
        id: uuid(id),
        name: name.into(),
        role: role.into(),
    }
}

struct Spec {
    name: &'static str,
    description: &'static str,
    stream: &'static str,
    event_type: &'static str,
    recorded_at: &'static str,
    effective_at: &'static str,
    actor: Actor,
    reason: Option<&'static str>,
    correlation_id: &'static str,
    /// Index (0-based) of the earlier event that caused this one.
    caused_by: Option<usize>,
    payload: Value,
}

fn specs() -> Vec<Spec> {
    let sales = actor("01890a5d-ac96-774b-bcce-b302099a8057", "a.schmidt", "sales");
    let manager = actor("7c9e6679-7425-40de-944b-e07fc1f90ae7", "m.weber", "manager");
    let sales_cn = actor("9f2d4c61-0b8a-4e37-a5d2-6c1e8b3f7a90", "李娜", "sales");
    let compliance = actor(
        "5b1e0c9a-3f47-4d2e-8a61-9c0b7e2f4d18",
        "k.yamamoto",
        "compliance",
    );
    vec![
        Spec {
            name: "first-event",
            description: "seq 1, first event of stream A: prev_hash and stream_prev_hash are GENESIS. \
                          Integers (incl. ±(2^53-1)), money as decimal string + currency, arrays, booleans, \
                          a tab and non-ASCII text.",
            stream: STREAM_A,
            event_type: "customer.registered",
            recorded_at: "2025-03-14T09:26:53.589793Z",
            effective_at: "2025-03-14T09:26:53.589793Z",
            actor: sales.clone(),
            reason: Some("Onboarding at branch Berlin-Mitte"),
            correlation_id: "b7e3a1f0-4c2d-4e8b-9f6a-1d0c3b5e7a92",
            caused_by: None,
            payload: json!({
                "legal_name": "Müller & Söhne GmbH",
                "segment": "sme",
                "credit_limit": {"amount": "2500.00", "currency": "EUR"},
                "employees": 12,
                "risk_adjustment": -3,
                "limits": [9007199254740991i64, -9007199254740991i64, 0],
                "tags": ["new", "kyc-pending"],
                "marketing_opt_in": false,
                "note": "Branch\tBerlin-Mitte"
            }),
        },
        Spec {
            name: "second-event-same-stream",
            description: "seq 2, version 2 of stream A: prev_hash and stream_prev_hash are both the hash of seq 1.",
            stream: STREAM_A,
            event_type: "customer.credit_limit_set",
            recorded_at: "2025-03-14T09:31:07.000001Z",
            effective_at: "2025-03-14T09:31:07.000001Z",
            actor: manager,
            reason: Some("Annual review approved"),
            correlation_id: "c4a9e2d7-1b3f-4a6c-8e0d-5f2b7c9a1e34",
            caused_by: Some(0),
            payload: json!({
                "credit_limit": {"amount": "10000.00", "currency": "EUR"},
                "previous": {"amount": "2500.00", "currency": "EUR"}
            }),
        },
        Spec {
            name: "unicode",
            description: "seq 3, first event of stream B (stream_prev_hash GENESIS, prev_hash = hash of seq 2). \
                          Chinese and emoji in keys and values: members are sorted by UTF-16 code units, so \
                          \"😀\" (D83D DE00) sorts before \"ｎｏｔｅ\" (FF4E ...) although U+1F600 > U+FF4E. \
                          \"text\" shows every string escape JCS uses; U+007F and U+2028 stay unescaped.",
            stream: STREAM_B,
            event_type: "customer.registered",
            recorded_at: "2025-03-15T16:02:44.250000Z",
            effective_at: "2025-03-15T16:02:44.250000Z",
            actor: sales_cn,
            reason: Some("新客户开户 ✅"),
            correlation_id: "e1d2c3b4-a596-4877-8a9b-0c1d2e3f4a5b",
            caused_by: None,
            payload: json!({
                "公司名称": "张伟贸易有限公司",
                "备注": "VIP客户 🎉",
                "😀": "emoji key",
                "ｎｏｔｅ": "fullwidth key ＡＢＣ",
                "café": "crème brûlée",
                "ascii": "plain",
                "text": "line1\nline2\r\"quoted\" back\\slash /solidus \u{8}\u{c}\u{1}\u{1f}\u{7f}\u{2028}end"
            }),
        },
        Spec {
            name: "sealed-envelope",
            description: "seq 4, version 3 of stream A (prev_hash = hash of seq 3, stream_prev_hash = hash of seq 2). \
                          payload.phone is a sealed envelope; the hash covers the envelope, not the plaintext. \
                          (It is dossier-seal's documented test vector: \"+49 30 1234567\" for field phone of \
                          stream A; a verifier treats it as opaque data.)",
            stream: STREAM_A,
            event_type: "customer.contact_changed",
            recorded_at: "2025-03-17T08:15:00.123456Z",
            effective_at: "2025-03-17T08:15:00.123456Z",
            actor: sales,
            reason: Some("Customer called to update phone number"),
            correlation_id: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            caused_by: Some(1),
            payload: json!({
                "channel": "mobile",
                "phone": {
                    "$sealed": "aes-256-gcm/1",
                    "n": "sLGys7S1tre4ubq7",
                    "c": "FNEefrIQ-C4DPy7ONguqFLbQ5_3cdfk1xrbfOzdvXVw"
                }
            }),
        },
        Spec {
            name: "null-reason-causation",
            description: "seq 5, version 2 of stream B (prev_hash = hash of seq 4, stream_prev_hash = hash of seq 3). \
                          reason and causation_id are null (present, not omitted); effective_at is earlier than \
                          recorded_at (a backdated fact).",
            stream: STREAM_B,
            event_type: "customer.kyc_verified",
            recorded_at: "2025-03-17T11:40:12.000000Z",
            effective_at: "2025-03-10T00:00:00.000000Z",
            actor: compliance,
            reason: None,
            correlation_id: "f0e1d2c3-b4a5-4697-8887-a6b5c4d3e2f1",
            caused_by: None,
            payload: json!({
                "document": "passport",
                "dual_control": true,
                "expires_on": "2031-06-30",
                "attempts": 1,
                "previous_result": null
            }),
        },
    ]
}

/// Builds one record of the chain, linked to `prev` (the whole chain so far).
fn record(spec: &Spec, seq: i64, prev: &[EncodedEvent], ids: &[Uuid]) -> EventRecord {
    let stream = uuid(spec.stream);
    let last_in_stream = prev.iter().rev().find(|e| e.record.stream_id == stream);
    let recorded_at = ts(spec.recorded_at);
    EventRecord {
        seq,
        event_id: event_id(recorded_at, seq as u8),
        stream_id: stream,
        stream_version: last_in_stream.map_or(1, |e| e.record.stream_version + 1),
        event_type: spec.event_type.into(),
        schema_version: 1,
        recorded_at,
        effective_at: ts(spec.effective_at),
        actor: spec.actor.clone(),
        reason: spec.reason.map(Into::into),
        correlation_id: uuid(spec.correlation_id),
        causation_id: spec.caused_by.map(|i| ids[i]),
        payload: spec.payload.clone(),
        prev_hash: prev.last().map_or(GENESIS, |e| e.hash),
        stream_prev_hash: last_in_stream.map_or(GENESIS, |e| e.hash),
    }
}

/// The five-event chain over streams A and B that all vectors derive from.
pub fn chain() -> Vec<EncodedEvent> {
    let mut out: Vec<EncodedEvent> = Vec::new();
    let mut ids = Vec::new();
    for (i, spec) in specs().iter().enumerate() {
        let rec = record(spec, i as i64 + 1, &out, &ids);
        ids.push(rec.event_id);
        out.push(rec.encode().expect("vector events are valid"));
    }
    out
}

fn jsonl(lines: &[ExportLine]) -> String {
    lines
        .iter()
        .map(|l| serde_json::to_string(l).unwrap() + "\n")
        .collect()
}

fn reencode(mut rec: EventRecord, f: impl FnOnce(&mut EventRecord)) -> EncodedEvent {
    f(&mut rec);
    rec.encode().unwrap()
}

/// The tampered exports and the failure each must produce.
fn tampered(chain: &[EncodedEvent]) -> Vec<(Expected, Vec<ExportLine>)> {
    let good: Vec<ExportLine> = chain.iter().map(ExportLine::of).collect();
    let mut out = Vec::new();
    let mut case = |file: &str, seq: i64, kind: &str, what: &str, lines: Vec<ExportLine>| {
        out.push((
            Expected {
                file: file.into(),
                expect_head: None,
                seq,
                kind: kind.into(),
                what: what.into(),
            },
            lines,
        ));
    };

    let mut lines = good.clone();
    lines[2].body = lines[2].body.replace("张伟", "王芳");
    case(
        "bad_hash.jsonl",
        3,
        "bad_hash",
        "The body of seq 3 was edited in place (a company name changed); its stored hash was left alone.",
        lines,
    );

    let mut lines = good.clone();
    let forged = reencode(chain[3].record.clone(), |r| {
        r.reason = Some("Customer asked us to".into())
    });
    lines[3] = ExportLine::of(&forged);
    case(
        "broken_link.jsonl",
        5,
        "broken_link",
        "seq 4 was rewritten and re-hashed consistently, so it verifies on its own; \
         seq 5 still points at the original hash of seq 4.",
        lines,
    );

    let mut lines = good.clone();
    lines.remove(2);
    case(
        "gap.jsonl",
        3,
        "gap",
        "The row with seq 3 was deleted.",
        lines,
    );

    let mut lines = good.clone();
    lines.swap(2, 3);
    lines[2].seq = 3;
    lines[3].seq = 4;
    case(
        "reordered.jsonl",
        3,
        "reordered",
        "The seq values of rows 3 and 4 were swapped (rows read back in seq order): \
         the row stored as seq 3 holds a body that says seq 4.",
        lines,
    );

    let mut lines = good.clone();
    lines.insert(3, good[2].clone());
    case(
        "duplicate.jsonl",
        3,
        "reordered",
        "The row with seq 3 appears twice (a replayed row); the second copy comes where seq 4 is expected.",
        lines,
    );

    // A fork of stream A: seq 4 claims to be version 2 again, built on version 1.
    // prev_hash is right and seq 5 is re-linked to it, so only the stream link is wrong.
    let mut lines = good.clone();
    let fork = reencode(chain[3].record.clone(), |r| {
        r.stream_version = 2;
        r.stream_prev_hash = chain[0].hash;
    });
    let relinked = reencode(chain[4].record.clone(), |r| r.prev_hash = fork.hash);
    lines[3] = ExportLine::of(&fork);
    lines[4] = ExportLine::of(&relinked);
    case(
        "stream_link_broken.jsonl",
        4,
        "stream_link_broken",
        "seq 4 forks stream A: it claims version 2 after version 1's hash although version 2 exists. \
         The global chain was re-linked around it, so only the per-stream link reveals it.",
        lines,
    );

    let mut lines = good.clone();
    lines[1].stream_version = 7;
    case(
        "malformed_columns.jsonl",
        2,
        "malformed",
        "The stream_version column of seq 2 says 7; the hashed body says 2.",
        lines,
    );

    let mut lines = good.clone();
    let spaced = lines[4].body.replacen("\":", "\": ", 1);
    lines[4].hash = dossier_chain::hash_body(spaced.as_bytes());
    lines[4].body = spaced;
    case(
        "noncanonical.jsonl",
        5,
        "malformed",
        "The body of seq 5 has a space after its first colon and a matching hash: \
         the hash is right but the body is not canonical JSON.",
        lines,
    );

    let mut lines = good.clone();
    lines.pop();
    out.push((
        Expected {
            file: "truncated.jsonl".into(),
            expect_head: Some(format!("5:{}", chain[4].hash)),
            seq: 5,
            kind: "gap".into(),
            what: "The last row was deleted. The rest is a valid chain (head 4), so this is only \
                   detected against the published head, 5:<hash of seq 5>."
                .into(),
        },
        lines,
    ));
    out
}

/// Bodies derived from the chain's events that are each wrong in exactly one way.
fn rejected(chain: &[EncodedEvent]) -> Vec<Rejected> {
    let bodies: Vec<String> = chain
        .iter()
        .map(|e| String::from_utf8(e.body.clone()).unwrap())
        .collect();
    let mut out = Vec::new();
    let mut case = |name: &str, why: &str, body: String| {
        assert!(
            bodies.iter().all(|b| *b != body),
            "{name} must change the body"
        );
        out.push(Rejected {
            name: name.into(),
            why: why.into(),
            body,
        });
    };
    // Replaces the first `from` in the body of chain[i].
    let sub = |i: usize, from: &str, to: &str| {
        assert!(bodies[i].contains(from), "{from:?} not in body {i}");
        bodies[i].replacen(from, to, 1)
    };
    let first = &bodies[0];
    let recorded = "\"recorded_at\":\"2025-03-14T09:26:53.589793Z\"";
    case("whitespace", "a space after a colon", sub(0, "\":", "\": "));
    case(
        "trailing-newline",
        "a newline after the closing brace",
        format!("{first}\n"),
    );
    case(
        "member-order",
        "members in declaration order, not sorted",
        serde_json::to_string(&chain[0].record).unwrap(),
    );
    case(
        "escaped-non-ascii",
        "ü written as \\u00fc",
        sub(0, "ü", "\\u00fc"),
    );
    case(
        "long-escape",
        "tab written as \\u0009 instead of \\t",
        sub(0, "\\t", "\\u0009"),
    );
    case(
        "uppercase-escape",
        "U+001F written as \\u001F",
        sub(2, "\\u001f", "\\u001F"),
    );
    case(
        "escaped-solidus",
        "/ written as \\/",
        sub(2, " /solidus", " \\/solidus"),
    );
    case("float", "12 written as 12.0", sub(0, ":12,", ":12.0,"));
    case("exponent", "12 written as 1.2e1", sub(0, ":12,", ":1.2e1,"));
    case(
        "unsafe-integer",
        "2^53 is canonical JSON but outside ±(2^53-1)",
        sub(0, "9007199254740991,", "9007199254740992,"),
    );
    case(
        "negative-zero",
        "-0 (canonical form is 0)",
        sub(0, ",0]", ",-0]"),
    );
    case("uppercase-uuid", "event_id in uppercase", {
        let id = chain[0].record.event_id.to_string();
        sub(0, &id, &id.to_uppercase())
    });
    case("uppercase-hash", "prev_hash in uppercase hex", {
        let h = chain[0].hash.to_hex();
        sub(
            1,
            &format!("\"prev_hash\":\"{h}\""),
            &format!("\"prev_hash\":\"{}\"", h.to_uppercase()),
        )
    });
    case(
        "timestamp-millis",
        "recorded_at with 3 fractional digits",
        sub(0, recorded, "\"recorded_at\":\"2025-03-14T09:26:53.589Z\""),
    );
    case(
        "timestamp-offset",
        "recorded_at with +00:00 instead of Z",
        sub(
            0,
            recorded,
            "\"recorded_at\":\"2025-03-14T09:26:53.589793+00:00\"",
        ),
    );
    case(
        "leap-second",
        "second 60",
        sub(
            0,
            recorded,
            "\"recorded_at\":\"2025-03-14T09:26:60.589793Z\"",
        ),
    );
    case(
        "unknown-member",
        "an extra top-level member (sorted into place)",
        sub(0, "\"seq\":1,", "\"seq\":1,\"signature\":null,"),
    );
    case(
        "missing-member",
        "reason omitted instead of null",
        sub(0, "\"reason\":\"Onboarding at branch Berlin-Mitte\",", ""),
    );
    case("payload-not-object", "payload is an array", {
        let start = first.find("\"payload\":{").unwrap() + "\"payload\":".len();
        let end = first.find(",\"prev_hash\"").unwrap();
        format!("{}[]{}", &first[..start], &first[end..])
    });
    case(
        "duplicate-member",
        "a payload member appears twice",
        sub(
            0,
            "\"segment\":\"sme\"",
            "\"segment\":\"sme\",\"segment\":\"sme\"",
        ),
    );
    case(
        "too-deep",
        "objects and arrays nested 65 levels (the limit is 64, the event object being 1)",
        {
            let deep = format!("{}0{}", "[".repeat(63), "]".repeat(63));
            sub(0, "\"employees\":12", &format!("\"employees\":{deep}"))
        },
    );
    case(
        "lone-surrogate",
        "a string with an unpaired UTF-16 surrogate escape",
        sub(0, "Söhne", "S\\ud800hne"),
    );
    out
}

fn pretty<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

/// Every generated file: (path relative to `docs/chain-vectors/`, contents).
pub fn files() -> Vec<(String, String)> {
    let chain = chain();
    let vectors: Vec<Value> = specs()
        .iter()
        .zip(&chain)
        .map(|(spec, e)| {
            json!({
                "name": spec.name,
                "description": spec.description,
                "event": serde_json::to_value(&e.record).unwrap(),
                "canonical": String::from_utf8(e.body.clone()).unwrap(),
                "hash": e.hash,
            })
        })
        .collect();
    let good: Vec<ExportLine> = chain.iter().map(ExportLine::of).collect();
    let head = chain.last().unwrap();

    let mut files = vec![
        ("vectors.json".to_string(), pretty(&vectors)),
        ("chain.jsonl".to_string(), jsonl(&good)),
        ("rejected.json".to_string(), pretty(&rejected(&chain))),
    ];
    let tampered = tampered(&chain);
    let mut readme = String::from(
        "# Tampered exports\n\n\
         Generated by `crates/dossier-chain/examples/gen_vectors.rs` from `../chain.jsonl`; do not edit.\n\
         Each file must fail verification with exactly the violation below (the first one found,\n\
         reading rows in file order). `expected.json` holds the same table for tests.\n\n\
         | file | `--expect-head` | seq | kind | what was done |\n\
         |---|---|---|---|---|\n",
    );
    for (exp, lines) in &tampered {
        readme.push_str(&format!(
            "| `{}` | {} | {} | `{}` | {} |\n",
            exp.file,
            exp.expect_head
                .as_deref()
                .map_or("".into(), |h| format!("`{h}`")),
            exp.seq,
            exp.kind,
            exp.what
        ));
        files.push((format!("tampered/{}", exp.file), jsonl(lines)));
    }
    let expected: Vec<&Expected> = tampered.iter().map(|(e, _)| e).collect();
    files.push(("tampered/expected.json".into(), pretty(&expected)));
    files.push(("tampered/README.md".into(), readme));
    files.push((
        "README.md".into(),
        format!(
            "# dossier-chain/1 test vectors\n\n\
             Generated by `cargo run -p dossier-chain --example gen_vectors`; do not edit. Format: `../chain-format.md`.\n\n\
             - `vectors.json`: single events. For each case, `event` (the record), `canonical` (the exact body,\n  \
             RFC 8785 JSON, as a string) and `hash` (SHA-256 of `dossier-chain/1` LF body, lowercase hex).\n\
             - `chain.jsonl`: the same five events as a valid export (streams `{STREAM_A}` (A) and\n  \
             `{STREAM_B}` (B)). Head: seq {} hash `{}`.\n\
             - `tampered/`: exports that must fail, with the expected violation (`tampered/README.md`).\n\
             - `rejected.json`: bodies that are not valid canonical events and must be rejected as `malformed`\n  \
             even when the stored hash matches them.\n",
            head.record.seq, head.hash
        ),
    ));
    files
}

#[allow(dead_code)] // unused where the tests include this file as a module
fn main() {
    let dir = vectors_dir();
    for (path, contents) in files() {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        println!("wrote {}", path.display());
    }
}
