//! Facts: incremental application with serde round trips, the FIFO mirror of
//! the domain's payments, boundedness and determinism.
mod common;

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use common::{d, id, money, Log};
use dossier_domain::{
    Channel, CreditRating, CustomerKind, Event, Field, FieldChange, FieldValue, Importance,
    LegalStatus, Outcome,
};
use dossier_insights::{assess, Amount, Facts, Rules, MAX_WINDOW_DAYS};
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Clone, Debug)]
enum Op {
    Order {
        back: u64,
        units: u32,
        currency: usize,
    },
    Invoice {
        units: u32,
        currency: usize,
        due_in: u64,
    },
    Payment {
        invoice: Option<usize>,
        units: u32,
        currency: usize,
    },
    Interaction {
        outcome: usize,
        back: u64,
    },
    ComplaintOpened,
    ComplaintResolved(usize),
    Credit(Option<usize>, u32),
    Legal(usize),
    Review,
    Importance(Option<usize>),
    Tag(bool),
    Birthday(Option<u32>),
    Owner(u8),
}

const CURRENCIES: [&str; 3] = ["CNY", "USD", "EUR"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..40, 1u32..2_000_000, 0usize..3)
            .prop_map(|(back, units, currency)| Op::Order { back, units, currency }),
        3 => (1u32..2_000_000, 0usize..3, 0u64..60)
            .prop_map(|(units, currency, due_in)| Op::Invoice { units, currency, due_in }),
        3 => (proptest::option::of(0usize..50), 1u32..3_000_000, 0usize..3)
            .prop_map(|(invoice, units, currency)| Op::Payment { invoice, units, currency }),
        3 => (0usize..4, 0u64..10).prop_map(|(outcome, back)| Op::Interaction { outcome, back }),
        1 => Just(Op::ComplaintOpened),
        1 => (0usize..20).prop_map(Op::ComplaintResolved),
        1 => (proptest::option::of(0usize..10), 0u32..200_000).prop_map(|(r, l)| Op::Credit(r, l)),
        1 => (0usize..5).prop_map(Op::Legal),
        1 => Just(Op::Review),
        1 => proptest::option::of(0usize..3).prop_map(Op::Importance),
        1 => any::<bool>().prop_map(Op::Tag),
        1 => proptest::option::of(0u32..20_000).prop_map(Op::Birthday),
        1 => (0u8..3).prop_map(Op::Owner),
    ]
}

