//! Every customer event type through encode -> open -> decode, with the
//! sealing rules checked against an independent statement of what is
//! personal: generated personal strings start with 私, business strings
//! with 商, so "no personal value in plaintext" is "no 私 in the stored JSON".

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use dossier_domain::{
    Address, Channel, Contact, CreditRating, CustomerKind, Event, Field, FieldChange, FieldValue,
    Importance, LegalStatus, Money, Outcome,
};
use dossier_events::{decode, encode, open_payload, schema_version, CodecError, ERASED};
use dossier_seal::{is_sealed, DataKey};
use proptest::prelude::*;
use serde_json::Value;
use uuid::Uuid;

const PERSONAL: &str = "私";
const BUSINESS: &str = "商";

fn text(marker: &'static str) -> impl Strategy<Value = String> {
    "[a-z0-9 ~/]{0,8}".prop_map(move |s| format!("{marker}{s}"))
}

fn personal() -> impl Strategy<Value = String> {
    text(PERSONAL)
}

fn business() -> impl Strategy<Value = String> {
    text(BUSINESS)
}

fn kind() -> impl Strategy<Value = CustomerKind> {
    prop_oneof![Just(CustomerKind::Person), Just(CustomerKind::Company)]
}

fn field() -> impl Strategy<Value = Field> {
    prop::sample::select(Field::ALL.to_vec())
}

/// A value of `f` marked by whether the spec says it is personal for `kind`.
fn value_of(f: Field, kind: CustomerKind) -> BoxedStrategy<FieldValue> {
    if f.is_personal(kind) {
        personal().prop_map(FieldValue::from_log).boxed()
    } else {
        business().prop_map(FieldValue::from_log).boxed()
    }
}

fn opt_value_of(f: Field, kind: CustomerKind) -> BoxedStrategy<Option<FieldValue>> {
    prop::option::of(value_of(f, kind)).boxed()
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn date() -> impl Strategy<Value = NaiveDate> {
    (0u64..80_000).prop_map(|d| NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + Days::new(d))
}

fn money() -> impl Strategy<Value = Money> {
    (
        any::<bool>(),
        0u64..1_000_000_000_000_000,
        "[0-9]{0,4}",
        prop::sample::select(vec!["CNY", "USD", "eur"]),
    )
        .prop_map(|(negative, int, frac, currency)| {
            let sign = if negative { "-" } else { "" };
            let point = if frac.is_empty() { "" } else { "." };
            Money::parse(&format!("{sign}{int}{point}{frac}"), currency).unwrap()
        })
}

fn tags() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set(business(), 0..4).prop_map(|s| s.into_iter().collect())
}

fn contact() -> impl Strategy<Value = Contact> {
    (
        personal(),
        prop::option::of(business()),
        prop::option::of(personal()),
        prop::option::of(personal()),
    )
        .prop_map(|(name, role, phone, email)| Contact {
            name: FieldValue::from_log(name),
            role: role.map(FieldValue::from_log),
            phone: phone.map(FieldValue::from_log),
            email: email.map(FieldValue::from_log),
        })
}

fn address() -> impl Strategy<Value = Address> {
    (prop::option::of(personal()), personal()).prop_map(|(label, text)| Address {
        label,
        text: FieldValue::from_log(text),
    })
}

fn details(kind: CustomerKind) -> impl Strategy<Value = BTreeMap<Field, FieldValue>> {
    prop::collection::vec(field(), 0..8)
        .prop_flat_map(move |fields| {
            fields
                .into_iter()
                .map(|f| value_of(f, kind).prop_map(move |v| (f, v)))
                .collect::<Vec<_>>()
        })
        .prop_map(|pairs| pairs.into_iter().collect())
}

fn changes(kind: CustomerKind) -> impl Strategy<Value = Vec<FieldChange>> {
    prop::collection::vec(field(), 1..5).prop_flat_map(move |fields| {
        fields
            .into_iter()
            .map(|field| {
                (opt_value_of(field, kind), opt_value_of(field, kind)).prop_map(
                    move |(before, after)| FieldChange {
                        field,
                        before,
                        after,
                    },
                )
            })
            .collect::<Vec<_>>()
    })
}

fn opt_name<T: Clone + std::fmt::Debug + 'static>(
    all: &'static [T],
) -> impl Strategy<Value = Option<T>> {
    prop::option::of(prop::sample::select(all))
}

