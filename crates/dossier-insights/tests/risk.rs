//! Risk signals, their severities and the overall level.
mod common;

use chrono::Days;
use common::{d, id, money, rules, Log};
use dossier_domain::{CreditRating, Event, LegalStatus, Outcome};
use dossier_insights::{Reason, RiskLevel, Rules, Signal};

fn plus(on: &str, n: u64) -> String {
    (d(on) + Days::new(n)).to_string()
}

fn reason(log: &Log, r: &Rules, on: &str, signal: Signal) -> Option<Reason> {
    log.assess(r, on)
        .risk
        .reasons
        .into_iter()
        .find(|x| x.signal == signal)
}

fn severity(log: &Log, r: &Rules, on: &str, signal: Signal) -> Option<RiskLevel> {
    reason(log, r, on, signal).map(|x| x.severity)
}

// ---------------------------------------------------------------- overdue

#[test]
fn overdue_severity_grows_with_days_past_due() {
    let r = Rules::defaults();
    let mut log = Log::company("2024-01-01");
    let inv = log.invoice(id(1), "2024-01-15", "1000", "CNY", "2024-03-01");
    let due = "2024-03-01";
    let s = |n| severity(&log, &r, &plus(due, n), Signal::OverdueReceivables);
    assert_eq!(s(0), None); // due today: not overdue yet
    assert_eq!(s(1), Some(RiskLevel::Low));
    assert_eq!(s(30), Some(RiskLevel::Low));
    assert_eq!(s(31), Some(RiskLevel::Medium));
    assert_eq!(s(90), Some(RiskLevel::Medium));
    assert_eq!(s(91), Some(RiskLevel::High));
    let why = reason(&log, &r, &plus(due, 91), Signal::OverdueReceivables).unwrap();
    assert_eq!(why.evidence, vec![inv]);
    assert_eq!(
        why.detail,
        "1 overdue receivable(s), 1000 CNY outstanding, oldest 91 day(s) past due"
    );
}

#[test]
fn paying_an_overdue_invoice_clears_the_signal_and_a_partial_payment_does_not() {
    let r = Rules::defaults();
    let mut log = Log::company("2024-01-01");
    log.invoice(id(1), "2024-01-15", "1000", "CNY", "2024-03-01");
    log.pay("2024-03-10", Some(id(1)), "999.9999", "CNY");
    let why = reason(&log, &r, "2024-03-10", Signal::OverdueReceivables).unwrap();
    assert!(
        why.detail.contains("0.0001 CNY outstanding"),
        "{}",
        why.detail
    );
    log.pay("2024-03-11", Some(id(1)), "0.0001", "CNY");
    assert_eq!(
        severity(&log, &r, "2024-03-11", Signal::OverdueReceivables),
        None
    );
    assert!(log.facts.receivables.is_empty());
}

#[test]
fn fifo_payments_settle_the_oldest_due_first_in_their_currency() {
    let r = Rules::defaults();
    let mut log = Log::company("2024-01-01");
    let a = log.invoice(id(1), "2024-01-02", "100", "CNY", "2024-03-01");
    let b = log.invoice(id(2), "2024-01-03", "100", "CNY", "2024-02-01");
    let c = log.invoice(id(3), "2024-01-04", "100", "CNY", "2024-04-01");
    let usd = log.invoice(id(4), "2024-01-05", "100", "USD", "2024-01-15");
    // 150 CNY settles B (due first), then half of A; the USD invoice is untouched.
    log.pay("2024-05-01", None, "150", "CNY");
    let why = reason(&log, &r, "2024-05-01", Signal::OverdueReceivables).unwrap();
    assert_eq!(why.evidence, vec![a, c, usd]);
    assert!(
        why.detail.contains("150 CNY, 100 USD outstanding"),
        "{}",
        why.detail
    );
    log.pay("2024-05-02", None, "50", "CNY");
    let why = reason(&log, &r, "2024-05-02", Signal::OverdueReceivables).unwrap();
    assert_eq!(why.evidence, vec![c, usd]);
    // An overpayment settles everything in its currency; the rest is credit nowhere.
    log.pay("2024-05-03", None, "1000", "CNY");
    let why = reason(&log, &r, "2024-05-03", Signal::OverdueReceivables).unwrap();
    assert_eq!(why.evidence, vec![usd]);
    let _ = b;
}

