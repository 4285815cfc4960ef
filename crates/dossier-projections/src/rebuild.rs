//! A full rebuild of every read model at once. The incremental projectors
//! each read, decode and apply every event on their own and write batch by
//! batch into indexed tables; from scratch that is ~10k events/s. Here the
//! log is read once (one snapshot, binary COPY), every event is decoded
//! once and folded in memory into all four models (one assessment per
//! evaluation serves tier, risk and follow-ups). The result is written
//! into new copies of the tables in a schema of their own
//! (`dossier_rebuild`), on two connections at once, in large sorted
//! batches with only the primary keys in place; their secondary indexes are
//! built and their statistics gathered there, two at a time. One short
//! transaction then drops the old tables and moves the new ones in.
//!
//! The fold applies exactly the projectors' code (`Tracked::apply`,
//! `Facts::apply`, `Aspect::settle`, the same row writers; only
//! `customer_list` rows are written whole, once, instead of by three
//! keepers), so the tables come out row for row as an incremental rebuild
//! leaves them (tested).
//!
//! The running projectors keep applying new events to the live tables
//! throughout; what they applied after the snapshot is then applied to the
//! new tables with the projectors' own code, in rounds while they run and
//! finally with them paused on their checkpoint rows, right before the swap,
//! which sets their checkpoints to that head. Readers keep reading the old
//! tables until the swap, wait for it (at most a quarter of
//! `deadlock_timeout`, see [`swap`]), and then see the new models whole,
//! never a half-built one. Needs the database owner's rights (CREATE
//! SCHEMA, DROP TABLE), room on disk for a second copy of the read models
//! while it runs, and memory for every customer's state
//! (docs/operations.md).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use dossier_events::{decode_system, SYSTEM_STREAM};
use dossier_insights::{assess, business_date, Facts, Rules};
use dossier_seal::DataKey;
use dossier_store::{Keyring, LogScan, Store};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Acquire, Postgres, Row, Transaction};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::current::{domain_event, write_rows, Cols, Tracked};
use crate::insight::{
    facts_json, write_clock, write_facts, Aspect, Clock, Output, OutputBatch, Slot,
};
use crate::list::{insert_list_rows, write_search_rows, ListRows};
use crate::{by_name, AnyProjection, CustomerCurrent, Projection, ProjectionError, NAMES};

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
    /// The head of the snapshot folded; the events after it, up to `head`,
    /// were appended during the rebuild and applied afterwards.
    pub snapshot: i64,
    pub customers: usize,
    /// Reading and folding the log.
    pub fold: Duration,
    /// Writing the tables and building their indexes.
    pub write: Duration,
    /// Where the write phase went: each table's statements, each index
    /// build, the wait for prepared rows, the swap, and the rest. Parts done
    /// on several connections at once add up their connection time, so
    /// they can sum to more than `write`.
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
    /// Adds up what `workers` (running at once) report, so a part's time
    /// is connection time, not wall time.
    async fn join(
        &mut self,
        mut workers: JoinSet<Result<Parts, ProjectionError>>,
    ) -> Result<(), ProjectionError> {
        while let Some(done) = workers.join_next().await {
            let theirs =
                done.map_err(|e| ProjectionError::Rebuild(format!("a writer failed: {e}")))??;
            for (name, d) in theirs.0 {
                self.add_time(&name, d);
            }
        }
        Ok(())
    }

    fn add_time(&mut self, name: &str, d: Duration) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, total)) => *total += d,
            None => self.0.push((name.to_owned(), d)),
        }
    }

    fn add(&mut self, name: &str, since: Instant) -> Instant {
        let now = Instant::now();
        self.add_time(name, now - since);
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
/// must be connected as the database owner, with a pool of at least
/// `WRITERS + 2` connections. `progress` gets (events folded, snapshot head)
/// now and then. One full rebuild runs at a time (a second one fails at
/// once).
pub async fn rebuild_all(
    store: &Store,
    keyring: &Keyring,
    progress: impl FnMut(i64, i64) + Send + 'static,
) -> Result<RebuildReport, ProjectionError> {
    // Held on a connection of its own, outside the pool, until the end.
    let mut guard = store.pool().acquire().await?.detach();
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(crate::lock_key(SHADOW))
        .fetch_one(&mut guard)
        .await?;
    if !got {
        return Err(ProjectionError::Rebuild(
            "another full rebuild is running on this database".to_owned(),
        ));
    }
    let rebuilt = rebuild_alone(store, keyring, progress).await;
    let _ = sqlx::Connection::close(guard).await;
    rebuilt
}

async fn rebuild_alone(
    store: &Store,
    keyring: &Keyring,
    progress: impl FnMut(i64, i64) + Send + 'static,
) -> Result<RebuildReport, ProjectionError> {
    let started = Instant::now();
    let scan = store.scan_events().await?;
    let snapshot = scan.head;
    // After the snapshot: every key its events need is committed by now.
    let keys = keyring.all_keys_for_read(store).await?;
    let book = tokio::task::spawn_blocking(move || fold(scan, &keys, progress))
        .await
        .map_err(|e| ProjectionError::Rebuild(format!("the fold failed: {e}")))??;
    let fold_time = started.elapsed();

    let started = Instant::now();
    let customers = book.customers.len();
    let mut parts = Parts::default();
    let replaced = async {
        let shadow = build_shadow(store.pool(), book, &mut parts).await?;
        replace(store, keyring, &shadow, snapshot, &mut parts).await
    }
    .await;
    let head = match replaced {
        Ok(head) => head,
        Err(e) => {
            drop_shadow(store.pool()).await;
            return Err(e);
        }
    };
    Ok(RebuildReport {
        head,
        snapshot,
        customers,
        fold: fold_time,
        write: started.elapsed(),
        write_parts: parts.0,
    })
}

/// Brings the new tables up to date with what was appended since
/// `snapshot` (the live projectors kept running on the live tables
/// meanwhile), then, with the projectors paused on their checkpoint rows,
/// applies the last events and swaps the tables in; returns the head the
/// models and checkpoints are at.
async fn replace(
    store: &Store,
    keyring: &Keyring,
    shadow: &Shadow,
    snapshot: i64,
    parts: &mut Parts,
) -> Result<i64, ProjectionError> {
    let projectors = catch_up_projectors(store, keyring);
    let mut reached = snapshot;
    // While the projectors run: a few rounds, as long as each has much to do.
    for _ in 0..CATCH_UP_ROUNDS {
        let head = store.head().await?.seq;
        if head - reached < CATCH_UP_ENOUGH {
            break;
        }
        tracing::info!(
            events = head - reached,
            "rebuild: applying what was appended meanwhile"
        );
        let t = Instant::now();
        reached = catch_up(store, &projectors, reached, head).await?;
        parts.add("catching up", t);
    }
    let names: Vec<String> = NAMES.iter().map(|n| (*n).to_owned()).collect();
    // Committed first, so that a projector's `FOR UPDATE` always finds a row.
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, seq) SELECT unnest($1::text[]), 0
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(&names)
    .execute(store.pool())
    .await?;
    let t = Instant::now();
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "SELECT name FROM projection_checkpoints WHERE name = ANY($1) ORDER BY name FOR UPDATE",
    )
    .bind(&names)
    .fetch_all(&mut *tx)
    .await?;
    // The projectors wait from here on; nothing they could still apply
    // lies beyond this head.
    let head = store.head().await?.seq;
    reached = catch_up(store, &projectors, reached, head).await?;
    parts.add("catching up (projectors paused)", t);
    swap(&mut tx, shadow, reached, &names, parts).await?;
    let t = Instant::now();
    tx.commit().await?;
    parts.add("commit", t);
    Ok(reached)
}

