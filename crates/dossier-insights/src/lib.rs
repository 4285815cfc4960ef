//! Insights on a customer file, computed purely from its events: the value
//! tier (ABC), importance (重要/特殊/一般), lifecycle, risk signals, follow-ups
//! and the completeness score. No I/O, no clock: the evaluation date is an
//! argument, and the rules are a versioned text the caller supplies
//! (docs/rules.md, including the determinism contract the projections follow).
//!
//! - [`Rules::parse`]: the rules in force, from TOML.
//! - [`Facts::apply`]: folds one customer's events into a compact, bounded,
//!   serializable accumulation.
//! - [`assess`]: tier, risk and follow-ups on a date.
//! - [`completeness`]: a weighted checklist score of the current file.

mod amount;
mod assessment;
mod completeness;
mod facts;
mod rules;
mod vocab;

pub use amount::{Amount, Rate};
pub use assessment::{
    assess, business_date, next_birthday, Assessment, FollowUp, FollowUpKind, Lifecycle, Reason,
    Risk, RiskLevel, Signal, Source, Tier, ValueTier, IMPORTANCE_URGENCY_BONUS,
};
pub use completeness::{completeness, completeness_items, Completeness};
pub use facts::{
    Complaints, Contact, Credit, CreditChange, Dated, Facts, Legal, OpenComplaint, OpenReceivable,
    OrderDay, Orders, Sum,
};
pub use rules::{Rules, RulesError, MAX_NO_ANSWER_STREAK, MAX_WINDOW_DAYS};
