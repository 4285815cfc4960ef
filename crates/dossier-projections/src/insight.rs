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
use crate::{Projection, ProjectionError};

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
}

/// Customers re-evaluated per statement during an evaluation run.
const RUN_CHUNK: i64 = 2_000;

pub struct Insight {
    aspect: Aspect,
    store: Store,
    keyring: Keyring,
    /// Parsed rules by the seq of their RulesAdopted event (0 = defaults).
    rules_cache: Mutex<Option<(i64, Rules)>>,
}

/// The projector's clock and rules: part of its state, rebuilt from the log.
#[derive(Clone, Debug)]
struct Clock {
    evaluated_on: Option<NaiveDate>,
    rules_seq: i64,
    rules_version: Option<String>,
    rules_text: Option<String>,
}

/// One customer's facts and the output last written for it.
struct Entry {
    facts: Facts,
    facts_dirty: bool,
    output: Output,
    /// The rules version the stored output was evaluated under.
    rules_version: Option<String>,
    output_dirty: bool,
    /// The output's list facets changed (customer_list needs a write).
    list_dirty: bool,
    /// History rows to insert: (seq, output, evaluation date).
    history: Vec<(i64, Output, NaiveDate)>,
    evaluated_on: NaiveDate,
}

/// A stored output: what, under which rules version, evaluated when.
type Stored = (Output, Option<String>, NaiveDate);

/// What an aspect stores for one customer.
#[derive(Clone, Debug, PartialEq)]
enum Output {
    None,
    Tier(Tier),
    Risk(Risk),
    FollowUps(Vec<FollowUp>, Option<String>),
}