/// Rounds of catching up while the projectors run, and the backlog below
/// which the paused round takes over.
const CATCH_UP_ROUNDS: usize = 4;
const CATCH_UP_ENOUGH: i64 = 2_000;
/// Events per catch-up batch.
const CATCH_UP_BATCH: i64 = 1_000;

/// The projectors' own code, writing into the new tables; claims stay for
/// the live projectors to delete (the swap deletes those the new tables
/// answer).
fn catch_up_projectors(store: &Store, keyring: &Keyring) -> Vec<AnyProjection> {
    NAMES
        .iter()
        .map(|n| match *n {
            "customer_current" => AnyProjection::Current(CustomerCurrent::without_claims(
                store.clone(),
                keyring.clone(),
            )),
            n => by_name(n, keyring.clone(), store.clone()).expect("known name"),
        })
        .collect()
}

/// Applies the events after `after` up to `until` to the new tables, batch
/// by batch, each projection in a transaction of its own; returns the last
/// seq applied.
async fn catch_up(
    store: &Store,
    projectors: &[AnyProjection],
    mut after: i64,
    until: i64,
) -> Result<i64, ProjectionError> {
    while after < until {
        let mut events = store.read_log(after, CATCH_UP_BATCH).await?;
        events.retain(|e| e.record.seq <= until);
        let Some(last) = events.last().map(|e| e.record.seq) else {
            break;
        };
        for p in projectors {
            let mut tx = shadow_tx(store.pool()).await?;
            p.apply(&mut tx, &events).await?;
            tx.commit().await?;
        }
        after = last;
    }
    Ok(after)
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

/// The schema the new tables are built in, beside the ones readers use.
const SHADOW: &str = "dossier_rebuild";

const DROP_SHADOW: &str = "DROP SCHEMA IF EXISTS dossier_rebuild CASCADE";

/// Drops what a failed rebuild built, if it can within seconds (a writer
/// may still hold a lock); the next rebuild drops it in any case.
async fn drop_shadow(pool: &PgPool) {
    let dropped = async {
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL lock_timeout = '10s'")
            .execute(&mut *tx)
            .await?;
        sqlx::query(DROP_SHADOW).execute(&mut *tx).await?;
        tx.commit().await
    };
    if let Err(e) = dropped.await {
        tracing::warn!(error = %e, "the failed rebuild's tables in {SHADOW} stay until the next rebuild");
    }
}

/// Connections writing, indexing and analysing the new tables at once.
const WRITERS: usize = 2;

/// One read-model table and its copy in [`SHADOW`].
struct ShadowTable {
    name: String,
    /// Where readers find it, as PostgreSQL prints it (`public.customer_list`).
    live: String,
    /// The schema of `live`, quoted as needed.
    schema: String,
}

/// The new tables, written, indexed and analysed, ready to replace the old.
struct Shadow {
    tables: Vec<ShadowTable>,
}

/// Builds the new tables in [`SHADOW`]: copies of the live tables' columns,
/// constraints, storage options, owner and grants; the book's rows written
/// on [`WRITERS`] connections at once; then the live tables' secondary
/// indexes and fresh statistics. Readers keep reading the live tables.
async fn build_shadow(
    pool: &PgPool,
    book: Book,
    parts: &mut Parts,
) -> Result<Shadow, ProjectionError> {
    let t = Instant::now();
    let (shadow, indexes) = create_shadow(pool).await?;
    parts.add("create tables", t);
    tracing::info!(
        customers = book.customers.len(),
        "rebuild: the log is folded; writing the new tables in {SHADOW}"
    );

    let Book {
        customers, clock, ..
    } = book;
    let mut customers: Vec<(Uuid, Folded)> = customers.into_iter().collect();
    customers.sort_unstable_by_key(|(id, _)| *id);
    // A thread prepares the next chunks (column arrays, JSON documents)
    // while the writers write; each chunk's state is freed once prepared.
    let (send, prepared) = tokio::sync::mpsc::channel(WRITERS + 1);
    let producer = tokio::task::spawn_blocking(move || {
        let mut rest = customers.into_iter();
        loop {
            let chunk: Vec<(Uuid, Folded)> = rest.by_ref().take(WRITE_CHUNK).collect();
            if chunk.is_empty() || send.blocking_send(prepare_chunk(&chunk)).is_err() {
                return;
            }
        }
    });
    let prepared = Arc::new(tokio::sync::Mutex::new(prepared));
    let mut writers = JoinSet::new();
    for _ in 0..WRITERS {
        let (pool, prepared) = (pool.clone(), prepared.clone());
        writers.spawn(async move {
            let mut parts = Parts::default();
            let mut tx = shadow_tx(&pool).await?;
            let mut t = Instant::now();
            loop {
                let next = prepared.lock().await.recv().await;
                let Some(chunk) = next else { break };
                t = parts.add("waiting for prepared rows", t);
                t = write_chunk(&mut tx, &chunk?, &mut parts, t).await?;
            }
            tx.commit().await?;
            parts.add("commit rows", t);
            Ok(parts)
        });
    }
    parts.join(writers).await?;
    producer
        .await
        .map_err(|e| ProjectionError::Rebuild(format!("preparing the rows failed: {e}")))?;
    let t = Instant::now();
    let mut tx = shadow_tx(pool).await?;
    for aspect in Aspect::ALL {
        write_clock(&mut tx, aspect, &clock).await?;
    }
    tx.commit().await?;
    parts.add("other", t);

    // The largest tables' indexes first (GIN ones before all), so that the
    // connections finish at about the same time.
    let sizes: HashMap<String, i64> = sqlx::query(
        "SELECT c.relname AS name, pg_relation_size(c.oid) AS size
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind = 'r'",
    )
    .bind(SHADOW)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.get("name"), r.get("size")))
    .collect();
    let size = |table: &str| sizes.get(table).copied().unwrap_or(0);
    let mut indexes = indexes;
    indexes.sort_by_key(|i| std::cmp::Reverse((i.def.contains(" USING gin "), size(&i.table))));
    tracing::info!(
        indexes = indexes.len(),
        "rebuild: rows written; building the indexes"
    );
    let statements = indexes
        .into_iter()
        .map(|i| (format!("index {}", i.name), i.def))
        .collect();
    run_on_writers(pool, statements, parts).await?;
    let mut tables: Vec<&ShadowTable> = shadow.tables.iter().collect();
    tables.sort_by_key(|s| std::cmp::Reverse(size(&s.name)));
    let statements = tables
        .iter()
        .map(|s| ("analyze".to_owned(), format!("ANALYZE {SHADOW}.{}", s.name)))
        .collect();
    run_on_writers(pool, statements, parts).await?;
    Ok(shadow)
}

