//! The customer document: its shape, and an exact round trip, because the
//! read model rebuilds decision state from it.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use dossier_domain::{
    replay, Address, Contact, CreditRating, Customer, CustomerKind, Event, Field, FieldValue,
    Importance, LegalStatus, Money, Receivable,
};
use dossier_events::{customer_from_json, customer_json};
use proptest::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

fn text() -> impl Strategy<Value = String> {
    "[a-z张三~/ ]{0,6}"
}

fn fv() -> impl Strategy<Value = FieldValue> {
    text().prop_map(FieldValue::from_log)
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn date() -> impl Strategy<Value = NaiveDate> {
    (0u64..80_000).prop_map(|d| NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + Days::new(d))
}

fn money() -> impl Strategy<Value = Money> {
    (-10_000_000_000i64..10_000_000_000, 0u32..=4).prop_map(|(minor, scale)| {
        let unit = 10i64.pow(scale);
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        let s = if scale == 0 {
            format!("{sign}{abs}")
        } else {
            let w = scale as usize;
            format!("{sign}{}.{:0w$}", abs / unit as u64, abs % unit as u64)
        };
        Money::parse(&s, "CNY").unwrap()
    })
}

fn opt<T: Clone + std::fmt::Debug + 'static>(
    all: &'static [T],
) -> impl Strategy<Value = Option<T>> {
    prop::option::of(prop::sample::select(all))
}

fn ids() -> impl Strategy<Value = std::collections::BTreeSet<Uuid>> {
    prop::collection::btree_set(uuid(), 0..4)
}

prop_compose! {
    fn contact()(name in fv(), role in prop::option::of(fv()), phone in prop::option::of(fv()), email in prop::option::of(fv())) -> Contact {
        Contact { name, role, phone, email }
    }
}

prop_compose! {
    fn receivable()(amount in money(), paid in money(), due_on in date()) -> Receivable {
        Receivable { amount, paid, due_on }
    }
}

prop_compose! {
    /// Any customer, a superset of the reachable ones.
    fn customer()(
        kind in opt(&[CustomerKind::Person, CustomerKind::Company]),
        details in prop::collection::btree_map(prop::sample::select(Field::ALL.to_vec()), fv(), 0..6),
        contacts in prop::collection::btree_map(uuid(), contact(), 0..3),
        addresses in prop::collection::btree_map(
            uuid(),
            (prop::option::of(text()), fv()).prop_map(|(label, text)| Address { label, text }),
            0..3,
        ),
        owner in prop::option::of(text()),
        tags in prop::collection::btree_set(text(), 0..4),
        importance in opt(Importance::ALL),
        orders in ids(),
        receivables in prop::collection::btree_map(uuid(), receivable(), 0..3),
        prepaid in prop::collection::vec(money(), 0..3).prop_map(|ms| {
            ms.into_iter().map(|m| (m.currency().to_owned(), m)).collect::<BTreeMap<_, _>>()
        }),
        payments in ids(),
        credit_rating in opt(CreditRating::ALL),
        credit_limit in prop::option::of(money()),
        legal_status in opt(LegalStatus::ALL),
        interactions in ids(),
        complaints in prop::collection::btree_map(uuid(), any::<bool>(), 0..4),
        feedback in ids(),
        last_review in prop::option::of(date()),
        consents in prop::collection::btree_map(text(), any::<bool>(), 0..3),
        merged_into in prop::option::of(uuid()),
        absorbed in ids(),
        archived in any::<bool>(),
    ) -> Customer {
        Customer {
            kind, details, contacts, addresses, owner, tags, importance, orders, receivables,
            prepaid, payments, credit_rating, credit_limit, legal_status, interactions, complaints,
            feedback, last_review, consents, merged_into, absorbed, archived,
        }
    }
}

fn no_numbers(v: &Value) -> bool {
    match v {
        Value::Number(_) => false,
        Value::Array(items) => items.iter().all(no_numbers),
        Value::Object(m) => m.values().all(no_numbers),
        _ => true,
    }
}