impl Output {
    /// What the customer list filters on (`customer_list.value_tier` and
    /// `tier_facets`, or `risk_facets`).
    fn list_part(&self) -> ListPart {
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
        }
    }

    fn rules(&self, clock: &Clock) -> Result<Rules, ProjectionError> {
        let mut cache = self.rules_cache.lock().expect("rules cache poisoned");
        if let Some((seq, rules)) = cache.as_ref() {
            if *seq == clock.rules_seq {
                return Ok(rules.clone());
            }
        }
        let rules = match &clock.rules_text {
            None => Rules::defaults(),
            Some(text) => Rules::parse(text).map_err(|e| ProjectionError::BadEvent {
                seq: clock.rules_seq,
                reason: format!("adopted rules do not parse: {e}"),
            })?,
        };
        *cache = Some((clock.rules_seq, rules.clone()));
        Ok(rules)
    }

    /// Which columns of `customer_list` this aspect keeps, if any.
    fn list_keeper(&self) -> Option<Keeper> {
        match self.aspect {
            Aspect::Tier => Some(Keeper::Tier),
            Aspect::Risk => Some(Keeper::Risk),
            Aspect::FollowUps => None,
        }
    }

    /// The part of an assessment this aspect keeps.
    fn output(&self, a: Assessment, facts: &Facts) -> Output {
        match self.aspect {
            Aspect::Tier => Output::Tier(a.tier),
            Aspect::Risk => Output::Risk(a.risk),
            Aspect::FollowUps => Output::FollowUps(
                if facts.archived || facts.merged_into.is_some() {
                    Vec::new()
                } else {
                    a.follow_ups
                },
                facts.owner.clone(),
            ),
        }
    }

    /// Whether a change from `before` to `after` is a change of classification
    /// (a history row), not just of its inputs.
    fn is_reclassification(&self, before: &Output, after: &Output) -> bool {
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

    fn evaluate(&self, entry: &mut Entry, rules: &Rules, on: NaiveDate, seq: i64) {
        let after = self.output(assess(&entry.facts, rules, on), &entry.facts);
        let version_changed = entry.rules_version.as_deref() != Some(rules.version());
        if after != entry.output || version_changed {
            if self.is_reclassification(&entry.output, &after) {
                entry.history.push((seq, after.clone(), on));
            }
            if entry.output.list_part() != after.list_part() {
                entry.list_dirty = true;
            }
            entry.output = after;
            entry.rules_version = Some(rules.version().to_owned());
            // The date of the evaluation that produced the stored output: set
            // only with it, or it would depend on where batches end.
            entry.evaluated_on = on;
            entry.output_dirty = true;
        }
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
            None => Clock {
                evaluated_on: None,
                rules_seq: 0,
                rules_version: None,
                rules_text: None,
            },
            Some(r) => Clock {
                evaluated_on: r.get("evaluated_on"),
                rules_seq: r.get::<Option<i64>, _>("rules_seq").unwrap_or(0),
                rules_version: r.get("rules_version"),
                rules_text: r.get("rules_text"),
            },
        })
    }

    async fn save_clock(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        c: &Clock,
    ) -> Result<(), ProjectionError> {
        sqlx::query(
            "INSERT INTO insight_state (projection, evaluated_on, rules_version, rules_text, rules_seq)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (projection) DO UPDATE SET evaluated_on = excluded.evaluated_on,
                 rules_version = excluded.rules_version, rules_text = excluded.rules_text,
                 rules_seq = excluded.rules_seq",
        )
        .bind(self.aspect.name())
        .bind(c.evaluated_on)
        .bind(&c.rules_version)
        .bind(&c.rules_text)
        .bind(c.rules_seq)
        .execute(&mut **tx)
        .await?;
        Ok(())
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
            "SELECT customer_id, facts::text AS facts FROM insight_facts
             WHERE projection = $1 AND customer_id = ANY($2)",
        )
        .bind(self.aspect.name())
        .bind(&missing)
        .fetch_all(&mut **tx)
        .await?
        {
            let id: Uuid = r.get("customer_id");
            let facts: Facts = serde_json::from_str(r.get::<&str, _>("facts")).map_err(|e| {
                ProjectionError::BadEvent {
                    seq: 0,
                    reason: format!("stored facts of {id} do not parse: {e}"),
                }
            })?;
            let (output, rules_version, evaluated_on) =
                outputs
                    .remove(&id)
                    .unwrap_or((Output::None, None, NaiveDate::MIN));
            entries.insert(
                id,
                Entry {
                    facts,
                    facts_dirty: false,
                    output,
                    rules_version,
                    output_dirty: false,
                    list_dirty: false,
                    history: Vec::new(),
                    evaluated_on,
                },
            );
        }
        for id in missing {
            entries.entry(id).or_insert_with(|| Entry {
                facts: Facts::default(),
                facts_dirty: false,
                output: Output::None,
                rules_version: None,
                output_dirty: false,
                list_dirty: false,
                history: Vec::new(),
                evaluated_on: NaiveDate::MIN,
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
        let bad = |e: String| ProjectionError::BadEvent {
            seq: 0,
            reason: format!("stored read model does not parse: {e}"),
        };
        match self.aspect {
            Aspect::Tier => {
                for r in sqlx::query("SELECT customer_id, state::text AS state, rules_version, evaluated_on FROM customer_tier WHERE customer_id = ANY($1)")
                    .bind(ids).fetch_all(&mut **tx).await?
                {
                    let t: Tier = serde_json::from_str(r.get::<&str, _>("state")).map_err(|e| bad(e.to_string()))?;
                    out.insert(r.get("customer_id"), (Output::Tier(t), r.get("rules_version"), r.get("evaluated_on")));
                }
            }
            Aspect::Risk => {
                for r in sqlx::query("SELECT customer_id, state::text AS state, rules_version, evaluated_on FROM customer_risk WHERE customer_id = ANY($1)")
                    .bind(ids).fetch_all(&mut **tx).await?
                {
                    let t: Risk = serde_json::from_str(r.get::<&str, _>("state")).map_err(|e| bad(e.to_string()))?;
                    out.insert(r.get("customer_id"), (Output::Risk(t), r.get("rules_version"), r.get("evaluated_on")));
                }
            }
            Aspect::FollowUps => {
                for r in sqlx::query("SELECT customer_id, state::text AS state, rules_version, evaluated_on FROM follow_up_state WHERE customer_id = ANY($1)")
                    .bind(ids).fetch_all(&mut **tx).await?
                {
                    let v: (Vec<FollowUp>, Option<String>) = serde_json::from_str(r.get::<&str, _>("state")).map_err(|e| bad(e.to_string()))?;
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
            self.flush(tx, &mut entries, rules, list).await?;
            after = last;
        }
    }

    /// Writes changed facts, outputs and history rows, collects changed list
    /// facets in `list` (written once, at the end of the batch), and empties
    /// `entries`.
    async fn flush(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        entries: &mut HashMap<Uuid, Entry>,
        rules: &Rules,
        list: &mut BTreeMap<Uuid, ListPart>,
    ) -> Result<(), ProjectionError> {
        let name = self.aspect.name();
        let version = rules.version().to_owned();
        let (mut f_ids, mut f_docs) = (Vec::new(), Vec::new());
        let mut rows: Vec<(Uuid, &Output, NaiveDate)> = Vec::new();
        let mut history: Vec<(Uuid, i64, &Output, NaiveDate)> = Vec::new();
        for (id, e) in entries.iter() {
            if e.facts_dirty {
                f_ids.push(*id);
                f_docs.push(serde_json::to_string(&e.facts).map_err(|e| {
                    ProjectionError::BadEvent {
                        seq: 0,
                        reason: format!("facts do not serialise: {e}"),
                    }
                })?);
            }
            if e.output_dirty {
                rows.push((*id, &e.output, e.evaluated_on));
            }
            if e.list_dirty && self.list_keeper().is_some() {
                list.insert(*id, e.output.list_part());
            }
            for (seq, o, on) in &e.history {
                history.push((*id, *seq, o, *on));
            }
        }
        if !f_ids.is_empty() {
            sqlx::query(
                "INSERT INTO insight_facts (projection, customer_id, facts)
                 SELECT $1, id, f::jsonb FROM unnest($2::uuid[], $3::text[]) AS t(id, f)
                 ON CONFLICT (projection, customer_id) DO UPDATE SET facts = excluded.facts",
            )
            .bind(name)
            .bind(&f_ids)
            .bind(&f_docs)
            .execute(&mut **tx)
            .await?;
        }
        match self.aspect {
            Aspect::Tier => write_tiers(tx, &rows, &history, &version).await?,
            Aspect::Risk => write_risks(tx, &rows, &history, &version).await?,
            Aspect::FollowUps => write_follow_ups(tx, &rows, &version).await?,
        }
        entries.clear();
        Ok(())
    }
}

/// The projector's date only moves forward: the latest of the evaluation
/// runs and of the business dates of the events applied so far.
fn advance(clock: &mut Clock, date: NaiveDate) {
    clock.evaluated_on = Some(clock.evaluated_on.map_or(date, |d| d.max(date)));
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// The seq of the last history row of each customer written in this flush,
/// or else the row's stored `changed_seq` is kept.
fn changed_seq(history: &[(Uuid, i64, &Output, NaiveDate)], id: Uuid) -> Option<i64> {
    history.iter().filter(|h| h.0 == id).map(|h| h.1).max()
}

async fn write_tiers(
    tx: &mut Transaction<'static, Postgres>,
    rows: &[(Uuid, &Output, NaiveDate)],
    history: &[(Uuid, i64, &Output, NaiveDate)],
    version: &str,
) -> Result<(), ProjectionError> {
    let mut c = TierCols::default();
    for (id, o, on) in rows {
        let Output::Tier(t) = o else { continue };
        c.push(*id, t, *on, changed_seq(history, *id));
    }
    sqlx::query(
        "INSERT INTO customer_tier (customer_id, value_tier, importance, importance_source, lifecycle, inputs,
                                    rules_version, evaluated_on, changed_seq, state)
         SELECT id, vt, imp, src, lc, inp::jsonb, $9, ev, coalesce(cs, 0), st::jsonb
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::date[],
                     $8::bigint[], $10::text[]) AS t(id, vt, imp, src, lc, inp, ev, cs, st)
         ON CONFLICT (customer_id) DO UPDATE SET value_tier = excluded.value_tier,
             importance = excluded.importance, importance_source = excluded.importance_source,
             lifecycle = excluded.lifecycle, inputs = excluded.inputs, rules_version = excluded.rules_version,
             evaluated_on = excluded.evaluated_on, state = excluded.state,
             changed_seq = CASE WHEN excluded.changed_seq > 0 THEN excluded.changed_seq ELSE customer_tier.changed_seq END",
    )
    .bind(&c.id).bind(&c.tier).bind(&c.importance).bind(&c.source).bind(&c.lifecycle).bind(&c.inputs)
    .bind(&c.on).bind(&c.changed).bind(version).bind(&c.state)
    .execute(&mut **tx)
    .await?;
    let mut h = TierCols::default();
    for (id, seq, o, on) in history {
        let Output::Tier(t) = o else { continue };
        h.push(*id, t, *on, Some(*seq));
    }
    sqlx::query(
        "INSERT INTO customer_tier_history (customer_id, seq, value_tier, importance, importance_source, lifecycle,
                                            inputs, rules_version, evaluated_on)
         SELECT id, cs, vt, imp, src, lc, inp::jsonb, $9, ev
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::date[],
                     $8::bigint[]) AS t(id, vt, imp, src, lc, inp, ev, cs)",
    )
    .bind(&h.id).bind(&h.tier).bind(&h.importance).bind(&h.source).bind(&h.lifecycle).bind(&h.inputs)
    .bind(&h.on).bind(&h.changed).bind(version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Default)]
