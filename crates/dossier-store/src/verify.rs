//! Streaming verification of the whole log. The log is cut into contiguous
//! seq ranges, each read as binary COPY on its own connection inside one
//! snapshot and checked on its own blocking thread; the ranges are then
//! linked in order (`dossier_chain::Verifier::link`), which gives exactly
//! what one pass over the whole log gives. Reading and hashing overlap, and
//! memory stays flat however long the log is (plus one entry per stream).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};

use dossier_chain::{
    Hash, RangeVerifier, StoredRow, UnlinkedRange, VerifiedHead, Verifier, Violation, ViolationKind,
};
use futures_util::future::try_join_all;
use futures_util::StreamExt;
use sqlx::{Executor, PgConnection, Postgres, Row, Transaction};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::error::StoreError;
use crate::Store;

/// Reported every few thousand events while verifying.
#[derive(Clone, Copy, Debug)]
pub struct VerifyProgress {
    pub verified: i64,
    pub total: i64,
}

/// Ranges read in parallel by [`Store::verify`]: on the two cores this was
/// measured on, two connections keep both busy (docs/performance.md).
const DEFAULT_RANGES: usize = 2;

/// Below this many events per range another connection is not worth opening.
const MIN_RANGE_EVENTS: i64 = 16_384;

/// COPY data is handed to a checker thread in buffers of about this size:
/// one hand-off per few hundred rows instead of one per row.
pub(crate) const BUFFER_BYTES: usize = 512 * 1024;

/// Full buffers in flight per range, between its reader and its checker.
pub(crate) const BUFFERS_IN_FLIGHT: usize = 4;

/// How often (in events per range) progress is reported.
const PROGRESS_EVERY: i64 = 65_536;

/// Every statement of a verification runs in one read-only snapshot.
const ISOLATION: &str = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Rows are read in seq order straight from the primary key index: a sort
/// (which the planner picks for a seq range without statistics, right after
/// a bulk load) would hold back the first row until the last is read, and
/// parallel workers or JIT compilation only add to a plain index scan.
const PLAN: &str = "SET LOCAL enable_sort = off;
    SET LOCAL enable_bitmapscan = off;
    SET LOCAL max_parallel_workers_per_gather = 0;
    SET LOCAL jit = off";

/// The columns verification needs (docs/chain-format.md §6), in seq order,
/// for the seqs in (`after`, `upto`] (`None`: unbounded).
pub(crate) fn range_copy(after: Option<i64>, upto: Option<i64>) -> String {
    let filter = match (after, upto) {
        (None, None) => String::new(),
        (Some(a), None) => format!("WHERE seq > {a}"),
        (None, Some(b)) => format!("WHERE seq <= {b}"),
        (Some(a), Some(b)) => format!("WHERE seq > {a} AND seq <= {b}"),
    };
    format!(
        "COPY (SELECT seq, stream_id, stream_version, prev_hash, stream_prev_hash, hash, body
           FROM events {filter} ORDER BY seq) TO STDOUT (FORMAT binary)"
    )
}

/// One snapshot of the log, open on one or more connections.
pub(crate) struct Snapshot {
    /// The first holds the snapshot; the others imported it.
    pub(crate) txs: Vec<Transaction<'static, Postgres>>,
    pub(crate) head_seq: i64,
    head_hash: Vec<u8>,
}

impl Snapshot {
    /// The COPY statement of each range: the seqs up to the chain head split
    /// evenly, the first and last range open-ended so that together they
    /// return exactly the rows of one `ORDER BY seq` over the whole table.
    fn range_copies(&self) -> Vec<String> {
        let k = self.txs.len() as i64;
        let bound = |i: i64| (i > 0 && i < k).then(|| self.head_seq * i / k);
        (0..k).map(|i| range_copy(bound(i), bound(i + 1))).collect()
    }
}

