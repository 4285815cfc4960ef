//! Tampering with the stored log as the database owner (bypassing the
//! append-only triggers) is found by `verify`, and reported at the right seq
//! with the right kind. The application role cannot change the log at all,
//! and with the triggers enabled neither can the owner.

mod common;

use std::collections::HashMap;

use common::{events, read_all, req};
use dossier_chain::{EventRecord, Hash, Violation, ViolationKind, GENESIS};
use dossier_store::{ExpectedVersion, Store};
use dossier_testkit::TestDb;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

const EVENTS: i64 = 20;

/// A log of 20 events over 3 streams, written through the store:
/// appends of 1 to 3 events, interleaved between the streams.
async fn build_log(store: &Store) -> anyhow::Result<Vec<Uuid>> {
    let streams: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let plan = [
        (0, 2),
        (1, 1),
        (2, 3),
        (0, 1),
        (1, 2),
        (0, 3),
        (2, 1),
        (1, 1),
        (2, 2),
        (0, 1),
        (1, 3),
    ];
    for (s, n) in plan {
        store
            .append(req(streams[s], ExpectedVersion::Any, events(n)))
            .await?;
    }
    assert_eq!(store.head().await?.seq, EVENTS);
    store.verify(|_| {}).await??;
    Ok(streams)
}

async fn setup() -> anyhow::Result<(TestDb, Store)> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    build_log(&store).await?;
    Ok((db, store))
}

/// An owner transaction in which the append-only triggers do not fire.
async fn tampering(db: &TestDb) -> anyhow::Result<Transaction<'static, Postgres>> {
    let pool = db.owner_pool().await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

async fn violation(store: &Store) -> anyhow::Result<Violation> {
    match store.verify(|_| {}).await? {
        Ok(head) => anyhow::bail!("verify passed a tampered log: {head:?}"),
        Err(v) => Ok(v),
    }
}

fn assert_violation(v: &Violation, kind: ViolationKind, seq: i64) {
    assert_eq!((v.kind, v.seq), (kind, seq), "got {v}");
}

