//! `dossier bench read`: what sales and the projectors see at scale, on a
//! scratch database `<dbname>_benchread`:
//!
//! (a) a full rebuild of all four projections, against reading the log alone;
//! (b) single-customer reads and (c) list queries through the service, each
//!     against a primary-key / index-only baseline query on the same table;
//! (d) projection lag while facts are appended at half the rate measured
//!     just before.
//!
//! STYLE EXCEPTION (like bench.rs): the baseline queries and the sampling of
//! ids below are benchmark SQL against the scratch database, not product SQL.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use dossier_insights::{Lifecycle, Signal, ValueTier};
use dossier_service::{FactInput, ListInput, MoneyInput, OrderInput, ReadAt, Service, WriteMeta};
use dossier_store::{Keyring, Principal, Role, Store};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::bench::{ms, percentile, ScratchDb};
use crate::rng::Rng;
use crate::seed;

#[derive(Clone, Debug)]
pub struct ReadOptions {
    pub customers: u64,
    pub events_per_customer: u32,
    /// Samples per measured query kind.
    pub queries: usize,
    /// Keep an already seeded scratch database instead of recreating it.
    pub reuse: bool,
    /// Seconds of paced appends for the lag measurement.
    pub lag_seconds: u64,
    /// With `reuse`: keep the read models as they are (already rebuilt).
    pub skip_rebuild: bool,
    /// Orders/s during the lag measurement; `None`: half the measured maximum.
    pub lag_rate: Option<u32>,
}

/// Runs the read benchmark on `db` (recreated empty by the CLI unless
/// `opts.reuse`), sealing seeded data with `keyring`.
pub async fn read(db: &ScratchDb, keyring: Keyring, opts: ReadOptions) -> Result<()> {
    println!("bench read: database {}", db.shown);
    let owner = dossier_store::connect_owner(&db.url, 4).await?;
    dossier_store::migrate(&owner).await?;
    owner.close().await;
    let store = Store::new(dossier_store::connect_app(&db.url, 48).await?);
    let service = Service::new(store.clone(), keyring.clone());
    service
        .adopt_rules_as_service(dossier_insights::Rules::default_text())
        .await?;

    let head = store.head().await?.seq;
    if opts.reuse && head > 0 {
        println!("reusing the seeded log: {head} events");
    } else {
        println!(
            "seeding {} customers x {} events",
            opts.customers, opts.events_per_customer
        );
        let start = Instant::now();
        seed::run(
            &store,
            &keyring,
            seed::Options {
                customers: opts.customers,
                events_per_customer: opts.events_per_customer,
                seed: 42,
                writers: 32,
            },
        )
        .await?;
        let n = store.head().await?.seq;
        println!(
            "    {n} events in {:.1} s = {:.0} events/s",
            start.elapsed().as_secs_f64(),
            n as f64 / start.elapsed().as_secs_f64().max(1e-9)
        );
        service.evaluate_as_service().await?;
    }
    let head = store.head().await?.seq;

    let sales = store.service_principal("bench-sales", Role::Sales).await?;
    if opts.reuse && opts.skip_rebuild {
        println!("(a) skipped (--skip-rebuild): the read models are used as they are");
    } else {
        rebuild(&db.url, &keyring, head, &service, &sales).await?;
    }
    // Benchmark SQL: settle the database after the bulk writes, as a real
    // deployment would be between rebuilds (fresh statistics for the planner,
    // dirty pages flushed so commits are not queued behind a checkpoint).
    let owner = dossier_store::connect_owner(&db.url, 1).await?;
    for stmt in ["VACUUM (ANALYZE)", "CHECKPOINT"] {
        sqlx::query(stmt).execute(&owner).await?;
    }
    owner.close().await;
    let ids = sample_ids(&store, opts.queries.max(100)).await?;
    let single = single_reads(&store, &service, &sales, &ids, opts.queries).await?;
    let list = list_queries(&store, &service, &sales, opts.queries).await?;
    // Appends spread over many customers, as in real use.
    let spread = sample_ids(&store, 5_000).await?;
    let lag = lag(
        &store,
        &keyring,
        &service,
        &sales,
        &spread,
        opts.lag_seconds,
        opts.lag_rate,
    )
    .await?;
    println!(
        "list_p99_ms={:.2} read_p99_ms={:.2} rebuild_ev_s={:.0} lag_p99_ms={:.0}",
        list.as_secs_f64() * 1e3,
        single.as_secs_f64() * 1e3,
        REBUILD_RATE.lock().map(|r| *r).unwrap_or(0.0),
        lag.as_secs_f64() * 1e3
    );
    Ok(())
}