/// Turns ops into a valid-looking log: recorded dates never go back, ids are
/// fresh, payments and resolutions refer to earlier invoices and complaints.
fn events(start: NaiveDate, ops: &[(u64, Op)]) -> Vec<(i64, NaiveDate, Event)> {
    let mut out = Vec::new();
    let mut on = start;
    let mut next_id = 1u128;
    let mut fresh = || {
        next_id += 1;
        Uuid::from_u128(next_id)
    };
    let mut invoices: Vec<(Uuid, usize)> = Vec::new();
    let mut complaints: Vec<Uuid> = Vec::new();
    let mut rating: Option<CreditRating> = None;
    let mut limit = None;
    let mut legal = LegalStatus::Normal;
    let mut importance = None;
    let money_of = |units: u32, c: usize| {
        money(
            &Amount::from_ten_thousandths(i128::from(units) * 100).to_string(),
            CURRENCIES[c],
        )
    };
    let mut details = BTreeMap::new();
    details.insert(Field::Name, FieldValue::from_log("王五".into()));
    out.push(Event::Registered {
        kind: CustomerKind::Person,
        details,
        owner: None,
        tags: vec![],
    });
    let mut dated = vec![start];
    for (gap, op) in ops {
        on = on + Days::new(*gap);
        let e = match op.clone() {
            Op::Order {
                back,
                units,
                currency,
            } => Event::OrderPlaced {
                order_id: fresh(),
                product: "p".into(),
                amount: money_of(units, currency),
                ordered_on: on - Days::new(back),
            },
            Op::Invoice {
                units,
                currency,
                due_in,
            } => {
                let invoice_id = fresh();
                invoices.push((invoice_id, currency));
                Event::InvoiceIssued {
                    invoice_id,
                    order_id: None,
                    amount: money_of(units, currency),
                    issued_on: on,
                    due_on: on + Days::new(due_in),
                }
            }
            Op::Payment {
                invoice,
                units,
                currency,
            } => {
                // A payment to an invoice is in its currency (the domain insists).
                let target = invoice.and_then(|i| invoices.get(i % invoices.len().max(1)).copied());
                Event::PaymentReceived {
                    payment_id: fresh(),
                    invoice_id: target.map(|t| t.0),
                    amount: money_of(units, target.map_or(currency, |t| t.1)),
                    received_on: on,
                }
            }
            Op::Interaction { outcome, back } => Event::InteractionLogged {
                interaction_id: fresh(),
                channel: Channel::Call,
                outcome: [
                    Outcome::Positive,
                    Outcome::Neutral,
                    Outcome::Negative,
                    Outcome::NoAnswer,
                ][outcome],
                occurred_on: on - Days::new(back),
                summary: None,
            },
            Op::ComplaintOpened => {
                let complaint_id = fresh();
                complaints.push(complaint_id);
                Event::ComplaintOpened {
                    complaint_id,
                    category: "c".into(),
                    summary: "s".into(),
                    opened_on: on,
                }
            }
            Op::ComplaintResolved(i) => {
                if complaints.is_empty() {
                    continue;
                }
                let complaint_id = complaints.remove(i % complaints.len());
                Event::ComplaintResolved {
                    complaint_id,
                    resolution: "r".into(),
                    resolved_on: on,
                }
            }
            Op::Credit(r, l) => {
                let after = r.map(|i| CreditRating::ALL[i]);
                let limit_after = Some(money_of(l, 0));
                let e = Event::CreditChanged {
                    rating_before: rating,
                    rating_after: after,
                    limit_before: limit.clone(),
                    limit_after: limit_after.clone(),
                };
                rating = after;
                limit = limit_after;
                e
            }
            Op::Legal(i) => {
                let after = LegalStatus::ALL[i];
                let e = Event::LegalStatusChanged {
                    before: legal,
                    after,
                    since: on,
                };
                legal = after;
                e
            }
            Op::Review => Event::ReviewCompleted {
                reviewed_on: on,
                summary: None,
            },
            Op::Importance(i) => {
                let after = i.map(|i| Importance::ALL[i]);
                let e = Event::ImportanceSet {
                    before: importance,
                    after,
                };
                importance = after;
                e
            }
            Op::Tag(add) => Event::TagsChanged {
                added: if add { vec!["特殊".into()] } else { vec![] },
                removed: if add { vec![] } else { vec!["特殊".into()] },
            },
            Op::Birthday(days) => Event::DetailsChanged {
                changes: vec![FieldChange {
                    field: Field::Birthday,
                    before: None,
                    after: days.map(|n| {
                        FieldValue::from_log(
                            (d("1960-01-01") + Days::new(u64::from(n) * 2)).to_string(),
                        )
                    }),
                }],
            },
            Op::Owner(o) => Event::OwnerAssigned {
                before: None,
                after: format!("owner-{o}"),
            },
        };
        out.push(e);
        dated.push(on);
    }
    out.into_iter()
        .zip(dated)
        .enumerate()
        .map(|(i, (e, on))| (i as i64 + 1, on, e))
        .collect()
}

fn one_pass(log: &[(i64, NaiveDate, Event)]) -> Facts {
    let mut f = Facts::default();
    for (seq, on, e) in log {
        f.apply(*seq, *on, e);
    }
    f
}

