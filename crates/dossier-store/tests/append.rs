//! The append path: expected versions, positions, timestamps, validation, and
//! the read methods that describe what was appended.

mod common;

use std::time::Duration;

use common::{assert_acknowledged, assert_log_shape, event, event_with, events, read_all, req};
use dossier_chain::{Timestamp, GENESIS};
use dossier_store::{ExpectedVersion, StoreError};
use dossier_testkit::TestDb;
use serde_json::json;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stream_on_a_new_stream_succeeds() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let s = Uuid::now_v7();
    let evs = events(3);
    let ids: Vec<Uuid> = evs.iter().map(|e| e.event_id).collect();
    let a = store.append(req(s, ExpectedVersion::NoStream, evs)).await?;
    assert_eq!(
        (a.stream_id, a.first_seq, a.last_seq, a.version, a.replayed),
        (s, 1, 3, 3, false)
    );
    let log = assert_log_shape(&store).await?;
    assert_acknowledged(&log, &a, &ids);
    assert_eq!(log[0].record.prev_hash, GENESIS);
    assert_eq!(log[0].record.stream_prev_hash, GENESIS);
    store.verify(|_| {}).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stream_on_an_existing_stream_conflicts() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let s = Uuid::now_v7();
    store
        .append(req(s, ExpectedVersion::NoStream, events(2)))
        .await?;
    let err = store
        .append(req(s, ExpectedVersion::NoStream, events(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { current: 2, .. }),
        "expected Conflict at version 2, got {err:?}"
    );
    assert_eq!(
        store.head().await?.seq,
        2,
        "a conflicting append writes nothing"
    );
    assert_eq!(store.stream_version(s).await?, 2);
    Ok(())
}

