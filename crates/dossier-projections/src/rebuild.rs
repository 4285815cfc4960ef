//! A full rebuild of every read model at once. The incremental projectors
//! each read, decode and apply every event on their own and write batch by
//! batch into indexed tables; from scratch that is ~10k events/s. Here the
//! log is read once (one snapshot, binary COPY), every event is decoded
//! once and folded in memory into all four models (one assessment per
//! evaluation serves tier, risk and follow-ups), and the result replaces the
//! tables in one transaction: truncated, written in large sorted batches
//! with the secondary indexes dropped, indexes built again at the end.
//!
//! The fold applies exactly the projectors' code (`Tracked::apply`,
//! `Facts::apply`, `Aspect::settle`, the same row writers; only
//! `customer_list` rows are written whole, once, instead of by three
//! keepers), so the tables come out row for row as an incremental rebuild
//! leaves them (tested).
//!
//! Readers wait during the final transaction (TRUNCATE locks the tables)
//! and then see the new models whole, never a half-built one. Running
//! projectors wait on their checkpoint rows, locked for the whole rebuild,
//! and go on from the rebuilt head. Needs the database owner's rights
//! (TRUNCATE, DROP/CREATE INDEX) and memory for every customer's state
//! (docs/operations.md).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use dossier_events::{decode_system, SYSTEM_STREAM};
use dossier_insights::{assess, business_date, Facts, Rules};
use dossier_seal::DataKey;
use dossier_store::{Keyring, LogScan, Store};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::current::{domain_event, write_rows, Cols, Tracked};
use crate::insight::{
    facts_json, write_clock, write_facts, Aspect, Clock, Output, OutputBatch, Slot,
};
use crate::list::{insert_list_rows, write_search_rows, ListRows};
use crate::{ProjectionError, NAMES};

/// Every table the projections write; a full rebuild replaces them all.
const TABLES: &[&str] = &[
    "customer_current",
    "customer_list",
    "customer_search",
    "customer_tier",
    "customer_tier_history",
    "customer_risk",
    "customer_risk_history",
    "follow_ups",
    "follow_up_state",
    "insight_facts",
    "insight_state",
];

/// Customers written per statement.
const WRITE_CHUNK: usize = 5_000;

/// What a full rebuild did.
#[derive(Clone, Debug)]
pub struct RebuildReport {
    /// The log head the models were rebuilt to (their checkpoint).
    pub head: i64,
    pub customers: usize,
    /// Reading and folding the log.
    pub fold: Duration,
    /// Writing the tables and building their indexes.
    pub write: Duration,
    /// Where the write phase went: each table's statements, each index
    /// build, the wait for prepared rows, and the rest.
    pub write_parts: Vec<(String, Duration)>,
}

impl RebuildReport {
    /// The write phase's twelve largest parts, largest first, in seconds:
    /// "index customer_search_terms 97.60, rows insight_facts 63.30, ...".
    pub fn write_summary(&self) -> String {
        let mut parts: Vec<&(String, Duration)> = self.write_parts.iter().collect();
        parts.sort_by_key(|p| std::cmp::Reverse(p.1));
        parts
            .iter()
            .take(12)
            .map(|(n, d)| format!("{n} {:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Time spent per named part, in first-seen order.
#[derive(Default)]
struct Parts(Vec<(String, Duration)>);

impl Parts {
    fn add(&mut self, name: &str, since: Instant) -> Instant {
        let now = Instant::now();
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, d)) => *d += now - since,
            None => self.0.push((name.to_owned(), now - since)),
        }
        now
    }
}

/// One customer, folded.
struct Folded {
    current: Tracked,
    /// The facts as follow-ups keep them (the birthday opened); tier and risk
    /// keep the same without the birthday, which they cannot open.
    facts: Facts,
    slots: [Slot; 3],
}

/// The whole book, folded.
struct Book {
    customers: HashMap<Uuid, Folded>,
    clock: Clock,
    rules: Rules,
}

/// Evaluates a customer once for all three insight models.
fn evaluate(c: &mut Folded, rules: &Rules, on: NaiveDate, seq: i64) {
    let a = assess(&c.facts, rules, on);
    for (aspect, slot) in Aspect::ALL.into_iter().zip(c.slots.iter_mut()) {
        aspect.settle(slot, aspect.output(&a, &c.facts), rules.version(), on, seq);
    }
}

/// Rebuilds every read model from the log (see the module comment). `store`
/// must be connected as the database owner. `progress` gets (events folded,
/// head) now and then.
pub async fn rebuild_all(
    store: &Store,
    keyring: &Keyring,
    progress: impl FnMut(i64, i64) + Send + 'static,
) -> Result<RebuildReport, ProjectionError> {
    let names: Vec<String> = NAMES.iter().map(|n| (*n).to_owned()).collect();
    // Committed first, so that a projector's `FOR UPDATE` always finds a row.
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, seq) SELECT unnest($1::text[]), 0
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(&names)
    .execute(store.pool())
    .await?;
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "SELECT name FROM projection_checkpoints WHERE name = ANY($1) ORDER BY name FOR UPDATE",
    )
    .bind(&names)
    .fetch_all(&mut *tx)
    .await?;

    let started = Instant::now();
    let scan = store.scan_events().await?;
    let head = scan.head;
    // After the snapshot: every key its events need is committed by now.
    let keys = keyring.all_keys_for_read(store).await?;
    let book = tokio::task::spawn_blocking(move || fold(scan, &keys, progress))
        .await
        .map_err(|e| ProjectionError::BadEvent {
            seq: 0,
            reason: format!("the fold failed: {e}"),
        })??;
    let fold_time = started.elapsed();

    let started = Instant::now();
    let customers = book.customers.len();
    let mut parts = Parts::default();
    replace_tables(&mut tx, book, head, &names, &mut parts).await?;
    let t = Instant::now();
    tx.commit().await?;
    let mut t = parts.add("commit", t);
    for table in TABLES {
        // Constant names; fresh statistics for the planner.
        sqlx::query(&format!("ANALYZE {table}"))
            .execute(store.pool())
            .await?;
        t = parts.add("analyze", t);
    }
    Ok(RebuildReport {
        head,
        customers,
        fold: fold_time,
        write: started.elapsed(),
        write_parts: parts.0,
    })
}

