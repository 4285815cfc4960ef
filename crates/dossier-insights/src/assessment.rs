//! `assess`: the tier, risk and follow-ups of one customer on one date,
//! computed from its [`Facts`] under the [`Rules`] in force.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use dossier_domain::{CustomerKind, Importance, LegalStatus};
use serde::{Deserialize, Serialize};

use crate::amount::Amount;
use crate::facts::{Facts, OpenReceivable};
use crate::rules::Rules;
use crate::vocab::names;

names! {
    /// ABC value tier by trailing order amount.
    ValueTier { A => "A", B => "B", C => "C" }
}

names! {
    /// Who decided the importance.
    Source { Rule => "rule", Manual => "manual" }
}

names! {
    Lifecycle {
        /// No order ever (潜在).
        Prospect => "prospect",
        /// First order recently (新).
        New => "new",
        /// Ordering (老).
        Existing => "existing",
        Dormant => "dormant",
        Lost => "lost",
    }
}

names! {
    /// Ordered: `Low < Medium < High < Critical`.
    RiskLevel { Low => "low", Medium => "medium", High => "high", Critical => "critical" }
}

names! {
    Signal {
        OverdueReceivables => "overdue_receivables",
        PurchaseDecline => "purchase_decline",
        Complaints => "complaints",
        CreditDowngrade => "credit_downgrade",
        LegalStatus => "legal_status",
        LostContact => "lost_contact",
    }
}

names! {
    FollowUpKind {
        NoContact => "no_contact",
        ReviewDue => "review_due",
        Birthday => "birthday",
        ComplaintOpen => "complaint_open",
        PaymentOverdue => "payment_overdue",
    }
}

impl FollowUpKind {
    /// The urgency of a follow-up of this kind before the importance bonus.
    pub fn base_urgency(self) -> i32 {
        match self {
            FollowUpKind::PaymentOverdue => 50,
            FollowUpKind::ComplaintOpen => 40,
            FollowUpKind::NoContact => 30,
            FollowUpKind::ReviewDue => 20,
            FollowUpKind::Birthday => 10,
        }
    }
}

/// Added to every follow-up's urgency of an important or special customer
/// ("抓两头": the biggest and the riskiest get attention first).
pub const IMPORTANCE_URGENCY_BONUS: i32 = 5;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub tier: Tier,
    pub risk: Risk,
    pub follow_ups: Vec<FollowUp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub value_tier: ValueTier,
    #[serde(with = "crate::vocab::one")]
    pub importance: Importance,
    pub importance_source: Source,
    pub lifecycle: Lifecycle,
    /// What the decisions were made from (keys in docs/rules.md).
    pub inputs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    pub level: RiskLevel,
    /// Active signals by severity (highest first), then signal order.
    pub reasons: Vec<Reason>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub signal: Signal,
    pub severity: RiskLevel,
    pub detail: String,
    /// Seqs of the events that show it, ascending.
    pub evidence: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    pub kind: FollowUpKind,
    pub due_on: NaiveDate,
    /// Higher is more urgent.
    pub urgency: i32,
    pub detail: String,
    /// Seqs of the events that show it, ascending.
    pub evidence: Vec<i64>,
}

/// The business date of an instant: its calendar date at the rules' `utc_offset`.
pub fn business_date(rules: &Rules, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&rules.utc_offset).date_naive()
}

