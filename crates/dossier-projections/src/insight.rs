//! The tier, risk and follow-up read models: three projector tasks sharing
//! one implementation. Each folds the log into per-customer [`Facts`] and
//! evaluates them under the rules in force at a business date:
//!
//! - a customer is evaluated after each of its events, at the business date
//!   of that event's `recorded_at`;
//! - every customer is evaluated again when the log reaches a system event
//!   `EvaluationDateReached {date}` (the daily evaluation run), at that date,
//!   and when a `RulesAdopted` event changes the rules (at the last date);
//! - the rules are those of the last `RulesAdopted` event before the event
//!   being applied (the built-in defaults before the first one).
//!
//! Nothing else enters an evaluation (no clock, no batch boundaries), so a
//! rebuild reproduces the read models and their history rows exactly.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::NaiveDate;
use dossier_events::{decode_system, SystemEvent, SYSTEM_STREAM};
use dossier_insights::{assess, business_date, Assessment, Facts, FollowUp, Risk, Rules, Tier};
use dossier_store::{Keyring, Store, StoredEvent};
use serde_json::{json, Value};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::current::domain_event;
use crate::list::{clear_columns, write_list_parts, Keeper, ListPart};
use crate::{stored_json, Projection, ProjectionError};

/// Which read model a projector keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aspect {
    Tier,
    Risk,
    FollowUps,
}

impl Aspect {
    pub const ALL: [Aspect; 3] = [Aspect::Tier, Aspect::Risk, Aspect::FollowUps];

    pub fn name(self) -> &'static str {
        match self {
            Aspect::Tier => "customer_tier",
            Aspect::Risk => "customer_risk",
            Aspect::FollowUps => "follow_ups",
        }
    }

    /// Which columns of `customer_list` this aspect keeps, if any.
    pub(crate) fn list_keeper(self) -> Option<Keeper> {
        match self {
            Aspect::Tier => Some(Keeper::Tier),
            Aspect::Risk => Some(Keeper::Risk),
            Aspect::FollowUps => None,
        }
    }

    /// The part of an assessment this aspect keeps.
    pub(crate) fn output(self, a: &Assessment, facts: &Facts) -> Output {
        match self {
            Aspect::Tier => Output::Tier(a.tier.clone()),
            Aspect::Risk => Output::Risk(a.risk.clone()),
            Aspect::FollowUps => Output::FollowUps(
                if facts.archived || facts.merged_into.is_some() {
                    Vec::new()
                } else {
                    a.follow_ups.clone()
                },
                facts.owner.clone(),
            ),
        }
    }

    /// Whether a change from `before` to `after` is a change of classification
    /// (a history row), not just of its inputs.
    fn is_reclassification(self, before: &Output, after: &Output) -> bool {
        match (before, after) {
            (Output::Tier(a), Output::Tier(b)) => {
                (a.value_tier, a.importance, a.importance_source, a.lifecycle)
                    != (b.value_tier, b.importance, b.importance_source, b.lifecycle)
            }
            (Output::Risk(a), Output::Risk(b)) => {
                let key = |r: &Risk| {
                    (
                        r.level,
                        r.reasons
                            .iter()
                            .map(|x| (x.signal, x.severity))
                            .collect::<Vec<_>>(),
                    )
                };
                key(a) != key(b)
            }
            (Output::None, Output::Tier(_) | Output::Risk(_)) => true,
            _ => false,
        }
    }

    /// Takes a new evaluation's output (under rules `version`, at `on`,
    /// caused by `seq`) into the slot: a history row if it reclassifies, a
    /// write if anything changed.
    pub(crate) fn settle(
        self,
        slot: &mut Slot,
        after: Output,
        version: &str,
        on: NaiveDate,
        seq: i64,
    ) {
        let version_changed = slot.rules_version.as_deref() != Some(version);
        if after != slot.output || version_changed {
            if self.is_reclassification(&slot.output, &after) {
                slot.history
                    .push((seq, after.clone(), on, version.to_owned()));
            }
            if slot.output.list_part() != after.list_part() {
                slot.list_dirty = true;
            }
            slot.output = after;
            slot.rules_version = Some(version.to_owned());
            // The date of the evaluation that produced the stored output: set
            // only with it, or it would depend on where batches end.
            slot.evaluated_on = on;
            slot.output_dirty = true;
        }
    }
}

/// Customers re-evaluated per statement during an evaluation run.
const RUN_CHUNK: i64 = 2_000;

pub struct Insight {
    aspect: Aspect,
    store: Store,
    keyring: Keyring,
    /// Parsed rules by the seq of their RulesAdopted event (0 = defaults).
    rules_cache: Mutex<Option<(i64, Rules)>>,
    /// Customers' state as this projector last wrote it (see [`Recent`]).
    recent: Mutex<Recent>,
}