/// Folds the whole log into a book, in seq order.
fn fold(
    mut scan: LogScan,
    keys: &HashMap<Uuid, Option<DataKey>>,
    mut progress: impl FnMut(i64, i64),
) -> Result<Book, ProjectionError> {
    let mut book = Book {
        customers: HashMap::new(),
        clock: Clock::start(),
        rules: Rules::defaults(),
    };
    let head = scan.head;
    while let Some(chunk) = scan.blocking_next() {
        for e in chunk? {
            let r = &e.record;
            if r.stream_id == SYSTEM_STREAM {
                let sys = decode_system(&r.event_type, r.schema_version, r.payload.clone())
                    .map_err(|err| ProjectionError::BadEvent {
                        seq: r.seq,
                        reason: err.to_string(),
                    })?;
                if book.clock.take(r.seq, sys) {
                    book.rules = book.clock.parse_rules()?;
                }
                if let Some(on) = book.clock.evaluated_on {
                    for c in book.customers.values_mut() {
                        evaluate(c, &book.rules, on, r.seq);
                    }
                }
                continue;
            }
            let key = keys.get(&r.stream_id).and_then(Option::as_ref);
            let (event, erased) = domain_event(&e, key)?;
            let on = business_date(&book.rules, r.recorded_at.get());
            book.clock.advance(on);
            let c = book.customers.entry(r.stream_id).or_insert_with(|| Folded {
                current: Tracked::new(&e),
                facts: Facts::default(),
                slots: [Slot::empty(), Slot::empty(), Slot::empty()],
            });
            c.current.apply(&e, &event, erased);
            c.facts.apply(r.seq, on, &event);
            evaluate(c, &book.rules, on, r.seq);
            if r.seq % 65_536 == 0 {
                progress(r.seq, head);
            }
        }
    }
    progress(head, head);
    Ok(book)
}

/// Replaces the read-model tables with the book and sets the checkpoints
/// of the projections `names` to `head`, inside `tx`.
async fn replace_tables(
    tx: &mut Transaction<'static, Postgres>,
    book: Book,
    head: i64,
    names: &[String],
    parts: &mut Parts,
) -> Result<(), ProjectionError> {
    let t = Instant::now();
    let tables: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
    // Secondary indexes (not those of constraints) are dropped while the
    // rows go in and built again from their own definitions at the end.
    let indexes: Vec<(String, String)> = sqlx::query(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
         FROM pg_index i
         WHERE i.indrelid IN (SELECT unnest($1::text[])::regclass)
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
    )
    .bind(&tables)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|r| (r.get("name"), r.get("def")))
    .collect();
    sqlx::query("SET LOCAL maintenance_work_mem = '512MB'")
        .execute(&mut **tx)
        .await?;
    // Names from the catalog and the constant list above, never input.
    sqlx::query(&format!("TRUNCATE {}", TABLES.join(", ")))
        .execute(&mut **tx)
        .await?;
    for (name, _) in &indexes {
        sqlx::query(&format!("DROP INDEX {name}"))
            .execute(&mut **tx)
            .await?;
    }

    let mut t = parts.add("truncate and drop indexes", t);
    let Book {
        customers, clock, ..
    } = book;
    let mut customers: Vec<(Uuid, Folded)> = customers.into_iter().collect();
    customers.sort_unstable_by_key(|(id, _)| *id);
    // A thread prepares the next chunks (column arrays, JSON documents)
    // while the database writes this one; each chunk's state is freed once
    // prepared.
    let (send, mut prepared) = tokio::sync::mpsc::channel(2);
    let producer = tokio::task::spawn_blocking(move || {
        let mut rest = customers.into_iter();
        loop {
            let chunk: Vec<(Uuid, Folded)> = rest.by_ref().take(WRITE_CHUNK).collect();
            if chunk.is_empty() || send.blocking_send(prepare_chunk(&chunk)).is_err() {
                return;
            }
        }
    });
    while let Some(chunk) = prepared.recv().await {
        t = parts.add("waiting for prepared rows", t);
        t = write_chunk(tx, &chunk?, parts, t).await?;
    }
    producer.await.map_err(|e| ProjectionError::BadEvent {
        seq: 0,
        reason: format!("preparing the rows failed: {e}"),
    })?;
    for aspect in Aspect::ALL {
        write_clock(tx, aspect, &clock).await?;
    }

    for (name, def) in &indexes {
        t = parts.add("other", t);
        sqlx::query(def).execute(&mut **tx).await?;
        t = parts.add(&format!("index {name}"), t);
    }
    // The claims of projected customers are answered by the read model now.
    sqlx::query(
        "DELETE FROM duplicate_claims c
         WHERE EXISTS (SELECT 1 FROM customer_current cc WHERE cc.customer_id = c.customer_id)",
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE projection_checkpoints SET seq = $1, updated_at = now() WHERE name = ANY($2)",
    )
    .bind(head)
    .bind(names)
    .execute(&mut **tx)
    .await?;
    parts.add("other", t);
    Ok(())
}

