//! `Facts`: what the rules need to know about one customer, folded from its
//! events and small enough to store beside every customer as `jsonb`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use dossier_domain::{
    CreditRating, CustomerKind, Event, Field, Importance, LegalStatus, Money, Outcome,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::amount::Amount;
use crate::rules::{MAX_NO_ANSWER_STREAK, MAX_WINDOW_DAYS};

/// A date and the seq of the event that showed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dated {
    pub on: NaiveDate,
    pub seq: i64,
}

/// An amount in its own currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sum {
    pub currency: String,
    pub amount: Amount,
}

impl Sum {
    fn of(m: &Money) -> Sum {
        Sum {
            currency: m.currency().to_owned(),
            amount: Amount::from_money(m),
        }
    }
}

/// The orders of one day in one currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDay {
    pub amount: Amount,
    pub count: u32,
    /// The highest seq among them (evidence).
    pub last_seq: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Orders {
    /// Earliest `ordered_on` ever (never pruned).
    pub first: Option<Dated>,
    /// Latest `ordered_on` ever (never pruned).
    pub last: Option<Dated>,
    /// Orders ever placed.
    pub count: u64,
    /// Per-day sums by `ordered_on`, then currency, for the last
    /// [`MAX_WINDOW_DAYS`] days before [`Facts::as_of`].
    pub days: BTreeMap<NaiveDate, BTreeMap<String, OrderDay>>,
}

/// An invoice not yet fully paid. Settled invoices are dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenReceivable {
    pub invoice_id: Uuid,
    pub seq: i64,
    pub currency: String,
    pub amount: Amount,
    pub paid: Amount,
    pub due_on: NaiveDate,
}

