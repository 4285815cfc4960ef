//! The writer's fast body assembly must equal a general RFC 8785
//! canonicaliser's output for every record, byte for byte.

use chrono::{TimeZone, Utc};
use dossier_chain::{hash_body, Actor, EventRecord, Hash, Timestamp};
use proptest::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

fn text() -> impl Strategy<Value = String> {
    // Control characters, quotes, backslashes, CJK and astral-plane characters.
    prop::collection::vec(
        prop_oneof![
            Just('\u{0}'),
            Just('\u{8}'),
            Just('\u{1f}'),
            Just('\u{7f}'),
            Just('"'),
            Just('\\'),
            Just('/'),
            Just('张'),
            Just('😀'),
            Just('\u{2028}'),
            any::<char>(),
        ],
        0..12,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn payload() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-9_007_199_254_740_991i64..=9_007_199_254_740_991).prop_map(|n| json!(n)),
        text().prop_map(Value::String),
    ];
    let nested = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(text(), nested, 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

prop_compose! {
    fn record()(
        seq in 1i64..=9_007_199_254_740_991,
        version in 1i64..1_000_000,
        micros in 0i64..4_102_444_800_000_000,
        name in text(), role in text(), event_type in text(),
        reason in prop::option::of(text()),
        causation in any::<bool>(),
        schema_version in any::<i32>(),
        payload in payload(),
        prev in any::<[u8; 32]>(), sprev in any::<[u8; 32]>(),
    ) -> EventRecord {
        let t = Timestamp::new(Utc.timestamp_micros(micros).unwrap());
        EventRecord {
            seq,
            event_id: Uuid::from_u128(seq as u128 * 7919),
            stream_id: Uuid::from_u128(version as u128 * 104_729),
            stream_version: version,
            event_type,
            schema_version,
            recorded_at: t,
            effective_at: t,
            actor: Actor { id: Uuid::from_u128(42), name, role },
            reason,
            correlation_id: Uuid::from_u128(7),
            causation_id: causation.then(|| Uuid::from_u128(9)),
            payload,
            prev_hash: Hash(prev),
            stream_prev_hash: Hash(sprev),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn fast_body_equals_general_canonicaliser(r in record()) {
        let expected = serde_json_canonicalizer::to_vec(&r).unwrap();
        let encoded = r.clone().encode().unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&encoded.body), String::from_utf8_lossy(&expected));
        prop_assert_eq!(encoded.hash, hash_body(&expected));
        prop_assert_eq!(EventRecord::decode(&encoded.body).unwrap(), r);
    }
}
