//! `dossier bench append`: append throughput and latency against a raw-INSERT
//! baseline, on a scratch database `<dbname>_bench` that the CLI drops and
//! recreates before calling [`append`].
//!
//! STYLE EXCEPTION: SQL belongs in `dossier-store` (and `dossier-projections`)
//! only. The baseline table and INSERT statement below are a documented
//! exception (ARCHITECTURE.md, "Known exceptions"): they are a benchmark
//! baseline to compare the store against, not product SQL, and they only ever
//! touch the scratch database.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use dossier_chain::{Actor, EventRecord, Timestamp, GENESIS};
use dossier_domain::{CustomerKind, Event, Field, FieldChange, FieldValue};
use dossier_seal::DataKey;
use dossier_store::{AppendRequest, ExpectedVersion, NewEvent, Store, StoreError};
use sqlx::PgPool;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::ids::credit_code;
use crate::progress::Progress;

/// Rows per baseline INSERT statement.
const BASELINE_ROWS: u64 = 100;

// Benchmark baseline SQL (see the module comment): a plain table with the
// columns and row size of `events`, primary key only.
const BASELINE_TABLE: &str = "CREATE TABLE bench_baseline (
    seq              bigint      PRIMARY KEY,
    event_id         uuid        NOT NULL,
    stream_id        uuid        NOT NULL,
    stream_version   bigint      NOT NULL,
    event_type       text        NOT NULL,
    recorded_at      timestamptz NOT NULL,
    effective_at     timestamptz NOT NULL,
    actor_id         uuid        NOT NULL,
    prev_hash        bytea       NOT NULL,
    stream_prev_hash bytea       NOT NULL,
    hash             bytea       NOT NULL,
    body             bytea       NOT NULL)";
const BASELINE_INSERT: &str = "INSERT INTO bench_baseline
    SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[],
                         $6::timestamptz[], $7::timestamptz[], $8::uuid[], $9::bytea[],
                         $10::bytea[], $11::bytea[], $12::bytea[])";

/// A scratch database the CLI has made ready for a benchmark (created, and
/// emptied unless the benchmark reuses it). Creating and dropping databases is
/// server administration, which stays in the CLI (`crates/dossier/src/database.rs`).
#[derive(Clone, Debug)]
pub struct ScratchDb {
    /// The connection URL, password included: connect with it, never print it.
    pub url: String,
    /// The URL as printed (password hidden).
    pub shown: String,
    /// The URL's `sslmode` parameter, if it sets one.
    pub sslmode: Option<String>,
}

pub async fn append(db: &ScratchDb, events: u64, writers: usize) -> Result<()> {
    let sslmode = match &db.sslmode {
        Some(m) => m.clone(),
        None => "prefer (sqlx default; this build has no TLS, so plaintext)".to_owned(),
    };
    println!(
        "bench append: database {} (dropped and recreated)",
        db.shown
    );
    println!("sslmode={sslmode}");
    println!("events={events} writers={writers}");
    let owner = dossier_store::connect_owner(&db.url, writers as u32 + 1)
        .await
        .with_context(|| format!("connecting to {}", db.shown))?;
    dossier_store::migrate(&owner).await?;

    let sample = Sample::new();
    let body_len = sample.body_len()?;
    println!(
        "event body: {body_len} bytes (canonical JSON of a company registration, 3 sealed fields)"
    );

    println!(
        "(a) baseline: plain table (same columns as events, primary key only), \
         INSERT ... SELECT * FROM UNNEST, {BASELINE_ROWS} rows/statement, {writers} connections (owner pool)"
    );
    let a = baseline(&owner, &sample, events, writers).await?;
    a.report("rows", "statement");
    owner.close().await;

    let app = dossier_store::connect_app(&db.url, writers as u32 + 4).await?;
    let store = Store::new(app);
    println!(
        "(b) Store::append, one event per command, a new customer each (NoStream), {writers} writer tasks (app pool)"
    );
    let b = distinct_streams(&store, &sample, events, writers).await?;
    b.report("events", "command");

    let single = (events / 10).max(1);
    println!(
        "(c) Store::append on ONE customer, Exact(version) with retry on conflict, {writers} writer tasks, {single} events"
    );
    let c = single_stream(&store, &sample, single, writers).await?;
    c.report("events", "command");

    println!("(d) Store::verify over the whole log (integrity mode)");
    // The first read after the bulk load sets PostgreSQL's hint bits (and
    // writes the pages back): a one-time cost that would fall on whichever
    // measurement came first, so an unmeasured read pays it.
    store.scan_log(1).await?;
    // What PostgreSQL takes just to stream the same rows: the ceiling for (d),
    // on one connection and on the two that verify uses.
    let events = store.head().await?.seq as f64;
    let mut bytes = 0;
    for ranges in [1, 2] {
        let start = Instant::now();
        bytes = store.scan_log(ranges).await?;
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        println!(
            "    reading alone, {ranges} connection(s) (the same binary COPY, rows discarded): {secs:.2} s = {:.0} events/s ({:.0} MB/s)",
            events / secs,
            bytes as f64 / secs / 1e6
        );
    }
    let start = Instant::now();
    let sequential = match store.verify_in_ranges(false, 1, |_| {}).await? {
        Ok(head) => head,
        Err(v) => bail!("the log written by the benchmark does not verify: {v}"),
    };
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    println!(
        "    Store::verify_in_ranges, 1 range (one connection, one checker thread): {secs:.2} s = {:.0} events/s",
        sequential.events as f64 / secs
    );
    let start = Instant::now();
    let verified = match store.verify(|_| {}).await? {
        Ok(head) => head,
        Err(v) => bail!("the log written by the benchmark does not verify: {v}"),
    };
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let verify_rate = verified.events as f64 / secs;
    if verified != sequential {
        bail!("verification in ranges proved {verified:?}, in one range {sequential:?}");
    }
    println!(
        "    Store::verify (2 ranges in parallel): {} events, {} streams in {secs:.2} s = {verify_rate:.0} events/s ({:.0} MB/s)",
        verified.events,
        verified.streams,
        bytes as f64 / secs / 1e6
    );
    println!(
        "append_ratio={:.2} verify_ev_s={}",
        b.rate() / a.rate(),
        verify_rate.round() as u64
    );
    Ok(())
}