/// A customer's kind and an event of any type of that customer.
fn event() -> impl Strategy<Value = (CustomerKind, Event)> {
    kind().prop_flat_map(|customer| {
        let kind = customer;
        let e = prop_oneof![
            (self::kind(), tags(), prop::option::of(business())).prop_flat_map(
                |(k, tags, owner)| {
                    details(k).prop_map(move |details| Event::Registered {
                        kind: k,
                        details,
                        owner: owner.clone(),
                        tags: tags.clone(),
                    })
                }
            ),
            changes(kind).prop_map(|changes| Event::DetailsChanged { changes }),
            (uuid(), contact()).prop_map(|(contact_id, contact)| Event::ContactAdded {
                contact_id,
                contact
            }),
            (uuid(), contact()).prop_map(|(contact_id, contact)| Event::ContactRemoved {
                contact_id,
                contact
            }),
            (uuid(), address()).prop_map(|(address_id, address)| Event::AddressAdded {
                address_id,
                address
            }),
            (uuid(), address()).prop_map(|(address_id, address)| Event::AddressRemoved {
                address_id,
                address
            }),
            (prop::option::of(business()), business())
                .prop_map(|(before, after)| Event::OwnerAssigned { before, after }),
            (tags(), tags()).prop_map(|(added, removed)| Event::TagsChanged { added, removed }),
            (opt_name(Importance::ALL), opt_name(Importance::ALL))
                .prop_map(|(before, after)| Event::ImportanceSet { before, after }),
            (uuid(), business(), money(), date()).prop_map(
                |(order_id, product, amount, ordered_on)| Event::OrderPlaced {
                    order_id,
                    product,
                    amount,
                    ordered_on
                }
            ),
            (uuid(), prop::option::of(uuid()), money(), date(), date()).prop_map(
                |(invoice_id, order_id, amount, issued_on, due_on)| Event::InvoiceIssued {
                    invoice_id,
                    order_id,
                    amount,
                    issued_on,
                    due_on
                }
            ),
            (uuid(), prop::option::of(uuid()), money(), date()).prop_map(
                |(payment_id, invoice_id, amount, received_on)| Event::PaymentReceived {
                    payment_id,
                    invoice_id,
                    amount,
                    received_on
                }
            ),
            (
                opt_name(CreditRating::ALL),
                opt_name(CreditRating::ALL),
                prop::option::of(money()),
                prop::option::of(money())
            )
                .prop_map(
                    |(rating_before, rating_after, limit_before, limit_after)| {
                        Event::CreditChanged {
                            rating_before,
                            rating_after,
                            limit_before,
                            limit_after,
                        }
                    }
                ),
            (
                prop::sample::select(LegalStatus::ALL),
                prop::sample::select(LegalStatus::ALL),
                date()
            )
                .prop_map(|(before, after, since)| Event::LegalStatusChanged {
                    before,
                    after,
                    since
                }),
            (
                uuid(),
                prop::sample::select(Channel::ALL),
                prop::sample::select(Outcome::ALL),
                date(),
                prop::option::of(personal())
            )
                .prop_map(
                    |(interaction_id, channel, outcome, occurred_on, summary)| {
                        Event::InteractionLogged {
                            interaction_id,
                            channel,
                            outcome,
                            occurred_on,
                            summary,
                        }
                    }
                ),
            (uuid(), business(), personal(), date()).prop_map(
                |(complaint_id, category, summary, opened_on)| Event::ComplaintOpened {
                    complaint_id,
                    category,
                    summary,
                    opened_on
                }
            ),
            (uuid(), personal(), date()).prop_map(|(complaint_id, resolution, resolved_on)| {
                Event::ComplaintResolved {
                    complaint_id,
                    resolution,
                    resolved_on,
                }
            }),
            (uuid(), 1u8..=5, prop::option::of(personal()), date()).prop_map(
                |(feedback_id, satisfaction, comment, received_on)| Event::FeedbackRecorded {
                    feedback_id,
                    satisfaction,
                    comment,
                    received_on
                }
            ),
            (date(), prop::option::of(personal())).prop_map(|(reviewed_on, summary)| {
                Event::ReviewCompleted {
                    reviewed_on,
                    summary,
                }
            }),
            (business(), any::<bool>(), date()).prop_map(|(purpose, granted, on)| {
                Event::ConsentRecorded {
                    purpose,
                    granted,
                    on,
                }
            }),
            uuid().prop_map(|survivor| Event::MergedInto { survivor }),
            uuid().prop_map(|duplicate| Event::DuplicateMerged { duplicate }),
            Just(Event::Archived),
        ];
        e.prop_map(move |e| {
            // A registration fixes the customer's kind.
            let k = match &e {
                Event::Registered { kind, .. } => *kind,
                _ => customer,
            };
            (k, e)
        })
    })
}

