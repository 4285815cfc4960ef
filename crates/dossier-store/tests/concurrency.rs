//! Many concurrent writers, in one process or two: the log stays one gapless,
//! verifiable chain, every acknowledged append is in it exactly as
//! acknowledged, nothing else is, and readers see seqs in order.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::bail;
use common::{assert_acknowledged, assert_log_shape, events, req};
use dossier_store::{Appended, ExpectedVersion, Store, StoreError};
use dossier_testkit::TestDb;
use proptest::prelude::*;
use uuid::Uuid;

/// Attempts one command may take before the test calls it a livelock.
const MAX_TRIES: usize = 500;

/// A small deterministic generator (splitmix64), one per writer task.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// An acknowledged append and the ids of the events it carried.
struct Ack {
    appended: Appended,
    event_ids: Vec<Uuid>,
    /// Index of the store (process) that acknowledged it.
    process: usize,
}

#[derive(Clone, Copy, Debug)]
struct Shape {
    writers: usize,
    streams: usize,
    commands: usize,
    max_events: usize,
    processes: usize,
    seed: u64,
}

/// One client: each command picks a stream, a batch size and a concurrency
/// mode. Exact commands read the version and retry on Conflict (with the
/// reported version or a fresh read); NoStream accepts a Conflict as the answer;
/// Contended is retried. Every attempt carries fresh event ids, so an event in
/// the log can only come from the attempt that was acknowledged.
async fn writer(
    store: Store,
    process: usize,
    streams: Arc<Vec<Uuid>>,
    shape: Shape,
    seed: u64,
) -> anyhow::Result<Vec<Ack>> {
    let mut rng = Rng(seed);
    let mut acks = Vec::new();
    for _ in 0..shape.commands {
        let s = streams[rng.below(streams.len())];
        let n = 1 + rng.below(shape.max_events);
        let mode = rng.below(10);
        // After a conflict, retry with the version the conflict reported, or
        // (like a client that re-reads state and decides again) a fresh read.
        let reread = rng.below(2) == 0;
        let mut expected = match mode {
            0..=5 => ExpectedVersion::Exact(store.stream_version(s).await?),
            6 | 7 => ExpectedVersion::Any,
            _ => ExpectedVersion::NoStream,
        };
        let mut tries = 0;
        loop {
            tries += 1;
            if tries > MAX_TRIES {
                bail!("a command on stream {s} did not finish after {MAX_TRIES} attempts");
            }
            let evs = events(n);
            let ids: Vec<Uuid> = evs.iter().map(|e| e.event_id).collect();
            match store.append(req(s, expected, evs)).await {
                Ok(a) => {
                    assert!(!a.replayed);
                    assert_eq!(a.stream_id, s);
                    assert_eq!(a.last_seq - a.first_seq + 1, n as i64);
                    if let ExpectedVersion::Exact(v) = expected {
                        assert_eq!(a.version, v + n as i64);
                    }
                    if expected == ExpectedVersion::NoStream {
                        assert_eq!(a.version, n as i64);
                    }
                    acks.push(Ack {
                        appended: a,
                        event_ids: ids,
                        process,
                    });
                    break;
                }
                Err(StoreError::Conflict { current, .. }) => match expected {
                    ExpectedVersion::NoStream => {
                        assert!(current >= 1, "NoStream conflict on an empty stream");
                        break;
                    }
                    ExpectedVersion::Exact(v) => {
                        assert_ne!(current, v, "a conflict must report another version");
                        expected = ExpectedVersion::Exact(if reread {
                            store.stream_version(s).await?
                        } else {
                            current
                        });
                    }
                    ExpectedVersion::Any => bail!("Any conflicted"),
                },
                Err(StoreError::Contended) => continue,
                Err(e) => bail!("append failed: {e}"),
            }
            if tries % 8 == 0 {
                tokio::task::yield_now().await;
            }
        }
    }
    Ok(acks)
}