/// A secondary index of a live table, to be built on its new copy.
struct ShadowIndex {
    name: String,
    table: String,
    /// Its definition, naming the copy.
    def: String,
}

/// Creates [`SHADOW`] afresh (dropping what an interrupted rebuild left)
/// with an empty copy of every table in [`TABLES`], its primary key and
/// unique constraints included; returns the secondary indexes to build
/// once the rows are in. Names come from the catalog and [`TABLES`], never
/// from input.
async fn create_shadow(pool: &PgPool) -> Result<(Shadow, Vec<ShadowIndex>), ProjectionError> {
    let mut tx = pool.begin().await?;
    sqlx::query(DROP_SHADOW).execute(&mut *tx).await?;
    sqlx::query(&format!("CREATE SCHEMA {SHADOW}"))
        .execute(&mut *tx)
        .await?;
    let tables: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
    let rows = sqlx::query(
        "SELECT c.oid::int8 AS oid, c.relname AS name, format('%I.%I', n.nspname, c.relname) AS live,
                format('%I', n.nspname) AS schema,
                coalesce(array_to_string(c.reloptions, ', '), '') AS options,
                CASE WHEN c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
                     THEN '' ELSE c.relowner::regrole::text END AS owner
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid IN (SELECT unnest($1::text[])::regclass)
         ORDER BY array_position($1::text[], c.relname::text)",
    )
    .bind(&tables)
    .fetch_all(&mut *tx)
    .await?;
    let mut shadow = Shadow { tables: Vec::new() };
    let mut indexes = Vec::new();
    for r in rows {
        let (oid, name, live): (i64, String, String) = (r.get("oid"), r.get("name"), r.get("live"));
        let copy = format!("{SHADOW}.{name}");
        let mut ddl = vec![format!(
            "CREATE TABLE {copy} (LIKE {live} INCLUDING ALL EXCLUDING INDEXES)"
        )];
        let options: String = r.get("options");
        if !options.is_empty() {
            ddl.push(format!("ALTER TABLE {copy} SET ({options})"));
        }
        let owner: String = r.get("owner");
        if !owner.is_empty() {
            ddl.push(format!("ALTER TABLE {copy} OWNER TO {owner}"));
        }
        // Primary keys and unique constraints: the writers' upserts need them.
        ddl.extend(
            sqlx::query_scalar::<_, String>(
                "SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', $2::text, conname,
                               pg_get_constraintdef(oid))
                 FROM pg_constraint WHERE conrelid = $1::oid AND contype IN ('p', 'u', 'x')
                 ORDER BY conname",
            )
            .bind(oid)
            .bind(&copy)
            .fetch_all(&mut *tx)
            .await?,
        );
        ddl.extend(
            sqlx::query_scalar::<_, String>(
                "SELECT format('GRANT %s ON %s TO %s%s', a.privilege_type, $2::text,
                               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
                               CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
                 FROM pg_class c, aclexplode(c.relacl) a
                 WHERE c.oid = $1::oid AND a.grantee <> c.relowner
                 ORDER BY 1",
            )
            .bind(oid)
            .bind(&copy)
            .fetch_all(&mut *tx)
            .await?,
        );
        for statement in ddl {
            sqlx::query(&statement).execute(&mut *tx).await?;
        }
        let defs = sqlx::query(
            "SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = $1::oid
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
             ORDER BY c.relname",
        )
        .bind(oid)
        .fetch_all(&mut *tx)
        .await?;
        for d in defs {
            let (index, def): (String, String) = (d.get("name"), d.get("def"));
            // pg_get_indexdef names the table as `ON <live> USING`.
            let on = format!(" ON {live} USING ");
            if def.matches(&on).count() != 1 {
                return Err(ProjectionError::Rebuild(format!(
                    "cannot rebuild index {index}: unexpected definition {def:?}"
                )));
            }
            indexes.push(ShadowIndex {
                name: index,
                table: name.clone(),
                def: def.replacen(&on, &format!(" ON {copy} USING "), 1),
            });
        }
        let schema = r.get("schema");
        shadow.tables.push(ShadowTable { name, live, schema });
    }
    if shadow.tables.len() != TABLES.len() {
        return Err(ProjectionError::Rebuild(format!(
            "expected the tables {TABLES:?}, found {:?}",
            shadow.tables.iter().map(|s| &s.name).collect::<Vec<_>>()
        )));
    }
    tx.commit().await?;
    Ok((shadow, indexes))
}

