//! Follow-ups: when each kind is due, its urgency and its evidence.
mod common;

use common::{d, id, rules, Log};
use dossier_domain::{Event, Field, Importance, Outcome};
use dossier_insights::{FollowUp, FollowUpKind, Rules, IMPORTANCE_URGENCY_BONUS};

fn of(log: &Log, r: &Rules, on: &str, kind: FollowUpKind) -> Vec<FollowUp> {
    log.assess(r, on)
        .follow_ups
        .into_iter()
        .filter(|f| f.kind == kind)
        .collect()
}

fn one(log: &Log, r: &Rules, on: &str, kind: FollowUpKind) -> Option<FollowUp> {
    let mut v = of(log, r, on, kind);
    assert!(v.len() <= 1, "{v:?}");
    v.pop()
}

#[test]
fn no_contact_is_due_after_the_configured_days() {
    let r = Rules::defaults();
    let mut log = Log::person("2024-01-01");
    let reg = log.facts.registered.unwrap().seq;
    assert!(one(&log, &r, "2024-01-30", FollowUpKind::NoContact).is_none());
    let f = one(&log, &r, "2024-01-31", FollowUpKind::NoContact).unwrap();
    assert_eq!(f.due_on, d("2024-01-31"));
    assert_eq!(f.urgency, 30);
    assert_eq!(f.evidence, vec![reg]);
    assert_eq!(
        f.detail,
        "No contact for 30 days (not reached since registration on 2024-01-01)"
    );
    // An unanswered call is no contact; an answered one is.
    log.interaction("2024-02-10", Outcome::NoAnswer);
    assert!(one(&log, &r, "2024-02-10", FollowUpKind::NoContact).is_some());
    let call = log.interaction("2024-02-11", Outcome::Positive);
    assert!(one(&log, &r, "2024-03-11", FollowUpKind::NoContact).is_none());
    let f = one(&log, &r, "2024-03-12", FollowUpKind::NoContact).unwrap();
    assert_eq!((f.due_on, f.evidence), (d("2024-03-12"), vec![call]));
    assert_eq!(
        f.detail,
        "No contact for 30 days (last reached on 2024-02-11)"
    );
    let weekly = rules("[follow_ups]\nno_contact_days = 7");
    assert!(one(&log, &weekly, "2024-02-18", FollowUpKind::NoContact).is_some());
}

#[test]
fn a_full_review_is_due_every_sixty_days() {
    let r = Rules::defaults();
    let mut log = Log::company("2024-01-01");
    let reg = log.facts.registered.unwrap().seq;
    // Never reviewed: counted from registration (2024 is a leap year).
    assert!(one(&log, &r, "2024-02-29", FollowUpKind::ReviewDue).is_none());
    let f = one(&log, &r, "2024-03-01", FollowUpKind::ReviewDue).unwrap();
    assert_eq!(
        (f.due_on, f.urgency, f.evidence),
        (d("2024-03-01"), 20, vec![reg])
    );
    assert!(f.detail.contains("never reviewed"), "{}", f.detail);
    let review = log.review("2024-03-05");
    assert!(one(&log, &r, "2024-05-03", FollowUpKind::ReviewDue).is_none());
    let f = one(&log, &r, "2024-05-04", FollowUpKind::ReviewDue).unwrap();
    assert_eq!((f.due_on, f.evidence), (d("2024-05-04"), vec![review]));
    // A review entered late with an older date does not move the last review back.
    log.review("2024-01-15");
    assert!(one(&log, &r, "2024-05-03", FollowUpKind::ReviewDue).is_none());
}

#[test]
fn a_birthday_within_the_next_days_is_a_follow_up() {
    let r = Rules::defaults();
    let mut log = Log::person("2024-01-01");
    let set = log.detail("2024-01-02", Field::Birthday, Some("1990-06-15"));
    assert!(one(&log, &r, "2024-06-07", FollowUpKind::Birthday).is_none());
    let f = one(&log, &r, "2024-06-08", FollowUpKind::Birthday).unwrap();
    assert_eq!(
        (f.due_on, f.urgency, f.evidence),
        (d("2024-06-15"), 10, vec![set])
    );
    assert_eq!(f.detail, "Birthday in 7 day(s), on 2024-06-15");
    let today = one(&log, &r, "2024-06-15", FollowUpKind::Birthday).unwrap();
    assert_eq!(today.detail, "Birthday today, on 2024-06-15");
    assert!(one(&log, &r, "2024-06-16", FollowUpKind::Birthday).is_none());
    // Around the new year.
    let mut dec = Log::person("2024-01-01");
    dec.detail("2024-01-02", Field::Birthday, Some("1990-01-03"));
    assert_eq!(
        one(&dec, &r, "2024-12-28", FollowUpKind::Birthday)
            .unwrap()
            .due_on,
        d("2025-01-03")
    );
    // Cleared: no reminder.
    log.detail("2024-06-01", Field::Birthday, None);
    assert!(one(&log, &r, "2024-06-15", FollowUpKind::Birthday).is_none());
}