/// Runs the writers of `shape` over `stores` and returns all acknowledgements.
async fn run_writers(stores: &[Store], shape: Shape) -> anyhow::Result<Vec<Ack>> {
    let streams: Arc<Vec<Uuid>> = Arc::new((0..shape.streams).map(|_| Uuid::now_v7()).collect());
    let mut handles = Vec::new();
    for w in 0..shape.writers {
        let process = w % stores.len();
        let seed = shape.seed ^ (w as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
        let store = stores[process].clone();
        handles.push(tokio::spawn(writer(
            store,
            process,
            streams.clone(),
            shape,
            seed,
        )));
    }
    let mut acks = Vec::new();
    for h in handles {
        acks.extend(h.await??);
    }
    Ok(acks)
}

/// The log is one verified chain holding exactly the acknowledged appends.
async fn check_log(store: &Store, acks: &[Ack]) -> anyhow::Result<()> {
    let log = assert_log_shape(store).await?;
    let verified = match store.verify(|_| {}).await? {
        Ok(v) => v,
        Err(v) => bail!("verify failed: {v}"),
    };
    assert_eq!(verified.head_seq, log.len() as i64);
    for ack in acks {
        assert_acknowledged(&log, &ack.appended, &ack.event_ids);
    }
    let acked: HashSet<Uuid> = acks
        .iter()
        .flat_map(|a| a.event_ids.iter().copied())
        .collect();
    let stored: HashSet<Uuid> = log.iter().map(|e| e.record.event_id).collect();
    assert_eq!(
        acked.len(),
        log.len(),
        "the log holds exactly the acknowledged events"
    );
    assert_eq!(
        acked, stored,
        "the log holds exactly the acknowledged events"
    );
    Ok(())
}

async fn run_case(shape: Shape) -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let mut stores = Vec::new();
    for _ in 0..shape.processes {
        stores.push(db.store().await?);
    }
    let acks = run_writers(&stores, shape).await?;
    assert!(!acks.is_empty());
    check_log(&stores[0], &acks).await
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 8,
        max_shrink_iters: 4,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn concurrent_writers_keep_one_gapless_chain(
        writers in 16usize..=32,
        streams in 1usize..=6,
        commands in 2usize..=6,
        max_events in 1usize..=4,
        processes in 1usize..=2,
        seed in any::<u64>(),
    ) {
        let shape = Shape { writers, streams, commands, max_events, processes, seed };
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let result = rt.block_on(run_case(shape));
        prop_assert!(result.is_ok(), "{shape:?}: {:?}", result.err());
    }
}

/// Two stores (two server processes, each with its own writer task and cache)
/// on one database, writing the same streams at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_write_one_linear_chain() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let stores = [db.store().await?, db.store().await?];
    let shape = Shape {
        writers: 24,
        streams: 4,
        commands: 6,
        max_events: 3,
        processes: 2,
        seed: 0x5eed,
    };
    let acks = run_writers(&stores, shape).await?;
    // Both processes got writes through, and their appends interleave in the log.
    for p in 0..2 {
        assert!(
            acks.iter().any(|a| a.process == p),
            "process {p} wrote nothing"
        );
    }
    let mut by_seq: Vec<&Ack> = acks.iter().collect();
    by_seq.sort_by_key(|a| a.appended.first_seq);
    let switches = by_seq
        .windows(2)
        .filter(|w| w[0].process != w[1].process)
        .count();
    assert!(switches >= 1);
    check_log(&stores[0], &acks).await?;
    check_log(&stores[1], &acks).await?;
    Ok(())
}

/// A reader polling `read_log(last_seen, 1000)` while writers run never sees
/// a seq appear after a larger one: every page continues exactly where the
/// previous one ended, and at the end it has read 1..=N.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_reader_sees_seqs_in_order() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let stores = [db.store().await?, db.store().await?];
    let reader = db.store().await?;
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen: Vec<i64> = Vec::new();
            let mut polls = 0usize;
            loop {
                // Read `done` before polling, so the last poll starts after the writers finished.
                let finished = done.load(Ordering::SeqCst);
                let last = seen.last().copied().unwrap_or(0);
                let page = reader.read_log(last, 1000).await?;
                polls += 1;
                for (i, e) in page.iter().enumerate() {
                    if e.record.seq != last + 1 + i as i64 {
                        bail!(
                            "after seq {last} the reader saw seq {} at position {i}: an earlier seq became visible later",
                            e.record.seq
                        );
                    }
                    seen.push(e.record.seq);
                }
                if finished && page.is_empty() {
                    return anyhow::Ok((seen, polls));
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let shape = Shape {
        writers: 24,
        streams: 5,
        commands: 8,
        max_events: 3,
        processes: 2,
        seed: 42,
    };
    let acks = run_writers(&stores, shape).await;
    done.store(true, Ordering::SeqCst);
    let acks = acks?;
    let (seen, polls) = poller.await??;
    let n = stores[0].head().await?.seq;
    assert_eq!(seen, (1..=n).collect::<Vec<_>>());
    assert!(polls >= 2);
    check_log(&stores[0], &acks).await
}
