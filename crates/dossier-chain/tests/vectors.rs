//! The committed vectors in docs/chain-vectors/ against this implementation.
//! These read the committed files, so they also pin the format: a change that
//! alters any body or hash fails here, not only in the generator check.

mod common;

use common::{gen_vectors, kind_name, read_jsonl, vectors_dir, verify, Expected, Row};
use dossier_chain::{hash_body, EventRecord, Hash, StoredRow, Verifier, ViolationKind, GENESIS};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

#[derive(Deserialize)]
struct Case {
    name: String,
    event: Value,
    canonical: String,
    hash: Hash,
}

fn read<T: serde::de::DeserializeOwned>(rel: &str) -> T {
    let path = vectors_dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn committed_vectors_match_the_generator() {
    let regen = std::env::var_os("DOSSIER_REGEN_VECTORS").is_some();
    let dir = vectors_dir();
    for (rel, generated) in gen_vectors::files() {
        let path = dir.join(&rel);
        if regen {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // JSON files are compared as values: the pretty printer's member order
        // follows serde_json features, which other crates may change.
        let same = if rel.ends_with(".json") {
            serde_json::from_str::<Value>(&committed).unwrap()
                == serde_json::from_str::<Value>(&generated).unwrap()
        } else {
            committed == generated
        };
        assert!(
            same,
            "{rel} differs from examples/gen_vectors.rs output; if the change is intended, \
             run `cargo run -p dossier-chain --example gen_vectors` and review the diff"
        );
    }
}

#[test]
fn cases_encode_to_the_exact_bytes_and_hash() {
    let cases: Vec<Case> = read("vectors.json");
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    for required in [
        "first-event",
        "second-event-same-stream",
        "unicode",
        "sealed-envelope",
        "null-reason-causation",
    ] {
        assert!(names.contains(&required), "missing case {required}");
    }
    for case in &cases {
        let record: EventRecord = serde_json::from_value(case.event.clone()).unwrap();
        let encoded = record.clone().encode().unwrap();
        assert_eq!(
            String::from_utf8(encoded.body.clone()).unwrap(),
            case.canonical,
            "{}: canonical body",
            case.name
        );
        assert_eq!(encoded.hash, case.hash, "{}: hash", case.name);
        assert_eq!(
            hash_body(case.canonical.as_bytes()),
            case.hash,
            "{}: hash_body",
            case.name
        );
        assert_eq!(
            EventRecord::decode(case.canonical.as_bytes()).unwrap(),
            record,
            "{}: decode",
            case.name
        );
    }
}

#[test]
fn hash_preimage_is_tag_newline_body() {
    // The byte layout spelled out in docs/chain-format.md.
    let cases: Vec<Case> = read("vectors.json");
    let body = cases[0].canonical.as_bytes();
    let mut preimage = b"dossier-chain/1\n".to_vec();
    assert_eq!(hex::encode(&preimage), "646f73736965722d636861696e2f310a");
    preimage.extend_from_slice(body);
    use sha2::Digest;
    let digest: [u8; 32] = sha2::Sha256::digest(&preimage).into();
    assert_eq!(Hash(digest), cases[0].hash);
}

#[test]
fn unicode_case_sorts_by_utf16_code_units() {
    let cases: Vec<Case> = read("vectors.json");
    let body = &cases
        .iter()
        .find(|c| c.name == "unicode")
        .unwrap()
        .canonical;
    // U+1F600 is a surrogate pair (D83D ...) and so sorts before U+FF4E,
    // although it is the larger code point.
    let emoji = body.find("\"😀\"").unwrap();
    let fullwidth = body.find("\"ｎｏｔｅ\"").unwrap();
    assert!(emoji < fullwidth);
    assert!(body.contains("\\b\\f\\u0001\\u001f\u{7f}\u{2028}end"));
}

#[test]
fn chain_jsonl_verifies() {
    let cases: Vec<Case> = read("vectors.json");
    let rows = read_jsonl(&vectors_dir().join("chain.jsonl"));
    let head = verify(&rows, Some(5)).unwrap();
    assert_eq!((head.events, head.streams, head.head_seq), (5, 2, 5));
    assert_eq!(head.head_hash, cases[4].hash);
    // The export carries exactly the vector bodies.
    for (row, case) in rows.iter().zip(&cases) {
        assert_eq!(row.body, case.canonical.as_bytes());
        assert_eq!(row.hash, case.hash);
    }
    assert_eq!(rows[0].prev_hash, GENESIS);
}

/// The first violation for an export file, or Ok(head) — with the same
/// `--expect-head SEQ:HASH` semantics as ops/verify_chain.py.
fn check_file(rows: &[Row], expect_head: Option<&str>) -> Result<(i64, Hash), (i64, String)> {
    let head = expect_head.map(|h| {
        let (seq, hash) = h.split_once(':').unwrap();
        (seq.parse::<i64>().unwrap(), hash.parse::<Hash>().unwrap())
    });
    let mut v = Verifier::new();
    let mut hash_at_head = GENESIS;
    for r in rows {
        v.push(r.stored()).map_err(|e| (e.seq, kind_name(e.kind)))?;
        if Some(r.seq) == head.map(|h| h.0) {
            hash_at_head = r.hash;
        }
    }
    let done = v
        .finish(head.map(|h| h.0))
        .map_err(|e| (e.seq, kind_name(e.kind)))?;
    if let Some((seq, hash)) = head {
        if hash_at_head != hash {
            return Err((seq, "head_mismatch".into()));
        }
    }
    Ok((done.head_seq, done.head_hash))
}

#[test]
fn tampered_files_fail_as_documented() {
    let expected: Vec<Expected> = read("tampered/expected.json");
    let files: Vec<String> = std::fs::read_dir(vectors_dir().join("tampered"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".jsonl"))
        .collect();
    assert_eq!(
        files.len(),
        expected.len(),
        "every tampered file is listed in expected.json"
    );
    for kind in [
        "bad_hash",
        "broken_link",
        "gap",
        "reordered",
        "stream_link_broken",
    ] {
        assert!(
            expected.iter().any(|e| e.kind == kind),
            "no tampered file for {kind}"
        );
    }
    for exp in &expected {
        let rows = read_jsonl(&vectors_dir().join("tampered").join(&exp.file));
        let got = check_file(&rows, exp.expect_head.as_deref());
        assert_eq!(got, Err((exp.seq, exp.kind.clone())), "{}", exp.file);
        if exp.expect_head.is_some() {
            // Without the published head the truncated log is a valid shorter chain.
            assert!(check_file(&rows, None).is_ok(), "{}", exp.file);
        }
    }
}

#[test]
fn published_head_is_checked_by_hash() {
    let rows = read_jsonl(&vectors_dir().join("chain.jsonl"));
    let good = format!("3:{}", rows[2].hash);
    assert_eq!(check_file(&rows, Some(&good)), Ok((5, rows[4].hash)));
    let bad = format!("3:{}", rows[1].hash);
    assert_eq!(
        check_file(&rows, Some(&bad)),
        Err((3, "head_mismatch".into()))
    );
}

#[derive(Deserialize)]
struct Rejected {
    name: String,
    body: String,
}

#[test]
fn rejected_bodies_do_not_decode_or_verify() {
    let cases: Vec<Rejected> = read("rejected.json");
    assert!(cases.len() >= 10);
    for case in &cases {
        let body = case.body.as_bytes();
        assert!(EventRecord::decode(body).is_err(), "{} decoded", case.name);
        // Even with a matching stored hash, the verifier must refuse the body.
        let row = StoredRow {
            seq: 1,
            stream_id: Uuid::nil(),
            stream_version: 1,
            prev_hash: GENESIS,
            stream_prev_hash: GENESIS,
            hash: hash_body(body),
            body,
        };
        let err = Verifier::new().push(row).unwrap_err();
        assert_eq!(
            (err.seq, err.kind),
            (1, ViolationKind::Malformed),
            "{}",
            case.name
        );
    }
}

#[test]
fn format_doc_quotes_the_current_vectors() {
    // A drift guard: the worked example in the spec must show the committed hashes.
    let doc = std::fs::read_to_string(common::repo_root().join("docs/chain-format.md")).unwrap();
    let cases: Vec<Case> = read("vectors.json");
    assert!(
        doc.contains(&cases[0].canonical),
        "chain-format.md: first-event body"
    );
    for case in [&cases[0], &cases[4]] {
        assert!(
            doc.contains(&case.hash.to_hex()),
            "chain-format.md: hash of {}",
            case.name
        );
    }
}