/// A transaction whose unqualified table names are the new copies: the
/// projectors' own row writers fill them unchanged. Committed without
/// waiting for the disk: the copies matter only once the swap, which does
/// wait, has committed after them.
async fn shadow_tx(pool: &PgPool) -> Result<Transaction<'static, Postgres>, ProjectionError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT set_config('search_path', $1, true), set_config('synchronous_commit', 'off', true),
                set_config('maintenance_work_mem', '512MB', true)",
    )
    .bind(SHADOW)
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// Runs `statements` (part name, SQL) on [`WRITERS`] connections at once,
/// each taking the next in order.
async fn run_on_writers(
    pool: &PgPool,
    statements: Vec<(String, String)>,
    parts: &mut Parts,
) -> Result<(), ProjectionError> {
    let queue = Arc::new(std::sync::Mutex::new(VecDeque::from(statements)));
    let mut workers = JoinSet::new();
    for _ in 0..WRITERS {
        let (pool, queue) = (pool.clone(), queue.clone());
        workers.spawn(async move {
            let mut parts = Parts::default();
            let mut tx = shadow_tx(&pool).await?;
            let mut t = Instant::now();
            loop {
                let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                let Some((part, sql)) = next else { break };
                sqlx::query(&sql).execute(&mut *tx).await?;
                t = parts.add(&part, t);
            }
            tx.commit().await?;
            Ok(parts)
        });
    }
    parts.join(workers).await
}