impl Store {
    /// Begins the verification snapshot on up to `ranges` connections. The
    /// extra connections are taken only if the pool has them to spare; if the
    /// server cannot share a snapshot, one connection reads everything.
    pub(crate) async fn open_snapshot(&self, ranges: usize) -> Result<Snapshot, StoreError> {
        let mut first = self.pool.begin().await?;
        first
            .execute(format!("{ISOLATION}; {PLAN}").as_str())
            .await?;
        let mut txs = Vec::new();
        if ranges > 1 {
            match sqlx::query_scalar::<_, String>("SELECT pg_export_snapshot()")
                .fetch_one(&mut *first)
                .await
            {
                Ok(id) => {
                    while txs.len() + 1 < ranges && self.connection_to_spare() {
                        match self.import_snapshot(&id).await {
                            Ok(tx) => txs.push(tx),
                            Err(e) => {
                                tracing::debug!(error = %e, "verifying with fewer connections");
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot share a snapshot; verifying on one connection");
                    first.rollback().await?;
                    first = self.pool.begin().await?;
                    first
                        .execute(format!("{ISOLATION}; {PLAN}").as_str())
                        .await?;
                }
            }
        }
        let head = sqlx::query("SELECT seq, hash FROM chain_head WHERE id")
            .fetch_one(&mut *first)
            .await?;
        txs.insert(0, first);
        Ok(Snapshot {
            txs,
            head_seq: head.get("seq"),
            head_hash: head.get("hash"),
        })
    }

    fn connection_to_spare(&self) -> bool {
        self.pool.num_idle() > 0 || self.pool.size() < self.pool.options().get_max_connections()
    }

    async fn import_snapshot(
        &self,
        id: &str,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        // The id comes from the server; checked anyway since it is spliced in.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(StoreError::Corrupt(format!(
                "unexpected snapshot id {id:?}"
            )));
        }
        let mut tx = self.pool.begin().await?;
        let session = format!("{ISOLATION}; SET TRANSACTION SNAPSHOT '{id}'; {PLAN}");
        tx.execute(session.as_str()).await?;
        Ok(tx)
    }

    /// Streams the same rows as [`Store::verify_in_ranges`] with `ranges`
    /// connections and discards them: what reading alone costs, as a
    /// baseline for verification speed. Returns the number of bytes read.
    pub async fn scan_log(&self, ranges: usize) -> Result<u64, StoreError> {
        let mut snapshot = self.open_snapshot(ranges.max(1)).await?;
        let copies = snapshot.range_copies();
        let mut reads = Vec::new();
        for (tx, sql) in snapshot.txs.iter_mut().zip(&copies) {
            reads.push(scan_range(tx, sql));
        }
        let bytes = try_join_all(reads).await?.into_iter().sum();
        for tx in snapshot.txs {
            tx.rollback().await?;
        }
        Ok(bytes)
    }

    /// Verifies the integrity of the whole log in one snapshot (hashes, links,
    /// order, gaps, stream links). The outer error is an I/O or database
    /// failure; the inner one is the first violation found.
    pub async fn verify(
        &self,
        progress: impl FnMut(VerifyProgress) + Send + 'static,
    ) -> Result<Result<VerifiedHead, Violation>, StoreError> {
        self.verify_with(false, progress).await
    }

    /// Like [`Store::verify`]; `strict` also checks that every body is a
    /// canonical, valid dossier-chain/1 event (much slower).
    pub async fn verify_with(
        &self,
        strict: bool,
        progress: impl FnMut(VerifyProgress) + Send + 'static,
    ) -> Result<Result<VerifiedHead, Violation>, StoreError> {
        let head = sqlx::query_scalar::<_, i64>("SELECT seq FROM chain_head WHERE id")
            .fetch_one(&self.pool)
            .await?;
        let ranges = (head / MIN_RANGE_EVENTS).clamp(1, DEFAULT_RANGES as i64) as usize;
        self.verify_in_ranges(strict, ranges, progress).await
    }

    /// Like [`Store::verify_with`], reading the log in `ranges` contiguous
    /// seq ranges in parallel, each on its own connection (fewer if the pool
    /// has no connection to spare). The outcome does not depend on `ranges`:
    /// the same head, or the same first violation.
    pub async fn verify_in_ranges(
        &self,
        strict: bool,
        ranges: usize,
        progress: impl FnMut(VerifyProgress) + Send + 'static,
    ) -> Result<Result<VerifiedHead, Violation>, StoreError> {
        let mut snapshot = self.open_snapshot(ranges.max(1)).await?;
        let head_seq = snapshot.head_seq;
        let copies = snapshot.range_copies();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            verified: AtomicI64::new(0),
            total: head_seq,
            progress: Mutex::new(Box::new(progress)),
        });

        let mut checkers = Vec::new();
        let mut reads = Vec::new();
        for (i, (tx, sql)) in snapshot.txs.iter_mut().zip(&copies).enumerate() {
            let (full_tx, full_rx) = mpsc::channel::<Vec<u8>>(BUFFERS_IN_FLIGHT);
            let (empty_tx, empty_rx) = std_mpsc::channel::<Vec<u8>>();
            let check = if i == 0 {
                RangeCheck::First(if strict {
                    Verifier::new()
                } else {
                    Verifier::integrity_only()
                })
            } else {
                RangeCheck::Later(RangeVerifier::new(strict))
            };
            let shared = shared.clone();
            checkers.push(tokio::task::spawn_blocking(move || {
                check_range(check, full_rx, empty_tx, &shared)
            }));
            reads.push(read_range(tx, sql, full_tx, empty_rx));
        }
        let read = try_join_all(reads).await;
        let mut outcomes = Vec::new();
        for checker in checkers {
            outcomes.push(
                checker
                    .await
                    .map_err(|e| StoreError::Corrupt(format!("verifier thread failed: {e}")))?,
            );
        }
        let complete = read?;
        // A reader that stopped early left its COPY unfinished: that connection
        // is dropped (and cleaned up by the pool) instead of rolled back here.
        for (tx, complete) in snapshot.txs.into_iter().zip(complete) {
            if complete {
                tx.rollback().await?;
            }
        }

        let mut outcomes = outcomes.into_iter();
        let mut verifier = match outcomes.next() {
            Some(Ok(Checked::First(Ok(v)))) => v,
            Some(Ok(Checked::First(Err(violation)))) => return Ok(Err(violation)),
            Some(Err(e)) => return Err(e),
            _ => unreachable!("the first range is checked by a Verifier"),
        };
        for outcome in outcomes {
            match outcome? {
                Checked::Later(range) => {
                    if let Err(violation) = verifier.link(range) {
                        return Ok(Err(violation));
                    }
                }
                Checked::First(_) | Checked::Cancelled => {
                    unreachable!("later ranges are only cancelled after the first one failed")
                }
            }
        }
        shared.add_verified(0);
        Ok(verifier.finish(Some(head_seq)).and_then(|verified| {
            if verified.head_seq != head_seq
                || verified.head_hash.as_bytes()[..] != snapshot.head_hash[..]
            {
                Err(Violation {
                    seq: head_seq,
                    kind: ViolationKind::BrokenLink,
                    detail: format!(
                        "the chain head row says seq {head_seq} hash {}, the log ends at seq {} hash {}",
                        hex::encode(&snapshot.head_hash),
                        verified.head_seq,
                        verified.head_hash
                    ),
                })
            } else {
                Ok(verified)
            }
        }))
    }
}

