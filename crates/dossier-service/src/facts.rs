//! Recording commercial facts (orders, invoices, payments, credit, legal
//! status, interactions, complaints, feedback, reviews, consent) and merging
//! duplicate files.

use chrono::{NaiveDate, Utc};
use dossier_domain::{
    Channel, Command, CreditRating, Event, Fact, LegalStatus, Money, Outcome, Text,
};
use dossier_store::{ExpectedVersion, Principal};
use serde::Deserialize;
use uuid::Uuid;

use crate::access::{authorize, Action};
use crate::error::{invalid, Result, ServiceError};
use crate::write::{check_reason, decide_all, outcome, unchanged, WriteMeta, WriteOutcome};
use crate::Service;

/// An amount as the caller writes it: `{"amount": "1234.50", "currency": "CNY"}`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyInput {
    /// A decimal string greater than zero, up to 15 digits before the point
    /// and 4 after, no leading zeros: `"1234.50"`.
    #[schema(
        pattern = r"^([1-9][0-9]{0,14}(\.[0-9]{1,4})?|0\.([1-9][0-9]{0,3}|0[1-9][0-9]{0,2}|00[1-9][0-9]?|000[1-9]))$",
        example = "680000"
    )]
    pub amount: String,
    /// ISO 4217 code.
    #[schema(pattern = "^[A-Z]{3}$", example = "CNY")]
    pub currency: String,
}

/// A credit limit as the document shows it: [`MoneyInput`] that may be zero.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct LimitDoc {
    /// A decimal string, zero or more, up to 15 digits before the point and
    /// 4 after, no leading zeros: `"3000000"`.
    #[schema(
        pattern = r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?$",
        example = "3000000"
    )]
    amount: String,
    /// ISO 4217 code.
    #[schema(pattern = "^[A-Z]{3}$", example = "CNY")]
    currency: String,
}