/// A second process (here: a second Store with its own writer and cache) that
/// has never seen the stream must still answer NoStream with a Conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stream_conflict_is_detected_by_a_store_that_never_saw_the_stream() -> anyhow::Result<()>
{
    let db = TestDb::new().await?;
    let first = db.store().await?;
    let second = db.store().await?;
    let s = Uuid::now_v7();
    first
        .append(req(s, ExpectedVersion::NoStream, events(2)))
        .await?;
    let err = second
        .append(req(s, ExpectedVersion::NoStream, events(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { current: 2, .. }),
        "expected Conflict at version 2, got {err:?}"
    );
    // And the same with the conflicting request batched together with good ones.
    let mut handles = Vec::new();
    for i in 0..20 {
        let second = second.clone();
        let stream = if i == 10 { s } else { Uuid::now_v7() };
        handles.push(tokio::spawn(async move {
            second
                .append(req(stream, ExpectedVersion::NoStream, events(1)))
                .await
        }));
    }
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.await?;
        if i == 10 {
            assert!(
                matches!(r, Err(StoreError::Conflict { current: 2, .. })),
                "got {r:?}"
            );
        } else {
            r?;
        }
    }
    assert_log_shape(&first).await?;
    assert_eq!(first.head().await?.seq, 2 + 19);
    first.verify(|_| {}).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_version_mismatch_conflicts_with_the_current_version() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let s = Uuid::now_v7();
    store
        .append(req(s, ExpectedVersion::NoStream, events(3)))
        .await?;
    for wrong in [0, 1, 2, 4, 100] {
        let err = store
            .append(req(s, ExpectedVersion::Exact(wrong), events(1)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { current: 3, .. }),
            "Exact({wrong}): expected Conflict at 3, got {err:?}"
        );
    }
    // Exact on a stream that does not exist: current is 0.
    let err = store
        .append(req(Uuid::now_v7(), ExpectedVersion::Exact(1), events(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { current: 0, .. }),
        "got {err:?}"
    );
    assert_eq!(store.head().await?.seq, 3);

    let a = store
        .append(req(s, ExpectedVersion::Exact(3), events(2)))
        .await?;
    assert_eq!((a.first_seq, a.last_seq, a.version), (4, 5, 5));
    // Exact(0) behaves like NoStream.
    let t = Uuid::now_v7();
    let b = store
        .append(req(t, ExpectedVersion::Exact(0), events(1)))
        .await?;
    assert_eq!((b.first_seq, b.version), (6, 1));
    assert_log_shape(&store).await?;
    Ok(())
}

/// A process whose cached stream head is stale (another process wrote the
/// stream since) must not report a conflict that does not exist, nor a stale
/// current version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_version_is_checked_against_writes_of_other_processes() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let a = db.store().await?;
    let b = db.store().await?;
    let s = Uuid::now_v7();
    a.append(req(s, ExpectedVersion::NoStream, events(1)))
        .await?; // a caches version 1
    b.append(req(s, ExpectedVersion::Exact(1), events(1)))
        .await?; // now version 2
    assert_eq!(a.stream_version(s).await?, 2);

    // The version just read from the database is accepted.
    let ok = a
        .append(req(s, ExpectedVersion::Exact(2), events(1)))
        .await?;
    assert_eq!((ok.first_seq, ok.version), (3, 3));

    // The same after a write of b that a did not see, and a stale guess is
    // refused with the true current version.
    b.append(req(s, ExpectedVersion::Exact(3), events(1)))
        .await?;
    let err = a
        .append(req(s, ExpectedVersion::Exact(5), events(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { current: 4, .. }),
        "got {err:?}"
    );
    let ok = a
        .append(req(s, ExpectedVersion::Exact(4), events(1)))
        .await?;
    assert_eq!((ok.first_seq, ok.version), (5, 5));
    b.append(req(s, ExpectedVersion::Exact(5), events(1)))
        .await?;
    let err = a
        .append(req(s, ExpectedVersion::Exact(3), events(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { current: 6, .. }),
        "got {err:?}"
    );
    assert_log_shape(&a).await?;
    a.verify(|_| {}).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_always_succeeds() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let other = db.store().await?;
    let s = Uuid::now_v7();
    let a = store
        .append(req(s, ExpectedVersion::Any, events(2)))
        .await?; // creates the stream
    assert_eq!((a.first_seq, a.version), (1, 2));
    let b = other
        .append(req(s, ExpectedVersion::Any, events(1)))
        .await?; // another process
    assert_eq!((b.first_seq, b.version), (3, 3));
    let c = store
        .append(req(s, ExpectedVersion::Any, events(1)))
        .await?; // stale cache
    assert_eq!((c.first_seq, c.version), (4, 4));
    let log = assert_log_shape(&store).await?;
    assert_eq!(log.len(), 4);
    store.verify(|_| {}).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_versions_are_contiguous_and_recorded_at_never_decreases() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let streams: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let mut handles = Vec::new();
    for i in 0..60usize {
        let store = store.clone();
        let s = streams[i % streams.len()];
        handles.push(tokio::spawn(async move {
            let evs = events(1 + i % 3);
            let ids: Vec<Uuid> = evs.iter().map(|e| e.event_id).collect();
            store
                .append(req(s, ExpectedVersion::Any, evs))
                .await
                .map(|a| (a, ids))
        }));
    }
    let mut acks = Vec::new();
    for h in handles {
        acks.push(h.await??);
    }
    let log = assert_log_shape(&store).await?;
    assert_eq!(log.len(), (0..60).map(|i| 1 + i % 3).sum::<usize>());
    for (a, ids) in &acks {
        assert_acknowledged(&log, a, ids);
    }
    for w in log.windows(2) {
        assert!(
            w[0].record.recorded_at <= w[1].record.recorded_at,
            "recorded_at decreases from seq {} to {}",
            w[0].record.seq,
            w[1].record.seq
        );
        assert_eq!(w[1].record.prev_hash, w[0].hash);
    }
    store.verify(|_| {}).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_append_is_rejected() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
    ] {
        let err = store
            .append(req(Uuid::now_v7(), expected, vec![]))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::EmptyAppend), "got {err:?}");
    }
    assert_eq!(store.head().await?.seq, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inexact_numbers_are_rejected_without_failing_the_batch() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let bad_payloads = [
        json!({ "x": 1.5 }),
        json!({ "x": 9_007_199_254_740_992_i64 }), // 2^53
        json!({ "x": -9_007_199_254_740_992_i64 }),
        json!({ "x": u64::MAX }),
        json!({ "nested": { "list": [1, 2, 0.25] } }),
        json!({ "x": 1e3 }), // a float even though its value is integral
        json!(["payload", "must", "be", "an", "object"]),
    ];
    let mut handles = Vec::new();
    for i in 0..80usize {
        let store = store.clone();
        let bad = (i % 8 == 3).then(|| bad_payloads[(i / 8) % bad_payloads.len()].clone());
        handles.push(tokio::spawn(async move {
            let mut evs = vec![event(i as i64), event(i as i64 + 1000)];
            if let Some(p) = bad.clone() {
                // The bad event comes second: the first must not be written either.
                evs[1] = event_with(p);
            }
            let ids: Vec<Uuid> = evs.iter().map(|e| e.event_id).collect();
            let r = store
                .append(req(Uuid::now_v7(), ExpectedVersion::NoStream, evs))
                .await;
            (bad.is_some(), ids, r)
        }));
    }
    let mut good = Vec::new();
    let mut rejected_ids = Vec::new();
    for h in handles {
        let (bad, ids, r) = h.await?;
        if bad {
            assert!(
                matches!(r, Err(StoreError::InvalidEvent(_))),
                "expected InvalidEvent, got {r:?}"
            );
            rejected_ids.extend(ids);
        } else {
            good.push((
                r.map_err(|e| anyhow::anyhow!("a valid append failed: {e}"))?,
                ids,
            ));
        }
    }
    let log = assert_log_shape(&store).await?;
    assert_eq!(log.len(), good.len() * 2);
    for (a, ids) in &good {
        assert_acknowledged(&log, a, ids);
    }
    assert!(log
        .iter()
        .all(|e| !rejected_ids.contains(&e.record.event_id)));
    store.verify(|_| {}).await??;
    Ok(())
}