/// Customers' entries as written by the last batches of this projector, so
/// that the next batch need not read and parse them again.
///
/// Valid only for a batch that starts right after the last one this
/// instance applied (`next`): the state at a checkpoint is a function of the
/// log up to it (rebuild == incremental, whatever the batch boundaries), so
/// whoever else wrote the tables meanwhile (a rebuild, another leader), the
/// rows at that checkpoint equal these entries. A batch starting anywhere
/// else (its transaction failed, a reset, another leader went on) empties
/// it; so does an evaluation run or a rules change (they re-evaluate every
/// customer in the tables).
#[derive(Default)]
struct Recent {
    next: i64,
    entries: HashMap<Uuid, Entry>,
    /// The clock as the last batch stored it (valid under the same rule).
    clock: Option<Clock>,
}

/// Customers kept in [`Recent`] (a few KB each).
const RECENT_MAX: usize = 20_000;

/// The projector's clock and rules: part of its state, rebuilt from the log.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Clock {
    pub(crate) evaluated_on: Option<NaiveDate>,
    rules_seq: i64,
    rules_version: Option<String>,
    rules_text: Option<String>,
}

impl Clock {
    /// Before the first event: no date, the built-in rules.
    pub(crate) fn start() -> Clock {
        Clock {
            evaluated_on: None,
            rules_seq: 0,
            rules_version: None,
            rules_text: None,
        }
    }

    /// The projector's date only moves forward: the latest of the evaluation
    /// runs and of the business dates of the events applied so far.
    pub(crate) fn advance(&mut self, date: NaiveDate) {
        self.evaluated_on = Some(self.evaluated_on.map_or(date, |d| d.max(date)));
    }

    /// Takes in a system event at `seq`; true if it adopted new rules.
    pub(crate) fn take(&mut self, seq: i64, event: SystemEvent) -> bool {
        match event {
            SystemEvent::EvaluationDate { date } => {
                self.advance(date);
                false
            }
            SystemEvent::RulesAdopted { version, text, .. } => {
                self.rules_seq = seq;
                self.rules_version = Some(version);
                self.rules_text = Some(text);
                true
            }
        }
    }

    /// The rules in force.
    pub(crate) fn parse_rules(&self) -> Result<Rules, ProjectionError> {
        match &self.rules_text {
            None => Ok(Rules::defaults()),
            Some(text) => Rules::parse(text).map_err(|e| ProjectionError::BadEvent {
                seq: self.rules_seq,
                reason: format!("adopted rules do not parse: {e}"),
            }),
        }
    }
}

/// One customer's facts and the output last written for it.
struct Entry {
    facts: Facts,
    facts_dirty: bool,
    slot: Slot,
}

/// What one aspect keeps for one customer, and what changed since it was
/// last written.
pub(crate) struct Slot {
    pub(crate) output: Output,
    /// The rules version the output was evaluated under.
    pub(crate) rules_version: Option<String>,
    /// The date of the evaluation that produced the output.
    pub(crate) evaluated_on: NaiveDate,
    pub(crate) output_dirty: bool,
    /// The output's list facets changed (customer_list needs a write).
    pub(crate) list_dirty: bool,
    /// History rows to insert: (seq, output, evaluation date, rules version).
    pub(crate) history: Vec<(i64, Output, NaiveDate, String)>,
}

impl Slot {
    fn stored(output: Output, rules_version: Option<String>, evaluated_on: NaiveDate) -> Slot {
        Slot {
            output,
            rules_version,
            evaluated_on,
            output_dirty: false,
            list_dirty: false,
            history: Vec::new(),
        }
    }

    /// Nothing evaluated yet.
    pub(crate) fn empty() -> Slot {
        Slot::stored(Output::None, None, NaiveDate::MIN)
    }

    /// The read-model row of customer `id`.
    pub(crate) fn out_row(&self, id: Uuid) -> OutRow<'_> {
        OutRow {
            id,
            output: &self.output,
            on: self.evaluated_on,
            version: self.rules_version.as_deref().unwrap_or_default(),
            // History seqs only grow: the last is the newest to be written.
            changed_seq: self.history.last().map(|h| h.0),
        }
    }

    /// The history rows of customer `id` not yet written.
    pub(crate) fn history_rows(&self, id: Uuid) -> impl Iterator<Item = HistoryRow<'_>> {
        self.history
            .iter()
            .map(move |(seq, output, on, version)| HistoryRow {
                id,
                seq: *seq,
                output,
                on: *on,
                version,
            })
    }
}

/// A stored output: what, under which rules version, evaluated when.
type Stored = (Output, Option<String>, NaiveDate);

/// What an aspect stores for one customer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Output {
    None,
    Tier(Tier),
    Risk(Risk),
    FollowUps(Vec<FollowUp>, Option<String>),
}