fn ops() -> impl Strategy<Value = Vec<(u64, Op)>> {
    proptest::collection::vec((0u64..20, op()), 0..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Stopping anywhere, storing the facts as JSON and resuming gives the
    /// same facts, and so the same assessments, as one pass.
    #[test]
    fn incremental_application_with_serde_round_trips_equals_one_pass(
        ops in ops(),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
    ) {
        let log = events(d("2020-01-01"), &ops);
        let whole = one_pass(&log);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(log.len() + 1)).collect();
        cuts.sort_unstable();
        let mut resumed = Facts::default();
        for (i, (seq, on, e)) in log.iter().enumerate() {
            if cuts.contains(&i) {
                let json = serde_json::to_string(&resumed).unwrap();
                resumed = serde_json::from_str(&json).unwrap();
            }
            resumed.apply(*seq, *on, e);
        }
        let json = serde_json::to_value(&resumed).unwrap();
        let resumed: Facts = serde_json::from_value(json).unwrap();
        prop_assert_eq!(&resumed, &whole);

        let rules = Rules::parse("version = \"p\"\n[rates]\nUSD = \"7.1\"").unwrap();
        let last = log.last().map(|x| x.1).unwrap();
        for ahead in [0u64, 1, 30, 400] {
            let on = last + Days::new(ahead);
            let a = assess(&whole, &rules, on);
            prop_assert_eq!(&a, &assess(&resumed, &rules, on));
            prop_assert_eq!(&a, &assess(&whole, &rules, on));
        }
    }

    /// Facts settle receivables (and keep overpayments as prepaid) exactly as
    /// the domain's `evolve` does.
    #[test]
    fn receivables_mirror_the_domain(ops in ops()) {
        let log = events(d("2020-01-01"), &ops);
        let facts = one_pass(&log);
        let state = dossier_domain::replay(log.iter().map(|x| &x.2));
        let domain: BTreeMap<Uuid, (String, Amount)> = state
            .receivables
            .iter()
            .filter(|(_, r)| !r.is_settled())
            .map(|(id, r)| {
                let left = dossier_domain::outstanding(r);
                (*id, (left.currency().to_owned(), Amount::from_money(&left)))
            })
            .collect();
        let ours: BTreeMap<Uuid, (String, Amount)> = facts
            .receivables
            .iter()
            .map(|r| (r.invoice_id, (r.currency.clone(), r.outstanding())))
            .collect();
        prop_assert_eq!(ours, domain);
        // And keep what was paid beyond them as the same prepaid balances.
        let domain_prepaid: BTreeMap<String, Amount> = state
            .prepaid
            .iter()
            .map(|(c, m)| (c.clone(), Amount::from_money(m)))
            .collect();
        prop_assert_eq!(&facts.prepaid, &domain_prepaid);
    }
}

#[test]
fn facts_stay_small_after_ten_years_of_daily_activity() {
    let rules = Rules::defaults();
    let start = d("2015-01-01");
    let mut log = Log::company("2015-01-01");
    let mut biggest = 0;
    for day in 0..3653u64 {
        let on = (start + Days::new(day)).to_string();
        log.order(&on, "1000.5", "CNY");
        log.order(&on, "10", "USD");
        let (c, _) = log.complaint(&on);
        log.resolve(&on, c);
        log.interaction(&on, Outcome::NoAnswer);
        let inv = id(1_000_000 + u128::from(day));
        log.invoice(inv, &on, "100", "CNY", &on);
        log.pay(&on, Some(inv), "100", "CNY");
        if day % 30 == 0 {
            log.credit(&on, Some(CreditRating::A), Some(CreditRating::Bbb));
            let a = assess(&log.facts, &rules, d(&on));
            assert_eq!(a, assess(&log.facts, &rules, d(&on)));
            biggest = biggest.max(serde_json::to_vec(&log.facts).unwrap().len());
        }
    }
    let f = &log.facts;
    assert!(f.orders.days.len() <= MAX_WINDOW_DAYS as usize + 1);
    assert_eq!(f.orders.count, 2 * 3653);
    assert!(f.complaints.opened.len() <= MAX_WINDOW_DAYS as usize + 1);
    assert!(f.credit.changes.len() <= 26);
    assert!(f.contact.no_answers.len() <= 32);
    assert!(f.receivables.is_empty());
    // Roughly 150 bytes a day (two currencies, a complaint) of kept history; 20 years would be the same.
    assert!(biggest < 80_000, "facts grew to {biggest} bytes");
    let json = serde_json::to_string(f).unwrap();
    let back: Facts = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, f);
    // The tier still sees exactly the trailing year (365 days of both currencies).
    let a = assess(f, &rules, d("2024-12-31"));
    assert_eq!(a.tier.inputs["trailing_orders"], "730");
    assert_eq!(a.tier.inputs["trailing_amount"], "365182.5 CNY");
}

