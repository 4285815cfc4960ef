//! How complete a customer file is: a weighted checklist per kind of customer
//! (docs/rules.md lists the items and weights).

use dossier_domain::{Customer, CustomerKind, Field};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completeness {
    /// 0..=100: the sum of the weights of the items present.
    pub score: u8,
    /// The names of the missing items, in checklist order.
    pub missing: Vec<String>,
}

/// One checklist item: its name, weight and test.
type Item = (&'static str, u8, fn(&Customer) -> bool);

fn has(c: &Customer, f: Field) -> bool {
    c.details.contains_key(&f)
}

fn person_reachable(c: &Customer) -> bool {
    has(c, Field::Phone) || has(c, Field::Email)
}

fn company_reachable(c: &Customer) -> bool {
    person_reachable(c)
        || c.contacts
            .values()
            .any(|k| k.phone.is_some() || k.email.is_some())
}

fn has_address(c: &Customer) -> bool {
    has(c, Field::Address) || !c.addresses.is_empty()
}

/// Weights add up to 100.
const PERSON: &[Item] = &[
    ("name", 15, |c| has(c, Field::Name)),
    ("phone_or_email", 15, person_reachable),
    ("address", 10, has_address),
    ("birthday", 10, |c| has(c, Field::Birthday)),
    ("gender", 5, |c| has(c, Field::Gender)),
    ("marital_status", 5, |c| has(c, Field::MaritalStatus)),
    ("occupation", 5, |c| has(c, Field::Occupation)),
    ("region", 5, |c| has(c, Field::Region)),
    ("owner", 10, |c| c.owner.is_some()),
    ("consent", 10, |c| !c.consents.is_empty()),
    ("preferences", 5, |c| has(c, Field::Preferences)),
    ("interests", 5, |c| has(c, Field::Interests)),
];

/// Weights add up to 100.
const COMPANY: &[Item] = &[
    ("name", 10, |c| has(c, Field::Name)),
    ("credit_code", 10, |c| has(c, Field::CreditCode)),
    ("industry", 10, |c| has(c, Field::Industry)),
    ("region", 5, |c| has(c, Field::Region)),
    ("company_size", 5, |c| has(c, Field::CompanySize)),
    ("registered_capital", 5, |c| {
        has(c, Field::RegisteredCapital)
    }),
    ("contact_person", 10, |c| !c.contacts.is_empty()),
    ("phone_or_email", 10, company_reachable),
    ("address", 10, has_address),
    ("owner", 10, |c| c.owner.is_some()),
    ("business_focus", 3, |c| has(c, Field::BusinessFocus)),
    ("industry_standing", 3, |c| has(c, Field::IndustryStanding)),
    ("financial_strength", 3, |c| {
        has(c, Field::FinancialStrength)
    }),
    ("reputation", 2, |c| has(c, Field::Reputation)),
    ("cooperation_intent", 2, |c| {
        has(c, Field::CooperationIntent)
    }),
    ("distribution_capability", 2, |c| {
        has(c, Field::DistributionCapability)
    }),
];

/// The checklist items of a kind of customer, with their weights.
pub fn completeness_items(kind: CustomerKind) -> Vec<(&'static str, u8)> {
    checklist(kind).iter().map(|(n, w, _)| (*n, *w)).collect()
}

fn checklist(kind: CustomerKind) -> &'static [Item] {
    match kind {
        CustomerKind::Person => PERSON,
        CustomerKind::Company => COMPANY,
    }
}

/// Scores a customer file. An unregistered customer scores 0 with the single
/// missing item "registration".
pub fn completeness(c: &Customer) -> Completeness {
    let Some(kind) = c.kind else {
        return Completeness {
            score: 0,
            missing: vec!["registration".into()],
        };
    };
    let mut score = 0u8;
    let mut missing = Vec::new();
    for (name, weight, present) in checklist(kind) {
        if present(c) {
            score += weight;
        } else {
            missing.push((*name).to_owned());
        }
    }
    Completeness { score, missing }
}