/// State the checker threads share.
struct Shared {
    /// Set when the first range found a violation: nothing later can matter.
    stop: AtomicBool,
    verified: AtomicI64,
    total: i64,
    progress: Mutex<Box<dyn FnMut(VerifyProgress) + Send>>,
}

impl Shared {
    /// Counts `n` more verified events and reports the total.
    fn add_verified(&self, n: i64) {
        // Under the lock, so that reports from several ranges never go back.
        let mut progress = self.progress.lock().unwrap();
        let verified = self.verified.fetch_add(n, Ordering::Relaxed) + n;
        progress(VerifyProgress {
            verified,
            total: self.total,
        });
    }
}

async fn scan_range(tx: &mut PgConnection, sql: &str) -> Result<u64, StoreError> {
    let mut stream = tx.copy_out_raw(sql).await?;
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        bytes += chunk?.len() as u64;
    }
    Ok(bytes)
}

/// Streams one range's COPY data to its checker in large buffers, whole
/// CopyData messages each (PostgreSQL sends one message per row). Returns
/// false if it stopped early because the checker needs no more.
pub(crate) async fn read_range(
    tx: &mut PgConnection,
    sql: &str,
    full: mpsc::Sender<Vec<u8>>,
    empty: std_mpsc::Receiver<Vec<u8>>,
) -> Result<bool, StoreError> {
    let mut stream = tx.copy_out_raw(sql).await?;
    let mut buf = Vec::with_capacity(BUFFER_BYTES);
    while let Some(message) = stream.next().await {
        let message = message?;
        if buf.len() + message.len() > buf.capacity() && !buf.is_empty() {
            let next = empty
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(BUFFER_BYTES));
            if full.send(std::mem::replace(&mut buf, next)).await.is_err() {
                return Ok(false);
            }
        }
        buf.extend_from_slice(&message);
    }
    // The COPY is complete either way; a checker that already stopped does
    // not need the last buffer.
    let _ = full.send(buf).await;
    Ok(true)
}