#[test]
fn fifo_ties_on_due_date_go_by_invoice_id_like_the_domain() {
    let mut log = Log::company("2024-01-01");
    log.invoice(id(9), "2024-01-02", "100", "CNY", "2024-03-01");
    let first = log.invoice(id(5), "2024-01-03", "100", "CNY", "2024-03-01");
    log.pay("2024-01-04", None, "100", "CNY");
    assert_eq!(log.facts.receivables.len(), 1);
    assert_eq!(log.facts.receivables[0].invoice_id, id(9));
    let _ = first;
    // The same log through the domain's own evolve.
    let state = dossier_domain::replay(log.events.iter().map(|(_, _, e)| e));
    assert!(state.receivables[&id(5)].is_settled());
    assert!(!state.receivables[&id(9)].is_settled());
}

#[test]
fn a_payment_in_another_currency_than_its_invoice_changes_nothing() {
    let mut log = Log::company("2024-01-01");
    log.invoice(id(1), "2024-01-02", "100", "CNY", "2024-03-01");
    log.pay("2024-01-04", Some(id(1)), "100", "USD");
    assert_eq!(log.facts.receivables.len(), 1);
}

#[test]
fn overdue_minimum_amount_counts_only_convertible_amounts() {
    let mut log = Log::company("2024-01-01");
    log.invoice(id(1), "2024-01-02", "999", "CNY", "2024-02-01");
    log.invoice(id(2), "2024-01-02", "5000", "EUR", "2024-02-01");
    let on = "2024-03-01";
    // Default: any overdue amount, whatever the currency.
    assert!(severity(&log, &Rules::defaults(), on, Signal::OverdueReceivables).is_some());
    let min = rules("[risk.overdue_receivables]\nmin_amount = \"1000\"");
    assert_eq!(severity(&log, &min, on, Signal::OverdueReceivables), None);
    let with_eur =
        rules("[rates]\nEUR = \"7.8\"\n[risk.overdue_receivables]\nmin_amount = \"1000\"");
    assert!(severity(&log, &with_eur, on, Signal::OverdueReceivables).is_some());
    let mut exact = Log::company("2024-01-01");
    exact.invoice(id(1), "2024-01-02", "1000", "CNY", "2024-02-01");
    assert!(severity(&exact, &min, on, Signal::OverdueReceivables).is_some());
}

// ---------------------------------------------------------------- decline

/// Orders of `previous` in the 90 days before the last 90, `recent` in the last 90.
fn decline_log(previous: &str, recent: &str) -> (Log, String, i64, i64) {
    let on = "2024-09-30";
    let mut log = Log::company("2023-01-01");
    let p = log.order(&(d(on) - Days::new(179)).to_string(), previous, "CNY");
    let n = log.order(&(d(on) - Days::new(89)).to_string(), recent, "CNY");
    // Outside both windows: must not count.
    log.order(&(d(on) - Days::new(180)).to_string(), "1000000", "CNY");
    (log, on.to_owned(), p, n)
}

#[test]
fn purchase_decline_of_half_or_more_is_a_signal() {
    let r = Rules::defaults();
    let (log, on, p, n) = decline_log("10000", "5000");
    let why = reason(&log, &r, &on, Signal::PurchaseDecline).unwrap();
    assert_eq!(why.severity, RiskLevel::Medium);
    assert_eq!(why.evidence, vec![p, n]);
    assert_eq!(
        why.detail,
        "orders fell 50%: 5000 CNY in the last 90 days against 10000 CNY in the 90 days before"
    );
    let (log, on, ..) = decline_log("10000", "5000.0001");
    assert_eq!(severity(&log, &r, &on, Signal::PurchaseDecline), None);
    let (log, on, ..) = decline_log("20000", "0.0001");
    assert!(severity(&log, &r, &on, Signal::PurchaseDecline).is_some());
}

