mod common;

use std::collections::BTreeMap;

use common::id;
use dossier_domain::{replay, Address, Contact, Customer, CustomerKind, Event, Field, FieldValue};
use dossier_insights::{completeness, completeness_items};

fn registered(kind: CustomerKind, fields: &[(Field, &str)], owner: Option<&str>) -> Vec<Event> {
    let details: BTreeMap<Field, FieldValue> = fields
        .iter()
        .map(|(f, v)| (*f, FieldValue::from_log((*v).into())))
        .collect();
    vec![Event::Registered {
        kind,
        details,
        owner: owner.map(Into::into),
        tags: vec![],
    }]
}

#[test]
fn checklists_weigh_one_hundred() {
    for kind in [CustomerKind::Person, CustomerKind::Company] {
        let total: u32 = completeness_items(kind)
            .iter()
            .map(|(_, w)| u32::from(*w))
            .sum();
        assert_eq!(total, 100, "{kind:?}");
    }
}

#[test]
fn an_unregistered_customer_scores_zero() {
    let c = completeness(&Customer::default());
    assert_eq!((c.score, c.missing), (0, vec!["registration".to_owned()]));
}

#[test]
fn a_bare_person_has_only_a_name() {
    let c = completeness(&replay(&registered(
        CustomerKind::Person,
        &[(Field::Name, "张三")],
        None,
    )));
    assert_eq!(c.score, 15);
    assert_eq!(
        c.missing,
        [
            "phone_or_email",
            "address",
            "birthday",
            "gender",
            "marital_status",
            "occupation",
            "region",
            "owner",
            "consent",
            "preferences",
            "interests"
        ]
    );
}

#[test]
fn a_complete_person_scores_one_hundred() {
    let mut events = registered(
        CustomerKind::Person,
        &[
            (Field::Name, "张三"),
            (Field::Email, "z@example.com"),
            (Field::Birthday, "1990-01-01"),
            (Field::Gender, "male"),
            (Field::MaritalStatus, "single"),
            (Field::Occupation, "teacher"),
            (Field::Region, "华东"),
            (Field::Preferences, "tea"),
            (Field::Interests, "go"),
        ],
        Some("li.si"),
    );
    events.push(Event::AddressAdded {
        address_id: id(1),
        address: Address {
            label: None,
            text: FieldValue::from_log("上海".into()),
        },
    });
    let almost = completeness(&replay(&events));
    assert_eq!(
        (almost.score, almost.missing),
        (90, vec!["consent".to_owned()])
    );
    events.push(Event::ConsentRecorded {
        purpose: "marketing".into(),
        granted: true,
        on: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
    });
    let c = completeness(&replay(&events));
    assert_eq!((c.score, c.missing.len()), (100, 0));
}

#[test]
fn a_company_reachable_through_its_contact_person() {
    let mut events = registered(
        CustomerKind::Company,
        &[
            (Field::Name, "某某有限公司"),
            (Field::CreditCode, "91350100M000100Y43"),
            (Field::Industry, "steel"),
            (Field::Address, "北京"),
        ],
        Some("li.si"),
    );
    let c = completeness(&replay(&events));
    assert_eq!(c.score, 10 + 10 + 10 + 10 + 10);
    assert!(c.missing.contains(&"contact_person".to_owned()));
    assert!(c.missing.contains(&"phone_or_email".to_owned()));
    events.push(Event::ContactAdded {
        contact_id: id(2),
        contact: Contact {
            name: FieldValue::from_log("李四".into()),
            role: None,
            phone: Some(FieldValue::from_log("+8613800000000".into())),
            email: None,
        },
    });
    let c = completeness(&replay(&events));
    assert_eq!(c.score, 70);
    assert_eq!(
        c.missing,
        [
            "region",
            "company_size",
            "registered_capital",
            "business_focus",
            "industry_standing",
            "financial_strength",
            "reputation",
            "cooperation_intent",
            "distribution_capability"
        ]
    );
}