/// A duplicate event id is the caller's error: it must be reported for that
/// request alone (not as "contended, retry"), and must not fail the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_event_id_fails_only_its_own_request() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let dup = event(1);
    store
        .append(req(
            Uuid::now_v7(),
            ExpectedVersion::NoStream,
            vec![dup.clone()],
        ))
        .await?;
    let err = store
        .append(req(
            Uuid::now_v7(),
            ExpectedVersion::NoStream,
            vec![dup.clone()],
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Database(_)),
        "expected a database error, got {err:?}"
    );

    let mut handles = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let ev = if i == 7 { dup.clone() } else { event(i) };
        handles.push(tokio::spawn(async move {
            store
                .append(req(Uuid::now_v7(), ExpectedVersion::NoStream, vec![ev]))
                .await
        }));
    }
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.await?;
        if i == 7 {
            assert!(matches!(r, Err(StoreError::Database(_))), "got {r:?}");
        } else {
            r?;
        }
    }
    assert_eq!(store.head().await?.seq, 20);
    assert_log_shape(&store).await?;
    store.verify(|_| {}).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_stream_with_max_seq_gives_the_prefix() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let s = Uuid::now_v7();
    let t = Uuid::now_v7();
    // s: seqs 1,2 | t: 3 | s: 4 | t: 5,6 | s: 7,8,9
    store
        .append(req(s, ExpectedVersion::NoStream, events(2)))
        .await?;
    store
        .append(req(t, ExpectedVersion::NoStream, events(1)))
        .await?;
    store
        .append(req(s, ExpectedVersion::Exact(2), events(1)))
        .await?;
    store
        .append(req(t, ExpectedVersion::Exact(1), events(2)))
        .await?;
    store
        .append(req(s, ExpectedVersion::Exact(3), events(3)))
        .await?;

    let full = store.read_stream(s, None).await?;
    assert_eq!(
        full.iter().map(|e| e.record.seq).collect::<Vec<_>>(),
        vec![1, 2, 4, 7, 8, 9]
    );
    for max in 0..=10 {
        let prefix = store.read_stream(s, Some(max)).await?;
        let want: Vec<_> = full
            .iter()
            .filter(|e| e.record.seq <= max)
            .cloned()
            .collect();
        assert_eq!(prefix, want, "read_stream(s, Some({max}))");
    }
    assert_eq!(store.read_stream(t, Some(5)).await?.len(), 2);
    assert!(store.read_stream(Uuid::now_v7(), None).await?.is_empty());

    let page = store.read_stream_page(s, 2, 2).await?;
    assert_eq!(
        page.iter()
            .map(|e| e.record.stream_version)
            .collect::<Vec<_>>(),
        vec![3, 4]
    );
    // Every event read back is the decoded body whose hash is stored.
    for e in &full {
        let encoded = e.record.clone().encode()?;
        assert_eq!(encoded.hash, e.hash);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seq_known_at_is_the_prefix_recorded_by_then() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    assert_eq!(store.seq_known_at(Timestamp::now()).await?, 0);
    let a = store
        .append(req(Uuid::now_v7(), ExpectedVersion::NoStream, events(2)))
        .await?;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let b = store
        .append(req(Uuid::now_v7(), ExpectedVersion::NoStream, events(3)))
        .await?;
    assert!(b.recorded_at >= a.recorded_at);

    let before = Timestamp::new(a.recorded_at.get() - chrono::Duration::microseconds(1));
    assert_eq!(store.seq_known_at(before).await?, 0);
    let at_a = store.seq_known_at(a.recorded_at).await?;
    if b.recorded_at > a.recorded_at {
        assert_eq!(at_a, a.last_seq);
    } else {
        assert_eq!(at_a, b.last_seq);
    }
    assert_eq!(store.seq_known_at(b.recorded_at).await?, b.last_seq);
    assert_eq!(store.seq_known_at(Timestamp::now()).await?, b.last_seq);
    // The answer is always a prefix: every event up to it was recorded by then.
    let log = read_all(&store).await?;
    for e in &log {
        let known = store.seq_known_at(e.record.recorded_at).await?;
        assert!(known >= e.record.seq);
        assert!(log[..known as usize]
            .iter()
            .all(|x| x.record.recorded_at <= e.record.recorded_at));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_stream_version_follow_appends() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let empty = store.head().await?;
    assert_eq!((empty.seq, empty.hash), (0, GENESIS));
    let s = Uuid::now_v7();
    assert_eq!(store.stream_version(s).await?, 0);

    let a = store
        .append(req(s, ExpectedVersion::NoStream, events(2)))
        .await?;
    let head = store.head().await?;
    assert_eq!(
        (head.seq, head.hash, head.recorded_at),
        (2, a.hash, a.recorded_at)
    );
    assert_eq!(store.stream_version(s).await?, 2);

    let t = Uuid::now_v7();
    let b = store
        .append(req(t, ExpectedVersion::NoStream, events(1)))
        .await?;
    let head = store.head().await?;
    assert_eq!(
        (head.seq, head.hash, head.recorded_at),
        (3, b.hash, b.recorded_at)
    );
    assert_eq!(store.stream_version(s).await?, 2);
    assert_eq!(store.stream_version(t).await?, 1);

    let verified = store.verify(|_| {}).await??;
    assert_eq!(
        (verified.head_seq, verified.head_hash, verified.streams),
        (3, b.hash, 2)
    );
    Ok(())
}