#[test]
fn purchase_decline_needs_a_minimum_previous_amount() {
    let r = Rules::defaults();
    let (log, on, ..) = decline_log("9999.9999", "1");
    assert_eq!(severity(&log, &r, &on, Signal::PurchaseDecline), None);
    let low = rules("[risk.purchase_decline]\nmin_previous_amount = 100\nseverity = \"high\"");
    assert_eq!(
        severity(&log, &low, &on, Signal::PurchaseDecline),
        Some(RiskLevel::High)
    );
}

#[test]
fn purchase_decline_windows_move_with_the_date() {
    let r = Rules::defaults();
    let (log, on, ..) = decline_log("10000", "5000");
    // One day later the previous order leaves the previous window.
    assert_eq!(
        severity(&log, &r, &plus(&on, 1), Signal::PurchaseDecline),
        None
    );
    // One day earlier the order 180 days back is in the previous window too.
    let earlier = reason(
        &log,
        &r,
        &(d(&on) - Days::new(1)).to_string(),
        Signal::PurchaseDecline,
    );
    assert!(earlier.unwrap().detail.contains("against 1010000 CNY"));
}

// ---------------------------------------------------------------- complaints

#[test]
fn many_complaints_within_the_window_are_a_signal() {
    let r = Rules::defaults();
    let on = "2024-06-30";
    let mut log = Log::person("2024-01-01");
    let day = |n| (d(on) - Days::new(n)).to_string();
    let (c0, _) = log.complaint(&day(90)); // outside the 90-day window
    log.resolve(&day(90), c0);
    let (c1, s1) = log.complaint(&day(89));
    let (c2, s2) = log.complaint(&day(10));
    log.resolve(&day(10), c1);
    log.resolve(&day(9), c2);
    assert_eq!(severity(&log, &r, on, Signal::Complaints), None);
    let (c3, s3) = log.complaint(on);
    let why = reason(&log, &r, on, Signal::Complaints).unwrap();
    assert_eq!(why.severity, RiskLevel::Medium);
    assert_eq!(why.evidence, vec![s1, s2, s3]);
    assert_eq!(
        why.detail,
        "3 complaint(s) in the last 90 days; 1 still open"
    );
    // The next day the first leaves the window; c3 is still open: low.
    let next = plus(on, 1);
    assert_eq!(
        severity(&log, &r, &next, Signal::Complaints),
        Some(RiskLevel::Low)
    );
    log.resolve(&next, c3);
    assert_eq!(severity(&log, &r, &next, Signal::Complaints), None);
}

#[test]
fn an_open_complaint_is_a_low_signal_by_default() {
    let mut log = Log::person("2024-01-01");
    let (_, s) = log.complaint("2024-02-01");
    let why = reason(&log, &Rules::defaults(), "2024-02-01", Signal::Complaints).unwrap();
    assert_eq!((why.severity, why.evidence), (RiskLevel::Low, vec![s]));
    let stricter = rules("[risk.complaints]\nopen_severity = \"high\"\nmin_count = 1");
    assert_eq!(
        severity(&log, &stricter, "2024-02-01", Signal::Complaints),
        Some(RiskLevel::High)
    );
}

// ---------------------------------------------------------------- credit

#[test]
fn a_credit_downgrade_within_the_window_is_a_signal() {
    let r = Rules::defaults();
    let mut log = Log::company("2024-01-01");
    log.credit("2024-01-01", None, Some(CreditRating::Aa));
    assert_eq!(
        severity(&log, &r, "2024-01-02", Signal::CreditDowngrade),
        None
    );
    let s = log.credit(
        "2024-02-01",
        Some(CreditRating::Aa),
        Some(CreditRating::Bbb),
    );
    let why = reason(&log, &r, "2024-02-01", Signal::CreditDowngrade).unwrap();
    assert_eq!(why.severity, RiskLevel::Medium);
    assert_eq!(why.evidence, vec![s]);
    assert_eq!(
        why.detail,
        "credit rating fell from AA to BBB within 180 days"
    );
    // The window is 180 days: the last day it counts and the first it does not.
    assert!(severity(&log, &r, &plus("2024-02-01", 179), Signal::CreditDowngrade).is_some());
    assert_eq!(
        severity(&log, &r, &plus("2024-02-01", 180), Signal::CreditDowngrade),
        None
    );
}