impl Output {
    /// What the customer list filters on (`customer_list.value_tier` and
    /// `tier_facets`, or `risk_facets`).
    pub(crate) fn list_part(&self) -> ListPart {
        match self {
            Output::Tier(t) => ListPart {
                value_tier: Some(t.value_tier.as_str().to_owned()),
                facets: vec![
                    format!("importance:{}", t.importance.as_str()),
                    format!("lifecycle:{}", t.lifecycle.as_str()),
                ],
            },
            Output::Risk(r) => {
                let mut facets = vec![format!("risk:{}", r.level.as_str())];
                for x in &r.reasons {
                    let s = format!("signal:{}", x.signal.as_str());
                    if !facets.contains(&s) {
                        facets.push(s);
                    }
                }
                ListPart {
                    value_tier: None,
                    facets,
                }
            }
            Output::None | Output::FollowUps(..) => ListPart::default(),
        }
    }
}

impl Insight {
    pub fn new(aspect: Aspect, store: Store, keyring: Keyring) -> Insight {
        Insight {
            aspect,
            store,
            keyring,
            rules_cache: Mutex::new(None),
            recent: Mutex::new(Recent::default()),
        }
    }

    /// Takes the kept entries of `ids` and the kept clock for a batch
    /// starting at `first`.
    fn take_recent(&self, first: i64, ids: &[Uuid]) -> (HashMap<Uuid, Entry>, Option<Clock>) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.next != first {
            recent.entries.clear();
            recent.clock = None;
            return (HashMap::new(), None);
        }
        let entries = ids
            .iter()
            .filter_map(|id| recent.entries.remove(id).map(|e| (*id, e)))
            .collect();
        (entries, recent.clock.take())
    }

    /// Keeps the entries written and the clock stored by a batch whose last
    /// event is `last`.
    fn keep_recent(&self, last: i64, written: HashMap<Uuid, Entry>, ran: bool, clock: Clock) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if ran || recent.entries.len() + written.len() > RECENT_MAX {
            recent.entries.clear();
        }
        recent.entries.extend(written);
        recent.next = last + 1;
        recent.clock = Some(clock);
    }

    fn rules(&self, clock: &Clock) -> Result<Rules, ProjectionError> {
        let mut cache = self.rules_cache.lock().expect("rules cache poisoned");
        if let Some((seq, rules)) = cache.as_ref() {
            if *seq == clock.rules_seq {
                return Ok(rules.clone());
            }
        }
        let rules = clock.parse_rules()?;
        *cache = Some((clock.rules_seq, rules.clone()));
        Ok(rules)
    }

    fn evaluate(&self, entry: &mut Entry, rules: &Rules, on: NaiveDate, seq: i64) {
        let a = assess(&entry.facts, rules, on);
        let after = self.aspect.output(&a, &entry.facts);
        self.aspect
            .settle(&mut entry.slot, after, rules.version(), on, seq);
    }

    async fn load_clock(
        &self,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<Clock, ProjectionError> {
        let row = sqlx::query(
            "SELECT evaluated_on, rules_version, rules_text, rules_seq FROM insight_state WHERE projection = $1",
        )
        .bind(self.aspect.name())
        .fetch_optional(&mut **tx)
        .await?;
        Ok(match row {
            None => Clock::start(),
            Some(r) => Clock {
                evaluated_on: r.get("evaluated_on"),
                rules_seq: r.get::<Option<i64>, _>("rules_seq").unwrap_or(0),
                rules_version: r.get("rules_version"),
                rules_text: r.get("rules_text"),
            },
        })
    }

    /// Loads the entries of `ids` not yet in `entries`.
    async fn load_entries(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        ids: &[Uuid],
        entries: &mut HashMap<Uuid, Entry>,
    ) -> Result<(), ProjectionError> {
        let missing: Vec<Uuid> = ids
            .iter()
            .filter(|i| !entries.contains_key(i))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut outputs = self.load_outputs(tx, &missing).await?;
        for r in sqlx::query(
            "SELECT customer_id, facts FROM insight_facts
             WHERE projection = $1 AND customer_id = ANY($2)",
        )
        .bind(self.aspect.name())
        .bind(&missing)
        .fetch_all(&mut **tx)
        .await?
        {
            let id: Uuid = r.get("customer_id");
            let facts: Facts = stored_json("insight_facts", id, "facts", r.get("facts"))?;
            let slot = match outputs.remove(&id) {
                Some((output, rules_version, evaluated_on)) => {
                    Slot::stored(output, rules_version, evaluated_on)
                }
                None => Slot::empty(),
            };
            entries.insert(
                id,
                Entry {
                    facts,
                    facts_dirty: false,
                    slot,
                },
            );
        }
        for id in missing {
            entries.entry(id).or_insert_with(|| Entry {
                facts: Facts::default(),
                facts_dirty: false,
                slot: Slot::empty(),
            });
        }
        Ok(())
    }

    /// The stored outputs of `ids`, as this aspect keeps them.
    async fn load_outputs(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Stored>, ProjectionError> {
        let mut out = HashMap::new();
        match self.aspect {
            Aspect::Tier => {
                for r in sqlx::query("SELECT customer_id, state, rules_version, evaluated_on FROM customer_tier WHERE customer_id = ANY($1)")
                    .bind(ids).fetch_all(&mut **tx).await?
                {
                    let t: Tier = stored_json("customer_tier", r.get("customer_id"), "state", r.get("state"))?;
                    out.insert(r.get("customer_id"), (Output::Tier(t), r.get("rules_version"), r.get("evaluated_on")));
                }
            }
            Aspect::Risk => {
                for r in sqlx::query("SELECT customer_id, state, rules_version, evaluated_on FROM customer_risk WHERE customer_id = ANY($1)")
                    .bind(ids).fetch_all(&mut **tx).await?
                {
                    let t: Risk = stored_json("customer_risk", r.get("customer_id"), "state", r.get("state"))?;
                    out.insert(r.get("customer_id"), (Output::Risk(t), r.get("rules_version"), r.get("evaluated_on")));
                }
            }
            Aspect::FollowUps => {
                for r in sqlx::query("SELECT customer_id, state, rules_version, evaluated_on FROM follow_up_state WHERE customer_id = ANY($1)")
                    .bind(ids).fetch_all(&mut **tx).await?
                {
                    let v: (Vec<FollowUp>, Option<String>) = stored_json("follow_up_state", r.get("customer_id"), "state", r.get("state"))?;
                    out.insert(r.get("customer_id"), (Output::FollowUps(v.0, v.1), r.get("rules_version"), r.get("evaluated_on")));
                }
            }
        }
        Ok(out)
    }
}

impl Insight {
    /// Evaluates every customer this projector knows at `on` (an evaluation
    /// run or new rules), chunk by chunk, writing what changed.
    async fn evaluate_all(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        rules: &Rules,
        on: NaiveDate,
        seq: i64,
        list: &mut BTreeMap<Uuid, ListPart>,
    ) -> Result<(), ProjectionError> {
        let mut after = Uuid::nil();
        loop {
            let ids: Vec<Uuid> = sqlx::query_scalar(
                "SELECT customer_id FROM insight_facts WHERE projection = $1 AND customer_id > $2
                 ORDER BY customer_id LIMIT $3",
            )
            .bind(self.aspect.name())
            .bind(after)
            .bind(RUN_CHUNK)
            .fetch_all(&mut **tx)
            .await?;
            let Some(last) = ids.last().copied() else {
                return Ok(());
            };
            let mut entries = HashMap::new();
            self.load_entries(tx, &ids, &mut entries).await?;
            for entry in entries.values_mut() {
                self.evaluate(entry, rules, on, seq);
            }
            self.flush(tx, &mut entries, list, None).await?;
            after = last;
        }
    }

    /// Writes changed facts, outputs and history rows, collects changed list
    /// facets in `list` (written once, at the end of the batch), and empties
    /// `entries` (into `written`, as now stored, if given).
    async fn flush(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        entries: &mut HashMap<Uuid, Entry>,
        list: &mut BTreeMap<Uuid, ListPart>,
        written: Option<&mut HashMap<Uuid, Entry>>,
    ) -> Result<(), ProjectionError> {
        let (mut f_ids, mut f_docs) = (Vec::new(), Vec::new());
        let mut rows = Vec::new();
        let mut history = Vec::new();
        for (id, e) in entries.iter() {
            if e.facts_dirty {
                f_ids.push(*id);
                f_docs.push(facts_json(&e.facts)?);
            }
            if e.slot.output_dirty {
                rows.push(e.slot.out_row(*id));
            }
            if e.slot.list_dirty && self.aspect.list_keeper().is_some() {
                list.insert(*id, e.slot.output.list_part());
            }
            history.extend(e.slot.history_rows(*id));
        }
        write_facts(tx, self.aspect, &f_ids, &f_docs).await?;
        write_outputs(tx, self.aspect, &rows, &history).await?;
        match written {
            Some(written) => {
                for (id, mut e) in entries.drain() {
                    e.facts_dirty = false;
                    e.slot.output_dirty = false;
                    e.slot.list_dirty = false;
                    e.slot.history.clear();
                    written.insert(id, e);
                }
            }
            None => entries.clear(),
        }
        Ok(())
    }
}

/// A read-model row to write: a customer's output as last evaluated.
pub(crate) struct OutRow<'a> {
    pub(crate) id: Uuid,
    pub(crate) output: &'a Output,
    pub(crate) on: NaiveDate,
    pub(crate) version: &'a str,
    /// The seq of the customer's newest history row, if one is written with
    /// this row (otherwise the stored `changed_seq` is kept).
    pub(crate) changed_seq: Option<i64>,
}