/// The event data the benchmark writes.
struct Sample {
    key: DataKey,
    actor: Actor,
}

impl Sample {
    fn new() -> Sample {
        Sample {
            key: DataKey::generate(),
            actor: Actor {
                id: Uuid::now_v7(),
                name: "bench".into(),
                role: "sales".into(),
            },
        }
    }

    fn registered() -> Event {
        let v = |s: &str| FieldValue::from_log(s.to_owned());
        Event::Registered {
            kind: CustomerKind::Company,
            details: [
                (Field::Name, v("深圳市华信科技有限公司")),
                (
                    Field::CreditCode,
                    v(&credit_code("91", "440300", "MA5FXT2K")),
                ),
                (Field::Industry, v("软件和信息技术服务业")),
                (Field::Region, v("广东省深圳市")),
                (Field::Phone, v("+8675586668888")),
                (Field::Email, v("contact@huaxin-tech.example.cn")),
                (Field::Address, v("深圳市南山区深南大道9988号华信大厦18楼")),
            ]
            .into_iter()
            .collect(),
            owner: Some("liu.yang".into()),
            tags: Vec::new(),
        }
    }

    fn address_changed(i: u64) -> Event {
        Event::DetailsChanged {
            changes: vec![FieldChange {
                field: Field::Address,
                before: None,
                after: Some(FieldValue::from_log(format!("杭州市滨江区网商路{i}号"))),
            }],
        }
    }

    fn new_event(&self, stream_id: Uuid, kind: CustomerKind, event: &Event) -> NewEvent {
        let enc = dossier_events::encode(event, kind, stream_id, &self.key);
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: enc.event_type.to_owned(),
            schema_version: enc.schema_version,
            effective_at: None,
            actor: self.actor.clone(),
            reason: Some("benchmark".into()),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            payload: enc.payload,
        }
    }

    fn registration(&self, stream_id: Uuid) -> NewEvent {
        self.new_event(stream_id, CustomerKind::Company, &Sample::registered())
    }

    /// Length of the stored body of a registration event.
    fn body_len(&self) -> Result<usize> {
        Ok(self.body(Uuid::now_v7())?.len())
    }

    /// The canonical body a registration would be stored with (as seq 1).
    fn body(&self, stream_id: Uuid) -> Result<Vec<u8>> {
        let e = self.registration(stream_id);
        let now = Timestamp::now();
        let record = EventRecord {
            seq: 1,
            event_id: e.event_id,
            stream_id,
            stream_version: 1,
            event_type: e.event_type,
            schema_version: e.schema_version,
            recorded_at: now,
            effective_at: now,
            actor: e.actor,
            reason: e.reason,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            payload: e.payload,
            prev_hash: GENESIS,
            stream_prev_hash: GENESIS,
        };
        Ok(record.encode()?.body)
    }
}

/// What one phase measured.
struct Phase {
    count: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    conflicts: u64,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn report(&self, unit: &str, per: &str) {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        let conflicts = if self.conflicts > 0 {
            format!("; {} conflicts retried", self.conflicts)
        } else {
            String::new()
        };
        println!(
            "    {} {unit} in {:.2} s = {:.0} events/s; latency per {per} p50={} p99={}{conflicts}",
            self.count,
            self.elapsed.as_secs_f64(),
            self.rate(),
            ms(percentile(&l, 50.0)),
            ms(percentile(&l, 99.0)),
        );
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1000.0)
}

/// Nearest-rank percentile of sorted samples.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Draws a progress bar from a shared counter while a phase runs.
struct Ticker {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Ticker {
    fn start(label: &str, done: Arc<AtomicU64>, total: u64) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let mut bar = Progress::stderr(label);
        let flag = stop.clone();
        let handle = tokio::spawn(async move {
            while !flag.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                bar.update(done.load(Ordering::Relaxed) as i64, total as i64);
            }
            bar.finish();
        });
        Ticker { stop, handle }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.await;
    }
}