enum RangeCheck {
    First(Verifier),
    Later(RangeVerifier),
}

enum Checked {
    First(Result<Verifier, Violation>),
    Later(UnlinkedRange),
    /// Stopped because the first range failed.
    Cancelled,
}

/// Parses and checks one range's rows as its buffers arrive, and hands the
/// emptied buffers back for reuse.
fn check_range(
    mut check: RangeCheck,
    mut full: mpsc::Receiver<Vec<u8>>,
    empty: std_mpsc::Sender<Vec<u8>>,
    shared: &Shared,
) -> Result<Checked, StoreError> {
    let mut parser = CopyParser::new();
    let mut unreported: i64 = 0;
    let mut stopped = false;
    while let Some(mut buf) = full.blocking_recv() {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(Checked::Cancelled);
        }
        let parsed = parser.parse(&buf, |t| {
            let go_on = match (&mut check, t.row()) {
                (RangeCheck::First(v), row) => {
                    if let Err(violation) = row.and_then(|row| v.push(row)) {
                        shared.stop.store(true, Ordering::Relaxed);
                        return Err(Stop::Violation(violation));
                    }
                    true
                }
                (RangeCheck::Later(r), Ok(row)) => r.push(row),
                (RangeCheck::Later(r), Err(violation)) => {
                    r.reject(violation);
                    false
                }
            };
            unreported += 1;
            if unreported == PROGRESS_EVERY {
                shared.add_verified(unreported);
                unreported = 0;
            }
            if go_on {
                Ok(())
            } else {
                Err(Stop::Range)
            }
        });
        buf.clear();
        let _ = empty.send(buf);
        match parsed {
            Ok(()) => {}
            Err(Stop::Corrupt(e)) => return Err(e),
            Err(Stop::Violation(v)) => return Ok(Checked::First(Err(v))),
            Err(Stop::Range) => {
                stopped = true;
                break;
            }
        }
    }
    shared.verified.fetch_add(unreported, Ordering::Relaxed);
    if !stopped && !parser.finished {
        return Err(StoreError::Corrupt("COPY stream ended early".into()));
    }
    Ok(match check {
        RangeCheck::First(v) => Checked::First(Ok(v)),
        RangeCheck::Later(r) => Checked::Later(r.finish()),
    })
}

pub(crate) enum Stop {
    Corrupt(StoreError),
    /// The first range found the log's first violation.
    Violation(Violation),
    /// A later range found a violation of its own.
    Range,
}

const PGCOPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
const FIELDS: i16 = 7;

/// Incremental parser for PostgreSQL's binary COPY format. Rows are parsed
/// in place in each buffer; only a row cut by the end of a buffer (which
/// the reader avoids) is copied.
pub(crate) struct CopyParser {
    /// The unparsed tail of the previous buffer, if it ended inside a row.
    carry: Vec<u8>,
    header_done: bool,
    pub(crate) finished: bool,
}

pub(crate) struct Tuple<'a> {
    seq: i64,
    stream_id: Uuid,
    stream_version: i64,
    prev_hash: &'a [u8],
    stream_prev_hash: &'a [u8],
    pub(crate) hash: &'a [u8],
    pub(crate) body: &'a [u8],
}

impl<'a> Tuple<'a> {
    /// The row to verify, or a violation if a hash column is not a hash.
    fn row(&self) -> Result<StoredRow<'a>, Violation> {
        let hash = |b: &[u8]| {
            Hash::from_slice(b).ok_or_else(|| Violation {
                seq: self.seq,
                kind: ViolationKind::Malformed,
                detail: "a hash column is not 32 bytes".into(),
            })
        };
        Ok(StoredRow {
            seq: self.seq,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            prev_hash: hash(self.prev_hash)?,
            stream_prev_hash: hash(self.stream_prev_hash)?,
            hash: hash(self.hash)?,
            body: self.body,
        })
    }
}

enum Parsed<'a> {
    /// The data ends before the next complete tuple.
    Incomplete,
    Trailer,
    Tuple(Tuple<'a>, usize),
}

fn corrupt(m: &str) -> StoreError {
    StoreError::Corrupt(format!("COPY stream: {m}"))
}