#[test]
fn a_downgrade_to_a_poor_rating_is_high_and_a_restored_rating_clears_it() {
    let r = Rules::defaults();
    let mut log = Log::company("2024-01-01");
    log.credit("2024-02-01", Some(CreditRating::A), Some(CreditRating::Ccc));
    assert_eq!(
        severity(&log, &r, "2024-02-01", Signal::CreditDowngrade),
        Some(RiskLevel::High)
    );
    log.credit("2024-02-10", Some(CreditRating::Ccc), Some(CreditRating::A));
    assert_eq!(
        severity(&log, &r, "2024-02-10", Signal::CreditDowngrade),
        None
    );
    // An upgrade alone is no signal.
    let mut up = Log::company("2024-01-01");
    up.credit("2024-02-01", Some(CreditRating::B), Some(CreditRating::A));
    assert_eq!(
        severity(&up, &r, "2024-02-01", Signal::CreditDowngrade),
        None
    );
}

#[test]
fn a_cut_credit_limit_is_a_downgrade() {
    let r = Rules::defaults();
    let mut log = Log::company("2024-01-01");
    let s = log.at(
        "2024-02-01",
        Event::CreditChanged {
            rating_before: None,
            rating_after: None,
            limit_before: Some(money("100000", "CNY")),
            limit_after: Some(money("50000", "CNY")),
        },
    );
    let why = reason(&log, &r, "2024-02-01", Signal::CreditDowngrade).unwrap();
    assert_eq!(why.evidence, vec![s]);
    assert!(why
        .detail
        .contains("credit limit cut from 100000 CNY to 50000 CNY"));
}

// ---------------------------------------------------------------- legal

#[test]
fn legal_status_severities() {
    let r = Rules::defaults();
    for (status, level) in [
        (LegalStatus::Litigation, Some(RiskLevel::High)),
        (LegalStatus::Restructuring, Some(RiskLevel::High)),
        (LegalStatus::Bankruptcy, Some(RiskLevel::Critical)),
        (LegalStatus::Dissolved, Some(RiskLevel::Critical)),
        (LegalStatus::Normal, None),
    ] {
        let mut log = Log::company("2024-01-01");
        let s = log.legal("2024-02-01", LegalStatus::Litigation, status);
        let why = reason(&log, &r, "2024-02-01", Signal::LegalStatus);
        assert_eq!(why.as_ref().map(|x| x.severity), level, "{status}");
        if let Some(why) = why {
            assert_eq!(why.evidence, vec![s]);
            assert_eq!(
                why.detail,
                format!("legal status {status} since 2024-02-01")
            );
        }
    }
    let mild = rules("[risk.legal_status]\nlitigation = \"medium\"");
    let mut log = Log::company("2024-01-01");
    log.legal("2024-02-01", LegalStatus::Normal, LegalStatus::Litigation);
    assert_eq!(
        severity(&log, &mild, "2024-02-01", Signal::LegalStatus),
        Some(RiskLevel::Medium)
    );
}

// ---------------------------------------------------------------- lost contact

#[test]
fn no_successful_contact_for_the_configured_days_is_lost_contact() {
    let r = Rules::defaults();
    let mut log = Log::person("2024-01-01");
    let reg = log.facts.registered.unwrap().seq;
    assert_eq!(
        severity(&log, &r, &plus("2024-01-01", 89), Signal::LostContact),
        None
    );
    let why = reason(&log, &r, &plus("2024-01-01", 90), Signal::LostContact).unwrap();
    assert_eq!(why.evidence, vec![reg]);
    assert_eq!(why.detail, "never reached since registration 90 days ago");
    let call = log.interaction("2024-03-01", Outcome::Neutral);
    assert_eq!(
        severity(&log, &r, &plus("2024-03-01", 89), Signal::LostContact),
        None
    );
    let why = reason(&log, &r, &plus("2024-03-01", 90), Signal::LostContact).unwrap();
    assert_eq!(
        (why.severity, why.evidence),
        (RiskLevel::Medium, vec![call])
    );
}

