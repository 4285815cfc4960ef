//! The wire shape of every event type, pinned by one example each (the same
//! examples docs/events.md shows), and old payloads as real logs hold them.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use dossier_domain::{
    replay, Address, Channel, Contact, CreditRating, Customer, CustomerKind, Event, Field,
    FieldChange, FieldValue, Importance, LegalStatus, Money, Outcome,
};
use dossier_events::{decode, encode, open_payload, schema_version, CodecError};
use dossier_seal::{seal_value, DataKey};
use serde_json::{json, Value};
use uuid::Uuid;

fn id(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn cny(amount: &str) -> Money {
    Money::parse(amount, "CNY").unwrap()
}

fn v(s: &str) -> FieldValue {
    FieldValue::from_log(s.to_owned())
}

const CONTACT: &str = "0190a1b2-0000-7000-8000-000000000001";
const ADDRESS: &str = "0190a1b2-0000-7000-8000-000000000002";
const ORDER: &str = "0190a1b2-0000-7000-8000-000000000003";
const INVOICE: &str = "0190a1b2-0000-7000-8000-000000000004";
const PAYMENT: &str = "0190a1b2-0000-7000-8000-000000000005";
const INTERACTION: &str = "0190a1b2-0000-7000-8000-000000000006";
const COMPLAINT: &str = "0190a1b2-0000-7000-8000-000000000007";
const FEEDBACK: &str = "0190a1b2-0000-7000-8000-000000000008";
const OTHER: &str = "0190a1b2-0000-7000-8000-000000000009";

/// One example per event type, in `Event::TYPES` order, with its plain
/// (opened) payload.
fn examples() -> Vec<(Event, Value)> {
    let contact = Contact {
        name: v("李四"),
        role: Some(v("采购经理")),
        phone: Some(v("+8613912345678")),
        email: None,
    };
    let contact_json =
        json!({"name": "李四", "role": "采购经理", "phone": "+8613912345678", "email": null});
    let address = Address {
        label: Some("warehouse".into()),
        text: v("上海市浦东新区张江路 88 号"),
    };
    let address_json = json!({"label": "warehouse", "text": "上海市浦东新区张江路 88 号"});
    vec![
        (
            Event::Registered {
                kind: CustomerKind::Company,
                details: BTreeMap::from([
                    (Field::Name, v("华东精密机械有限公司")),
                    (Field::Phone, v("+862112345678")),
                    (Field::Region, v("华东")),
                    (Field::RegisteredCapital, v("5000000 CNY")),
                ]),
                owner: Some("alice".into()),
                tags: vec!["key-account".into(), "manufacturing".into()],
            },
            json!({
                "kind": "company",
                "details": {
                    "name": "华东精密机械有限公司",
                    "phone": "+862112345678",
                    "region": "华东",
                    "registered_capital": "5000000 CNY",
                },
                "owner": "alice",
                "tags": ["key-account", "manufacturing"],
            }),
        ),
        (
            Event::DetailsChanged {
                changes: vec![
                    FieldChange {
                        field: Field::Phone,
                        before: Some(v("+862112345678")),
                        after: Some(v("+862187654321")),
                    },
                    FieldChange {
                        field: Field::CompanySize,
                        before: None,
                        after: Some(v("medium")),
                    },
                ],
            },
            json!({"changes": [
                {"field": "phone", "before": "+862112345678", "after": "+862187654321"},
                {"field": "company_size", "before": null, "after": "medium"},
            ]}),
        ),
        (
            Event::ContactAdded {
                contact_id: id(CONTACT),
                contact: contact.clone(),
            },
            json!({"contact_id": CONTACT, "contact": contact_json.clone()}),
        ),
        (
            Event::ContactRemoved {
                contact_id: id(CONTACT),
                contact,
            },
            json!({"contact_id": CONTACT, "contact": contact_json}),
        ),
        (
            Event::AddressAdded {
                address_id: id(ADDRESS),
                address: address.clone(),
            },
            json!({"address_id": ADDRESS, "address": address_json.clone()}),
        ),
        (
            Event::AddressRemoved {
                address_id: id(ADDRESS),
                address,
            },
            json!({"address_id": ADDRESS, "address": address_json}),
        ),
        (
            Event::OwnerAssigned {
                before: Some("alice".into()),
                after: "bob".into(),
            },
            json!({"before": "alice", "after": "bob"}),
        ),
        (
            Event::TagsChanged {
                added: vec!["export".into()],
                removed: vec!["manufacturing".into()],
            },
            json!({"added": ["export"], "removed": ["manufacturing"]}),
        ),
        (
            Event::ImportanceSet {
                before: None,
                after: Some(Importance::Important),
            },
            json!({"before": null, "after": "important"}),
        ),
        (
            Event::OrderPlaced {
                order_id: id(ORDER),
                product: "数控机床 CK6140".into(),
                amount: cny("128000.5"),
                ordered_on: day("2026-03-02"),
            },
            json!({
                "order_id": ORDER,
                "product": "数控机床 CK6140",
                "amount": {"amount": "128000.5", "currency": "CNY"},
                "ordered_on": "2026-03-02",
            }),
        ),
        (
            Event::InvoiceIssued {
                invoice_id: id(INVOICE),
                order_id: Some(id(ORDER)),
                amount: cny("128000.5"),
                issued_on: day("2026-03-05"),
                due_on: day("2026-04-04"),
            },
            json!({
                "invoice_id": INVOICE,
                "order_id": ORDER,
                "amount": {"amount": "128000.5", "currency": "CNY"},
                "issued_on": "2026-03-05",
                "due_on": "2026-04-04",
            }),
        ),
        (
            Event::PaymentReceived {
                payment_id: id(PAYMENT),
                invoice_id: None,
                amount: cny("50000"),
                received_on: day("2026-03-20"),
            },
            json!({
                "payment_id": PAYMENT,
                "invoice_id": null,
                "amount": {"amount": "50000", "currency": "CNY"},
                "received_on": "2026-03-20",
            }),
        ),
        (
            Event::CreditChanged {
                rating_before: Some(CreditRating::Aa),
                rating_after: Some(CreditRating::Bbb),
                limit_before: None,
                limit_after: Some(cny("200000")),
            },
            json!({
                "rating_before": "AA",
                "rating_after": "BBB",
                "limit_before": null,
                "limit_after": {"amount": "200000", "currency": "CNY"},
            }),
        ),
        (
            Event::LegalStatusChanged {
                before: LegalStatus::Normal,
                after: LegalStatus::Litigation,
                since: day("2026-02-14"),
            },
            json!({"before": "normal", "after": "litigation", "since": "2026-02-14"}),
        ),
        (
            Event::InteractionLogged {
                interaction_id: id(INTERACTION),
                channel: Channel::Visit,
                outcome: Outcome::Positive,
                occurred_on: day("2026-03-01"),
                summary: Some("与王总面谈,计划二季度扩产".into()),
            },
            json!({
                "interaction_id": INTERACTION,
                "channel": "visit",
                "outcome": "positive",
                "occurred_on": "2026-03-01",
                "summary": "与王总面谈,计划二季度扩产",
            }),
        ),
        (
            Event::ComplaintOpened {
                complaint_id: id(COMPLAINT),
                category: "delivery".into(),
                summary: "张经理反映到货延迟两周".into(),
                opened_on: day("2026-03-10"),
            },
            json!({
                "complaint_id": COMPLAINT,
                "category": "delivery",
                "summary": "张经理反映到货延迟两周",
                "opened_on": "2026-03-10",
            }),
        ),
        (
            Event::ComplaintResolved {
                complaint_id: id(COMPLAINT),
                resolution: "补发并减免运费".into(),
                resolved_on: day("2026-03-15"),
            },
            json!({
                "complaint_id": COMPLAINT,
                "resolution": "补发并减免运费",
                "resolved_on": "2026-03-15",
            }),
        ),
        (
            Event::FeedbackRecorded {
                feedback_id: id(FEEDBACK),
                satisfaction: 4,
                comment: None,
                received_on: day("2026-03-25"),
            },
            json!({
                "feedback_id": FEEDBACK,
                "satisfaction": 4,
                "comment": null,
                "received_on": "2026-03-25",
            }),
        ),
        (
            Event::ReviewCompleted {
                reviewed_on: day("2026-03-31"),
                summary: Some("回款正常,维持评级".into()),
            },
            json!({"reviewed_on": "2026-03-31", "summary": "回款正常,维持评级"}),
        ),
        (
            Event::ConsentRecorded {
                purpose: "marketing".into(),
                granted: true,
                on: day("2026-01-08"),
            },
            json!({"purpose": "marketing", "granted": true, "on": "2026-01-08"}),
        ),
        (
            Event::MergedInto {
                survivor: id(OTHER),
            },
            json!({"survivor": OTHER}),
        ),
        (
            Event::DuplicateMerged {
                duplicate: id(OTHER),
            },
            json!({"duplicate": OTHER}),
        ),
        (Event::Archived, json!({})),
    ]
}

#[test]
fn every_type_has_the_documented_shape() {
    let key = DataKey::generate();
    let stream = Uuid::now_v7();
    let examples = examples();
    let types: Vec<&str> = examples.iter().map(|(e, _)| e.event_type()).collect();
    assert_eq!(types, Event::TYPES);
    for (event, plain) in examples {
        let enc = encode(&event, CustomerKind::Company, stream, &key);
        let mut opened = enc.payload.clone();
        open_payload(&mut opened, stream, Some(&key)).unwrap();
        assert_eq!(opened, plain, "{}", enc.event_type);
        assert_eq!(
            decode(enc.event_type, enc.schema_version, plain).unwrap(),
            event
        );
    }
}

#[test]
fn the_documented_sealed_pointers_are_sealed() {
    let key = DataKey::generate();
    let stream = Uuid::now_v7();
    let sealed: &[(&str, &[&str])] = &[
        // A company's name is a business fact; its phone is personal.
        ("CustomerRegistered", &["/details/phone"]),
        (
            "CustomerDetailsChanged",
            &["/changes/0/before", "/changes/0/after"],
        ),
        ("ContactAdded", &["/contact/name", "/contact/phone"]),
        ("ContactRemoved", &["/contact/name", "/contact/phone"]),
        ("AddressAdded", &["/address/label", "/address/text"]),
        ("AddressRemoved", &["/address/label", "/address/text"]),
        ("InteractionLogged", &["/summary"]),
        ("ComplaintOpened", &["/summary"]),
        ("ComplaintResolved", &["/resolution"]),
        ("ReviewCompleted", &["/summary"]),
    ];
    for (event, plain) in examples() {
        let enc = encode(&event, CustomerKind::Company, stream, &key);
        let expected: &[&str] = sealed
            .iter()
            .find(|(t, _)| *t == enc.event_type)
            .map_or(&[], |(_, p)| p);
        let mut erased = enc.payload.clone();
        assert_eq!(
            open_payload(&mut erased, stream, None).unwrap(),
            !expected.is_empty()
        );
        let mut want = plain;
        for p in expected {
            *want.pointer_mut(p).unwrap() = json!("[erased]");
        }
        assert_eq!(erased, want, "{}", enc.event_type);
    }
}

#[test]
fn a_person_is_sealed_where_a_company_is_not() {
    let key = DataKey::generate();
    let stream = Uuid::now_v7();
    let details = BTreeMap::from([
        (Field::Name, v("张三")),
        (Field::Interests, v("钓鱼")),
        (Field::Region, v("华东")),
    ]);
    for (kind, sealed) in [
        (CustomerKind::Person, vec!["张三", "钓鱼"]),
        (CustomerKind::Company, vec![]),
    ] {
        let event = Event::Registered {
            kind,
            details: details.clone(),
            owner: None,
            tags: vec![],
        };
        let text = encode(&event, kind, stream, &key).payload.to_string();
        for value in ["张三", "钓鱼", "华东"] {
            assert_eq!(
                !text.contains(value),
                sealed.contains(&value),
                "{kind:?} {value}"
            );
        }
    }
}

#[test]
fn money_is_never_a_json_number() {
    let payload = json!({
        "order_id": ORDER,
        "product": "x",
        "amount": 128000.5,
        "ordered_on": "2026-03-02",
    });
    assert!(matches!(
        decode("OrderPlaced", 1, payload),
        Err(CodecError::Malformed { .. })
    ));
    let payload = json!({
        "order_id": ORDER,
        "product": "x",
        "amount": {"amount": 128000.5, "currency": "CNY"},
        "ordered_on": "2026-03-02",
    });
    assert!(matches!(
        decode("OrderPlaced", 1, payload),
        Err(CodecError::Malformed { .. })
    ));
}

#[test]
fn satisfaction_outside_one_to_five_is_malformed() {
    for s in [json!(0), json!(6), json!(4.5), json!("4")] {
        let payload = json!({
            "feedback_id": FEEDBACK, "satisfaction": s, "comment": null, "received_on": "2026-03-25",
        });
        assert!(matches!(
            decode("FeedbackRecorded", 1, payload),
            Err(CodecError::Malformed { .. })
        ));
    }
}

/// A `CustomerRegistered` as schema version 1 wrote it (no `tags`), with the
/// person's name and phone sealed as the version 1 encoder sealed them.
fn stored_v1_registration(stream: Uuid, key: &DataKey) -> Value {
    let mut payload: Value = serde_json::from_str(
        r#"{"kind":"person","details":{"name":"张三","phone":"+8613812345678","region":"华东"},"owner":"alice"}"#,
    )
    .unwrap();
    for pointer in ["/details/name", "/details/phone"] {
        let slot = payload.pointer_mut(pointer).unwrap();
        *slot = seal_value(key, stream, pointer, slot);
    }
    payload
}

#[test]
fn a_stored_v1_registration_decodes_with_no_tags_and_still_projects() {
    assert_eq!(schema_version("CustomerRegistered"), Some(2));
    let key = DataKey::generate();
    let stream = Uuid::now_v7();
    // The rest of an old log: schema version 1 payloads of other types.
    let log: Vec<(&str, i32, Value)> = vec![
        (
            "CustomerRegistered",
            1,
            stored_v1_registration(stream, &key),
        ),
        (
            "CustomerDetailsChanged",
            1,
            json!({"changes": [{"field": "region", "before": "华东", "after": "华南"}]}),
        ),
        (
            "OwnerAssigned",
            1,
            json!({"before": "alice", "after": "bob"}),
        ),
        // Written after the upgrade, on top of the old registration.
        ("TagsChanged", 1, json!({"added": ["vip"], "removed": []})),
    ];
    let events: Vec<Event> = log
        .into_iter()
        .map(|(t, version, mut payload)| {
            open_payload(&mut payload, stream, Some(&key)).unwrap();
            decode(t, version, payload).unwrap()
        })
        .collect();
    assert_eq!(
        events[0],
        Event::Registered {
            kind: CustomerKind::Person,
            details: BTreeMap::from([
                (Field::Name, v("张三")),
                (Field::Phone, v("+8613812345678")),
                (Field::Region, v("华东")),
            ]),
            owner: Some("alice".into()),
            tags: vec![],
        }
    );
    let expected = Customer {
        kind: Some(CustomerKind::Person),
        details: BTreeMap::from([
            (Field::Name, v("张三")),
            (Field::Phone, v("+8613812345678")),
            (Field::Region, v("华南")),
        ]),
        owner: Some("bob".into()),
        tags: ["vip".to_owned()].into(),
        ..Customer::default()
    };
    assert_eq!(replay(&events), expected);
    assert_eq!(replay(&events[..1]).tags.len(), 0);
}

#[test]
fn an_erased_v1_registration_still_decodes() {
    let key = DataKey::generate();
    let stream = Uuid::now_v7();
    let mut payload = stored_v1_registration(stream, &key);
    assert!(open_payload(&mut payload, stream, None).unwrap());
    let Event::Registered { details, tags, .. } = decode("CustomerRegistered", 1, payload).unwrap()
    else {
        panic!("not a registration")
    };
    assert_eq!(details[&Field::Name].as_str(), "[erased]");
    assert_eq!(details[&Field::Region].as_str(), "华东");
    assert!(tags.is_empty());
}

#[test]
fn a_v2_registration_needs_its_tags() {
    let payload = json!({"kind": "company", "details": {"name": "ACME"}, "owner": null});
    assert!(matches!(
        decode("CustomerRegistered", 2, payload),
        Err(CodecError::Malformed { .. })
    ));
}

#[test]
fn the_old_wire_shapes_of_version_1_types_still_decode() {
    // Literal payloads as the first release wrote them.
    let contact = json!({"contact_id": CONTACT, "contact": {"name": "李四", "role": null, "phone": null, "email": "li@example.com"}});
    assert_eq!(
        decode("ContactAdded", 1, contact).unwrap(),
        Event::ContactAdded {
            contact_id: id(CONTACT),
            contact: Contact {
                name: v("李四"),
                role: None,
                phone: None,
                email: Some(v("li@example.com")),
            },
        }
    );
    assert_eq!(
        decode("OwnerAssigned", 1, json!({"before": null, "after": "bob"})).unwrap(),
        Event::OwnerAssigned {
            before: None,
            after: "bob".into()
        }
    );
    assert_eq!(
        decode(
            "CustomerDetailsChanged",
            1,
            json!({"changes": [{"field": "email", "before": "a@b.co", "after": null}]})
        )
        .unwrap(),
        Event::DetailsChanged {
            changes: vec![FieldChange {
                field: Field::Email,
                before: Some(v("a@b.co")),
                after: None
            }]
        }
    );
    assert_eq!(
        decode("CustomerArchived", 1, json!({})).unwrap(),
        Event::Archived
    );
}

#[test]
fn unknown_versions_and_types_are_rejected() {
    assert!(matches!(
        decode("CustomerArchived", 99, json!({})),
        Err(CodecError::UnknownVersion { .. })
    ));
    assert!(matches!(
        decode("CustomerRegistered", 3, json!({})),
        Err(CodecError::UnknownVersion { version: 3, .. })
    ));
    assert!(matches!(
        decode("Nope", 1, json!({})),
        Err(CodecError::UnknownType(_))
    ));
    // A system event is not a customer event.
    assert!(matches!(
        decode("RulesAdopted", 1, json!({})),
        Err(CodecError::UnknownType(_))
    ));
}

#[test]
fn a_ciphertext_moved_to_another_field_does_not_open() {
    let key = DataKey::generate();
    let stream = Uuid::now_v7();
    let (event, _) = examples().remove(2);
    let mut p = encode(&event, CustomerKind::Company, stream, &key).payload;
    let name = p["contact"]["name"].clone();
    p["contact"]["phone"] = name;
    assert_eq!(
        open_payload(&mut p, stream, Some(&key)),
        Err(CodecError::Unopenable("/contact/phone".into()))
    );
}
