//! Validation and classification of the customer-file fields: which kind of
//! customer each field exists for, which are personal, and what raw input
//! each accepts.

use chrono::NaiveDate;
use dossier_domain::{CustomerKind, Field};

const PERSON: CustomerKind = CustomerKind::Person;
const COMPANY: CustomerKind = CustomerKind::Company;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
}

fn accepts(field: Field, raw: &str) -> String {
    let kind = if field.applies_to(PERSON) {
        PERSON
    } else {
        COMPANY
    };
    match field.parse_value(kind, raw, today()) {
        Ok(v) => v.as_str().to_owned(),
        Err(e) => panic!("{field} should accept {raw:?}: {}", e.reason),
    }
}

fn rejects(field: Field, raw: &str) -> String {
    let kind = if field.applies_to(PERSON) {
        PERSON
    } else {
        COMPANY
    };
    match field.parse_value(kind, raw, today()) {
        Ok(v) => panic!("{field} should reject {raw:?}, got {:?}", v.as_str()),
        Err(e) => e.reason,
    }
}

#[test]
fn field_names_round_trip_and_are_distinct() {
    let mut names: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
    for f in Field::ALL {
        assert_eq!(Field::parse(f.as_str()), Some(f));
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Field::ALL.len());
    assert_eq!(Field::parse("Company_Size"), None);
}

#[test]
fn company_size_takes_its_vocabulary_only() {
    for s in ["micro", "small", "medium", "large"] {
        assert_eq!(accepts(Field::CompanySize, s), s);
    }
    assert_eq!(accepts(Field::CompanySize, "  small "), "small");
    for bad in ["huge", "Small", "", "strong", "中型"] {
        let reason = rejects(Field::CompanySize, bad);
        assert!(reason.contains("company_size"), "{reason}");
        assert!(reason.contains("micro, small, medium, large"), "{reason}");
    }
}

#[test]
fn strength_fields_take_strong_average_weak() {
    for f in [
        Field::IndustryStanding,
        Field::DistributionCapability,
        Field::FinancialStrength,
        Field::Reputation,
    ] {
        for s in ["strong", "average", "weak"] {
            assert_eq!(accepts(f, s), s);
        }
        for bad in ["high", "none", "STRONG", "", "medium"] {
            let reason = rejects(f, bad);
            assert!(reason.contains(f.as_str()), "{reason}");
            assert!(reason.contains("strong, average, weak"), "{reason}");
        }
    }
}

#[test]
fn cooperation_intent_takes_high_medium_low_none() {
    for s in ["high", "medium", "low", "none"] {
        assert_eq!(accepts(Field::CooperationIntent, s), s);
    }
    for bad in ["strong", "weak", "None", "", "very high"] {
        let reason = rejects(Field::CooperationIntent, bad);
        assert!(reason.contains("high, medium, low, none"), "{reason}");
    }
}

#[test]
fn registered_capital_is_a_non_negative_amount_with_currency() {
    assert_eq!(
        accepts(Field::RegisteredCapital, "5000000 CNY"),
        "5000000 CNY"
    );
    // Normalised like any Money: trailing zeros dropped, currency uppercased.
    assert_eq!(
        accepts(Field::RegisteredCapital, " 5000000.50 cny "),
        "5000000.5 CNY"
    );
    assert_eq!(accepts(Field::RegisteredCapital, "0 USD"), "0 USD");

    assert!(rejects(Field::RegisteredCapital, "-1 CNY").contains("negative"));
    assert!(rejects(Field::RegisteredCapital, "5000000").contains("amount and currency"));
    for bad in [
        "",
        "CNY 5000000",
        "5000000 RMB1",
        "5,000,000 CNY",
        "5e6 CNY",
        "5000000 人民币",
        "1000000000000000 CNY",
    ] {
        rejects(Field::RegisteredCapital, bad);
    }
}

#[test]
fn free_text_fields_are_bounded_to_500_characters() {
    for f in [
        Field::BusinessFocus,
        Field::Preferences,
        Field::Interests,
        Field::Assets,
    ] {
        assert_eq!(accepts(f, "  green tea  "), "green tea");
        let longest = "茶".repeat(500);
        assert_eq!(accepts(f, &longest), longest);
        rejects(f, &"茶".repeat(501));
        rejects(f, "");
        rejects(f, "line\u{0}break");
    }
}

#[test]
fn which_kind_each_field_applies_to() {
    let person_only = [
        Field::Gender,
        Field::Birthday,
        Field::MaritalStatus,
        Field::Occupation,
        Field::NationalId,
        Field::Assets,
    ];
    let company_only = [
        Field::CreditCode,
        Field::CompanySize,
        Field::RegisteredCapital,
        Field::IndustryStanding,
        Field::DistributionCapability,
    ];
    for f in Field::ALL {
        let (person, company) = (f.applies_to(PERSON), f.applies_to(COMPANY));
        if person_only.contains(&f) {
            assert_eq!((person, company), (true, false), "{f}");
        } else if company_only.contains(&f) {
            assert_eq!((person, company), (false, true), "{f}");
        } else {
            assert_eq!((person, company), (true, true), "{f}");
        }
    }
    // Spelled out for the new fields, so a change to the table above shows here too.
    for f in [
        Field::BusinessFocus,
        Field::FinancialStrength,
        Field::Reputation,
        Field::CooperationIntent,
        Field::Preferences,
        Field::Interests,
    ] {
        assert!(f.applies_to(PERSON) && f.applies_to(COMPANY), "{f}");
    }
}

#[test]
fn which_fields_are_personal_for_each_kind() {
    let always = [
        Field::Gender,
        Field::Birthday,
        Field::MaritalStatus,
        Field::Occupation,
        Field::Phone,
        Field::Email,
        Field::Address,
        Field::NationalId,
        Field::BankCard,
        Field::Assets,
    ];
    let person_only = [Field::Name, Field::Preferences, Field::Interests];
    for f in Field::ALL {
        let (person, company) = (f.is_personal(PERSON), f.is_personal(COMPANY));
        if always.contains(&f) {
            assert_eq!((person, company), (true, true), "{f}");
        } else if person_only.contains(&f) {
            assert_eq!((person, company), (true, false), "{f}");
        } else {
            assert_eq!((person, company), (false, false), "{f}");
        }
    }
    for f in [
        Field::CompanySize,
        Field::RegisteredCapital,
        Field::BusinessFocus,
        Field::IndustryStanding,
        Field::DistributionCapability,
        Field::FinancialStrength,
        Field::Reputation,
        Field::CooperationIntent,
    ] {
        assert!(!f.is_personal(PERSON) && !f.is_personal(COMPANY), "{f}");
    }
}