/// The rebuild rate, for the summary line.
static REBUILD_RATE: Mutex<f64> = Mutex::new(0.0);

/// (a) Rebuilds every projection at once (`rebuild_all`: one pass over
/// the log, folded in memory, new tables swapped in), against reading the
/// log alone in the same way; meanwhile a reader lists customers every
/// 50 ms, to show how long readers wait for the rebuild.
async fn rebuild(
    url: &str,
    keyring: &Keyring,
    head: i64,
    service: &Service,
    sales: &Principal,
) -> Result<()> {
    println!("(a) full rebuild of all projections ({head} events)");
    let owner = Store::new(dossier_store::connect_owner(url, 4).await?);
    let start = Instant::now();
    let mut scan = owner.scan_events().await?;
    let mut read = 0usize;
    while let Some(chunk) = scan.next().await {
        read += chunk?.len();
    }
    let read_secs = start.elapsed().as_secs_f64().max(1e-9);
    let read_rate = read as f64 / read_secs;
    println!(
        "    baseline: reading and decoding the log alone (one snapshot, binary COPY): {read} events in {read_secs:.2} s = {read_rate:.0} events/s"
    );
    let rebuilding = Arc::new(AtomicBool::new(true));
    let reader = {
        let (service, sales, rebuilding) = (service.clone(), sales.clone(), rebuilding.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while rebuilding.load(Ordering::Relaxed) {
                let t = Instant::now();
                service.list(&sales, &ListInput::default()).await?;
                samples.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::Ok(samples)
        })
    };
    let report = dossier_projections::rebuild_all(&owner, keyring, |_, _| {}).await;
    rebuilding.store(false, Ordering::Relaxed);
    let (report, samples) = (report?, reader.await??);
    let longest = samples.iter().max().copied().unwrap_or_default();
    report_samples("list queries during the rebuild (every 50 ms)", samples);
    println!("    longest list query during the rebuild: {}", ms(longest));
    let secs = (report.fold + report.write).as_secs_f64().max(1e-9);
    let rate = report.head as f64 / secs;
    if let Ok(mut r) = REBUILD_RATE.lock() {
        *r = rate;
    }
    println!(
        "    all four at once: {} customers, reading + folding {:.2} s, writing + indexing {:.2} s",
        report.customers,
        report.fold.as_secs_f64(),
        report.write.as_secs_f64()
    );
    println!(
        "    writing + indexing, connection-seconds (two at once): {}",
        report.write_summary()
    );
    println!(
        "    total {secs:.2} s = {rate:.0} events/s of log; rebuild/read = {:.2}",
        rate / read_rate
    );
    owner.pool().close().await;
    Ok(())
}

async fn sample_ids(store: &Store, n: usize) -> Result<Vec<Uuid>> {
    // Benchmark SQL (see the module comment).
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT customer_id FROM customer_current TABLESAMPLE SYSTEM (10) LIMIT $1",
    )
    .bind(n as i64)
    .fetch_all(store.pool())
    .await?;
    let ids = if ids.len() < n.min(10) {
        sqlx::query_scalar("SELECT customer_id FROM customer_current LIMIT $1")
            .bind(n as i64)
            .fetch_all(store.pool())
            .await?
    } else {
        ids
    };
    anyhow::ensure!(!ids.is_empty(), "no customers to read");
    Ok(ids)
}

/// Prints p50/p99 of `samples`; returns p99.
fn report_samples(label: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    let p99 = percentile(&samples, 99.0);
    println!(
        "    {label:<44} n={:<5} p50={} p99={}",
        samples.len(),
        ms(percentile(&samples, 50.0)),
        ms(p99)
    );
    p99
}