/// A history row to insert: a reclassification caused by `seq`.
pub(crate) struct HistoryRow<'a> {
    pub(crate) id: Uuid,
    pub(crate) seq: i64,
    pub(crate) output: &'a Output,
    pub(crate) on: NaiveDate,
    pub(crate) version: &'a str,
}

pub(crate) fn facts_json(facts: &Facts) -> Result<String, ProjectionError> {
    serde_json::to_string(facts).map_err(|e| ProjectionError::BadEvent {
        seq: 0,
        reason: format!("facts do not serialise: {e}"),
    })
}

/// Upserts the facts `aspect` keeps for `ids`.
pub(crate) async fn write_facts(
    tx: &mut Transaction<'static, Postgres>,
    aspect: Aspect,
    ids: &[Uuid],
    docs: &[String],
) -> Result<(), ProjectionError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO insight_facts (projection, customer_id, facts)
         SELECT $1, id, f FROM unnest($2::uuid[], $3::text[]) AS t(id, f)
         ON CONFLICT (projection, customer_id) DO UPDATE SET facts = excluded.facts",
    )
    .bind(aspect.name())
    .bind(ids)
    .bind(docs)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The rows and history rows of one aspect's read model, as the column
/// arrays its statements bind: prepared apart from the writing (a full
/// rebuild prepares the next batch while the database writes this one).
pub(crate) enum OutputBatch {
    Tier { rows: TierCols, history: TierCols },
    Risk { rows: RiskCols, history: RiskCols },
    FollowUps(FollowUpCols),
}