/// Runs `writers` copies of `work` and collects their latencies.
async fn run_writers<F, Fut>(label: &str, total: u64, writers: usize, work: F) -> Result<Phase>
where
    F: Fn(Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Duration>>> + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let conflicts = Arc::new(AtomicU64::new(0));
    let ticker = Ticker::start(label, done.clone(), total);
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..writers {
        set.spawn(work(next.clone(), done.clone(), conflicts.clone()));
    }
    let mut latencies = Vec::new();
    let mut failure = None;
    while let Some(joined) = set.join_next().await {
        match joined.context("a writer task panicked").and_then(|r| r) {
            Ok(l) => latencies.extend(l),
            Err(e) => {
                failure.get_or_insert(e);
                set.abort_all();
            }
        }
    }
    let elapsed = start.elapsed();
    ticker.stop().await;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Phase {
        count: done.load(Ordering::Relaxed),
        elapsed,
        latencies,
        conflicts: conflicts.load(Ordering::Relaxed),
    })
}

async fn baseline(pool: &PgPool, sample: &Sample, n: u64, writers: usize) -> Result<Phase> {
    sqlx::query(BASELINE_TABLE).execute(pool).await?;
    let body = Arc::new(sample.body(Uuid::now_v7())?);
    let statements = n.div_ceil(BASELINE_ROWS);
    let actor = sample.actor.id;
    run_writers("(a) baseline", n, writers, |next, done, _| {
        let pool = pool.clone();
        let body = body.clone();
        async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= statements {
                    return Ok(lat);
                }
                let lo = i * BASELINE_ROWS;
                let hi = (lo + BASELINE_ROWS).min(n);
                let rows = (hi - lo) as usize;
                let now: DateTime<Utc> = Utc::now();
                let seq: Vec<i64> = (lo..hi).map(|s| s as i64 + 1).collect();
                let ids: Vec<Uuid> = (0..rows).map(|_| Uuid::now_v7()).collect();
                let streams: Vec<Uuid> = (0..rows).map(|_| Uuid::now_v7()).collect();
                let hash = vec![vec![0x5a_u8; 32]; rows];
                let t = Instant::now();
                sqlx::query(BASELINE_INSERT)
                    .bind(&seq)
                    .bind(&ids)
                    .bind(&streams)
                    .bind(vec![1_i64; rows])
                    .bind(vec!["CustomerRegistered"; rows])
                    .bind(vec![now; rows])
                    .bind(vec![now; rows])
                    .bind(vec![actor; rows])
                    .bind(&hash)
                    .bind(&hash)
                    .bind(&hash)
                    .bind(vec![body.as_ref().clone(); rows])
                    .execute(&pool)
                    .await?;
                lat.push(t.elapsed());
                done.fetch_add(rows as u64, Ordering::Relaxed);
            }
        }
    })
    .await
}

async fn distinct_streams(store: &Store, sample: &Sample, n: u64, writers: usize) -> Result<Phase> {
    // The events are sealed and built before the clock starts: this phase
    // measures the store's append path, not payload construction.
    let prepared: Vec<AppendRequest> = (0..n)
        .map(|_| {
            let id = Uuid::now_v7();
            AppendRequest {
                stream_id: id,
                expected: ExpectedVersion::NoStream,
                events: vec![sample.registration(id)],
                idempotency: None,
            }
        })
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(prepared));
    run_writers("(b) append", n, writers, |_, done, _| {
        let store = store.clone();
        let queue = queue.clone();
        async move {
            let mut lat = Vec::new();
            loop {
                let Some(req) = queue
                    .lock()
                    .map_err(|_| anyhow::anyhow!("queue poisoned"))?
                    .pop()
                else {
                    break;
                };
                let t = Instant::now();
                store.append(req).await?;
                lat.push(t.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(lat)
        }
    })
    .await
}

async fn single_stream(store: &Store, sample: &Sample, n: u64, writers: usize) -> Result<Phase> {
    let sample = Arc::new(Sample {
        key: sample.key.clone(),
        actor: sample.actor.clone(),
    });
    let id = Uuid::now_v7();
    store
        .append(AppendRequest {
            stream_id: id,
            expected: ExpectedVersion::NoStream,
            events: vec![sample.registration(id)],
            idempotency: None,
        })
        .await?;
    run_writers("(c) one customer", n, writers, |next, done, conflicts| {
        let store = store.clone();
        let sample = sample.clone();
        async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok(lat);
                }
                let event = Sample::address_changed(i);
                let t = Instant::now();
                loop {
                    let version = store.stream_version(id).await?;
                    let req = AppendRequest {
                        stream_id: id,
                        expected: ExpectedVersion::Exact(version),
                        events: vec![sample.new_event(id, CustomerKind::Company, &event)],
                        idempotency: None,
                    };
                    match store.append(req).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                lat.push(t.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&v[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn sample_encodes() {
        let s = Sample::new();
        let len = s.body_len().unwrap();
        assert!(len > 500, "{len}");
    }
}