/// (b) GET-a-customer through the service, against a primary-key lookup.
async fn single_reads(
    store: &Store,
    service: &Service,
    sales: &Principal,
    ids: &[Uuid],
    n: usize,
) -> Result<Duration> {
    println!("(b) single customer reads (sequential, random customers)");
    let mut rng = Rng::new(7, 0);
    let mut base = Vec::with_capacity(n);
    let mut svc = Vec::with_capacity(n);
    for _ in 0..n {
        let id = *rng.choose(ids).expect("ids");
        let t = Instant::now();
        // Benchmark SQL: the row alone, by primary key.
        let _: Option<String> =
            sqlx::query_scalar("SELECT file FROM customer_current WHERE customer_id = $1")
                .bind(id)
                .fetch_optional(store.pool())
                .await?;
        base.push(t.elapsed());
        let t = Instant::now();
        service
            .read(sales, id, ReadAt::Current { min_seq: None })
            .await?;
        svc.push(t.elapsed());
    }
    let b = report_samples("baseline: SELECT row by primary key", base);
    let p = report_samples("Service::current (GET /v1/customers/{id})", svc);
    println!(
        "    read p99 / baseline p99 = {:.2}",
        p.as_secs_f64() / b.as_secs_f64().max(1e-9)
    );
    Ok(p)
}

/// (c) Sales' list queries through the service, against an index-only first page.
async fn list_queries(
    store: &Store,
    service: &Service,
    sales: &Principal,
    n: usize,
) -> Result<Duration> {
    println!("(c) list queries (sequential; filters from the data)");
    // Benchmark SQL: the values the filters choose from.
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT owner FROM customer_current WHERE owner IS NOT NULL LIMIT 50",
    )
    .fetch_all(store.pool())
    .await?;
    let regions: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT region FROM customer_current WHERE region IS NOT NULL LIMIT 50",
    )
    .fetch_all(store.pool())
    .await?;
    let surnames = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴"];
    let mut rng = Rng::new(11, 0);
    let mut base = Vec::with_capacity(n);
    let mut by_kind: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
    let mut all = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        // Benchmark SQL: the first page of the default order, index only.
        let _: Vec<Uuid> = sqlx::query_scalar(
            "SELECT customer_id FROM customer_list WHERE archived = false
             ORDER BY updated_at DESC, customer_id DESC LIMIT 50",
        )
        .fetch_all(store.pool())
        .await?;
        base.push(t.elapsed());
        let owner = rng.choose(&owners).cloned();
        let region = rng.choose(&regions).cloned();
        let (kind, input) = match i % 6 {
            0 => (
                "owner + tier A",
                ListInput {
                    owner,
                    tier: Some(ValueTier::A),
                    ..ListInput::default()
                },
            ),
            1 => (
                "region + risk high,critical",
                ListInput {
                    region,
                    risk: Some("high,critical".into()),
                    ..ListInput::default()
                },
            ),
            2 => (
                "q = surname (1 char), sort name",
                ListInput {
                    q: Some(rng.pick(&surnames).to_string()),
                    sort: Some("name".into()),
                    ..ListInput::default()
                },
            ),
            3 => (
                "owner + tier A + region + overdue",
                ListInput {
                    owner,
                    region,
                    tier: Some(ValueTier::A),
                    signal: Some(Signal::OverdueReceivables),
                    ..ListInput::default()
                },
            ),
            4 => (
                "lifecycle dormant, sort -created_at",
                ListInput {
                    lifecycle: Some(Lifecycle::Dormant),
                    sort: Some("-created_at".into()),
                    ..ListInput::default()
                },
            ),
            _ => ("first page, default sort", ListInput::default()),
        };
        let t = Instant::now();
        let page = service.list(sales, &input).await?;
        let mut took = t.elapsed();
        // Every sixth query also fetches the next page by cursor.
        if kind.starts_with("first page") {
            if let Some(c) = page.next_cursor {
                let t = Instant::now();
                service
                    .list(
                        sales,
                        &ListInput {
                            cursor: Some(c),
                            ..input
                        },
                    )
                    .await?;
                took = took.max(t.elapsed());
            }
        }
        by_kind.entry(kind).or_default().push(took);
        all.push(took);
    }
    let b = report_samples("baseline: first page, index only", base);
    for (kind, samples) in by_kind {
        report_samples(kind, samples);
    }
    let p = report_samples("all list queries", all);
    println!(
        "    list p99 / baseline p99 = {:.2}",
        p.as_secs_f64() / b.as_secs_f64().max(1e-9)
    );
    Ok(p)
}

fn order(i: u64) -> FactInput {
    FactInput::Order(OrderInput {
        product: format!("bench item {}", i % 97),
        amount: MoneyInput {
            amount: format!("{}.{:02}", 100 + i % 9000, i % 100),
            currency: "CNY".into(),
        },
        ordered_on: None,
    })
}