#[test]
fn consecutive_unanswered_attempts_are_lost_contact() {
    let r = Rules::defaults();
    let mut log = Log::person("2024-01-01");
    log.interaction("2024-01-02", Outcome::Positive);
    let a = log.interaction("2024-01-03", Outcome::NoAnswer);
    let b = log.interaction("2024-01-04", Outcome::NoAnswer);
    assert_eq!(severity(&log, &r, "2024-01-04", Signal::LostContact), None);
    let c = log.interaction("2024-01-05", Outcome::NoAnswer);
    let why = reason(&log, &r, "2024-01-05", Signal::LostContact).unwrap();
    assert_eq!(why.evidence, vec![a, b, c]);
    assert_eq!(why.detail, "3 unanswered attempts in a row");
    // A late entry dated before the last success does not count.
    let mut late = Log::person("2024-01-01");
    late.interaction("2024-01-10", Outcome::Positive);
    for day in ["2024-01-05", "2024-01-06", "2024-01-07"] {
        late.interaction(day, Outcome::NoAnswer);
    }
    assert_eq!(severity(&late, &r, "2024-01-10", Signal::LostContact), None);
    // Reaching the customer ends the streak.
    log.interaction("2024-01-06", Outcome::Negative);
    assert_eq!(severity(&log, &r, "2024-01-06", Signal::LostContact), None);
}

// ---------------------------------------------------------------- level

#[test]
fn the_level_is_the_highest_severity_and_three_highs_escalate_to_critical() {
    let r = Rules::defaults();
    let mut log = Log::company("2024-01-01");
    assert_eq!(log.assess(&r, "2024-01-01").risk.level, RiskLevel::Low);
    assert!(log.assess(&r, "2024-01-01").risk.reasons.is_empty());
    log.complaint("2024-01-02");
    let a = log.assess(&r, "2024-01-02");
    assert_eq!((a.risk.level, a.risk.reasons.len()), (RiskLevel::Low, 1));
    log.legal("2024-01-03", LegalStatus::Normal, LegalStatus::Litigation);
    assert_eq!(log.assess(&r, "2024-01-03").risk.level, RiskLevel::High);
    log.credit("2024-01-04", Some(CreditRating::A), Some(CreditRating::C));
    assert_eq!(log.assess(&r, "2024-01-04").risk.level, RiskLevel::High);
    log.invoice(id(1), "2024-01-04", "10", "CNY", "2024-01-05");
    // 91 days later: overdue high, litigation high, and the downgrade (still within 180 days) high.
    let on = plus("2024-01-05", 91);
    let a = log.assess(&r, &on);
    assert_eq!(a.risk.level, RiskLevel::Critical);
    let order: Vec<_> = a
        .risk
        .reasons
        .iter()
        .map(|x| (x.severity, x.signal))
        .collect();
    assert_eq!(
        order,
        vec![
            (RiskLevel::High, Signal::OverdueReceivables),
            (RiskLevel::High, Signal::CreditDowngrade),
            (RiskLevel::High, Signal::LegalStatus),
            (RiskLevel::Medium, Signal::LostContact),
            (RiskLevel::Low, Signal::Complaints),
        ]
    );
    let never = rules("[risk]\nescalate_high_count = 0");
    assert_eq!(log.assess(&never, &on).risk.level, RiskLevel::High);
}

#[test]
fn a_disabled_signal_is_never_reported() {
    let mut log = Log::company("2024-01-01");
    log.legal("2024-01-03", LegalStatus::Normal, LegalStatus::Bankruptcy);
    let off = rules("[risk.legal_status]\nenabled = false");
    assert_eq!(
        severity(&log, &off, "2024-01-03", Signal::LegalStatus),
        None
    );
    assert_eq!(log.assess(&off, "2024-01-03").risk.level, RiskLevel::Low);
}