#[test]
fn an_event_at_or_below_the_last_seq_is_ignored() {
    let mut log = Log::company("2024-01-01");
    let seq = log.order("2024-01-02", "100", "CNY");
    let before = log.facts.clone();
    let (_, on, e) = log.events.last().unwrap().clone();
    log.facts.apply(seq, on, &e);
    assert_eq!(log.facts, before);
    log.facts.apply(seq - 1, on, &e);
    assert_eq!(log.facts, before);
    log.facts.apply(seq + 1, on, &e);
    assert_eq!(log.facts.orders.count, 2);
}

#[test]
fn facts_track_owner_kind_fields_and_registration() {
    let mut log = Log::person("2024-01-01");
    log.detail("2024-01-02", Field::Phone, Some("+8613800000000"));
    log.at(
        "2024-01-03",
        Event::OwnerAssigned {
            before: Some("li.si".into()),
            after: "zhao.liu".into(),
        },
    );
    let f = &log.facts;
    assert_eq!(f.kind, Some(CustomerKind::Person));
    assert_eq!(f.owner.as_deref(), Some("zhao.liu"));
    assert_eq!(f.registered.map(|r| r.on), Some(d("2024-01-01")));
    assert_eq!(
        f.fields.iter().copied().collect::<Vec<_>>(),
        vec![Field::Name, Field::Phone]
    );
    assert_eq!(f.as_of, Some(d("2024-01-03")));
    assert_eq!(f.last_seq, Some(3));
}

#[test]
fn facts_json_keeps_money_exact_and_names_stable() {
    let mut log = Log::company("2024-01-01");
    log.order("2024-01-02", "1234.5678", "CNY");
    log.credit("2024-01-03", Some(CreditRating::A), Some(CreditRating::Bbb));
    log.importance("2024-01-04", Some(Importance::Special));
    let v = serde_json::to_value(&log.facts).unwrap();
    assert_eq!(v["kind"], "company");
    assert_eq!(v["importance_override"], "special");
    assert_eq!(v["credit"]["rating"], "BBB");
    assert_eq!(
        v["orders"]["days"]["2024-01-02"]["CNY"]["amount"],
        "1234.5678"
    );
    assert_eq!(v["orders"]["days"]["2024-01-02"]["CNY"]["count"], 1);
    assert_eq!(v["fields"], serde_json::json!(["name"]));
    // Fields missing from an older stored document take their defaults.
    let old: Facts = serde_json::from_str("{\"last_seq\": 7}").unwrap();
    assert_eq!(old.last_seq, Some(7));
}

#[test]
fn assessing_twice_gives_the_same_result() {
    let mut log = Log::person("2024-01-01");
    log.order("2024-01-02", "100", "CNY");
    log.complaint("2024-01-03");
    log.legal("2024-01-04", LegalStatus::Normal, LegalStatus::Litigation);
    let r = Rules::defaults();
    assert_eq!(log.assess(&r, "2024-06-01"), log.assess(&r, "2024-06-01"));
    let json = serde_json::to_string(&log.assess(&r, "2024-06-01")).unwrap();
    assert!(json.contains("\"level\":\"high\""), "{json}");
}