impl CopyParser {
    pub(crate) fn new() -> CopyParser {
        CopyParser {
            carry: Vec::new(),
            header_done: false,
            finished: false,
        }
    }

    /// Feeds `f` every complete tuple of `buf` (after what was carried over);
    /// stops at the first `Err` of `f`.
    pub(crate) fn parse(
        &mut self,
        buf: &[u8],
        mut f: impl FnMut(&Tuple<'_>) -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        if self.carry.is_empty() {
            let used = self.parse_in(buf, &mut f)?;
            self.carry.extend_from_slice(&buf[used..]);
        } else {
            let mut data = std::mem::take(&mut self.carry);
            data.extend_from_slice(buf);
            let used = self.parse_in(&data, &mut f)?;
            data.drain(..used);
            self.carry = data;
        }
        Ok(())
    }

    /// Parses complete tuples from the start of `data`; returns the bytes used.
    fn parse_in(
        &mut self,
        data: &[u8],
        f: &mut impl FnMut(&Tuple<'_>) -> Result<(), Stop>,
    ) -> Result<usize, Stop> {
        let mut pos = 0;
        if !self.header_done {
            match header_len(data).map_err(Stop::Corrupt)? {
                None => return Ok(0),
                Some(len) => {
                    pos = len;
                    self.header_done = true;
                }
            }
        }
        loop {
            if self.finished {
                return if pos == data.len() {
                    Ok(pos)
                } else {
                    Err(Stop::Corrupt(corrupt("data after the trailer")))
                };
            }
            match parse_tuple(&data[pos..]).map_err(Stop::Corrupt)? {
                Parsed::Incomplete => return Ok(pos),
                Parsed::Trailer => {
                    pos += 2;
                    self.finished = true;
                }
                Parsed::Tuple(t, len) => {
                    f(&t)?;
                    pos += len;
                }
            }
        }
    }
}

/// The length of the file header, once all of it is in `data`.
fn header_len(data: &[u8]) -> Result<Option<usize>, StoreError> {
    if data.len() < PGCOPY_SIGNATURE.len() + 8 {
        return Ok(None);
    }
    if &data[..PGCOPY_SIGNATURE.len()] != PGCOPY_SIGNATURE {
        return Err(corrupt("bad signature"));
    }
    let ext = u32::from_be_bytes(data[15..19].try_into().unwrap_or_default()) as usize;
    Ok((data.len() >= 19 + ext).then_some(19 + ext))
}

/// The tuple at the start of `data` and its length in bytes, if complete.
fn parse_tuple(data: &[u8]) -> Result<Parsed<'_>, StoreError> {
    if data.len() < 2 {
        return Ok(Parsed::Incomplete);
    }
    let count = i16::from_be_bytes([data[0], data[1]]);
    if count == -1 {
        return Ok(Parsed::Trailer);
    }
    if count != FIELDS {
        return Err(corrupt("unexpected field count"));
    }
    let mut at = 2;
    let mut fields: [&[u8]; FIELDS as usize] = [&[]; FIELDS as usize];
    for field in fields.iter_mut() {
        let Some(len) = data.get(at..at + 4) else {
            return Ok(Parsed::Incomplete);
        };
        let len = i32::from_be_bytes(len.try_into().unwrap_or_default());
        at += 4;
        if len < 0 {
            return Err(corrupt("unexpected NULL"));
        }
        let Some(value) = data.get(at..at + len as usize) else {
            return Ok(Parsed::Incomplete);
        };
        *field = value;
        at += len as usize;
    }
    let int8 = |b: &[u8]| -> Result<i64, StoreError> {
        Ok(i64::from_be_bytes(
            b.try_into().map_err(|_| corrupt("bigint width"))?,
        ))
    };
    let tuple = Tuple {
        seq: int8(fields[0])?,
        stream_id: Uuid::from_slice(fields[1]).map_err(|_| corrupt("uuid width"))?,
        stream_version: int8(fields[2])?,
        prev_hash: fields[3],
        stream_prev_hash: fields[4],
        hash: fields[5],
        body: fields[6],
    };
    Ok(Parsed::Tuple(tuple, at))
}

#[cfg(test)]
mod tests {
    //! Verification in ranges against a real database: the same outcome as
    //! one range for tampering at and around every range boundary.

    use dossier_chain::{Actor, EventRecord, Hash};
    use dossier_testkit::TestDb;
    use serde_json::json;
    use sqlx::PgPool;