/// Replaces the live tables with their new copies inside `tx`, deletes the
/// claims the new read model answers and sets the checkpoints of the
/// projections `names` to `head`.
///
/// The swap first locks all the live tables in one `LOCK TABLE` that may
/// wait only a bounded time, well under the server's `deadlock_timeout`;
/// if it cannot have them all by then it lets go, waits as long, and tries
/// again. A reader that holds one read-model table and asks for another
/// (one statement locks its tables one after the other) would otherwise
/// close a lock cycle with the swap, and PostgreSQL might cancel the
/// reader; this way the swap gives way before any deadlock check runs, and
/// readers wait at most that bound.
async fn swap(
    tx: &mut Transaction<'static, Postgres>,
    shadow: &Shadow,
    head: i64,
    names: &[String],
    parts: &mut Parts,
) -> Result<(), ProjectionError> {
    let t = Instant::now();
    let (deadlock_ms, statement_timeout): (i64, String) = sqlx::query_as(
        "SELECT (extract(epoch FROM current_setting('deadlock_timeout')::interval) * 1000)::int8,
                current_setting('statement_timeout')",
    )
    .fetch_one(&mut **tx)
    .await?;
    let bound = (deadlock_ms / 4).max(10);
    tracing::info!("rebuild: indexes built; swapping the new tables in");
    let live: Vec<&str> = shadow.tables.iter().map(|s| s.live.as_str()).collect();
    let lock = format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", live.join(", "));
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let wait = (SWAP_FIRST_WAIT_MS << (attempt - 1).min(8)).min(bound);
        let mut savepoint = (&mut **tx).begin().await?;
        let locked = async {
            sqlx::query(&format!("SET LOCAL statement_timeout = {wait}"))
                .execute(&mut *savepoint)
                .await?;
            sqlx::query(&lock).execute(&mut *savepoint).await?;
            sqlx::query("SELECT set_config('statement_timeout', $1, true)")
                .bind(&statement_timeout)
                .execute(&mut *savepoint)
                .await
        }
        .await;
        match locked {
            Ok(_) => {
                swap_tables(&mut savepoint, shadow).await?;
                savepoint.commit().await?;
                break;
            }
            Err(e) if is_lock_wait(&e) && t.elapsed() < SWAP_PATIENCE => {
                savepoint.rollback().await?;
                if attempt.is_multiple_of(20) {
                    tracing::warn!(
                        attempt,
                        "the rebuild is still waiting for readers to let go of the read models"
                    );
                }
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let t = parts.add("swap", t);
    tracing::info!(
        attempts = attempt,
        "rebuild: the new tables replaced the old"
    );
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

/// The swap's first wait for the tables (doubling with each attempt up to
/// a quarter of `deadlock_timeout`), and how long it keeps trying.
const SWAP_FIRST_WAIT_MS: i64 = 25;
const SWAP_PATIENCE: Duration = Duration::from_secs(600);

/// Drops the live tables and moves their copies in; the tables are locked.
async fn swap_tables(conn: &mut PgConnection, shadow: &Shadow) -> Result<(), sqlx::Error> {
    for s in &shadow.tables {
        sqlx::query(&format!("DROP TABLE {}", s.live))
            .execute(&mut *conn)
            .await?;
        sqlx::query(&format!(
            "ALTER TABLE {SHADOW}.{} SET SCHEMA {}",
            s.name, s.schema
        ))
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(&format!("DROP SCHEMA {SHADOW}"))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The swap's bounded wait ran out (statement timeout, lock not available,
/// or, should it still happen, a deadlock).
fn is_lock_wait(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| ["57014", "55P03", "40P01"].contains(&c.as_ref()))
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
            snapshot: 0,
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