/// Appends orders from `writers` tasks for `secs`, at most `rate` per second
/// in total (None: as fast as possible). Returns (seq, acknowledged at) pairs.
async fn append_orders(
    service: &Service,
    sales: &Principal,
    ids: &[Uuid],
    secs: u64,
    rate: Option<f64>,
) -> Result<Vec<(i64, Instant)>> {
    let writers = 32;
    let stop = Arc::new(AtomicBool::new(false));
    let n = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for w in 0..writers {
        let (service, sales, ids) = (service.clone(), sales.clone(), ids.to_vec());
        let (stop, n) = (stop.clone(), n.clone());
        set.spawn(async move {
            let mut rng = Rng::new(100, w);
            let mut acks = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let i = n.fetch_add(1, Ordering::Relaxed);
                if let Some(r) = rate {
                    // Pace: event i is due at i / rate seconds.
                    let due = start + Duration::from_secs_f64(i as f64 / r);
                    tokio::time::sleep_until(due.into()).await;
                }
                let id = *rng.choose(&ids).expect("ids");
                let meta = WriteMeta {
                    reason: Some("bench".into()),
                    ..WriteMeta::default()
                };
                match service.record_fact(&sales, id, order(i), meta).await {
                    Ok(o) => acks.push((o.write.seq, Instant::now())),
                    // Two writers kept colliding on one customer: skip it.
                    Err(dossier_service::ServiceError::Conflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok::<_, anyhow::Error>(acks)
        });
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acks = Vec::new();
    while let Some(r) = set.join_next().await {
        acks.extend(r.context("an append task panicked")??);
    }
    acks.sort_unstable_by_key(|a| a.0);
    Ok(acks)
}

/// (d) Lag of every projection behind acknowledged appends at half the
/// maximum append rate.
async fn lag(
    store: &Store,
    keyring: &Keyring,
    service: &Service,
    sales: &Principal,
    ids: &[Uuid],
    secs: u64,
    fixed_rate: Option<u32>,
) -> Result<Duration> {
    println!("(d) projection lag while appending orders (service path, 32 writers)");
    let burst = append_orders(service, sales, ids, 5, None).await?;
    let max_rate = burst.len() as f64 / 5.0;
    println!("    maximum append rate (5 s burst, projectors idle): {max_rate:.0} events/s");
    // Let the projectors catch up with the burst before measuring.
    let mut runners = Vec::new();
    for p in dossier_projections::all(keyring, store) {
        runners.push(tokio::spawn(dossier_projections::run(
            store.clone(),
            p,
            Duration::from_millis(200),
        )));
    }
    let head = store.head().await?.seq;
    for name in dossier_projections::NAMES {
        dossier_projections::wait_for(store, name, head, Duration::from_secs(600)).await?;
    }
    // Sample every projection's checkpoint while appending at half the rate.
    let stop = Arc::new(AtomicBool::new(false));
    let timeline: Arc<Mutex<Vec<(Instant, i64)>>> = Arc::default();
    let sampler = {
        let (store, stop, timeline) = (store.clone(), stop.clone(), timeline.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                // One query per sample: the sampler is load on the same two cores.
                let lowest = dossier_projections::lowest_checkpoint(&store)
                    .await
                    .unwrap_or(0);
                if let Ok(mut t) = timeline.lock() {
                    t.push((Instant::now(), lowest));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let rate = fixed_rate.map_or(max_rate / 2.0, f64::from);
    let started = Utc::now();
    let acks = append_orders(service, sales, ids, secs, Some(rate)).await?;
    let last = acks.last().map_or(0, |a| a.0);
    for name in dossier_projections::NAMES {
        dossier_projections::wait_for(store, name, last, Duration::from_secs(60)).await?;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    stop.store(true, Ordering::Relaxed);
    sampler.await.ok();
    for r in runners {
        r.abort();
    }
    let timeline = timeline.lock().map(|t| t.clone()).unwrap_or_default();
    let mut lags = Vec::with_capacity(acks.len());
    for (seq, acked) in &acks {
        // The first sample at or after the ack in which every projection has the seq.
        if let Some((t, _)) = timeline.iter().find(|(t, cp)| t >= acked && cp >= seq) {
            lags.push(t.saturating_duration_since(*acked));
        }
    }
    println!(
        "    {} orders at {rate:.0} events/s for {secs} s (started {})",
        acks.len(),
        started.format("%H:%M:%S")
    );
    Ok(report_samples(
        "lag until all four projections have it",
        lags,
    ))
}