    use super::*;
    use crate::{AppendRequest, ExpectedVersion, NewEvent};

    const EVENTS: i64 = 40;

    fn event(n: usize) -> NewEvent {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "NoteAdded".into(),
            schema_version: 1,
            effective_at: None,
            actor: Actor {
                id: Uuid::nil(),
                name: "tester".into(),
                role: "admin".into(),
            },
            reason: n.is_multiple_of(3).then(|| format!("reason \"{n}\" \\ 中")),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            payload: json!({ "n": n }),
        }
    }

    /// 40 events over 5 streams, appended 1 to 3 at a time in a fixed,
    /// interleaved order, so that every range boundary cuts some stream.
    async fn build_log(store: &Store) -> anyhow::Result<()> {
        let streams: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
        let mut written = 0;
        let mut i = 0;
        while written < EVENTS as usize {
            let n = (1 + i % 3).min(EVENTS as usize - written);
            let events = (written..written + n).map(event).collect();
            store
                .append(AppendRequest {
                    stream_id: streams[(i * 3) % 5],
                    expected: ExpectedVersion::Any,
                    events,
                    idempotency: None,
                })
                .await?;
            written += n;
            i += 1;
        }
        Ok(())
    }

    /// Re-encodes the event at `seq` after `change`, with a matching hash
    /// (a forger's edit), leaving every other row alone.
    async fn reencode(
        owner: &PgPool,
        seq: i64,
        change: impl FnOnce(&mut EventRecord),
    ) -> anyhow::Result<()> {
        let body: Vec<u8> = sqlx::query_scalar("SELECT body FROM events WHERE seq = $1")
            .bind(seq)
            .fetch_one(owner)
            .await?;
        let mut record = EventRecord::decode(&body)?;
        change(&mut record);
        let e = record.encode()?;
        tampering(
            owner,
            "UPDATE events SET body = $2, hash = $3, prev_hash = $4, stream_prev_hash = $5,
                               stream_version = $6
             WHERE seq = $1",
            seq,
            |q| {
                q.bind(e.body.clone())
                    .bind(e.hash.0.to_vec())
                    .bind(e.record.prev_hash.0.to_vec())
                    .bind(e.record.stream_prev_hash.0.to_vec())
                    .bind(e.record.stream_version)
            },
        )
        .await
    }

    type Query<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

    /// Runs `sql` (with `$1` = `seq`) as the owner with the append-only
    /// triggers off.
    async fn tampering<'q>(
        owner: &PgPool,
        sql: &'q str,
        seq: i64,
        bind: impl FnOnce(Query<'q>) -> Query<'q>,
    ) -> anyhow::Result<()> {
        let mut tx = owner.begin().await?;
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *tx)
            .await?;
        bind(sqlx::query(sql).bind(seq)).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn restore(owner: &PgPool) -> anyhow::Result<()> {
        sqlx::raw_sql(
            "BEGIN;
             SET LOCAL session_replication_role = replica;
             DELETE FROM events;
             INSERT INTO events SELECT * FROM events_original;
             COMMIT",
        )
        .execute(owner)
        .await?;
        Ok(())
    }

    /// A store of this crate (the testkit's own is another copy of it).
    async fn app_store(db: &TestDb) -> anyhow::Result<Store> {
        Ok(Store::new(crate::connect_app(&db.url(), 16).await?))
    }

    /// The API awaits verification in a handler, which must be Send.
    #[allow(dead_code)]
    fn verification_is_send(store: &Store) {
        fn send<T: Send>(_: T) {}
        send(store.verify(|_| {}));
        send(store.scan_log(2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ranges_share_one_snapshot_on_their_own_connections() -> anyhow::Result<()> {
        let db = TestDb::new().await?;
        let store = app_store(&db).await?;
        build_log(&store).await?;
        let snapshot = store.open_snapshot(3).await?;
        assert_eq!(snapshot.txs.len(), 3);
        assert_eq!(snapshot.head_seq, EVENTS);
        assert_eq!(
            snapshot.range_copies(),
            vec![
                range_copy(None, Some(13)),
                range_copy(Some(13), Some(26)),
                range_copy(Some(26), None)
            ]
        );
        // Rows appended after the snapshot was taken are not seen.
        let mut txs = snapshot.txs;
        build_log(&store).await?;
        for tx in &mut txs {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(&mut **tx)
                .await?;
            assert_eq!(n, EVENTS);
        }
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tampering_near_range_boundaries_is_reported_as_by_one_range() -> anyhow::Result<()> {
        use ViolationKind::*;
        let db = TestDb::new().await?;
        let store = app_store(&db).await?;
        build_log(&store).await?;
        let owner = crate::connect_owner(&db.url(), 4).await?;
        sqlx::raw_sql(
            "CREATE TABLE events_original AS SELECT * FROM events;
             ALTER TABLE events DROP CONSTRAINT events_hash_check",
        )
        .execute(&owner)
        .await?;
        let clean = store.verify_in_ranges(false, 1, |_| {}).await??;
        for ranges in 2..=4 {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let report = seen.clone();
            let head = store
                .verify_in_ranges(false, ranges, move |p| report.lock().unwrap().push(p))
                .await??;
            assert_eq!(head, clean);
            // The last report says everything was verified (what ends a progress bar).
            let last = *seen.lock().unwrap().last().unwrap();
            assert_eq!((last.verified, last.total), (EVENTS, EVENTS));
        }
        assert_eq!(store.verify_in_ranges(true, 3, |_| {}).await??, clean);

        // The boundaries of 2, 3 and 4 ranges over 40 events are after 10,
        // 13, 20, 26 and 30: tamper with the rows on both sides of each.
        let seqs = [1, 2, 10, 11, 13, 14, 20, 21, 26, 27, 30, 31, EVENTS];
        let owner = &owner;
        for seq in seqs {
            let cases: Vec<(&str, ViolationKind)> = vec![
                ("flipped body byte", BadHash),
                ("flipped hash byte", BadHash),
                ("short hash", Malformed),
                ("deleted", Gap),
                ("changed column", Malformed),
                ("swapped with the next", Reordered),
                ("re-hashed with a wrong prev_hash", BrokenLink),
                ("re-hashed with a wrong stream link", StreamLinkBroken),
            ];
            for (case, kind) in cases {
                match case {
                    "flipped body byte" => {
                        tampering(owner, "UPDATE events SET body = set_byte(body, 50, get_byte(body, 50) # 1) WHERE seq = $1", seq, |q| q).await?
                    }
                    "flipped hash byte" => {
                        tampering(owner, "UPDATE events SET hash = set_byte(hash, 0, get_byte(hash, 0) # 1) WHERE seq = $1", seq, |q| q).await?
                    }
                    "short hash" => {
                        tampering(owner, "UPDATE events SET hash = substring(hash FROM 2) WHERE seq = $1", seq, |q| q).await?
                    }
                    "deleted" => tampering(owner, "DELETE FROM events WHERE seq = $1", seq, |q| q).await?,
                    "changed column" => {
                        tampering(owner, "UPDATE events SET stream_version = stream_version + 100 WHERE seq = $1", seq, |q| q).await?
                    }
                    "swapped with the next" => {
                        if seq == EVENTS {
                            continue;
                        }
                        tampering(
                            owner,
                            "UPDATE events e SET body = o.body, hash = o.hash
                             FROM (SELECT seq, body, hash FROM events WHERE seq IN ($1, $1 + 1)) o
                             WHERE e.seq IN ($1, $1 + 1) AND o.seq = 2 * $1 + 1 - e.seq",
                            seq,
                            |q| q,
                        )
                        .await?
                    }
                    "re-hashed with a wrong prev_hash" => {
                        reencode(owner, seq, |r| r.prev_hash = Hash([7; 32])).await?
                    }
                    _ => reencode(owner, seq, |r| r.stream_version += 1000).await?,
                }
                let one = store.verify_in_ranges(false, 1, |_| {}).await?;
                let v = one.as_ref().expect_err(case);
                assert_eq!((v.seq, v.kind), (seq, kind), "{case} at {seq}: {v}");
                for ranges in 2..=4 {
                    let got = store.verify_in_ranges(false, ranges, |_| {}).await?;
                    assert_eq!(got, one, "{case} at {seq}, {ranges} ranges");
                }
                if matches!(kind, BrokenLink | StreamLinkBroken) {
                    let strict = store.verify_in_ranges(true, 3, |_| {}).await?;
                    assert_eq!(strict, one, "{case} at {seq}, strict");
                }
                restore(owner).await?;
            }
        }
        assert_eq!(store.verify(|_| {}).await??, clean);
        Ok(())
    }
}