async fn stored_body(tx: &mut Transaction<'static, Postgres>, seq: i64) -> anyhow::Result<Vec<u8>> {
    Ok(sqlx::query_scalar("SELECT body FROM events WHERE seq = $1")
        .bind(seq)
        .fetch_one(&mut **tx)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_body_byte_is_a_bad_hash_at_that_seq() -> anyhow::Result<()> {
    for seq in [1, 7, EVENTS] {
        let (db, store) = setup().await?;
        let mut tx = tampering(&db).await?;
        let mut body = stored_body(&mut tx, seq).await?;
        let at = body.len() / 2;
        body[at] ^= 0x01;
        sqlx::query("UPDATE events SET body = $1 WHERE seq = $2")
            .bind(&body)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        assert_violation(&violation(&store).await?, ViolationKind::BadHash, seq);
    }
    Ok(())
}

/// The verifier checks a row's stored hash against its body before it looks
/// at links, so a changed stored hash is reported at the changed row as
/// BadHash (never as a BrokenLink at the next row).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_stored_hash_is_a_bad_hash_at_that_seq() -> anyhow::Result<()> {
    for seq in [1, 9, EVENTS] {
        let (db, store) = setup().await?;
        let mut tx = tampering(&db).await?;
        sqlx::query(
            "UPDATE events SET hash = set_byte(hash, 0, get_byte(hash, 0) # 255) WHERE seq = $1",
        )
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        assert_violation(&violation(&store).await?, ViolationKind::BadHash, seq);
    }
    Ok(())
}

/// The columns next to the body are copies; one that disagrees with the
/// hashed body is reported as Malformed at its row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_indexed_column_is_malformed_at_that_seq() -> anyhow::Result<()> {
    for column in ["prev_hash", "stream_prev_hash"] {
        let (db, store) = setup().await?;
        let mut tx = tampering(&db).await?;
        sqlx::query(&format!("UPDATE events SET {column} = $1 WHERE seq = 12"))
            .bind(vec![9u8; 32])
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        assert_violation(&violation(&store).await?, ViolationKind::Malformed, 12);
    }
    let (db, store) = setup().await?;
    let mut tx = tampering(&db).await?;
    sqlx::query("UPDATE events SET stream_version = stream_version + 100 WHERE seq = 5")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    assert_violation(&violation(&store).await?, ViolationKind::Malformed, 5);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_event_is_a_gap_naming_the_missing_seq() -> anyhow::Result<()> {
    for seq in [1, 10, EVENTS] {
        let (db, store) = setup().await?;
        let mut tx = tampering(&db).await?;
        let deleted = sqlx::query("DELETE FROM events WHERE seq = $1")
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        assert_eq!(deleted.rows_affected(), 1);
        tx.commit().await?;
        // The last event is missing against the chain head row, which still names it.
        assert_violation(&violation(&store).await?, ViolationKind::Gap, seq);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_adjacent_events_are_reordered() -> anyhow::Result<()> {
    let (db, store) = setup().await?;
    let mut tx = tampering(&db).await?;
    sqlx::query(
        "UPDATE events e SET body = o.body, hash = o.hash
         FROM (SELECT seq, body, hash FROM events WHERE seq IN (10, 11)) o
         WHERE e.seq IN (10, 11) AND o.seq = 21 - e.seq",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    assert_violation(&violation(&store).await?, ViolationKind::Reordered, 10);
    Ok(())
}

/// Rewrites the log from `from` on: `change` edits the record at `from`, then
/// every event from there is re-encoded with the chain and stream links
/// recomputed, and the chain and stream heads are moved to match, as a forger
/// with owner access would.
async fn rewrite_from(
    db: &TestDb,
    from: i64,
    change: impl FnOnce(&mut EventRecord),
) -> anyhow::Result<Hash> {
    let mut tx = tampering(db).await?;
    let rows = sqlx::query("SELECT seq, body, hash FROM events ORDER BY seq")
        .fetch_all(&mut *tx)
        .await?;
    let mut prev = GENESIS;
    let mut stream_last: HashMap<Uuid, (i64, Hash)> = HashMap::new();
    let mut change = Some(change);
    for row in rows {
        let seq: i64 = row.get("seq");
        let body: Vec<u8> = row.get("body");
        let mut record = EventRecord::decode(&body)?;
        if seq < from {
            let hash = Hash::from_slice(row.get::<&[u8], _>("hash")).unwrap();
            stream_last.insert(record.stream_id, (record.stream_version, hash));
            prev = hash;
            continue;
        }
        record.prev_hash = prev;
        let (version, last) = stream_last
            .get(&record.stream_id)
            .copied()
            .unwrap_or((0, GENESIS));
        record.stream_prev_hash = last;
        record.stream_version = version + 1;
        if seq == from {
            (change.take().unwrap())(&mut record);
        }
        let encoded = record.encode()?;
        sqlx::query(
            "UPDATE events SET body = $1, hash = $2, prev_hash = $3, stream_prev_hash = $4,
                               stream_version = $5, stream_id = $6
             WHERE seq = $7",
        )
        .bind(&encoded.body)
        .bind(encoded.hash.0.to_vec())
        .bind(encoded.record.prev_hash.0.to_vec())
        .bind(encoded.record.stream_prev_hash.0.to_vec())
        .bind(encoded.record.stream_version)
        .bind(encoded.record.stream_id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        stream_last.insert(
            encoded.record.stream_id,
            (encoded.record.stream_version, encoded.hash),
        );
        prev = encoded.hash;
    }
    sqlx::query("UPDATE chain_head SET hash = $1 WHERE id")
        .bind(prev.0.to_vec())
        .execute(&mut *tx)
        .await?;
    for (stream, (version, hash)) in &stream_last {
        sqlx::query("UPDATE stream_heads SET version = $1, hash = $2 WHERE stream_id = $3")
            .bind(version)
            .bind(hash.0.to_vec())
            .bind(stream)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(prev)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehashed_event_with_a_wrong_stream_link_is_stream_link_broken() -> anyhow::Result<()> {
    // An event in the second half whose stream already has history.
    let (db, store) = setup().await?;
    let log = read_all(&store).await?;
    let target = log
        .iter()
        .find(|e| e.record.stream_version > 1 && e.record.seq > 10)
        .unwrap();
    let seq = target.record.seq;
    rewrite_from(&db, seq, |r| r.stream_prev_hash = Hash([0x5a; 32])).await?;
    assert_violation(
        &violation(&store).await?,
        ViolationKind::StreamLinkBroken,
        seq,
    );

    // A stream's first event must link to GENESIS.
    let (db, store) = setup().await?;
    let log = read_all(&store).await?;
    let first_of_stream = log
        .iter()
        .find(|e| e.record.stream_version == 1 && e.record.seq > 1)
        .unwrap();
    let seq = first_of_stream.record.seq;
    rewrite_from(&db, seq, |r| r.stream_prev_hash = log[0].hash).await?;
    assert_violation(
        &violation(&store).await?,
        ViolationKind::StreamLinkBroken,
        seq,
    );

    // A skipped stream version, with the hashes recomputed (by far, so that the
    // rewritten versions do not collide with the rows not yet rewritten).
    let (db, store) = setup().await?;
    rewrite_from(&db, 15, |r| r.stream_version += 1000).await?;
    assert_violation(
        &violation(&store).await?,
        ViolationKind::StreamLinkBroken,
        15,
    );
    Ok(())
}

/// What the chain does not prove on its own: a forger who rewrites an event
/// and every hash after it, chain head included, produces a log that verifies.
/// Only a head hash kept elsewhere (an anchor) shows the difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_rewrite_verifies_but_changes_the_head_hash() -> anyhow::Result<()> {
    let (db, store) = setup().await?;
    let before = store.head().await?;
    let new_head = rewrite_from(&db, 8, |r| r.payload = serde_json::json!({ "n": 12345 })).await?;
    let verified = store.verify(|_| {}).await??;
    assert_eq!(verified.head_seq, EVENTS);
    assert_eq!(verified.head_hash, new_head);
    assert_ne!(verified.head_hash, before.hash);
    Ok(())
}

fn error_text(r: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> String {
    match r {
        Ok(done) => panic!("the statement succeeded ({} rows)", done.rows_affected()),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_role_cannot_change_the_log() -> anyhow::Result<()> {
    let (db, store) = setup().await?;
    let app = db.app_pool().await?;
    let log = read_all(&store).await?;
    for sql in [
        "UPDATE events SET event_type = 'Forged' WHERE seq = 3",
        "UPDATE events SET body = body",
        "DELETE FROM events WHERE seq = 3",
        "DELETE FROM events",
        "TRUNCATE events",
        "ALTER TABLE events DISABLE TRIGGER USER",
        "DROP TRIGGER events_no_update_delete ON events",
    ] {
        let err = error_text(sqlx::query(sql).execute(&app).await);
        assert!(
            err.contains("permission denied") || err.contains("must be owner"),
            "{sql}: {err}"
        );
    }
    assert_eq!(read_all(&store).await?, log);
    store.verify(|_| {}).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn even_the_owner_cannot_change_the_log_with_triggers_enabled() -> anyhow::Result<()> {
    let (db, store) = setup().await?;
    let owner = db.owner_pool().await?;
    let log = read_all(&store).await?;
    for sql in [
        "UPDATE events SET event_type = 'Forged' WHERE seq = 3",
        "UPDATE events SET body = body",
        "DELETE FROM events WHERE seq = 3",
        "DELETE FROM events",
        "TRUNCATE events",
        "TRUNCATE events CASCADE",
    ] {
        let err = error_text(sqlx::query(sql).execute(&owner).await);
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(read_all(&store).await?, log);
    store.verify(|_| {}).await??;
    Ok(())
}