struct TierCols {
    id: Vec<Uuid>,
    tier: Vec<String>,
    importance: Vec<String>,
    source: Vec<String>,
    lifecycle: Vec<String>,
    inputs: Vec<String>,
    on: Vec<NaiveDate>,
    changed: Vec<Option<i64>>,
    state: Vec<String>,
}

impl TierCols {
    fn push(&mut self, id: Uuid, t: &Tier, on: NaiveDate, changed: Option<i64>) {
        self.id.push(id);
        self.tier.push(t.value_tier.as_str().to_owned());
        self.importance.push(t.importance.as_str().to_owned());
        self.source.push(t.importance_source.as_str().to_owned());
        self.lifecycle.push(t.lifecycle.as_str().to_owned());
        self.inputs.push(to_json(&t.inputs));
        self.on.push(on);
        self.changed.push(changed);
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

async fn write_risks(
    tx: &mut Transaction<'static, Postgres>,
    rows: &[(Uuid, &Output, NaiveDate)],
    history: &[(Uuid, i64, &Output, NaiveDate)],
    version: &str,
) -> Result<(), ProjectionError> {
    let (mut id, mut level, mut rank, mut signals, mut reasons, mut on, mut changed, mut state) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for (i, o, d) in rows {
        let Output::Risk(r) = o else { continue };
        id.push(*i);
        level.push(r.level.as_str().to_owned());
        rank.push(r.level as i16);
        let s: Vec<&str> = r.reasons.iter().map(|x| x.signal.as_str()).collect();
        signals.push(s.join(","));
        reasons.push(reasons_json(r));
        on.push(*d);
        changed.push(changed_seq(history, *i));
        state.push(to_json(r));
    }
    sqlx::query(
        "INSERT INTO customer_risk (customer_id, level, level_rank, signals, reasons, rules_version, evaluated_on,
                                    changed_seq, state)
         SELECT id, lv, rk, CASE WHEN sg = '' THEN '{}'::text[] ELSE string_to_array(sg, ',') END, rs::jsonb, $9, ev,
                coalesce(cs, 0), st::jsonb
         FROM unnest($1::uuid[], $2::text[], $3::smallint[], $4::text[], $5::text[], $6::date[], $7::bigint[],
                     $8::text[]) AS t(id, lv, rk, sg, rs, ev, cs, st)
         ON CONFLICT (customer_id) DO UPDATE SET level = excluded.level, level_rank = excluded.level_rank,
             signals = excluded.signals, reasons = excluded.reasons, rules_version = excluded.rules_version,
             evaluated_on = excluded.evaluated_on, state = excluded.state,
             changed_seq = CASE WHEN excluded.changed_seq > 0 THEN excluded.changed_seq ELSE customer_risk.changed_seq END",
    )
    .bind(&id).bind(&level).bind(&rank).bind(&signals).bind(&reasons).bind(&on).bind(&changed).bind(&state)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    let (mut hid, mut hseq, mut hlevel, mut hreasons, mut hon) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (i, seq, o, d) in history {
        let Output::Risk(r) = o else { continue };
        hid.push(*i);
        hseq.push(*seq);
        hlevel.push(r.level.as_str().to_owned());
        hreasons.push(reasons_json(r));
        hon.push(*d);
    }
    sqlx::query(
        "INSERT INTO customer_risk_history (customer_id, seq, level, reasons, rules_version, evaluated_on)
         SELECT id, sq, lv, rs::jsonb, $6, ev
         FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::date[]) AS t(id, sq, lv, rs, ev)",
    )
    .bind(&hid).bind(&hseq).bind(&hlevel).bind(&hreasons).bind(&hon).bind(version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn write_follow_ups(
    tx: &mut Transaction<'static, Postgres>,
    rows: &[(Uuid, &Output, NaiveDate)],
    version: &str,
) -> Result<(), ProjectionError> {
    let (mut sid, mut sstate, mut son) = (vec![], vec![], vec![]);
    let (mut id, mut kind, mut owner, mut due, mut urgency, mut detail, mut evidence, mut on) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for (i, o, d) in rows {
        let Output::FollowUps(list, who) = o else {
            continue;
        };
        sid.push(*i);
        sstate.push(to_json(&(list, who)));
        son.push(*d);
        for f in list {
            id.push(*i);
            kind.push(f.kind.as_str().to_owned());
            owner.push(who.clone());
            due.push(f.due_on);
            urgency.push(f.urgency);
            detail.push(f.detail.clone());
            evidence.push(
                f.evidence
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
            on.push(*d);
        }
    }
    sqlx::query("DELETE FROM follow_ups WHERE customer_id = ANY($1)")
        .bind(&sid)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO follow_ups (customer_id, kind, owner, due_on, urgency, detail, evidence, rules_version, evaluated_on)
         SELECT id, k, o, d, u, dt, CASE WHEN ev = '' THEN '{}'::bigint[] ELSE string_to_array(ev, ',')::bigint[] END,
                $9, eo
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::date[], $5::int[], $6::text[], $7::text[], $8::date[])
              AS t(id, k, o, d, u, dt, ev, eo)",
    )
    .bind(&id).bind(&kind).bind(&owner).bind(&due).bind(&urgency).bind(&detail).bind(&evidence).bind(&on)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO follow_up_state (customer_id, state, rules_version, evaluated_on)
         SELECT id, st::jsonb, $4, eo FROM unnest($1::uuid[], $2::text[], $3::date[]) AS t(id, st, eo)
         ON CONFLICT (customer_id) DO UPDATE SET state = excluded.state, evaluated_on = excluded.evaluated_on,
             rules_version = excluded.rules_version",
    )
    .bind(&sid).bind(&sstate).bind(&son).bind(version)
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
        let mut clock = self.load_clock(tx).await?;
        let mut rules = self.rules(&clock)?;
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
        let mut entries: HashMap<Uuid, Entry> = HashMap::new();
        let mut list = BTreeMap::new();
        self.load_entries(tx, &ids, &mut entries).await?;
        for e in events {
            let r = &e.record;
            if r.stream_id == SYSTEM_STREAM {
                let bad = |reason: String| ProjectionError::BadEvent { seq: r.seq, reason };
                let sys = decode_system(&r.event_type, r.schema_version, r.payload.clone())
                    .map_err(|e| bad(e.to_string()))?;
                // Everything before this event is written first: the run
                // below reads the customers from the tables.
                self.flush(tx, &mut entries, &rules, &mut list).await?;
                match sys {
                    SystemEvent::EvaluationDate { date } => advance(&mut clock, date),
                    SystemEvent::RulesAdopted { version, text, .. } => {
                        clock.rules_seq = r.seq;
                        clock.rules_version = Some(version);
                        clock.rules_text = Some(text);
                        rules = self.rules(&clock)?;
                    }
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
            advance(&mut clock, on);
            let entry = entries.get_mut(&r.stream_id).expect("loaded above");
            entry.facts.apply(r.seq, on, &event);
            entry.facts_dirty = true;
            self.evaluate(entry, &rules, on, r.seq);
        }
        self.flush(tx, &mut entries, &rules, &mut list).await?;
        if let Some(keeper) = self.list_keeper() {
            write_list_parts(tx, keeper, &list).await?;
        }
        self.save_clock(tx, &clock).await?;
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
        if let Some(keeper) = self.list_keeper() {
            clear_columns(tx, keeper).await?;
        }
        *self.rules_cache.lock().expect("rules cache poisoned") = None;
        Ok(())
    }
}