/// One chunk's writes as owned column arrays.
struct PreparedChunk {
    current: Cols,
    ids: Vec<Uuid>,
    /// The facts as follow-ups keep them, and as tier and risk do.
    facts_open: Vec<String>,
    facts_sealed: Vec<String>,
    outputs: Vec<OutputBatch>,
    list: ListRows,
}

/// Prepares the writes of one chunk of customers (in customer_id order).
fn prepare_chunk(chunk: &[(Uuid, Folded)]) -> Result<PreparedChunk, ProjectionError> {
    let mut current = Cols::default();
    for (id, c) in chunk {
        current.push(*id, &c.current);
    }
    let ids: Vec<Uuid> = chunk.iter().map(|(id, _)| *id).collect();
    let mut facts_open = Vec::with_capacity(chunk.len());
    let mut facts_sealed = Vec::with_capacity(chunk.len());
    for (_, c) in chunk {
        facts_open.push(facts_json(&c.facts)?);
        let mut sealed = c.facts.clone();
        sealed.birthday = None;
        facts_sealed.push(facts_json(&sealed)?);
    }
    let mut outputs = Vec::with_capacity(3);
    for (i, aspect) in Aspect::ALL.into_iter().enumerate() {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut history = Vec::new();
        for (id, c) in chunk {
            rows.push(c.slots[i].out_row(*id));
            history.extend(c.slots[i].history_rows(*id));
        }
        outputs.push(OutputBatch::prepare(aspect, &rows, &history));
    }
    // Each list row once, with every keeper's columns.
    let part = |slot: &Slot| (slot.output != Output::None).then(|| slot.output.list_part());
    let mut list = ListRows::default();
    let mut next = 0;
    for (id, c) in chunk {
        // `current` holds the registered customers of the chunk, in its order.
        let cols = (current.id_at(next) == Some(*id)).then(|| {
            next += 1;
            current.list_cols(next - 1)
        });
        list.push(*id, cols, part(&c.slots[0]), part(&c.slots[1]));
    }
    Ok(PreparedChunk {
        current,
        ids,
        facts_open,
        facts_sealed,
        outputs,
        list,
    })
}

/// Writes one prepared chunk to every table; returns when it finished.
async fn write_chunk(
    tx: &mut Transaction<'static, Postgres>,
    chunk: &PreparedChunk,
    parts: &mut Parts,
    t: Instant,
) -> Result<Instant, ProjectionError> {
    write_rows(tx, &chunk.current, false).await?;
    let t = parts.add("rows customer_current", t);
    write_search_rows(tx, chunk.current.search()).await?;
    let mut t = parts.add("rows customer_search", t);
    for aspect in Aspect::ALL {
        let docs = if aspect == Aspect::FollowUps {
            &chunk.facts_open
        } else {
            &chunk.facts_sealed
        };
        write_facts(tx, aspect, &chunk.ids, docs).await?;
        t = parts.add("rows insight_facts", t);
    }
    for (batch, aspect) in chunk.outputs.iter().zip(Aspect::ALL) {
        batch.write(tx, true).await?;
        t = parts.add(&format!("rows {} (and history)", aspect.name()), t);
    }
    insert_list_rows(tx, &chunk.list).await?;
    Ok(parts.add("rows customer_list", t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_add_up_by_name_and_the_summary_lists_the_largest_first() {
        let mut parts = Parts::default();
        let t = Instant::now();
        parts.add("rows a", t);
        parts.add("rows b", t);
        parts.add("rows a", t);
        assert_eq!(
            parts.0.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["rows a", "rows b"]
        );
        let ms = Duration::from_millis;
        let report = RebuildReport {
            head: 0,
            customers: 0,
            fold: ms(0),
            write: ms(0),
            write_parts: (0..14).map(|i| (format!("p{i}"), ms(10 * i))).collect(),
        };
        let summary = report.write_summary();
        assert!(
            summary.starts_with("p13 0.13, p12 0.12, p11 0.11"),
            "{summary}"
        );
        assert_eq!(summary.split(", ").count(), 12);
        assert!(!summary.contains("p1 "), "{summary}");
    }
}
