//! A tiny log builder for the tests: events get increasing seqs and the
//! business date they were recorded on.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::NaiveDate;
use dossier_domain::{
    Channel, CreditRating, CustomerKind, Event, Field, FieldChange, FieldValue, Importance,
    LegalStatus, Money, Outcome,
};
use dossier_insights::{assess, Assessment, Facts, Rules};
use uuid::Uuid;

pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

pub fn money(amount: &str, currency: &str) -> Money {
    Money::parse(amount, currency).unwrap()
}

/// The built-in rules with `extra` TOML appended after the version line.
pub fn rules(extra: &str) -> Rules {
    Rules::parse(&format!("version = \"test\"\n{extra}")).unwrap()
}

pub fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

pub struct Log {
    pub facts: Facts,
    pub events: Vec<(i64, NaiveDate, Event)>,
    next: i64,
    ids: u128,
}

impl Log {
    pub fn new() -> Log {
        Log {
            facts: Facts::default(),
            events: Vec::new(),
            next: 1,
            ids: 1000,
        }
    }

    /// A registered customer, recorded on `on`.
    pub fn registered(kind: CustomerKind, on: &str) -> Log {
        let mut log = Log::new();
        let mut details = BTreeMap::new();
        details.insert(Field::Name, FieldValue::from_log("张三".into()));
        log.at(
            on,
            Event::Registered {
                kind,
                details,
                owner: Some("li.si".into()),
                tags: vec![],
            },
        );
        log
    }

    pub fn person(on: &str) -> Log {
        Log::registered(CustomerKind::Person, on)
    }

    pub fn company(on: &str) -> Log {
        Log::registered(CustomerKind::Company, on)
    }

    pub fn fresh_id(&mut self) -> Uuid {
        self.ids += 1;
        id(self.ids)
    }

    /// Applies `e` recorded on `on`; returns its seq.
    pub fn at(&mut self, on: &str, e: Event) -> i64 {
        let seq = self.next;
        self.next += 1;
        self.facts.apply(seq, d(on), &e);
        self.events.push((seq, d(on), e));
        seq
    }

    pub fn order(&mut self, on: &str, amount: &str, currency: &str) -> i64 {
        let order_id = self.fresh_id();
        self.at(
            on,
            Event::OrderPlaced {
                order_id,
                product: "widget".into(),
                amount: money(amount, currency),
                ordered_on: d(on),
            },
        )
    }

    pub fn invoice(
        &mut self,
        invoice_id: Uuid,
        on: &str,
        amount: &str,
        currency: &str,
        due: &str,
    ) -> i64 {
        self.at(
            on,
            Event::InvoiceIssued {
                invoice_id,
                order_id: None,
                amount: money(amount, currency),
                issued_on: d(on),
                due_on: d(due),
            },
        )
    }

    pub fn pay(&mut self, on: &str, invoice_id: Option<Uuid>, amount: &str, currency: &str) -> i64 {
        let payment_id = self.fresh_id();
        self.at(
            on,
            Event::PaymentReceived {
                payment_id,
                invoice_id,
                amount: money(amount, currency),
                received_on: d(on),
            },
        )
    }

    pub fn interaction(&mut self, on: &str, outcome: Outcome) -> i64 {
        let interaction_id = self.fresh_id();
        self.at(
            on,
            Event::InteractionLogged {
                interaction_id,
                channel: Channel::Call,
                outcome,
                occurred_on: d(on),
                summary: None,
            },
        )
    }

    pub fn complaint(&mut self, on: &str) -> (Uuid, i64) {
        let complaint_id = self.fresh_id();
        let seq = self.at(
            on,
            Event::ComplaintOpened {
                complaint_id,
                category: "quality".into(),
                summary: "broken".into(),
                opened_on: d(on),
            },
        );
        (complaint_id, seq)
    }

    pub fn resolve(&mut self, on: &str, complaint_id: Uuid) -> i64 {
        self.at(
            on,
            Event::ComplaintResolved {
                complaint_id,
                resolution: "replaced".into(),
                resolved_on: d(on),
            },
        )
    }

    pub fn credit(
        &mut self,
        on: &str,
        before: Option<CreditRating>,
        after: Option<CreditRating>,
    ) -> i64 {
        self.at(
            on,
            Event::CreditChanged {
                rating_before: before,
                rating_after: after,
                limit_before: None,
                limit_after: None,
            },
        )
    }

    pub fn legal(&mut self, on: &str, before: LegalStatus, after: LegalStatus) -> i64 {
        self.at(
            on,
            Event::LegalStatusChanged {
                before,
                after,
                since: d(on),
            },
        )
    }

    pub fn importance(&mut self, on: &str, after: Option<Importance>) -> i64 {
        let before = self.facts.importance_override;
        self.at(on, Event::ImportanceSet { before, after })
    }

    pub fn detail(&mut self, on: &str, field: Field, value: Option<&str>) -> i64 {
        self.at(
            on,
            Event::DetailsChanged {
                changes: vec![FieldChange {
                    field,
                    before: None,
                    after: value.map(|v| FieldValue::from_log(v.into())),
                }],
            },
        )
    }

    pub fn review(&mut self, on: &str) -> i64 {
        self.at(
            on,
            Event::ReviewCompleted {
                reviewed_on: d(on),
                summary: None,
            },
        )
    }

    pub fn tags(&mut self, on: &str, added: &[&str], removed: &[&str]) -> i64 {
        self.at(
            on,
            Event::TagsChanged {
                added: added.iter().map(|s| s.to_string()).collect(),
                removed: removed.iter().map(|s| s.to_string()).collect(),
            },
        )
    }

    pub fn assess(&self, rules: &Rules, on: &str) -> Assessment {
        assess(&self.facts, rules, d(on))
    }
}