/// Every leaf of a JSON value with its JSON Pointer.
fn leaves(v: &Value) -> Vec<(String, Value)> {
    fn walk(v: &Value, path: String, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(m) if !is_sealed(v) => {
                for (k, item) in m {
                    let k = k.replace('~', "~0").replace('/', "~1");
                    walk(item, format!("{path}/{k}"), out);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{path}/{i}"), out);
                }
            }
            _ => out.push((path, v.clone())),
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

fn sealed_pointers(v: &Value) -> BTreeSet<String> {
    leaves(v)
        .into_iter()
        .filter(|(_, v)| is_sealed(v))
        .map(|(p, _)| p)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_event_round_trips_and_seals_exactly_its_personal_values((kind, event) in event()) {
        let key = DataKey::generate();
        let stream = Uuid::now_v7();
        let enc = encode(&event, kind, stream, &key);
        prop_assert_eq!(Some(enc.schema_version), schema_version(enc.event_type));

        let stored = serde_json::to_string(&enc.payload).unwrap();
        prop_assert!(!stored.contains(PERSONAL), "personal data in plaintext: {}", stored);

        let mut opened = enc.payload.clone();
        prop_assert!(!open_payload(&mut opened, stream, Some(&key)).unwrap());
        prop_assert_eq!(
            decode(enc.event_type, enc.schema_version, opened.clone()).unwrap(),
            event.clone()
        );

        // Sealed exactly where the plaintext holds a personal value; every
        // other value (business facts, amounts, dates, ids) is stored as is.
        let sealed = sealed_pointers(&enc.payload);
        for (pointer, plain) in leaves(&opened) {
            let is_personal = plain.as_str().is_some_and(|s| s.starts_with(PERSONAL));
            prop_assert_eq!(sealed.contains(&pointer), is_personal, "at {}", pointer);
            if !is_personal {
                prop_assert_eq!(enc.payload.pointer(&pointer), Some(&plain), "at {}", pointer);
            }
            // Money is an object of strings; the only number is a satisfaction score.
            if plain.is_number() {
                prop_assert_eq!(pointer.as_str(), "/satisfaction");
            }
        }

        // Without the key: "[erased]" in exactly the sealed slots, and the
        // event still decodes (an erased customer's file still replays).
        let mut erased = enc.payload.clone();
        prop_assert_eq!(open_payload(&mut erased, stream, None).unwrap(), !sealed.is_empty());
        let erased_at: BTreeSet<String> = leaves(&erased)
            .into_iter()
            .filter(|(_, v)| v.as_str() == Some(ERASED))
            .map(|(p, _)| p)
            .collect();
        prop_assert_eq!(&erased_at, &sealed);
        let decoded = decode(enc.event_type, enc.schema_version, erased);
        prop_assert!(decoded.is_ok(), "{:?}", decoded);
    }

    #[test]
    fn a_payload_decodes_only_as_its_own_type((kind, event) in event()) {
        let key = DataKey::generate();
        let stream = Uuid::now_v7();
        let enc = encode(&event, kind, stream, &key);
        let mut opened = enc.payload;
        open_payload(&mut opened, stream, Some(&key)).unwrap();
        prop_assert_eq!(
            decode(enc.event_type, 99, opened.clone()),
            Err(CodecError::UnknownVersion { event_type: enc.event_type.into(), version: 99 })
        );
        prop_assert_eq!(
            decode("CustomerRenamed", 1, opened),
            Err(CodecError::UnknownType("CustomerRenamed".into()))
        );
    }
}

#[test]
fn the_generator_covers_every_event_type() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = event();
    let mut seen = BTreeSet::new();
    for _ in 0..5_000 {
        let (_, e) = strategy.new_tree(&mut runner).unwrap().current();
        seen.insert(e.event_type());
    }
    let all: BTreeSet<&str> = Event::TYPES.into_iter().collect();
    assert_eq!(seen, all);
}