#[test]
fn a_29_february_birthday_falls_on_28_february_in_common_years() {
    let r = Rules::defaults();
    let mut log = Log::person("2020-01-01");
    log.detail("2020-01-02", Field::Birthday, Some("2000-02-29"));
    assert_eq!(
        one(&log, &r, "2023-02-21", FollowUpKind::Birthday)
            .unwrap()
            .due_on,
        d("2023-02-28")
    );
    assert!(one(&log, &r, "2023-02-20", FollowUpKind::Birthday).is_none());
    assert_eq!(
        one(&log, &r, "2024-02-22", FollowUpKind::Birthday)
            .unwrap()
            .due_on,
        d("2024-02-29")
    );
    assert!(one(&log, &r, "2024-02-21", FollowUpKind::Birthday).is_none());
    assert!(one(&log, &r, "2023-03-01", FollowUpKind::Birthday).is_none());
    assert_eq!(
        dossier_insights::next_birthday(d("2000-02-29"), d("2023-03-01")),
        Some(d("2024-02-29"))
    );
}

#[test]
fn birthdays_are_for_persons_only() {
    let r = Rules::defaults();
    let mut log = Log::company("2024-01-01");
    // A company has no birthday field; even if one were in the log, no reminder.
    log.detail("2024-01-02", Field::Birthday, Some("1990-06-15"));
    assert!(one(&log, &r, "2024-06-15", FollowUpKind::Birthday).is_none());
}

#[test]
fn a_complaint_open_for_the_configured_days_is_a_follow_up() {
    let r = Rules::defaults();
    let mut log = Log::person("2024-01-01");
    let (c, s) = log.complaint("2024-02-01");
    let (_, s2) = log.complaint("2024-02-03");
    assert!(of(&log, &r, "2024-02-07", FollowUpKind::ComplaintOpen).is_empty());
    let f = of(&log, &r, "2024-02-08", FollowUpKind::ComplaintOpen);
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].due_on, f[0].urgency, f[0].evidence.clone()),
        (d("2024-02-08"), 40, vec![s])
    );
    assert_eq!(f[0].detail, "Complaint open for 7 days (since 2024-02-01)");
    assert_eq!(
        of(&log, &r, "2024-02-10", FollowUpKind::ComplaintOpen).len(),
        2
    );
    log.resolve("2024-02-10", c);
    let f = of(&log, &r, "2024-02-10", FollowUpKind::ComplaintOpen);
    assert_eq!(
        f.iter().map(|x| x.evidence.clone()).collect::<Vec<_>>(),
        vec![vec![s2]]
    );
}

#[test]
fn any_overdue_receivable_is_a_payment_follow_up() {
    let r = Rules::defaults();
    let mut log = Log::company("2024-01-01");
    let a = log.invoice(id(1), "2024-01-02", "100", "CNY", "2024-03-01");
    let b = log.invoice(id(2), "2024-01-02", "50", "USD", "2024-03-05");
    assert!(one(&log, &r, "2024-03-01", FollowUpKind::PaymentOverdue).is_none());
    let f = one(&log, &r, "2024-03-02", FollowUpKind::PaymentOverdue).unwrap();
    assert_eq!(
        (f.due_on, f.urgency, f.evidence),
        (d("2024-03-02"), 50, vec![a])
    );
    let f = one(&log, &r, "2024-03-06", FollowUpKind::PaymentOverdue).unwrap();
    assert_eq!(f.evidence, vec![a, b]);
    assert_eq!(
        f.detail,
        "Collect 100 CNY, 50 USD on 2 overdue invoice(s), oldest due 2024-03-01"
    );
    log.pay("2024-03-06", None, "100", "CNY");
    log.pay("2024-03-06", Some(id(2)), "50", "USD");
    assert!(one(&log, &r, "2024-03-06", FollowUpKind::PaymentOverdue).is_none());
}

#[test]
fn follow_ups_are_ordered_by_urgency_then_due_date() {
    let r = Rules::defaults();
    let mut log = Log::person("2024-01-01");
    log.detail("2024-01-01", Field::Birthday, Some("1990-03-10"));
    log.complaint("2024-02-20");
    log.invoice(id(1), "2024-01-02", "100", "CNY", "2024-02-01");
    let on = "2024-03-05";
    let kinds: Vec<_> = log
        .assess(&r, on)
        .follow_ups
        .iter()
        .map(|f| (f.kind, f.urgency))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (FollowUpKind::PaymentOverdue, 50),
            (FollowUpKind::ComplaintOpen, 40),
            (FollowUpKind::NoContact, 30),
            (FollowUpKind::ReviewDue, 20),
            (FollowUpKind::Birthday, 10),
        ]
    );
    // Important and special customers get a bonus on every follow-up.
    log.importance(on, Some(Importance::Special));
    let urgencies: Vec<_> = log
        .assess(&r, on)
        .follow_ups
        .iter()
        .map(|f| f.urgency)
        .collect();
    assert_eq!(
        urgencies,
        [50, 40, 30, 20, 10]
            .iter()
            .map(|u| u + IMPORTANCE_URGENCY_BONUS)
            .collect::<Vec<_>>()
    );
}

#[test]
fn an_archived_file_has_no_follow_ups_but_keeps_its_tier_and_risk() {
    let r = Rules::defaults();
    let mut log = Log::person("2024-01-01");
    log.invoice(id(1), "2024-01-02", "100", "CNY", "2024-02-01");
    assert!(!log.assess(&r, "2024-06-01").follow_ups.is_empty());
    log.at("2024-06-01", Event::Archived);
    let a = log.assess(&r, "2024-06-01");
    assert!(a.follow_ups.is_empty());
    assert!(!a.risk.reasons.is_empty());
}
