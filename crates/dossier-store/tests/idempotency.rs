//! Idempotency keys: a retried request is answered with the stored result and
//! writes nothing; a key reused for another request is refused.

mod common;

use std::collections::HashSet;

use common::{assert_log_shape, events, idem_req, read_all, req};
use dossier_store::{Appended, ExpectedVersion, Store, StoreError};
use dossier_testkit::TestDb;
use uuid::Uuid;

const H1: [u8; 32] = [1; 32];
const H2: [u8; 32] = [2; 32];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_and_request_replays_the_original_and_writes_nothing() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    store
        .append(req(Uuid::now_v7(), ExpectedVersion::NoStream, events(1)))
        .await?;
    let s = Uuid::now_v7();
    let first = store
        .append(idem_req(s, ExpectedVersion::NoStream, events(2), "k1", H1))
        .await?;
    assert!(!first.replayed);
    assert_eq!((first.first_seq, first.last_seq, first.version), (2, 3, 2));
    let head = store.head().await?;
    let log = read_all(&store).await?;

    // A retry (new event ids, an expected version that would now conflict).
    let again = store
        .append(idem_req(s, ExpectedVersion::NoStream, events(2), "k1", H1))
        .await?;
    assert_eq!(
        again,
        Appended {
            replayed: true,
            ..first.clone()
        }
    );
    // Even when the retry names another stream: the key decides.
    let other = store
        .append(idem_req(
            Uuid::now_v7(),
            ExpectedVersion::Any,
            events(5),
            "k1",
            H1,
        ))
        .await?;
    assert_eq!(
        other,
        Appended {
            replayed: true,
            ..first.clone()
        }
    );
    // And from another process that never saw the key.
    let restarted = db.store().await?;
    let later = restarted
        .append(idem_req(s, ExpectedVersion::Exact(2), events(1), "k1", H1))
        .await?;
    assert_eq!(
        later,
        Appended {
            replayed: true,
            ..first.clone()
        }
    );

    assert_eq!(store.head().await?, head, "a replay writes nothing");
    assert_eq!(read_all(&store).await?, log);
    assert_eq!(store.stream_version(s).await?, 2);
    store.verify(|_| {}).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_with_another_request_is_refused() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let s = Uuid::now_v7();
    store
        .append(idem_req(s, ExpectedVersion::NoStream, events(1), "k", H1))
        .await?;
    let head = store.head().await?;
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::Exact(1),
        ExpectedVersion::NoStream,
    ] {
        let err = store
            .append(idem_req(s, expected, events(1), "k", H2))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::IdempotencyMismatch(k) if k == "k"),
            "got {err:?}"
        );
    }
    let err = db
        .store()
        .await?
        .append(idem_req(
            Uuid::now_v7(),
            ExpectedVersion::Any,
            events(1),
            "k",
            H2,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::IdempotencyMismatch(k) if k == "k"),
        "got {err:?}"
    );
    assert_eq!(store.head().await?, head);
    Ok(())
}

/// A request that was refused did not use up its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_does_not_store_its_key() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let s = Uuid::now_v7();
    store
        .append(req(s, ExpectedVersion::NoStream, events(1)))
        .await?;
    let err = store
        .append(idem_req(s, ExpectedVersion::Exact(5), events(1), "k", H1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { current: 1, .. }),
        "got {err:?}"
    );
    assert!(store.find_idempotency("k").await?.is_none());
    let ok = store
        .append(idem_req(s, ExpectedVersion::Exact(1), events(1), "k", H1))
        .await?;
    assert!(!ok.replayed);
    assert_eq!(ok.version, 2);
    Ok(())
}

async fn same_key_concurrently(stores: &[Store], tasks: usize) -> anyhow::Result<()> {
    let s = Uuid::now_v7();
    let mut handles = Vec::new();
    for i in 0..tasks {
        let store = stores[i % stores.len()].clone();
        handles.push(tokio::spawn(async move {
            store
                .append(idem_req(s, ExpectedVersion::Any, events(3), "shared", H1))
                .await
        }));
    }
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await??);
    }
    let originals: Vec<&Appended> = results.iter().filter(|a| !a.replayed).collect();
    assert_eq!(
        originals.len(),
        1,
        "exactly one request writes: {results:?}"
    );
    let original = originals[0];
    for a in &results {
        assert_eq!(
            Appended {
                replayed: false,
                ..a.clone()
            },
            *original
        );
    }
    assert_eq!(
        (original.first_seq, original.last_seq, original.version),
        (1, 3, 3)
    );
    let log = assert_log_shape(&stores[0]).await?;
    assert_eq!(log.len(), 3, "one write of three events");
    assert_eq!(stores[0].stream_version(s).await?, 3);
    stores[0].verify(|_| {}).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uses_of_one_key_write_once() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    same_key_concurrently(&[store], 40).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uses_of_one_key_from_two_processes_write_once() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let stores = [db.store().await?, db.store().await?];
    same_key_concurrently(&stores, 40).await
}