impl OpenReceivable {
    pub fn outstanding(&self) -> Amount {
        self.amount.saturating_sub(self.paid)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditChange {
    /// The business date it was recorded on (the event carries no date of its own).
    pub on: NaiveDate,
    pub seq: i64,
    #[serde(with = "crate::vocab::opt")]
    pub rating_before: Option<CreditRating>,
    #[serde(with = "crate::vocab::opt")]
    pub rating_after: Option<CreditRating>,
    pub limit_before: Option<Sum>,
    pub limit_after: Option<Sum>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Credit {
    #[serde(with = "crate::vocab::opt")]
    pub rating: Option<CreditRating>,
    pub limit: Option<Sum>,
    /// Changes recorded within the kept history, in log order.
    pub changes: Vec<CreditChange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Legal {
    #[serde(with = "crate::vocab::one")]
    pub status: LegalStatus,
    pub since: NaiveDate,
    pub seq: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Contact {
    /// The latest interaction (by `occurred_on`) that reached the customer:
    /// any outcome but `no_answer`.
    pub last_success: Option<Dated>,
    /// Unanswered attempts dated after `last_success`, oldest first; only the
    /// latest [`MAX_NO_ANSWER_STREAK`] are kept.
    pub no_answers: Vec<Dated>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenComplaint {
    pub complaint_id: Uuid,
    pub opened_on: NaiveDate,
    pub seq: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Complaints {
    /// Complaints not yet resolved, in log order.
    pub open: Vec<OpenComplaint>,
    /// Every complaint opened within the kept history, by (`opened_on`, seq).
    pub opened: Vec<Dated>,
}

/// The per-customer accumulation the rules read. Built by [`Facts::apply`],
/// one event at a time in seq order; stored as JSON and resumed later
/// (`serde_json` round trips it exactly).
///
/// Bounded: dated history (order days, complaints opened, credit changes) is
/// kept only for [`MAX_WINDOW_DAYS`] before `as_of`, the latest business date
/// an event was recorded on, and pruned in `apply`. Since evaluations happen on
/// or after `as_of`, no window a valid rules file can ask for reaches further.
/// What is left grows only with things still open (unpaid invoices, unresolved
/// complaints).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    /// Seq of the last applied event; an event at or below it is ignored, so
    /// re-applying a delivered event changes nothing.
    pub last_seq: Option<i64>,
    /// The latest business date an event was recorded on.
    pub as_of: Option<NaiveDate>,
    #[serde(with = "crate::vocab::opt")]
    pub kind: Option<CustomerKind>,
    /// The business date of registration and its seq.
    pub registered: Option<Dated>,
    pub owner: Option<String>,
    /// Detail fields that hold a value.
    #[serde(with = "crate::vocab::set")]
    pub fields: BTreeSet<Field>,
    /// The date of birth (from the `birthday` detail) and the seq that set it.
    pub birthday: Option<Dated>,
    pub tags: BTreeSet<String>,
    /// The manual importance; None: the rules decide.
    #[serde(with = "crate::vocab::opt")]
    pub importance_override: Option<Importance>,
    /// Seq of the last `ImportanceSet`.
    pub importance_set_seq: Option<i64>,
    pub orders: Orders,
    /// By (`due_on`, `invoice_id`): the order payments settle them in.
    pub receivables: Vec<OpenReceivable>,
    /// Money received beyond what was owed, by currency (positive only): it
    /// settles the next invoices in that currency as they are issued.
    pub prepaid: BTreeMap<String, Amount>,
    pub credit: Credit,
    pub legal: Option<Legal>,
    pub contact: Contact,
    pub complaints: Complaints,
    /// The latest `reviewed_on` and its seq.
    pub last_review: Option<Dated>,
    pub archived: bool,
    pub merged_into: Option<Uuid>,
}

impl Facts {
    /// Folds one event in. `recorded_on` is the business date of its
    /// `recorded_at` ([`crate::business_date`]); windows use the payload dates.
    pub fn apply(&mut self, seq: i64, recorded_on: NaiveDate, event: &Event) {
        if self.last_seq.is_some_and(|last| seq <= last) {
            return;
        }
        self.last_seq = Some(seq);
        self.as_of = Some(self.as_of.map_or(recorded_on, |d| d.max(recorded_on)));
        let at = |on: NaiveDate| Dated { on, seq };
        match event {
            Event::Registered {
                kind,
                details,
                owner,
                tags,
            } => {
                self.kind = Some(*kind);
                self.registered = Some(at(recorded_on));
                self.owner = owner.clone();
                self.tags = tags.iter().cloned().collect();
                self.fields = details.keys().copied().collect();
                self.birthday = details
                    .get(&Field::Birthday)
                    .and_then(|v| parse_date(v.as_str()))
                    .map(at);
            }
            Event::DetailsChanged { changes } => {
                for c in changes {
                    match &c.after {
                        Some(v) => {
                            self.fields.insert(c.field);
                            if c.field == Field::Birthday {
                                self.birthday = parse_date(v.as_str()).map(at);
                            }
                        }
                        None => {
                            self.fields.remove(&c.field);
                            if c.field == Field::Birthday {
                                self.birthday = None;
                            }
                        }
                    }
                }
            }
            Event::OwnerAssigned { after, .. } => self.owner = Some(after.clone()),
            Event::TagsChanged { added, removed } => {
                self.tags.extend(added.iter().cloned());
                for t in removed {
                    self.tags.remove(t);
                }
            }
            Event::ImportanceSet { after, .. } => {
                self.importance_override = *after;
                self.importance_set_seq = Some(seq);
            }
            Event::OrderPlaced {
                amount, ordered_on, ..
            } => self.add_order(seq, *ordered_on, amount),
            Event::InvoiceIssued {
                invoice_id,
                amount,
                due_on,
                ..
            } => {
                self.receivables.retain(|r| r.invoice_id != *invoice_id);
                let currency = amount.currency().to_owned();
                let amount = Amount::from_money(amount);
                let paid = match self.prepaid.remove(&currency) {
                    Some(balance) => {
                        let take = balance.min(amount);
                        let rest = balance.saturating_sub(take);
                        if rest.is_positive() {
                            self.prepaid.insert(currency.clone(), rest);
                        }
                        take
                    }
                    None => Amount::ZERO,
                };
                self.receivables.push(OpenReceivable {
                    invoice_id: *invoice_id,
                    seq,
                    currency,
                    amount,
                    paid,
                    due_on: *due_on,
                });
                self.settle();
            }
            Event::PaymentReceived {
                invoice_id, amount, ..
            } => self.pay(*invoice_id, amount),
            Event::CreditChanged {
                rating_before,
                rating_after,
                limit_before,
                limit_after,
            } => {
                self.credit.rating = *rating_after;
                self.credit.limit = limit_after.as_ref().map(Sum::of);
                self.credit.changes.push(CreditChange {
                    on: recorded_on,
                    seq,
                    rating_before: *rating_before,
                    rating_after: *rating_after,
                    limit_before: limit_before.as_ref().map(Sum::of),
                    limit_after: limit_after.as_ref().map(Sum::of),
                });
            }
            Event::LegalStatusChanged { after, since, .. } => {
                self.legal = Some(Legal {
                    status: *after,
                    since: *since,
                    seq,
                });
            }
            Event::InteractionLogged {
                outcome,
                occurred_on,
                ..
            } => self.add_interaction(at(*occurred_on), *outcome),
            Event::ComplaintOpened {
                complaint_id,
                opened_on,
                ..
            } => {
                self.complaints.open.push(OpenComplaint {
                    complaint_id: *complaint_id,
                    opened_on: *opened_on,
                    seq,
                });
                let d = at(*opened_on);
                let i = self.complaints.opened.partition_point(|x| *x <= d);
                self.complaints.opened.insert(i, d);
            }
            Event::ComplaintResolved { complaint_id, .. } => {
                self.complaints
                    .open
                    .retain(|c| c.complaint_id != *complaint_id);
            }
            Event::ReviewCompleted { reviewed_on, .. } => {
                if self.last_review.is_none_or(|r| *reviewed_on >= r.on) {
                    self.last_review = Some(at(*reviewed_on));
                }
            }
            Event::MergedInto { survivor } => self.merged_into = Some(*survivor),
            Event::Archived => self.archived = true,
            // Completeness reads the customer state itself; these change no rule input.
            Event::ContactAdded { .. }
            | Event::ContactRemoved { .. }
            | Event::AddressAdded { .. }
            | Event::AddressRemoved { .. }
            | Event::FeedbackRecorded { .. }
            | Event::ConsentRecorded { .. }
            | Event::DuplicateMerged { .. } => {}
        }
        self.prune();
    }

    fn add_order(&mut self, seq: i64, on: NaiveDate, amount: &Money) {
        let o = &mut self.orders;
        o.count += 1;
        let d = Dated { on, seq };
        if o.first.is_none_or(|f| on < f.on) {
            o.first = Some(d);
        }
        if o.last.is_none_or(|l| on >= l.on) {
            o.last = Some(d);
        }
        let day = o
            .days
            .entry(on)
            .or_default()
            .entry(amount.currency().to_owned())
            .or_default();
        day.amount = day.amount.saturating_add(Amount::from_money(amount));
        day.count = day.count.saturating_add(1);
        day.last_seq = day.last_seq.max(seq);
    }

    /// Mirrors the domain's `apply_payment`: to its invoice, or else to the
    /// open receivables in its currency by (due date, invoice id).
    fn pay(&mut self, invoice_id: Option<Uuid>, amount: &Money) {
        let currency = amount.currency();
        let mut left = Amount::from_money(amount);
        // Already in (due_on, invoice_id) order. A named invoice that is not
        // open is settled already (the domain accepts payments only to its
        // own invoices, in their currency): all of the payment is left over.
        for r in self
            .receivables
            .iter_mut()
            .filter(|r| r.currency == currency && invoice_id.is_none_or(|id| r.invoice_id == id))
        {
            if !left.is_positive() {
                break;
            }
            let take = left.min(r.outstanding());
            r.paid = r.paid.saturating_add(take);
            left = left.saturating_sub(take);
        }
        if left.is_positive() {
            let balance = self.prepaid.entry(currency.to_owned()).or_default();
            *balance = balance.saturating_add(left);
        }
        self.settle();
    }

    /// Drops settled receivables and keeps the rest in payment order.
    fn settle(&mut self) {
        self.receivables.retain(|r| r.outstanding().is_positive());
        self.receivables.sort_by_key(|r| (r.due_on, r.invoice_id));
    }

    fn add_interaction(&mut self, d: Dated, outcome: Outcome) {
        let c = &mut self.contact;
        if outcome == Outcome::NoAnswer {
            if c.last_success.is_some_and(|s| d.on <= s.on) {
                return;
            }
            let i = c.no_answers.partition_point(|x| *x <= d);
            c.no_answers.insert(i, d);
            let excess = c
                .no_answers
                .len()
                .saturating_sub(MAX_NO_ANSWER_STREAK as usize);
            c.no_answers.drain(..excess);
        } else if c.last_success.is_none_or(|s| d.on >= s.on) {
            c.last_success = Some(d);
            c.no_answers.retain(|x| x.on > d.on);
        }
    }

    /// Drops dated history older than any valid rule can look at.
    fn prune(&mut self) {
        let Some(cutoff) = self
            .as_of
            .and_then(|d| d.checked_sub_days(Days::new(u64::from(MAX_WINDOW_DAYS))))
        else {
            return;
        };
        self.orders.days = self.orders.days.split_off(&cutoff);
        self.complaints.opened.retain(|d| d.on >= cutoff);
        self.credit.changes.retain(|c| c.on >= cutoff);
    }
}

/// A `birthday` detail, written YYYY-MM-DD.
fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}