/// Assesses a customer on `on`. Pure: the same facts, rules and date always
/// give the same assessment. `on` should not precede `facts.as_of`.
pub fn assess(facts: &Facts, rules: &Rules, on: NaiveDate) -> Assessment {
    let trailing = window_sum(facts, rules, on, 0, rules.tier.window_days);
    let value_tier = if trailing.base >= rules.tier.a_min {
        ValueTier::A
    } else if trailing.base >= rules.tier.b_min {
        ValueTier::B
    } else {
        ValueTier::C
    };
    let mut inputs = BTreeMap::new();
    let base = &rules.base_currency;
    inputs.insert("rules_version".into(), rules.version.clone());
    inputs.insert("window_days".into(), rules.tier.window_days.to_string());
    inputs.insert(
        "trailing_amount".into(),
        format!("{} {base}", trailing.base),
    );
    inputs.insert("trailing_orders".into(), trailing.count.to_string());
    if !trailing.ignored.is_empty() {
        let ignored: Vec<String> = trailing
            .ignored
            .iter()
            .map(|(c, a)| format!("{a} {c}"))
            .collect();
        inputs.insert("ignored_amounts".into(), ignored.join(", "));
    }
    if let Some(f) = facts.orders.first {
        inputs.insert("first_order_on".into(), f.on.to_string());
    }
    if let Some(l) = facts.orders.last {
        inputs.insert("last_order_on".into(), l.on.to_string());
    }

    let (rule_importance, why) = importance_by_rules(facts, rules, value_tier, trailing.base);
    inputs.insert("importance_rule".into(), why);
    let (importance, importance_source) = match facts.importance_override {
        Some(i) => (i, Source::Manual),
        None => (rule_importance, Source::Rule),
    };
    let lifecycle = lifecycle(facts, rules, on);

    let mut reasons: Vec<Reason> = [
        overdue_signal(facts, rules, on),
        decline_signal(facts, rules, on),
        complaint_signal(facts, rules, on),
        credit_signal(facts, rules, on),
        legal_signal(facts, rules),
        lost_contact_signal(facts, rules, on),
    ]
    .into_iter()
    .flatten()
    .collect();
    reasons.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.signal.cmp(&b.signal)));
    let mut level = reasons.first().map_or(RiskLevel::Low, |r| r.severity);
    let highs = reasons
        .iter()
        .filter(|r| r.severity >= RiskLevel::High)
        .count();
    let escalate = rules.risk.escalate_high_count as usize;
    if escalate > 0 && highs >= escalate {
        level = RiskLevel::Critical;
    }

    let mut follow_ups = if facts.archived {
        Vec::new()
    } else {
        follow_ups(facts, rules, on)
    };
    if matches!(importance, Importance::Important | Importance::Special) {
        for f in &mut follow_ups {
            f.urgency += IMPORTANCE_URGENCY_BONUS;
        }
    }
    follow_ups.sort_by(|a, b| {
        b.urgency
            .cmp(&a.urgency)
            .then(a.due_on.cmp(&b.due_on))
            .then(a.kind.cmp(&b.kind))
            .then(a.evidence.cmp(&b.evidence))
    });

    Assessment {
        tier: Tier {
            value_tier,
            importance,
            importance_source,
            lifecycle,
            inputs,
        },
        risk: Risk { level, reasons },
        follow_ups,
    }
}

/// Order amounts of a window, in the base currency.
struct WindowSum {
    base: Amount,
    count: u64,
    /// Amounts in currencies without a rate, by currency.
    ignored: BTreeMap<String, Amount>,
    last_seq: Option<i64>,
}

/// Orders dated in `(on - skip - days, on - skip]`: the `days` days ending
/// `skip` days before `on`. Sums per currency first, then converts each once.
fn window_sum(facts: &Facts, rules: &Rules, on: NaiveDate, skip: u32, days: u32) -> WindowSum {
    let end = minus_days(on, skip);
    let start = minus_days(end, days.saturating_sub(1));
    let mut per_currency: BTreeMap<&str, Amount> = BTreeMap::new();
    let mut count = 0u64;
    let mut last_seq = None;
    for (_, day) in facts.orders.days.range(start..=end) {
        for (currency, d) in day {
            let sum = per_currency.entry(currency).or_default();
            *sum = sum.saturating_add(d.amount);
            count += u64::from(d.count);
            last_seq = last_seq.max(Some(d.last_seq));
        }
    }
    let mut base = Amount::ZERO;
    let mut ignored = BTreeMap::new();
    for (currency, amount) in per_currency {
        match rules.to_base(currency, amount) {
            Some(b) => base = base.saturating_add(b),
            None => {
                ignored.insert(currency.to_owned(), amount);
            }
        }
    }
    WindowSum {
        base,
        count,
        ignored,
        last_seq,
    }
}