/// A fact as the caller gives it; dates are `YYYY-MM-DD` and default to today.
#[derive(Clone, Debug)]
pub enum FactInput {
    Order(OrderInput),
    Invoice(InvoiceInput),
    Payment(PaymentInput),
    Credit(CreditInput),
    Legal(LegalInput),
    Interaction(InteractionInput),
    Complaint(ComplaintInput),
    ComplaintResolution {
        complaint_id: Uuid,
        body: ResolutionInput,
    },
    Feedback(FeedbackInput),
    Review(ReviewInput),
    Consent(ConsentInput),
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    #[schema(min_length = 1, max_length = 200)]
    pub product: String,
    pub amount: MoneyInput,
    #[schema(format = Date)]
    pub ordered_on: Option<String>,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceInput {
    pub order_id: Option<Uuid>,
    pub amount: MoneyInput,
    #[schema(format = Date)]
    pub issued_on: Option<String>,
    #[schema(format = Date)]
    pub due_on: String,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    pub invoice_id: Option<Uuid>,
    pub amount: MoneyInput,
    #[schema(format = Date)]
    pub received_on: Option<String>,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditInput {
    /// AAA .. D, or null to clear.
    #[schema(pattern = "^(AAA|AA|A|BBB|BB|B|CCC|CC|C|D)$")]
    pub rating: Option<String>,
    /// Zero or more; null to clear.
    #[schema(value_type = Option<LimitDoc>)]
    pub limit: Option<MoneyInput>,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegalInput {
    #[schema(pattern = "^(normal|litigation|restructuring|bankruptcy|dissolved)$")]
    pub status: String,
    #[schema(format = Date)]
    pub since: Option<String>,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractionInput {
    #[schema(pattern = "^(visit|call|email|chat|other)$")]
    pub channel: String,
    #[schema(pattern = "^(positive|neutral|negative|no_answer)$")]
    pub outcome: String,
    #[schema(format = Date)]
    pub occurred_on: Option<String>,
    #[schema(min_length = 1, max_length = 2000)]
    pub summary: Option<String>,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintInput {
    #[schema(min_length = 1, max_length = 100)]
    pub category: String,
    #[schema(min_length = 1, max_length = 2000)]
    pub summary: String,
    #[schema(format = Date)]
    pub opened_on: Option<String>,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolutionInput {
    #[schema(min_length = 1, max_length = 2000)]
    pub resolution: String,
    #[schema(format = Date)]
    pub resolved_on: Option<String>,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackInput {
    #[schema(minimum = 1, maximum = 5)]
    pub satisfaction: i64,
    #[schema(min_length = 1, max_length = 2000)]
    pub comment: Option<String>,
    #[schema(format = Date)]
    pub received_on: Option<String>,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    #[schema(format = Date)]
    pub reviewed_on: Option<String>,
    #[schema(min_length = 1, max_length = 2000)]
    pub summary: Option<String>,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    #[schema(min_length = 1, max_length = 100)]
    pub purpose: String,
    pub granted: bool,
    #[schema(format = Date)]
    pub on: Option<String>,
}

fn money(at: &str, m: &MoneyInput) -> Result<Money> {
    Money::parse(&m.amount, &m.currency).map_err(|e| invalid(at, e.reason))
}

fn text(at: &str, raw: &str, max: usize) -> Result<Text> {
    Text::parse_max(raw, max).map_err(|e| invalid(at, e.reason))
}

fn opt_text(at: &str, raw: &Option<String>, max: usize) -> Result<Option<Text>> {
    raw.as_deref().map(|r| text(at, r, max)).transpose()
}

/// A date of a past fact: YYYY-MM-DD, not after today, not before 1900.
fn past_date(at: &str, raw: &Option<String>, today: NaiveDate) -> Result<NaiveDate> {
    let Some(raw) = raw else { return Ok(today) };
    let d = any_date(at, raw)?;
    if d > today {
        return Err(invalid(at, "must not be in the future"));
    }
    Ok(d)
}

fn any_date(at: &str, raw: &str) -> Result<NaiveDate> {
    let d = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| invalid(at, "must be a date written YYYY-MM-DD"))?;
    let floor = NaiveDate::from_ymd_opt(1900, 1, 1).expect("valid date");
    if d < floor {
        return Err(invalid(at, "must not be before 1900-01-01"));
    }
    Ok(d)
}

fn vocab<T>(at: &str, raw: &str, parse: fn(&str) -> Option<T>, names: String) -> Result<T> {
    parse(raw.trim()).ok_or_else(|| invalid(at, format!("must be one of {names}")))
}

impl FactInput {
    /// Validates the input into a domain fact; returns it with the id the
    /// new record gets (None for facts without one).
    fn parse(&self, today: NaiveDate) -> Result<(Fact, Option<Uuid>)> {
        let id = Uuid::now_v7();
        Ok(match self {
            FactInput::Order(o) => (
                Fact::Order {
                    order_id: id,
                    product: text("product", &o.product, 200)?,
                    amount: money("amount", &o.amount)?,
                    ordered_on: past_date("ordered_on", &o.ordered_on, today)?,
                },
                Some(id),
            ),
            FactInput::Invoice(i) => (
                Fact::Invoice {
                    invoice_id: id,
                    order_id: i.order_id,
                    amount: money("amount", &i.amount)?,
                    issued_on: past_date("issued_on", &i.issued_on, today)?,
                    due_on: any_date("due_on", &i.due_on)?,
                },
                Some(id),
            ),
            FactInput::Payment(p) => (
                Fact::Payment {
                    payment_id: id,
                    invoice_id: p.invoice_id,
                    amount: money("amount", &p.amount)?,
                    received_on: past_date("received_on", &p.received_on, today)?,
                },
                Some(id),
            ),
            FactInput::Credit(c) => (
                Fact::Credit {
                    rating: c
                        .rating
                        .as_deref()
                        .map(|r| vocab("rating", r, CreditRating::parse, CreditRating::names()))
                        .transpose()?,
                    limit: c.limit.as_ref().map(|m| money("limit", m)).transpose()?,
                },
                None,
            ),
            FactInput::Legal(l) => (
                Fact::Legal {
                    status: vocab(
                        "status",
                        &l.status,
                        LegalStatus::parse,
                        LegalStatus::names(),
                    )?,
                    since: past_date("since", &l.since, today)?,
                },
                None,
            ),
            FactInput::Interaction(i) => (
                Fact::Interaction {
                    interaction_id: id,
                    channel: vocab("channel", &i.channel, Channel::parse, Channel::names())?,
                    outcome: vocab("outcome", &i.outcome, Outcome::parse, Outcome::names())?,
                    occurred_on: past_date("occurred_on", &i.occurred_on, today)?,
                    summary: opt_text("summary", &i.summary, 2000)?,
                },
                Some(id),
            ),
            FactInput::Complaint(c) => (
                Fact::ComplaintOpened {
                    complaint_id: id,
                    category: text("category", &c.category, 100)?,
                    summary: text("summary", &c.summary, 2000)?,
                    opened_on: past_date("opened_on", &c.opened_on, today)?,
                },
                Some(id),
            ),
            FactInput::ComplaintResolution { complaint_id, body } => (
                Fact::ComplaintResolved {
                    complaint_id: *complaint_id,
                    resolution: text("resolution", &body.resolution, 2000)?,
                    resolved_on: past_date("resolved_on", &body.resolved_on, today)?,
                },
                Some(*complaint_id),
            ),
            FactInput::Feedback(f) => (
                Fact::Feedback {
                    feedback_id: id,
                    satisfaction: u8::try_from(f.satisfaction)
                        .ok()
                        .filter(|s| (1..=5).contains(s))
                        .ok_or_else(|| invalid("satisfaction", "must be 1 to 5"))?,
                    comment: opt_text("comment", &f.comment, 2000)?,
                    received_on: past_date("received_on", &f.received_on, today)?,
                },
                Some(id),
            ),
            FactInput::Review(r) => (
                Fact::Review {
                    reviewed_on: past_date("reviewed_on", &r.reviewed_on, today)?,
                    summary: opt_text("summary", &r.summary, 2000)?,
                },
                None,
            ),
            FactInput::Consent(c) => (
                Fact::Consent {
                    purpose: text("purpose", &c.purpose, 100)?,
                    granted: c.granted,
                    on: past_date("on", &c.on, today)?,
                },
                None,
            ),
        })
    }
}

/// The result of recording a fact: the write, and the new record's id.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FactOutcome {
    #[serde(flatten)]
    pub write: WriteOutcome,
    pub id: Option<Uuid>,
}

/// How often a fact is re-decided when a concurrent write moved the stream.
const FACT_ATTEMPTS: usize = 5;

impl Service {
    /// Records one fact about a customer. Facts need no If-Match: they are
    /// decided against the latest state and retried if another write won.
    pub async fn record_fact(
        &self,
        caller: &Principal,
        id: Uuid,
        input: FactInput,
        meta: WriteMeta,
    ) -> Result<FactOutcome> {
        authorize(caller, Action::WriteCustomers)?;
        check_reason(&meta.reason)?;
        if let Some(done) = self.replay(caller, &meta).await? {
            let id = self.recorded_id(&done).await?;
            return Ok(FactOutcome { write: done, id });
        }
        let (fact, new_id) = input.parse(Utc::now().date_naive())?;
        let write = self
            .decide_and_append(caller, id, &meta, |_| {
                Ok(vec![Command::Record(fact.clone())])
            })
            .await?;
        Ok(FactOutcome { write, id: new_id })
    }

    /// The record id a replayed fact created, read back from its event.
    async fn recorded_id(&self, done: &WriteOutcome) -> Result<Option<Uuid>> {
        let events = self
            .store
            .read_stream(done.customer_id, Some(done.seq))
            .await?;
        let Some(last) = events.last() else {
            return Ok(None);
        };
        let keys = self
            .keyring
            .keys_for_read(&self.store, &[done.customer_id])
            .await?;
        let key = keys.get(&done.customer_id).and_then(Option::as_ref);
        let (event, _) = crate::customers::domain_event(last, key)?;
        Ok(match event {
            Event::OrderPlaced { order_id, .. } => Some(order_id),
            Event::InvoiceIssued { invoice_id, .. } => Some(invoice_id),
            Event::PaymentReceived { payment_id, .. } => Some(payment_id),
            Event::InteractionLogged { interaction_id, .. } => Some(interaction_id),
            Event::ComplaintOpened { complaint_id, .. }
            | Event::ComplaintResolved { complaint_id, .. } => Some(complaint_id),
            Event::FeedbackRecorded { feedback_id, .. } => Some(feedback_id),
            _ => None,
        })
    }

    /// Loads the customer, decides `commands(state)` and appends at the
    /// loaded version, re-deciding when a concurrent write got there first.
    pub(crate) async fn decide_and_append(
        &self,
        caller: &Principal,
        id: Uuid,
        meta: &WriteMeta,
        commands: impl Fn(&dossier_domain::Customer) -> Result<Vec<Command>>,
    ) -> Result<WriteOutcome> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (state, snap) = self.load(id, None).await?.ok_or(ServiceError::NotFound)?;
            if snap.erased {
                return Err(ServiceError::Erased);
            }
            let kind = state.kind.ok_or(ServiceError::NotFound)?;
            let todo = commands(&state)?;
            let events = decide_all(state, todo)?;
            if events.is_empty() {
                return Ok(unchanged(id, &snap));
            }
            match self
                .append(
                    caller,
                    id,
                    kind,
                    ExpectedVersion::Exact(snap.version),
                    &events,
                    meta,
                )
                .await
            {
                Ok(a) => return Ok(outcome(&a, a.replayed)),
                Err(ServiceError::Conflict { .. }) if attempt < FACT_ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Merges `duplicate` into `survivor`: the duplicate's file is closed
    /// with a `MergedInto` event (and archived), the survivor records
    /// `DuplicateMerged`. Both histories stay in the log. Safe to repeat: a
    /// step already done is not done again.
    pub async fn merge(
        &self,
        caller: &Principal,
        survivor: Uuid,
        duplicate: Uuid,
        meta: WriteMeta,
    ) -> Result<WriteOutcome> {
        authorize(caller, Action::WriteCustomers)?;
        if meta.reason.is_none() {
            return Err(invalid("reason", "a merge needs a reason"));
        }
        check_reason(&meta.reason)?;
        if survivor == duplicate {
            return Err(invalid(
                "duplicate",
                "a customer cannot be merged into itself",
            ));
        }
        if let Some(done) = self.replay(caller, &meta).await? {
            return Ok(done);
        }
        // The survivor must be a live file before anything is written.
        let (s, _) = self
            .load(survivor, None)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if s.archived {
            return Err(invalid("survivor", "the surviving customer is archived"));
        }
        // The idempotency key guards the survivor's write (the response);
        // the duplicate's step is guarded by its own state.
        let step = WriteMeta {
            idempotency: None,
            ..meta.clone()
        };
        self.decide_and_append(caller, duplicate, &step, |d| match d.merged_into {
            Some(s) if s == survivor => Ok(vec![]),
            Some(_) => Err(invalid("duplicate", "already merged into another customer")),
            None => Ok(vec![Command::MergeInto { survivor }]),
        })
        .await
        .map_err(|e| match e {
            ServiceError::NotFound => invalid("duplicate", "no such customer"),
            e => e,
        })?;
        self.decide_and_append(caller, survivor, &meta, |_| {
            Ok(vec![Command::AbsorbDuplicate { duplicate }])
        })
        .await
    }
}