proptest! {
    #[test]
    fn the_document_round_trips_exactly(c in customer()) {
        let doc = customer_json(&c);
        prop_assert!(no_numbers(&doc), "money must not be a JSON number: {}", doc);
        // Through text, as the read model stores it.
        let stored: Value = serde_json::from_str(&doc.to_string()).unwrap();
        prop_assert_eq!(customer_from_json(&stored), c);
    }
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn cny(a: &str) -> Money {
    Money::parse(a, "CNY").unwrap()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

#[test]
fn a_replayed_file_has_the_documented_shape_and_round_trips() {
    let events = vec![
        Event::Registered {
            kind: CustomerKind::Company,
            details: BTreeMap::from([(Field::Name, FieldValue::from_log("ACME".into()))]),
            owner: Some("alice".into()),
            tags: vec!["b".into(), "a".into()],
        },
        Event::AddressAdded {
            address_id: id(1),
            address: Address {
                label: None,
                text: FieldValue::from_log("1 Main St".into()),
            },
        },
        Event::ImportanceSet {
            before: None,
            after: Some(Importance::Special),
        },
        Event::OrderPlaced {
            order_id: id(2),
            product: "widgets".into(),
            amount: cny("100"),
            ordered_on: day("2026-01-01"),
        },
        Event::InvoiceIssued {
            invoice_id: id(3),
            order_id: Some(id(2)),
            amount: cny("100"),
            issued_on: day("2026-01-02"),
            due_on: day("2026-02-01"),
        },
        Event::PaymentReceived {
            payment_id: id(4),
            invoice_id: None,
            amount: cny("40.5"),
            received_on: day("2026-01-10"),
        },
        // Pays the invoice off and 10.5 more: kept as prepaid.
        Event::PaymentReceived {
            payment_id: id(7),
            invoice_id: Some(id(3)),
            amount: cny("70"),
            received_on: day("2026-01-12"),
        },
        Event::CreditChanged {
            rating_before: None,
            rating_after: Some(CreditRating::A),
            limit_before: None,
            limit_after: Some(cny("5000")),
        },
        Event::LegalStatusChanged {
            before: LegalStatus::Normal,
            after: LegalStatus::Litigation,
            since: day("2026-01-05"),
        },
        Event::ComplaintOpened {
            complaint_id: id(5),
            category: "delivery".into(),
            summary: "late".into(),
            opened_on: day("2026-01-06"),
        },
        Event::ComplaintOpened {
            complaint_id: id(6),
            category: "quality".into(),
            summary: "broken".into(),
            opened_on: day("2026-01-06"),
        },
        Event::ComplaintResolved {
            complaint_id: id(6),
            resolution: "replaced".into(),
            resolved_on: day("2026-01-08"),
        },
        Event::ReviewCompleted {
            reviewed_on: day("2026-01-31"),
            summary: None,
        },
        Event::ConsentRecorded {
            purpose: "marketing".into(),
            granted: false,
            on: day("2026-01-03"),
        },
    ];
    let c = replay(&events);
    let doc = customer_json(&c);
    let u = |n: u128| id(n).to_string();
    assert_eq!(
        doc,
        json!({
            "kind": "company",
            "details": {"name": "ACME"},
            "contacts": {},
            "addresses": {u(1): {"label": null, "text": "1 Main St"}},
            "owner": "alice",
            "tags": ["a", "b"],
            "importance": "special",
            "credit": {"rating": "A", "limit": {"amount": "5000", "currency": "CNY"}},
            "legal_status": "litigation",
            "consents": {"marketing": false},
            "merged_into": null,
            "absorbed": [],
            "open_complaints": [u(5)],
            "resolved_complaints": [u(6)],
            "receivables": {u(3): {
                "amount": {"amount": "100", "currency": "CNY"},
                "paid": {"amount": "100", "currency": "CNY"},
                "due_on": "2026-02-01",
            }},
            "prepaid": {"CNY": {"amount": "10.5", "currency": "CNY"}},
            "last_review": "2026-01-31",
            "orders": [u(2)],
            "payments": [u(4), u(7)],
            "interactions": [],
            "feedback": [],
            "archived": false,
        })
    );
    assert_eq!(customer_from_json(&doc), c);
}

#[test]
fn a_document_stored_before_the_new_members_reads_them_as_empty() {
    let contact = Uuid::from_u128(7).to_string();
    let old = json!({
        "kind": "person",
        "details": {"name": "张三", "phone": "+8613812345678"},
        "contacts": {contact.clone(): {"name": "李四", "role": null, "phone": null, "email": null}},
        "owner": null,
        "archived": true,
    });
    let c = customer_from_json(&old);
    assert_eq!(c.kind, Some(CustomerKind::Person));
    assert_eq!(c.details.len(), 2);
    assert_eq!(c.contacts.len(), 1);
    assert!(c.archived);
    assert!(c.tags.is_empty() && c.receivables.is_empty() && c.orders.is_empty());
}