fn minus_days(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_sub_days(Days::new(u64::from(n)))
        .unwrap_or(NaiveDate::MIN)
}

fn plus_days(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_add_days(Days::new(u64::from(n)))
        .unwrap_or(NaiveDate::MAX)
}

fn days_between(from: NaiveDate, to: NaiveDate) -> i64 {
    (to - from).num_days()
}

/// In order: important conditions, then special ones, else general. A big
/// customer that is also risky stays important (its risk shows in the risk
/// level); a manual override decides otherwise.
fn importance_by_rules(
    facts: &Facts,
    rules: &Rules,
    tier: ValueTier,
    trailing: Amount,
) -> (Importance, String) {
    let r = &rules.importance;
    if r.important_tiers.contains(&tier) {
        return (Importance::Important, format!("value tier {tier}"));
    }
    if let Some(min) = r.important_min_amount {
        if trailing >= min {
            return (
                Importance::Important,
                format!(
                    "trailing amount {trailing} {} is at least {min}",
                    rules.base_currency
                ),
            );
        }
    }
    if let (Some(limit), Some(rating)) = (r.special_rating_at_or_below, facts.credit.rating) {
        if rating >= limit {
            return (
                Importance::Special,
                format!("credit rating {rating} is at or below {limit}"),
            );
        }
    }
    if let Some(l) = &facts.legal {
        if r.special_legal_statuses.contains(&l.status) {
            return (Importance::Special, format!("legal status {}", l.status));
        }
    }
    if let Some(tag) = r.special_tags.iter().find(|t| facts.tags.contains(*t)) {
        return (Importance::Special, format!("tag {tag}"));
    }
    (Importance::General, "none".into())
}

fn lifecycle(facts: &Facts, rules: &Rules, on: NaiveDate) -> Lifecycle {
    let l = &rules.lifecycle;
    if facts
        .legal
        .as_ref()
        .is_some_and(|x| l.lost_legal_statuses.contains(&x.status))
    {
        return Lifecycle::Lost;
    }
    let (Some(first), Some(last)) = (facts.orders.first, facts.orders.last) else {
        return Lifecycle::Prospect;
    };
    let since_last = days_between(last.on, on);
    if since_last >= i64::from(l.lost_days) {
        Lifecycle::Lost
    } else if since_last >= i64::from(l.dormant_days) {
        Lifecycle::Dormant
    } else if days_between(first.on, on) < i64::from(l.new_days) {
        Lifecycle::New
    } else {
        Lifecycle::Existing
    }
}

/// Open receivables whose due date has passed (`due_on < on`).
fn overdue(facts: &Facts, on: NaiveDate) -> Vec<&OpenReceivable> {
    facts.receivables.iter().filter(|r| r.due_on < on).collect()
}