/// Racing requests with one key but different digests: one digest wins, its
/// requests all get its result, the others are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uses_of_one_key_for_different_requests() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let stores = [db.store().await?, db.store().await?];
    let mut handles = Vec::new();
    for i in 0..40usize {
        let store = stores[i % 2].clone();
        let digest = if i % 3 == 0 { H2 } else { H1 };
        handles.push(tokio::spawn(async move {
            let r = store
                .append(idem_req(
                    Uuid::now_v7(),
                    ExpectedVersion::NoStream,
                    events(1),
                    "raced",
                    digest,
                ))
                .await;
            (digest, r)
        }));
    }
    let mut winners = HashSet::new();
    let mut ok = Vec::new();
    let mut outcomes = Vec::new();
    for h in handles {
        outcomes.push(h.await?);
    }
    for (digest, r) in &outcomes {
        if let Ok(a) = r {
            winners.insert(*digest);
            ok.push(a.clone());
        }
    }
    assert_eq!(winners.len(), 1, "exactly one digest wins");
    let winner = *winners.iter().next().unwrap();
    for (digest, r) in &outcomes {
        if *digest == winner {
            assert!(r.is_ok(), "the winner's digest is always answered: {r:?}");
        } else {
            assert!(
                matches!(r, Err(StoreError::IdempotencyMismatch(_))),
                "got {r:?}"
            );
        }
    }
    assert_eq!(ok.iter().filter(|a| !a.replayed).count(), 1);
    assert!(ok.iter().all(|a| a.first_seq == 1 && a.last_seq == 1));
    assert_eq!(stores[0].head().await?.seq, 1);
    let (stored_digest, _) = stores[0].find_idempotency("raced").await?.unwrap();
    assert_eq!(stored_digest, winner);
    stores[0].verify(|_| {}).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_idempotency_returns_the_stored_result() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    assert!(store.find_idempotency("nope").await?.is_none());
    store
        .append(req(Uuid::now_v7(), ExpectedVersion::NoStream, events(2)))
        .await?;
    let s = Uuid::now_v7();
    let a = store
        .append(idem_req(
            s,
            ExpectedVersion::NoStream,
            events(3),
            "find-me",
            H2,
        ))
        .await?;
    let b = store
        .append(idem_req(
            s,
            ExpectedVersion::Exact(3),
            events(1),
            "and-me",
            H1,
        ))
        .await?;
    let (digest, found) = store.find_idempotency("find-me").await?.unwrap();
    assert_eq!(digest, H2);
    assert_eq!(
        found,
        Appended {
            replayed: true,
            ..a
        }
    );
    let (digest, found) = store.find_idempotency("and-me").await?.unwrap();
    assert_eq!(digest, H1);
    assert_eq!(
        found,
        Appended {
            replayed: true,
            ..b
        }
    );
    assert!(
        store.find_idempotency("find-me ").await?.is_none(),
        "keys are compared exactly"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_stored_request_digest_is_an_error_not_a_different_request() -> anyhow::Result<()>
{
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let s = Uuid::now_v7();
    store
        .append(idem_req(s, ExpectedVersion::NoStream, events(1), "k1", H1))
        .await?;
    let owner = db.owner_pool().await?;
    sqlx::query("UPDATE idempotency_keys SET request_hash = '\\x0102' WHERE key = 'k1'")
        .execute(&owner)
        .await?;

    // A process that has not seen the key reads it back from the table.
    let restarted = db.store().await?;
    let retry = restarted
        .append(idem_req(s, ExpectedVersion::Exact(1), events(1), "k1", H1))
        .await;
    assert!(matches!(retry, Err(StoreError::Corrupt(_))), "{retry:?}");
    let found = restarted.find_idempotency("k1").await;
    assert!(matches!(found, Err(StoreError::Corrupt(_))), "{found:?}");
    Ok(())
}
