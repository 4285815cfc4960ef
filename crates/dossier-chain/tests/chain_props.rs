//! Properties of the format over random chains: valid chains verify and
//! round-trip; every single mutation is caught at the right seq with the right
//! kind; numbers outside the exact range and non-canonical bodies are refused.

mod common;

use common::{arb_chain, arb_mutation, arb_payload, mutate, verify};
use dossier_chain::{ChainError, EncodedEvent, EventRecord, MAX_SAFE_INTEGER};
use proptest::prelude::*;
use serde_json::{json, Value};

fn arb_chain_and_mutation() -> impl Strategy<Value = (Vec<EncodedEvent>, common::Mutation)> {
    arb_chain().prop_flat_map(|chain| {
        let n = chain.len();
        (Just(chain), arb_mutation(n))
    })
}

/// Integers that do not survive a round trip through an IEEE double, and floats.
fn arb_inexact_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (MAX_SAFE_INTEGER + 1..=i64::MAX).prop_map(Value::from),
        (i64::MIN..=-MAX_SAFE_INTEGER - 1).prop_map(Value::from),
        (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!(1.0)),
        Just(json!(-0.0)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn valid_chains_verify_and_round_trip(chain in arb_chain()) {
        let rows: Vec<_> = chain.iter().map(common::Row::of).collect();
        let head = verify(&rows, Some(chain.len() as i64)).unwrap();
        prop_assert_eq!(head.head_seq, chain.len() as i64);
        prop_assert_eq!(head.head_hash, chain.last().unwrap().hash);
        for e in &chain {
            let decoded = EventRecord::decode(&e.body).unwrap();
            prop_assert_eq!(&decoded, &e.record);
            prop_assert_eq!(&decoded.encode().unwrap().body, &e.body);
        }
    }

    #[test]
    fn single_mutations_are_caught_where_they_happen((chain, m) in arb_chain_and_mutation()) {
        let Some((rows, published, (seq, kind))) = mutate(&chain, &m) else {
            return Ok(());
        };
        let err = verify(&rows, Some(published)).unwrap_err();
        prop_assert_eq!((err.seq, err.kind), (seq, kind), "{:?}: {}", m, err);
    }

    #[test]
    fn inexact_numbers_are_refused(
        chain in arb_chain(),
        key in "[a-z]{1,6}",
        bad in arb_inexact_number(),
        extra in arb_payload(),
    ) {
        let mut record = chain[0].record.clone();
        let mut payload = extra;
        payload.insert(key.clone(), json!([{"x": bad}]));
        record.payload = Value::Object(payload);
        prop_assert_eq!(
            record.encode().unwrap_err(),
            ChainError::InexactNumber { path: format!("payload/{key}/0/x") }
        );
    }

    #[test]
    fn unsafe_seq_and_version_are_refused(chain in arb_chain(), n in MAX_SAFE_INTEGER + 1..=i64::MAX, neg: bool) {
        let n = if neg { -n } else { n };
        let mut record = chain[0].record.clone();
        record.seq = n;
        prop_assert_eq!(record.clone().encode().unwrap_err(), ChainError::InexactNumber { path: "seq".into() });
        record.seq = 1;
        record.stream_version = n;
        prop_assert_eq!(record.encode().unwrap_err(), ChainError::InexactNumber { path: "stream_version".into() });
    }

    #[test]
    fn non_canonical_bodies_are_refused(chain in arb_chain(), which in 0usize..5, at in any::<prop::sample::Index>()) {
        let e = &chain[0];
        let body = match which {
            0 => [b" ".as_slice(), &e.body].concat(),
            1 => [e.body.as_slice(), b"\n"].concat(),
            2 => serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&e.body).unwrap()).unwrap(),
            3 => serde_json::to_vec(&e.record).unwrap(),
            _ => {
                // A space after a random `:` or `,` that is not inside a string.
                let spots = structural_spots(&e.body);
                let i = spots[at.index(spots.len())];
                [&e.body[..=i], b" ", &e.body[i + 1..]].concat()
            }
        };
        prop_assert_eq!(EventRecord::decode(&body).unwrap_err(), ChainError::NotCanonical);
    }
}

/// Byte offsets of `:` and `,` outside string literals.
fn structural_spots(body: &[u8]) -> Vec<usize> {
    let (mut in_string, mut escaped, mut out) = (false, false, Vec::new());
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b':' || b == b',' {
            out.push(i);
        }
    }
    out
}

#[test]
fn payload_must_be_an_object() {
    let mut record = common::gen_vectors::chain()[0].record.clone();
    record.payload = json!([1, 2]);
    assert!(matches!(record.encode(), Err(ChainError::Malformed(_))));
}

#[test]
fn nesting_is_limited_to_64_levels() {
    // The event object is level 1 and the payload level 2, so 62 more levels fit.
    let nested = |levels: usize| -> Value { (0..levels).fold(json!(0), |v, _| json!([v])) };
    let mut record = common::gen_vectors::chain()[0].record.clone();
    record.payload = json!({ "x": nested(62) });
    let encoded = record.clone().encode().unwrap();
    assert_eq!(EventRecord::decode(&encoded.body).unwrap(), record);
    record.payload = json!({ "x": nested(63) });
    assert!(matches!(record.encode(), Err(ChainError::Malformed(_))));
}

#[test]
fn timestamps_without_a_wire_spelling_are_refused() {
    use chrono::{NaiveDate, TimeZone, Utc};
    let base = common::gen_vectors::chain()[0].record.clone();
    // Year 10000 would be written "+10000-…"; a chrono leap second as ":60".
    let year_10000 = Utc.from_utc_datetime(
        &NaiveDate::from_ymd_opt(10_000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap(),
    );
    let leap = Utc.from_utc_datetime(
        &NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 1_500_000)
            .unwrap(),
    );
    for t in [year_10000, leap] {
        let mut record = base.clone();
        record.effective_at = dossier_chain::Timestamp::new(t);
        assert!(
            matches!(record.encode(), Err(ChainError::Malformed(_))),
            "{t:?}"
        );
    }
    assert_eq!(
        dossier_chain::Timestamp::parse_wire("2016-12-31T23:59:60.500000Z"),
        None
    );
}