/// "1200 CNY, 30 USD": outstanding per currency.
fn outstanding_text(receivables: &[&OpenReceivable]) -> String {
    let mut per: BTreeMap<&str, Amount> = BTreeMap::new();
    for r in receivables {
        let s = per.entry(&r.currency).or_default();
        *s = s.saturating_add(r.outstanding());
    }
    per.iter()
        .map(|(c, a)| format!("{a} {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn seqs(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v.dedup();
    v
}

fn overdue_signal(facts: &Facts, rules: &Rules, on: NaiveDate) -> Option<Reason> {
    let r = rules.risk.overdue.as_ref()?;
    let due = overdue(facts, on);
    let oldest = due.iter().map(|x| x.due_on).min()?;
    let total = due.iter().fold(Amount::ZERO, |acc, x| {
        acc.saturating_add(
            rules
                .to_base(&x.currency, x.outstanding())
                .unwrap_or_default(),
        )
    });
    if total < r.min_amount {
        return None;
    }
    let days = days_between(oldest, on);
    let severity = if days > i64::from(r.high_after_days) {
        RiskLevel::High
    } else if days > i64::from(r.medium_after_days) {
        RiskLevel::Medium
    } else {
        RiskLevel::Low
    };
    Some(Reason {
        signal: Signal::OverdueReceivables,
        severity,
        detail: format!(
            "{} overdue receivable(s), {} outstanding, oldest {days} day(s) past due",
            due.len(),
            outstanding_text(&due)
        ),
        evidence: seqs(due.iter().map(|x| x.seq).collect()),
    })
}

fn decline_signal(facts: &Facts, rules: &Rules, on: NaiveDate) -> Option<Reason> {
    let r = rules.risk.decline.as_ref()?;
    let recent = window_sum(facts, rules, on, 0, r.window_days);
    let previous = window_sum(facts, rules, on, r.window_days, r.window_days);
    if previous.base < r.min_previous_amount || !previous.base.is_positive() {
        return None;
    }
    let (prev, now) = (
        previous.base.ten_thousandths(),
        recent.base.ten_thousandths(),
    );
    let drop = prev.saturating_sub(now);
    if drop.saturating_mul(100) < prev.saturating_mul(i128::from(r.min_decline_percent)) {
        return None;
    }
    let percent = drop.saturating_mul(100) / prev;
    let base = &rules.base_currency;
    Some(Reason {
        signal: Signal::PurchaseDecline,
        severity: r.severity,
        detail: format!(
            "orders fell {percent}%: {} {base} in the last {} days against {} {base} in the {} days before",
            recent.base, r.window_days, previous.base, r.window_days
        ),
        evidence: seqs(previous.last_seq.into_iter().chain(recent.last_seq).collect()),
    })
}

fn complaint_signal(facts: &Facts, rules: &Rules, on: NaiveDate) -> Option<Reason> {
    let r = rules.risk.complaints.as_ref()?;
    let start = minus_days(on, r.window_days - 1);
    let recent: Vec<i64> = facts
        .complaints
        .opened
        .iter()
        .filter(|d| d.on >= start && d.on <= on)
        .map(|d| d.seq)
        .collect();
    let open: Vec<i64> = facts.complaints.open.iter().map(|c| c.seq).collect();
    let many = recent.len() >= r.min_count as usize;
    let mut severity = None;
    let mut parts = Vec::new();
    let mut evidence = Vec::new();
    if many {
        severity = Some(r.severity);
        parts.push(format!(
            "{} complaint(s) in the last {} days",
            recent.len(),
            r.window_days
        ));
        evidence.extend(&recent);
    }
    if !open.is_empty() {
        severity = severity.max(Some(r.open_severity));
        parts.push(format!("{} still open", open.len()));
        evidence.extend(&open);
    }
    Some(Reason {
        signal: Signal::Complaints,
        severity: severity?,
        detail: parts.join("; "),
        evidence: seqs(evidence),
    })
}

/// A downgrade counts while the current rating (limit) is worse than the best
/// rating (highest limit in the same currency) held within the window, the
/// value before the window's first change included: a restored rating clears it.
fn credit_signal(facts: &Facts, rules: &Rules, on: NaiveDate) -> Option<Reason> {
    let r = rules.risk.credit.as_ref()?;
    let start = minus_days(on, r.window_days - 1);
    let changes: Vec<_> = facts
        .credit
        .changes
        .iter()
        .filter(|c| c.on >= start && c.on <= on)
        .collect();
    let first = changes.first()?;
    let mut parts = Vec::new();
    let mut severity = r.severity;
    let mut evidence = Vec::new();

    let best_rating = std::iter::once(first.rating_before)
        .chain(changes.iter().map(|c| c.rating_after))
        .flatten()
        .min();
    if let (Some(best), Some(now)) = (best_rating, facts.credit.rating) {
        if best.is_downgrade_to(now) {
            parts.push(format!("credit rating fell from {best} to {now}"));
            if r.high_at_or_below.is_some_and(|h| now >= h) {
                severity = severity.max(RiskLevel::High);
            }
            evidence.extend(
                changes
                    .iter()
                    .filter(|c| match (c.rating_before, c.rating_after) {
                        (Some(b), Some(a)) => b.is_downgrade_to(a),
                        _ => false,
                    })
                    .map(|c| c.seq),
            );
        }
    }

    if let Some(now) = &facts.credit.limit {
        let best_limit = std::iter::once(&first.limit_before)
            .chain(changes.iter().map(|c| &c.limit_after))
            .flatten()
            .filter(|l| l.currency == now.currency)
            .map(|l| l.amount)
            .max();
        if let Some(best) = best_limit.filter(|b| now.amount < *b) {
            parts.push(format!(
                "credit limit cut from {best} {c} to {} {c}",
                now.amount,
                c = now.currency
            ));
            evidence.extend(
                changes
                    .iter()
                    .filter(|c| match (&c.limit_before, &c.limit_after) {
                        (Some(b), Some(a)) => b.currency == a.currency && a.amount < b.amount,
                        _ => false,
                    })
                    .map(|c| c.seq),
            );
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(Reason {
        signal: Signal::CreditDowngrade,
        severity,
        detail: format!("{} within {} days", parts.join("; "), r.window_days),
        evidence: seqs(evidence),
    })
}

fn legal_signal(facts: &Facts, rules: &Rules) -> Option<Reason> {
    let r = rules.risk.legal.as_ref()?;
    let l = facts.legal.as_ref()?;
    let severity = match l.status {
        LegalStatus::Normal => return None,
        LegalStatus::Litigation => r.litigation,
        LegalStatus::Restructuring => r.restructuring,
        LegalStatus::Bankruptcy => r.bankruptcy,
        LegalStatus::Dissolved => r.dissolved,
    };
    Some(Reason {
        signal: Signal::LegalStatus,
        severity,
        detail: format!("legal status {} since {}", l.status, l.since),
        evidence: vec![l.seq],
    })
}

/// The last successful contact, or registration when there was none.
fn contact_base(facts: &Facts) -> Option<(crate::facts::Dated, bool)> {
    match (facts.contact.last_success, facts.registered) {
        (Some(s), _) => Some((s, true)),
        (None, Some(r)) => Some((r, false)),
        (None, None) => None,
    }
}

fn lost_contact_signal(facts: &Facts, rules: &Rules, on: NaiveDate) -> Option<Reason> {
    let r = rules.risk.lost_contact.as_ref()?;
    let (base, contacted) = contact_base(facts)?;
    let silent = days_between(base.on, on);
    let streak: Vec<i64> = facts
        .contact
        .no_answers
        .iter()
        .filter(|d| d.on <= on)
        .map(|d| d.seq)
        .collect();
    let mut parts = Vec::new();
    let mut evidence = Vec::new();
    if silent >= i64::from(r.days) {
        parts.push(if contacted {
            format!("no successful contact for {silent} days")
        } else {
            format!("never reached since registration {silent} days ago")
        });
        evidence.push(base.seq);
    }
    if streak.len() >= r.no_answer_streak as usize {
        parts.push(format!("{} unanswered attempts in a row", streak.len()));
        evidence.extend(&streak);
    }
    if parts.is_empty() {
        return None;
    }
    Some(Reason {
        signal: Signal::LostContact,
        severity: r.severity,
        detail: parts.join("; "),
        evidence: seqs(evidence),
    })
}

fn follow_ups(facts: &Facts, rules: &Rules, on: NaiveDate) -> Vec<FollowUp> {
    let r = &rules.follow_ups;
    let mut out = Vec::new();
    let mut push = |kind: FollowUpKind, due_on: NaiveDate, detail: String, evidence: Vec<i64>| {
        out.push(FollowUp {
            kind,
            due_on,
            urgency: kind.base_urgency(),
            detail,
            evidence: seqs(evidence),
        })
    };

    if let Some((base, contacted)) = contact_base(facts) {
        let due = plus_days(base.on, r.no_contact_days);
        if on >= due {
            let what = if contacted {
                format!("last reached on {}", base.on)
            } else {
                format!("not reached since registration on {}", base.on)
            };
            push(
                FollowUpKind::NoContact,
                due,
                format!("No contact for {} days ({what})", days_between(base.on, on)),
                vec![base.seq],
            );
        }
    }

    if let Some(base) = facts.last_review.or(facts.registered) {
        let due = plus_days(base.on, r.review_every_days);
        if on >= due {
            let what = if facts.last_review.is_some() {
                format!("last review on {}", base.on)
            } else {
                format!("never reviewed; registered on {}", base.on)
            };
            push(
                FollowUpKind::ReviewDue,
                due,
                format!(
                    "Full review due every {} days ({what})",
                    r.review_every_days
                ),
                vec![base.seq],
            );
        }
    }

    if let (Some(CustomerKind::Person), Some(b)) = (facts.kind, facts.birthday) {
        if let Some(next) = next_birthday(b.on, on) {
            let ahead = days_between(on, next);
            if ahead <= i64::from(r.birthday_days_ahead) {
                let when = if ahead == 0 {
                    "today".to_owned()
                } else {
                    format!("in {ahead} day(s)")
                };
                push(
                    FollowUpKind::Birthday,
                    next,
                    format!("Birthday {when}, on {next}"),
                    vec![b.seq],
                );
            }
        }
    }

    for c in &facts.complaints.open {
        let due = plus_days(c.opened_on, r.complaint_open_days);
        if on >= due {
            push(
                FollowUpKind::ComplaintOpen,
                due,
                format!(
                    "Complaint open for {} days (since {})",
                    days_between(c.opened_on, on),
                    c.opened_on
                ),
                vec![c.seq],
            );
        }
    }

    let due = overdue(facts, on);
    if let Some(oldest) = due.iter().map(|x| x.due_on).min() {
        push(
            FollowUpKind::PaymentOverdue,
            plus_days(oldest, 1),
            format!(
                "Collect {} on {} overdue invoice(s), oldest due {oldest}",
                outstanding_text(&due),
                due.len()
            ),
            due.iter().map(|x| x.seq).collect(),
        );
    }
    out
}

/// The first birthday on or after `on`. A 29 February birthday falls on
/// 28 February in common years.
pub fn next_birthday(born: NaiveDate, on: NaiveDate) -> Option<NaiveDate> {
    let in_year = |y: i32| {
        NaiveDate::from_ymd_opt(y, born.month(), born.day())
            .or_else(|| NaiveDate::from_ymd_opt(y, 2, 28))
    };
    let this = in_year(on.year())?;
    if this >= on {
        Some(this)
    } else {
        in_year(on.year() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_round_trip() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            name: fn(T) -> &'static str,
            parse: fn(&str) -> Option<T>,
            expected: &[&str],
        ) {
            assert_eq!(all.iter().map(|x| name(*x)).collect::<Vec<_>>(), expected);
            for x in all {
                assert_eq!(parse(name(*x)), Some(*x));
            }
        }
        check(
            ValueTier::ALL,
            ValueTier::as_str,
            ValueTier::parse,
            &["A", "B", "C"],
        );
        check(
            Source::ALL,
            Source::as_str,
            Source::parse,
            &["rule", "manual"],
        );
        check(
            Lifecycle::ALL,
            Lifecycle::as_str,
            Lifecycle::parse,
            &["prospect", "new", "existing", "dormant", "lost"],
        );
        check(
            RiskLevel::ALL,
            RiskLevel::as_str,
            RiskLevel::parse,
            &["low", "medium", "high", "critical"],
        );
        check(
            Signal::ALL,
            Signal::as_str,
            Signal::parse,
            &[
                "overdue_receivables",
                "purchase_decline",
                "complaints",
                "credit_downgrade",
                "legal_status",
                "lost_contact",
            ],
        );
        check(
            FollowUpKind::ALL,
            FollowUpKind::as_str,
            FollowUpKind::parse,
            &[
                "no_contact",
                "review_due",
                "birthday",
                "complaint_open",
                "payment_overdue",
            ],
        );
        assert!(RiskLevel::Low < RiskLevel::Medium && RiskLevel::High < RiskLevel::Critical);
        assert_eq!(ValueTier::parse("a"), None);
        assert_eq!(
            serde_json::to_string(&Signal::LostContact).unwrap(),
            "\"lost_contact\""
        );
        assert!(serde_json::from_str::<Signal>("\"weather\"").is_err());
    }
}