fn tier_of(o: &Output) -> Option<&Tier> {
    match o {
        Output::Tier(t) => Some(t),
        _ => None,
    }
}

fn risk_of(o: &Output) -> Option<&Risk> {
    match o {
        Output::Risk(r) => Some(r),
        _ => None,
    }
}

/// The read-model and history columns of the outputs `pick` selects (a
/// history row carries the seq that caused it as its `changed_seq`).
fn split_cols<T, C: Default>(
    rows: &[OutRow<'_>],
    history: &[HistoryRow<'_>],
    pick: for<'a> fn(&'a Output) -> Option<&'a T>,
    push: fn(&mut C, Uuid, &T, NaiveDate, Option<i64>, &str),
) -> (C, C) {
    let (mut c, mut h) = (C::default(), C::default());
    for r in rows {
        if let Some(x) = pick(r.output) {
            push(&mut c, r.id, x, r.on, r.changed_seq, r.version);
        }
    }
    for r in history {
        if let Some(x) = pick(r.output) {
            push(&mut h, r.id, x, r.on, Some(r.seq), r.version);
        }
    }
    (c, h)
}

impl OutputBatch {
    pub(crate) fn prepare(
        aspect: Aspect,
        rows: &[OutRow<'_>],
        history: &[HistoryRow<'_>],
    ) -> OutputBatch {
        match aspect {
            Aspect::Tier => {
                let (rows, history) = split_cols(rows, history, tier_of, TierCols::push);
                OutputBatch::Tier { rows, history }
            }
            Aspect::Risk => {
                let (rows, history) = split_cols(rows, history, risk_of, RiskCols::push);
                OutputBatch::Risk { rows, history }
            }
            Aspect::FollowUps => {
                let mut c = FollowUpCols::default();
                for r in rows {
                    c.push(r);
                }
                OutputBatch::FollowUps(c)
            }
        }
    }

    /// Writes the batch; `fresh`: the tables were emptied in this
    /// transaction (nothing to replace).
    pub(crate) async fn write(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        fresh: bool,
    ) -> Result<(), ProjectionError> {
        match self {
            OutputBatch::Tier { rows, history } => write_tiers(tx, rows, history).await,
            OutputBatch::Risk { rows, history } => write_risks(tx, rows, history).await,
            OutputBatch::FollowUps(c) => write_follow_ups(tx, c, fresh).await,
        }
    }
}

/// Writes the rows and history rows of `aspect`'s read model.
pub(crate) async fn write_outputs(
    tx: &mut Transaction<'static, Postgres>,
    aspect: Aspect,
    rows: &[OutRow<'_>],
    history: &[HistoryRow<'_>],
) -> Result<(), ProjectionError> {
    OutputBatch::prepare(aspect, rows, history)
        .write(tx, false)
        .await
}

/// The projectors' clock and rules, as stored for `aspect`.
pub(crate) async fn write_clock(
    tx: &mut Transaction<'static, Postgres>,
    aspect: Aspect,
    c: &Clock,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO insight_state (projection, evaluated_on, rules_version, rules_text, rules_seq)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (projection) DO UPDATE SET evaluated_on = excluded.evaluated_on,
             rules_version = excluded.rules_version, rules_text = excluded.rules_text,
             rules_seq = excluded.rules_seq",
    )
    .bind(aspect.name())
    .bind(c.evaluated_on)
    .bind(&c.rules_version)
    .bind(&c.rules_text)
    .bind(c.rules_seq)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

async fn write_tiers(
    tx: &mut Transaction<'static, Postgres>,
    c: &TierCols,
    h: &TierCols,
) -> Result<(), ProjectionError> {
    if !c.id.is_empty() {
        upsert_tier_rows(tx, c).await?;
    }
    if !h.id.is_empty() {
        insert_tier_history(tx, h).await?;
    }
    Ok(())
}

async fn upsert_tier_rows(
    tx: &mut Transaction<'static, Postgres>,
    c: &TierCols,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO customer_tier (customer_id, value_tier, importance, importance_source, lifecycle, inputs,
                                    rules_version, evaluated_on, changed_seq, state)
         SELECT id, vt, imp, src, lc, inp, rv, ev, coalesce(cs, 0), st
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::date[],
                     $8::bigint[], $9::text[], $10::text[]) AS t(id, vt, imp, src, lc, inp, ev, cs, rv, st)
         ON CONFLICT (customer_id) DO UPDATE SET value_tier = excluded.value_tier,
             importance = excluded.importance, importance_source = excluded.importance_source,
             lifecycle = excluded.lifecycle, inputs = excluded.inputs, rules_version = excluded.rules_version,
             evaluated_on = excluded.evaluated_on, state = excluded.state,
             changed_seq = CASE WHEN excluded.changed_seq > 0 THEN excluded.changed_seq ELSE customer_tier.changed_seq END",
    )
    .bind(&c.id).bind(&c.tier).bind(&c.importance).bind(&c.source).bind(&c.lifecycle).bind(&c.inputs)
    .bind(&c.on).bind(&c.changed).bind(&c.version).bind(&c.state)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_tier_history(
    tx: &mut Transaction<'static, Postgres>,
    h: &TierCols,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO customer_tier_history (customer_id, seq, value_tier, importance, importance_source, lifecycle,
                                            inputs, rules_version, evaluated_on)
         SELECT id, cs, vt, imp, src, lc, inp, rv, ev
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::date[],
                     $8::bigint[], $9::text[]) AS t(id, vt, imp, src, lc, inp, ev, cs, rv)",
    )
    .bind(&h.id).bind(&h.tier).bind(&h.importance).bind(&h.source).bind(&h.lifecycle).bind(&h.inputs)
    .bind(&h.on).bind(&h.changed).bind(&h.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Default)]
pub(crate) struct TierCols {
    id: Vec<Uuid>,
    tier: Vec<String>,
    importance: Vec<String>,
    source: Vec<String>,
    lifecycle: Vec<String>,
    inputs: Vec<String>,
    on: Vec<NaiveDate>,
    changed: Vec<Option<i64>>,
    version: Vec<String>,
    /// The whole tier (rows only; history rows do not keep it).
    state: Vec<String>,
}

impl TierCols {
    fn push(&mut self, id: Uuid, t: &Tier, on: NaiveDate, changed: Option<i64>, version: &str) {
        self.id.push(id);
        self.tier.push(t.value_tier.as_str().to_owned());
        self.importance.push(t.importance.as_str().to_owned());
        self.source.push(t.importance_source.as_str().to_owned());
        self.lifecycle.push(t.lifecycle.as_str().to_owned());
        self.inputs.push(to_json(&t.inputs));
        self.on.push(on);
        self.changed.push(changed);
        self.version.push(version.to_owned());
        self.state.push(to_json(t));
    }
}

fn reasons_json(r: &Risk) -> String {
    let list: Vec<Value> = r
        .reasons
        .iter()
        .map(|x| {
            json!({"signal": x.signal.as_str(), "severity": x.severity.as_str(), "detail": x.detail, "evidence": x.evidence})
        })
        .collect();
    Value::Array(list).to_string()
}

#[derive(Default)]
pub(crate) struct RiskCols {
    id: Vec<Uuid>,
    level: Vec<String>,
    rank: Vec<i16>,
    signals: Vec<String>,
    reasons: Vec<String>,
    on: Vec<NaiveDate>,
    /// Rows: the changed seq; history rows: their own seq.
    seq: Vec<Option<i64>>,
    version: Vec<String>,
    state: Vec<String>,
}

impl RiskCols {
    fn push(&mut self, id: Uuid, r: &Risk, on: NaiveDate, seq: Option<i64>, version: &str) {
        self.id.push(id);
        self.level.push(r.level.as_str().to_owned());
        self.rank.push(r.level as i16);
        let s: Vec<&str> = r.reasons.iter().map(|x| x.signal.as_str()).collect();
        self.signals.push(s.join(","));
        self.reasons.push(reasons_json(r));
        self.on.push(on);
        self.seq.push(seq);
        self.version.push(version.to_owned());
        self.state.push(to_json(r));
    }
}

async fn write_risks(
    tx: &mut Transaction<'static, Postgres>,
    c: &RiskCols,
    h: &RiskCols,
) -> Result<(), ProjectionError> {
    if !c.id.is_empty() {
        upsert_risk_rows(tx, c).await?;
    }
    if !h.id.is_empty() {
        insert_risk_history(tx, h).await?;
    }
    Ok(())
}

async fn upsert_risk_rows(
    tx: &mut Transaction<'static, Postgres>,
    c: &RiskCols,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO customer_risk (customer_id, level, level_rank, signals, reasons, rules_version, evaluated_on,
                                    changed_seq, state)
         SELECT id, lv, rk, CASE WHEN sg = '' THEN '{}'::text[] ELSE string_to_array(sg, ',') END, rs, rv, ev,
                coalesce(cs, 0), st
         FROM unnest($1::uuid[], $2::text[], $3::smallint[], $4::text[], $5::text[], $6::date[], $7::bigint[],
                     $8::text[], $9::text[]) AS t(id, lv, rk, sg, rs, ev, cs, st, rv)
         ON CONFLICT (customer_id) DO UPDATE SET level = excluded.level, level_rank = excluded.level_rank,
             signals = excluded.signals, reasons = excluded.reasons, rules_version = excluded.rules_version,
             evaluated_on = excluded.evaluated_on, state = excluded.state,
             changed_seq = CASE WHEN excluded.changed_seq > 0 THEN excluded.changed_seq ELSE customer_risk.changed_seq END",
    )
    .bind(&c.id).bind(&c.level).bind(&c.rank).bind(&c.signals).bind(&c.reasons).bind(&c.on).bind(&c.seq)
    .bind(&c.state).bind(&c.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_risk_history(
    tx: &mut Transaction<'static, Postgres>,
    h: &RiskCols,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO customer_risk_history (customer_id, seq, level, reasons, rules_version, evaluated_on)
         SELECT id, sq, lv, rs, rv, ev
         FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::date[], $6::text[])
              AS t(id, sq, lv, rs, ev, rv)",
    )
    .bind(&h.id).bind(&h.seq).bind(&h.level).bind(&h.reasons).bind(&h.on).bind(&h.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// follow_up_state rows (`s*`) and their follow_ups rows.
#[derive(Default)]
pub(crate) struct FollowUpCols {
    sid: Vec<Uuid>,
    sstate: Vec<String>,
    son: Vec<NaiveDate>,
    sversion: Vec<String>,
    id: Vec<Uuid>,
    kind: Vec<String>,
    owner: Vec<Option<String>>,
    due: Vec<NaiveDate>,
    urgency: Vec<i32>,
    detail: Vec<String>,
    evidence: Vec<String>,
    on: Vec<NaiveDate>,
    version: Vec<String>,
}

impl FollowUpCols {
    fn push(&mut self, r: &OutRow<'_>) {
        let Output::FollowUps(list, who) = r.output else {
            return;
        };
        self.sid.push(r.id);
        self.sstate.push(to_json(&(list, who)));
        self.son.push(r.on);
        self.sversion.push(r.version.to_owned());
        for f in list {
            self.id.push(r.id);
            self.kind.push(f.kind.as_str().to_owned());
            self.owner.push(who.clone());
            self.due.push(f.due_on);
            self.urgency.push(f.urgency);
            self.detail.push(f.detail.clone());
            self.evidence.push(
                f.evidence
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
            self.on.push(r.on);
            self.version.push(r.version.to_owned());
        }
    }
}

async fn write_follow_ups(
    tx: &mut Transaction<'static, Postgres>,
    c: &FollowUpCols,
    fresh: bool,
) -> Result<(), ProjectionError> {
    let FollowUpCols {
        sid,
        sstate,
        son,
        sversion,
        id,
        kind,
        owner,
        due,
        urgency,
        detail,
        evidence,
        on,
        version,
    } = c;
    // Follow-up rows come only with their customer's state row.
    if sid.is_empty() {
        return Ok(());
    }
    if !fresh {
        sqlx::query("DELETE FROM follow_ups WHERE customer_id = ANY($1)")
            .bind(sid)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO follow_ups (customer_id, kind, owner, due_on, urgency, detail, evidence, rules_version, evaluated_on)
         SELECT id, k, o, d, u, dt, CASE WHEN ev = '' THEN '{}'::bigint[] ELSE string_to_array(ev, ',')::bigint[] END,
                rv, eo
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::date[], $5::int[], $6::text[], $7::text[], $8::date[],
                     $9::text[])
              AS t(id, k, o, d, u, dt, ev, eo, rv)",
    )
    .bind(id).bind(kind).bind(owner).bind(due).bind(urgency).bind(detail).bind(evidence).bind(on)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO follow_up_state (customer_id, state, rules_version, evaluated_on)
         SELECT id, st, rv, eo FROM unnest($1::uuid[], $2::text[], $3::date[], $4::text[]) AS t(id, st, eo, rv)
         ON CONFLICT (customer_id) DO UPDATE SET state = excluded.state, evaluated_on = excluded.evaluated_on,
             rules_version = excluded.rules_version",
    )
    .bind(sid).bind(sstate).bind(son).bind(sversion)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Projection for Insight {
    fn name(&self) -> &'static str {
        self.aspect.name()
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(());
        };
        let mut ids: Vec<Uuid> = events
            .iter()
            .map(|e| e.record.stream_id)
            .filter(|id| *id != SYSTEM_STREAM)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        // Of all sealed personal data only the birthday enters the facts, and
        // only follow-ups use it: tier and risk never open sealed values
        // (they see them as erased), which spares them the keys and AES.
        let keys = if self.aspect == Aspect::FollowUps {
            self.keyring.keys_for_read(&self.store, &ids).await?
        } else {
            HashMap::new()
        };
        let (mut entries, kept) = self.take_recent(first.record.seq, &ids);
        let mut clock = match kept {
            Some(clock) => clock,
            None => self.load_clock(tx).await?,
        };
        let stored = clock.clone();
        let mut rules = self.rules(&clock)?;
        let mut written = HashMap::new();
        let mut ran = false;
        let mut list = BTreeMap::new();
        self.load_entries(tx, &ids, &mut entries).await?;
        for e in events {
            let r = &e.record;
            if r.stream_id == SYSTEM_STREAM {
                let bad = |reason: String| ProjectionError::BadEvent { seq: r.seq, reason };
                let sys = decode_system(&r.event_type, r.schema_version, r.payload.clone())
                    .map_err(|e| bad(e.to_string()))?;
                // Everything before this event is written first: the run
                // below reads the customers from the tables (and changes
                // them, so nothing written so far is kept in `recent`).
                self.flush(tx, &mut entries, &mut list, None).await?;
                written.clear();
                ran = true;
                if clock.take(r.seq, sys) {
                    rules = self.rules(&clock)?;
                }
                if let Some(on) = clock.evaluated_on {
                    self.evaluate_all(tx, &rules, on, r.seq, &mut list).await?;
                }
                continue;
            }
            if !entries.contains_key(&r.stream_id) {
                self.load_entries(tx, &[r.stream_id], &mut entries).await?;
            }
            let key = keys.get(&r.stream_id).and_then(Option::as_ref);
            let (event, _) = domain_event(e, key)?;
            let on = business_date(&rules, r.recorded_at.get());
            clock.advance(on);
            let entry = entries.get_mut(&r.stream_id).expect("loaded above");
            entry.facts.apply(r.seq, on, &event);
            entry.facts_dirty = true;
            self.evaluate(entry, &rules, on, r.seq);
        }
        self.flush(tx, &mut entries, &mut list, Some(&mut written))
            .await?;
        if let Some(keeper) = self.aspect.list_keeper() {
            write_list_parts(tx, keeper, &list).await?;
        }
        // The clock moves with the business date and system events only.
        if clock != stored {
            write_clock(tx, self.aspect, &clock).await?;
        }
        // Kept for the next batch, which uses them only if it starts right
        // after this one (i.e. this transaction committed).
        self.keep_recent(last.record.seq, written, ran, clock);
        Ok(())
    }

    async fn reset(&self, tx: &mut Transaction<'static, Postgres>) -> Result<(), ProjectionError> {
        sqlx::query("DELETE FROM insight_facts WHERE projection = $1")
            .bind(self.aspect.name())
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM insight_state WHERE projection = $1")
            .bind(self.aspect.name())
            .execute(&mut **tx)
            .await?;
        let tables: &[&str] = match self.aspect {
            Aspect::Tier => &["customer_tier", "customer_tier_history"],
            Aspect::Risk => &["customer_risk", "customer_risk_history"],
            Aspect::FollowUps => &["follow_ups", "follow_up_state"],
        };
        for t in tables {
            // Table names are constants above, never input.
            sqlx::query(&format!("DELETE FROM {t}"))
                .execute(&mut **tx)
                .await?;
        }
        if let Some(keeper) = self.aspect.list_keeper() {
            clear_columns(tx, keeper).await?;
        }
        *self.rules_cache.lock().expect("rules cache poisoned") = None;
        *self.recent.lock().unwrap_or_else(|e| e.into_inner()) = Recent::default();
        Ok(())
    }
}
