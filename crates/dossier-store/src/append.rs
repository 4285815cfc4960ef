//! The append path: one writer task per process drains a queue of append
//! requests and commits each batch with a single call of
//! `dossier_append_batch` (one round trip, one commit). Seqs and hashes are
//! computed here from cached chain and stream heads; the SQL function re-checks
//! those heads under the chain-head lock, so several processes can write safely:
//! the one that finds a head moved reloads and retries.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dossier_chain::{Actor, CanonicalPayload, Envelope, Hash, Timestamp, GENESIS};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::error::StoreError;

/// At most this many events go into one transaction.
const MAX_BATCH_EVENTS: usize = 2_000;
/// Batches sent but not yet known to be committed, at most.
const PIPELINE_DEPTH: usize = 2;
/// Events a batch needs to be sent while another is still in flight.
const PIPELINE_MIN_EVENTS: usize = 8;
/// Attempts before a batch gives up because other processes keep moving the head.
const MAX_ATTEMPTS: usize = 20;
/// Stream heads cached per process; the cache is cleared when it grows past this.
const MAX_CACHED_STREAMS: usize = 1_000_000;

/// An event as the caller proposes it; the store adds position and hashes.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    /// When the fact became true; `None` means "when recorded".
    pub effective_at: Option<Timestamp>,
    pub actor: Actor,
    pub reason: Option<String>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub payload: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    Any,
    NoStream,
    Exact(i64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// A client-chosen key plus a digest of the request it was first used with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: [u8; 32],
}

#[derive(Clone, Debug)]
pub struct AppendRequest {
    pub stream_id: Uuid,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub idempotency: Option<IdempotencyKey>,
}

/// The committed result of an append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Appended {
    pub stream_id: Uuid,
    pub first_seq: i64,
    pub last_seq: i64,
    /// Stream version after the append.
    pub version: i64,
    /// Hash of the last appended event.
    pub hash: Hash,
    pub recorded_at: Timestamp,
    /// True when this is the stored result of an earlier request with the same key.
    pub replayed: bool,
}

/// A request whose payloads were canonicalised by the caller's task, so the
/// single writer only splices and hashes.
struct Prepared {
    req: AppendRequest,
    payloads: Vec<CanonicalPayload>,
}

impl std::ops::Deref for Prepared {
    type Target = AppendRequest;
    fn deref(&self) -> &AppendRequest {
        &self.req
    }
}

struct Job {
    req: Prepared,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

#[derive(Clone)]
pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Job>,
    /// Callers inside `append` whose job the writer has not taken yet. The
    /// writer waits briefly for them, so concurrent callers share a commit
    /// instead of splitting into a big batch and a straggler.
    arriving: Arc<AtomicUsize>,
}

impl WriterHandle {
    pub(crate) fn spawn(pool: PgPool) -> WriterHandle {
        let (tx, rx) = mpsc::channel(16_384);
        let arriving = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run_writer(pool, rx, arriving.clone()));
        WriterHandle { tx, arriving }
    }

    pub(crate) async fn append(&self, req: AppendRequest) -> Result<Appended, StoreError> {
        if req.events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        let mut guard = ArrivalGuard::new(&self.arriving);
        let sent = async {
            let payloads = req
                .events
                .iter()
                .map(|e| CanonicalPayload::new(&e.payload))
                .collect::<Result<Vec<_>, _>>()?;
            let req = Prepared { req, payloads };
            let (reply, rx) = oneshot::channel();
            self.tx
                .send(Job { req, reply })
                .await
                .map_err(|_| StoreError::WriterStopped)?;
            Ok::<_, StoreError>(rx)
        }
        .await;
        let rx = sent?;
        // The writer decrements the count when it takes the job.
        guard.handed_over = true;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// Counts a caller as arriving until its job is queued (or it gives up, for
/// example because its request was cancelled).
struct ArrivalGuard<'a> {
    count: &'a AtomicUsize,
    handed_over: bool,
}

impl<'a> ArrivalGuard<'a> {
    fn new(count: &'a AtomicUsize) -> ArrivalGuard<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        ArrivalGuard {
            count,
            handed_over: false,
        }
    }
}

impl Drop for ArrivalGuard<'_> {
    fn drop(&mut self) {
        if !self.handed_over {
            self.count.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[derive(Clone, Copy)]
struct ChainHead {
    seq: i64,
    hash: Hash,
    recorded_at: DateTime<Utc>,
}

#[derive(Default)]
struct WriterCache {
    head: Option<ChainHead>,
    /// stream id -> (version, hash of last event); absent means "unknown".
    streams: HashMap<Uuid, (i64, Hash)>,
}

/// A batch sent to the database whose commit is not yet known.
struct InFlight {
    jobs: Vec<Job>,
    results: Vec<Result<Appended, StoreError>>,
    /// What was sent, to send again if it overtook its predecessor.
    sent: (ChainHead, Arc<Batch>, Arc<HeadChanges>),
    done: tokio::task::JoinHandle<Result<(), StoreError>>,
    finished: Option<Result<(), StoreError>>,
}

impl InFlight {
    async fn outcome(&mut self) -> Result<(), StoreError> {
        match self.finished.take() {
            Some(r) => r,
            None => (&mut self.done)
                .await
                .unwrap_or(Err(StoreError::WriterStopped)),
        }
    }
}

/// Longest the writer waits for a caller that is about to enqueue.
const GATHER_WAIT: Duration = Duration::from_millis(1);

/// Takes the next batch: one job plus whatever else is queued, plus the jobs
/// of callers that are just preparing theirs (waiting at most `GATHER_WAIT`).
async fn drain_queue(first: Job, rx: &mut mpsc::Receiver<Job>, arriving: &AtomicUsize) -> Vec<Job> {
    let mut events = first.req.events.len();
    let mut jobs = vec![first];
    arriving.fetch_sub(1, Ordering::SeqCst);
    while events < MAX_BATCH_EVENTS {
        let job = match rx.try_recv() {
            Ok(job) => job,
            Err(_) if arriving.load(Ordering::SeqCst) > 0 => {
                match tokio::time::timeout(GATHER_WAIT, rx.recv()).await {
                    Ok(Some(job)) => job,
                    _ => break,
                }
            }
            Err(_) => break,
        };
        arriving.fetch_sub(1, Ordering::SeqCst);
        events += job.req.events.len();
        jobs.push(job);
    }
    jobs
}

/// The writer loop. A "clean" batch (no idempotency keys, every stream head
/// cached or the stream new, every request planned without conflict) is
/// planned on top of the heads that the batches still in flight will leave,
/// and sent at once on a connection of its own: its call waits for the
/// chain-head lock while the previous batch commits, so round trips overlap
/// and only the locked section is serial. Anything else, and any failure, goes
/// through the sequential path once the pipeline has drained.
async fn run_writer(pool: PgPool, mut rx: mpsc::Receiver<Job>, arriving: Arc<AtomicUsize>) {
    let mut cache = WriterCache::default();
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut pending: Vec<Job> = Vec::new();
    let mut closed = false;
    let mut last_batch_jobs = 0;
    loop {
        if inflight.len() >= PIPELINE_DEPTH
            || inflight
                .front()
                .is_some_and(|f| f.finished.is_some() || f.done.is_finished())
            || (closed && !inflight.is_empty())
        {
            settle_front(&pool, &mut cache, &mut inflight).await;
            continue;
        }
        // A batch goes out when nothing is in flight, or when it is big enough
        // to be worth a commit of its own meanwhile; a straggler waits for the
        // batch in flight and rides with the next one.
        let pending_events: usize = pending.iter().map(|j| j.req.events.len()).sum();
        if !pending.is_empty() && (inflight.is_empty() || pending_events >= PIPELINE_MIN_EVENTS) {
            // The callers of the last batch were just answered and are likely
            // sending again: wait briefly for as many as there were, so the
            // batch is not split into a straggler and the rest.
            let deadline = tokio::time::Instant::now() + GATHER_WAIT;
            while inflight.is_empty() && pending.len() < last_batch_jobs {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(job)) => pending.extend(drain_queue(job, &mut rx, &arriving).await),
                    Ok(None) => {
                        closed = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            last_batch_jobs = pending.len();
            let jobs = std::mem::take(&mut pending);
            match send_clean(&pool, &mut cache, jobs) {
                Ok(f) => inflight.push_back(f),
                Err(jobs) => {
                    while !inflight.is_empty() {
                        settle_front(&pool, &mut cache, &mut inflight).await;
                    }
                    commit_jobs(&pool, &mut cache, jobs).await;
                }
            }
            continue;
        }
        if closed {
            return;
        }
        let job = match inflight.front_mut() {
            None => rx.recv().await,
            Some(front) => {
                tokio::select! {
                    job = rx.recv() => job,
                    r = &mut front.done => {
                        front.finished = Some(r.unwrap_or(Err(StoreError::WriterStopped)));
                        continue;
                    }
                }
            }
        };
        match job {
            Some(job) => pending.extend(drain_queue(job, &mut rx, &arriving).await),
            None => closed = true,
        }
    }
}

/// Plans and sends a clean batch; gives the jobs back if the batch is not clean.
fn send_clean(
    pool: &PgPool,
    cache: &mut WriterCache,
    jobs: Vec<Job>,
) -> Result<InFlight, Vec<Job>> {
    let Some(head) = cache.head else {
        return Err(jobs);
    };
    let clean = jobs.iter().all(|j| {
        j.req.idempotency.is_none()
            && (cache.streams.contains_key(&j.req.stream_id)
                || j.req.expected == ExpectedVersion::NoStream)
    });
    if !clean {
        return Err(jobs);
    }
    let (reqs, replies): (Vec<Prepared>, Vec<_>) =
        jobs.into_iter().map(|j| (j.req, j.reply)).unzip();
    let (outcomes, batch, heads) = plan(&reqs, head, cache, &HashMap::new());
    let rejoin = |reqs: Vec<Prepared>, replies: Vec<oneshot::Sender<_>>| {
        reqs.into_iter()
            .zip(replies)
            .map(|(req, reply)| Job { req, reply })
            .collect::<Vec<_>>()
    };
    if batch.seq.is_empty() || !outcomes.iter().all(|o| matches!(o, Outcome::Pending(_))) {
        return Err(rejoin(reqs, replies));
    }
    let n = batch.seq.len() - 1;
    cache.head = Some(ChainHead {
        seq: batch.seq[n],
        hash: Hash::from_slice(&batch.hash[n]).unwrap_or_default(),
        recorded_at: batch.recorded_at[n],
    });
    for (id, (_, version, hash)) in &heads {
        cache.streams.insert(*id, (*version, *hash));
    }
    let (batch, heads) = (Arc::new(batch), Arc::new(heads));
    let sent = (head, batch.clone(), heads.clone());
    let pool = pool.clone();
    tracing::trace!(
        requests = reqs.len(),
        events = batch.seq.len(),
        "pipelined batch"
    );
    let done = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let r = execute(&pool, head, &batch, &heads).await;
        tracing::trace!(
            exec_us = started.elapsed().as_micros() as u64,
            ok = r.is_ok(),
            "batch executed"
        );
        r
    });
    Ok(InFlight {
        jobs: rejoin(reqs, replies),
        results: resolve(outcomes),
        sent,
        done,
        finished: None,
    })
}

/// True when the call may or may not have committed: the connection failed
/// after the statement was sent. A refusal by the server is not ambiguous.
fn is_ambiguous(e: &StoreError) -> bool {
    match e {
        StoreError::WriterStopped => true,
        StoreError::Database(e) => !matches!(
            e,
            sqlx::Error::Database(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Configuration(_)
        ),
        _ => false,
    }
}

/// Resolves an ambiguous failure by asking whether the batch's first event
/// is in the log (event ids are unique): a batch that did commit must be
/// answered as committed, never redone, or its events would be written twice.
async fn settle_ambiguity(
    pool: &PgPool,
    batch: &Batch,
    r: Result<(), StoreError>,
) -> Result<(), StoreError> {
    let Err(e) = &r else { return r };
    if !is_ambiguous(e) {
        return r;
    }
    let Some(first) = batch.event_id.first() else {
        return r;
    };
    let mut delay = Duration::from_millis(50);
    for _ in 0..5 {
        match sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1)",
        )
        .bind(first)
        .fetch_one(pool)
        .await
        {
            Ok(true) => return Ok(()),
            Ok(false) => return r,
            Err(check) => {
                tracing::warn!(error = %check, "cannot tell yet whether a batch committed");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    // Still unknown: the callers must be told so rather than risk a duplicate.
    Err(StoreError::OutcomeUnknown)
}

fn is_head_race(r: &Result<(), StoreError>) -> bool {
    matches!(r, Err(StoreError::Database(sqlx::Error::Database(db))) if db.code().as_deref() == Some("DS001"))
}

/// Answers the oldest in-flight batch. If it failed, every later batch was
/// planned on top of it and fails too: all of them are redone sequentially
/// from freshly loaded heads.
async fn settle_front(pool: &PgPool, cache: &mut WriterCache, inflight: &mut VecDeque<InFlight>) {
    let Some(mut front) = inflight.pop_front() else {
        return;
    };
    let mut outcome = front.outcome().await;
    outcome = settle_ambiguity(pool, &front.sent.1, outcome).await;
    if is_head_race(&outcome) {
        // Batches travel on different connections, so one can take the head
        // lock before its predecessor and find the head "moved" (not yet
        // there). Its predecessor has committed by now: send it again.
        let (head, batch, heads) = &front.sent;
        outcome = settle_ambiguity(pool, batch, execute(pool, *head, batch, heads).await).await;
    }
    match outcome {
        Ok(()) => {
            for (job, result) in front.jobs.into_iter().zip(front.results) {
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "pipelined batch failed; redoing the pipeline sequentially");
            let mut redo = Vec::new();
            if matches!(e, StoreError::OutcomeUnknown) {
                for job in front.jobs {
                    let _ = job.reply.send(Err(StoreError::OutcomeUnknown));
                }
            } else {
                redo.push(front.jobs);
            }
            while let Some(mut later) = inflight.pop_front() {
                match later.outcome().await {
                    // Cannot happen (its expected head never existed), but if it
                    // committed, its callers must hear so.
                    Ok(()) => {
                        for (job, result) in later.jobs.into_iter().zip(later.results) {
                            let _ = job.reply.send(result);
                        }
                    }
                    Err(_) => redo.push(later.jobs),
                }
            }
            cache.head = None;
            cache.streams.clear();
            for jobs in redo {
                commit_jobs(pool, cache, jobs).await;
            }
        }
    }
}

/// Commits a batch; if the batch fails for a reason that is not a head race,
/// retries each job alone so that one bad request cannot fail the others.
async fn commit_jobs(pool: &PgPool, cache: &mut WriterCache, jobs: Vec<Job>) {
    let (reqs, replies): (Vec<_>, Vec<_>) = jobs.into_iter().map(|j| (j.req, j.reply)).unzip();
    match commit_batch(pool, cache, &reqs).await {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(StoreError::OutcomeUnknown) => {
            for reply in replies {
                let _ = reply.send(Err(StoreError::OutcomeUnknown));
            }
        }
        Err(err) if reqs.len() == 1 => {
            tracing::error!(error = %err, "append failed");
            let _ = replies.into_iter().next().map(|r| r.send(Err(err)));
        }
        Err(err) => {
            tracing::warn!(error = %err, jobs = reqs.len(), "batch append failed; retrying jobs one by one");
            for (req, reply) in reqs.into_iter().zip(replies) {
                let single = [req];
                let result = match commit_batch(pool, cache, &single).await {
                    Ok(mut r) => r.remove(0),
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
        }
    }
}

/// What the plan decided for one request.
enum Outcome {
    Done(Result<Appended, StoreError>),
    /// Rows were planned; the result is valid once the batch commits.
    Pending(Appended),
    /// Same idempotency key and request as an earlier job of this batch.
    SameAs(usize),
}

/// Column arrays for `dossier_append_batch`.
#[derive(Default)]
struct Batch {
    seq: Vec<i64>,
    event_id: Vec<Uuid>,
    stream_id: Vec<Uuid>,
    stream_version: Vec<i64>,
    event_type: Vec<String>,
    recorded_at: Vec<DateTime<Utc>>,
    effective_at: Vec<DateTime<Utc>>,
    actor_id: Vec<Uuid>,
    prev_hash: Vec<Vec<u8>>,
    stream_prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
    body: Vec<Vec<u8>>,
    idem_key: Vec<String>,
    idem_request: Vec<Vec<u8>>,
    idem_stream: Vec<Uuid>,
    idem_first: Vec<i64>,
    idem_last: Vec<i64>,
    idem_version: Vec<i64>,
    idem_hash: Vec<Vec<u8>>,
}

impl Batch {
    fn push(&mut self, r: &Envelope<'_>, body: Vec<u8>, hash: Hash) {
        self.seq.push(r.seq);
        self.event_id.push(r.event_id);
        self.stream_id.push(r.stream_id);
        self.stream_version.push(r.stream_version);
        self.event_type.push(r.event_type.to_owned());
        self.recorded_at.push(r.recorded_at.get());
        self.effective_at.push(r.effective_at.get());
        self.actor_id.push(r.actor.id);
        self.prev_hash.push(r.prev_hash.0.to_vec());
        self.stream_prev_hash.push(r.stream_prev_hash.0.to_vec());
        self.hash.push(hash.0.to_vec());
        self.body.push(body);
    }
}

struct StoredIdempotency {
    request_hash: [u8; 32],
    appended: Appended,
}

async fn load_head(pool: &PgPool) -> Result<ChainHead, StoreError> {
    let row = sqlx::query("SELECT seq, hash, recorded_at FROM chain_head WHERE id")
        .fetch_one(pool)
        .await?;
    Ok(ChainHead {
        seq: row.get("seq"),
        hash: hash_col(row.get("hash"))?,
        recorded_at: row.get("recorded_at"),
    })
}

fn hash_col(bytes: Vec<u8>) -> Result<Hash, StoreError> {
    Hash::from_slice(&bytes)
        .ok_or_else(|| StoreError::Corrupt("hash column is not 32 bytes".into()))
}

async fn load_idempotency(
    pool: &PgPool,
    keys: Vec<String>,
) -> Result<HashMap<String, StoredIdempotency>, StoreError> {
    let rows = sqlx::query(
        "SELECT key, request_hash, stream_id, first_seq, last_seq, version, hash, recorded_at
         FROM idempotency_keys WHERE key = ANY($1)",
    )
    .bind(keys)
    .fetch_all(pool)
    .await?;
    let mut out = HashMap::new();
    for row in rows {
        out.insert(
            row.get("key"),
            StoredIdempotency {
                // A damaged digest would answer "different request" to a retry.
                request_hash: row
                    .get::<&[u8], _>("request_hash")
                    .try_into()
                    .map_err(|_| {
                        StoreError::Corrupt(
                            "an idempotency key's request_hash is not 32 bytes".into(),
                        )
                    })?,
                appended: Appended {
                    stream_id: row.get("stream_id"),
                    first_seq: row.get("first_seq"),
                    last_seq: row.get("last_seq"),
                    version: row.get("version"),
                    hash: hash_col(row.get("hash"))?,
                    recorded_at: Timestamp::new(row.get("recorded_at")),
                    replayed: true,
                },
            },
        );
    }
    Ok(out)
}

/// Looks up a stored idempotency key (used by callers before they decide, so
/// that a retry is answered even when the state has moved on since).
pub(crate) async fn find_idempotency(
    pool: &PgPool,
    key: &str,
) -> Result<Option<([u8; 32], Appended)>, StoreError> {
    let mut found = load_idempotency(pool, vec![key.to_owned()]).await?;
    Ok(found.remove(key).map(|s| (s.request_hash, s.appended)))
}

async fn load_streams(
    pool: &PgPool,
    cache: &mut WriterCache,
    ids: Vec<Uuid>,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let rows =
        sqlx::query("SELECT stream_id, version, hash FROM stream_heads WHERE stream_id = ANY($1)")
            .bind(&ids)
            .fetch_all(pool)
            .await?;
    for id in ids {
        cache.streams.insert(id, (0, GENESIS));
    }
    for row in rows {
        cache.streams.insert(
            row.get("stream_id"),
            (row.get("version"), hash_col(row.get("hash"))?),
        );
    }
    Ok(())
}

async fn commit_batch(
    pool: &PgPool,
    cache: &mut WriterCache,
    reqs: &[Prepared],
) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
    if cache.streams.len() > MAX_CACHED_STREAMS {
        cache.streams.clear();
    }
    let keys: Vec<String> = reqs
        .iter()
        .filter_map(|r| r.idempotency.as_ref().map(|k| k.key.clone()))
        .collect();
    // Streams whose head was read from the database during this call: a
    // conflict found against one of those is real, not an artefact of the cache.
    let mut fresh: HashSet<Uuid> = HashSet::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let head = match cache.head {
            Some(h) => h,
            None => {
                let h = load_head(pool).await?;
                cache.head = Some(h);
                h
            }
        };
        let stored = if keys.is_empty() {
            HashMap::new()
        } else {
            load_idempotency(pool, keys.clone()).await?
        };
        // A stream that is not cached must be read unless the request says it is
        // new; that assumption is re-checked by the SQL function, and after a
        // failed attempt the stream is read (else NoStream on a stream another
        // process created would fail the same way until the attempts run out).
        let unknown: Vec<Uuid> = reqs
            .iter()
            .filter(|r| {
                (attempt > 1 || r.expected != ExpectedVersion::NoStream)
                    && !cache.streams.contains_key(&r.stream_id)
            })
            .map(|r| r.stream_id)
            .collect();
        fresh.extend(unknown.iter().copied());
        load_streams(pool, cache, unknown).await?;

        let t0 = std::time::Instant::now();
        let (outcomes, batch, heads) = plan(reqs, head, cache, &stored);
        let t_plan = t0.elapsed();
        // A conflict found against a cached head may be stale: another process may
        // have written the stream since. Such a conflict never reaches the SQL
        // function, so re-read those heads and plan again.
        let stale: Vec<Uuid> = reqs
            .iter()
            .zip(&outcomes)
            .filter(|(r, o)| {
                matches!(o, Outcome::Done(Err(StoreError::Conflict { .. })))
                    && !fresh.contains(&r.stream_id)
            })
            .map(|(r, _)| r.stream_id)
            .collect();
        if !stale.is_empty() {
            for id in &stale {
                cache.streams.remove(id);
            }
            continue;
        }
        if batch.seq.is_empty() {
            return Ok(resolve(outcomes));
        }
        let t1 = std::time::Instant::now();
        let res = settle_ambiguity(pool, &batch, execute(pool, head, &batch, &heads).await).await;
        tracing::trace!(
            requests = reqs.len(),
            events = batch.seq.len(),
            plan_us = t_plan.as_micros() as u64,
            exec_us = t1.elapsed().as_micros() as u64,
            "batch"
        );
        match res {
            Ok(()) => {
                let n = batch.seq.len() - 1;
                cache.head = Some(ChainHead {
                    seq: batch.seq[n],
                    hash: Hash::from_slice(&batch.hash[n]).unwrap_or_default(),
                    recorded_at: batch.recorded_at[n],
                });
                for (id, (_, version, hash)) in heads {
                    cache.streams.insert(id, (version, hash));
                }
                return Ok(resolve(outcomes));
            }
            Err(e) => {
                let (code, constraint) = match &e {
                    StoreError::Database(sqlx::Error::Database(db)) => (
                        db.code().map(|c| c.into_owned()),
                        db.constraint().map(str::to_owned),
                    ),
                    _ => (None, None),
                };
                // Another writer moved a head, or stored one of our idempotency
                // keys first: reload what we cached and plan again. Any other
                // unique violation (a reused event id) is the request's fault.
                let retry = match code.as_deref() {
                    Some("DS001" | "DS002") => true,
                    Some("23505") => constraint.as_deref() == Some("idempotency_keys_pkey"),
                    _ => false,
                };
                cache.head = None;
                for r in reqs {
                    cache.streams.remove(&r.stream_id);
                }
                if !retry || attempt >= MAX_ATTEMPTS {
                    return Err(if retry { StoreError::Contended } else { e });
                }
                tracing::debug!(attempt, code = ?code, "head moved under the writer; replanning");
            }
        }
    }
}

fn resolve(outcomes: Vec<Outcome>) -> Vec<Result<Appended, StoreError>> {
    let mut results: Vec<Result<Appended, StoreError>> = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let r = match outcome {
            Outcome::Done(r) => r,
            Outcome::Pending(a) => Ok(a),
            Outcome::SameAs(i) => match &results[i] {
                Ok(a) => Ok(Appended {
                    replayed: true,
                    ..a.clone()
                }),
                Err(_) => Err(StoreError::Contended),
            },
        };
        results.push(r);
    }
    results
}

/// Per-stream head changes of a batch: stream -> (version before, version after, hash after).
type HeadChanges = HashMap<Uuid, (i64, i64, Hash)>;

/// Decides every request against the cached heads, assigning seqs and hashes.
fn plan(
    reqs: &[Prepared],
    head: ChainHead,
    cache: &WriterCache,
    stored: &HashMap<String, StoredIdempotency>,
) -> (Vec<Outcome>, Batch, HeadChanges) {
    let now = Utc::now();
    // recorded_at never decreases along seq, so "what did we know at T" is a prefix of the log.
    let recorded_at = Timestamp::new(if now > head.recorded_at {
        now
    } else {
        head.recorded_at
    });
    let mut batch = Batch::default();
    let mut heads: HeadChanges = HashMap::new();
    let mut outcomes = Vec::with_capacity(reqs.len());
    let mut seen_keys: HashMap<&str, (usize, [u8; 32])> = HashMap::new();
    let mut next_seq = head.seq + 1;
    let mut prev_hash = head.hash;

    for (i, req) in reqs.iter().enumerate() {
        if let Some(k) = &req.idempotency {
            if let Some(s) = stored.get(&k.key) {
                outcomes.push(Outcome::Done(if s.request_hash == k.request_hash {
                    Ok(s.appended.clone())
                } else {
                    Err(StoreError::IdempotencyMismatch(k.key.clone()))
                }));
                continue;
            }
            if let Some(&(first, hash)) = seen_keys.get(k.key.as_str()) {
                outcomes.push(if hash == k.request_hash {
                    Outcome::SameAs(first)
                } else {
                    Outcome::Done(Err(StoreError::IdempotencyMismatch(k.key.clone())))
                });
                continue;
            }
        }
        let (prior_version, version, stream_hash) = match heads.get(&req.stream_id) {
            Some(&(prior, v, h)) => (prior, v, h),
            None => {
                let (v, h) = cache
                    .streams
                    .get(&req.stream_id)
                    .copied()
                    .unwrap_or((0, GENESIS));
                (v, v, h)
            }
        };
        let conflict = match req.expected {
            ExpectedVersion::Any => false,
            ExpectedVersion::NoStream => version != 0,
            ExpectedVersion::Exact(n) => version != n,
        };
        if conflict {
            outcomes.push(Outcome::Done(Err(StoreError::Conflict {
                expected: req.expected.to_string(),
                current: version,
            })));
            continue;
        }
        let mut rows = Vec::with_capacity(req.events.len());
        let mut v = version;
        let (mut p, mut sp, mut s) = (prev_hash, stream_hash, next_seq);
        let mut failure = None;
        for (ev, payload) in req.events.iter().zip(&req.payloads) {
            v += 1;
            let envelope = Envelope {
                seq: s,
                event_id: ev.event_id,
                stream_id: req.stream_id,
                stream_version: v,
                event_type: &ev.event_type,
                schema_version: ev.schema_version,
                recorded_at,
                effective_at: ev.effective_at.unwrap_or(recorded_at),
                actor: &ev.actor,
                reason: ev.reason.as_deref(),
                correlation_id: ev.correlation_id,
                causation_id: ev.causation_id,
                prev_hash: p,
                stream_prev_hash: sp,
            };
            match envelope.encode(payload) {
                Ok((body, hash)) => {
                    rows.push((envelope, body, hash));
                    p = hash;
                    sp = hash;
                    s += 1;
                }
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        if let Some(err) = failure {
            outcomes.push(Outcome::Done(Err(StoreError::InvalidEvent(err))));
            continue;
        }
        for (envelope, body, hash) in rows {
            batch.push(&envelope, body, hash);
        }
        let appended = Appended {
            stream_id: req.stream_id,
            first_seq: next_seq,
            last_seq: s - 1,
            version: v,
            hash: p,
            recorded_at,
            replayed: false,
        };
        if let Some(k) = &req.idempotency {
            seen_keys.insert(k.key.as_str(), (i, k.request_hash));
            batch.idem_key.push(k.key.clone());
            batch.idem_request.push(k.request_hash.to_vec());
            batch.idem_stream.push(req.stream_id);
            batch.idem_first.push(appended.first_seq);
            batch.idem_last.push(appended.last_seq);
            batch.idem_version.push(v);
            batch.idem_hash.push(p.0.to_vec());
        }
        heads.insert(req.stream_id, (prior_version, v, p));
        next_seq = s;
        prev_hash = p;
        outcomes.push(Outcome::Pending(appended));
    }
    (outcomes, batch, heads)
}

async fn execute(
    pool: &PgPool,
    head: ChainHead,
    b: &Batch,
    heads: &HeadChanges,
) -> Result<(), StoreError> {
    let mut h_stream = Vec::with_capacity(heads.len());
    let mut h_prior = Vec::with_capacity(heads.len());
    let mut h_version = Vec::with_capacity(heads.len());
    let mut h_hash = Vec::with_capacity(heads.len());
    for (id, (prior, version, hash)) in heads {
        h_stream.push(*id);
        h_prior.push(*prior);
        h_version.push(*version);
        h_hash.push(hash.0.to_vec());
    }
    sqlx::query(
        "SELECT dossier_append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                                     $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)",
    )
    .bind(head.seq)
    .bind(head.hash.0.to_vec())
    .bind(head.recorded_at)
    .bind(&b.seq)
    .bind(&b.event_id)
    .bind(&b.stream_id)
    .bind(&b.stream_version)
    .bind(&b.event_type)
    .bind(&b.recorded_at)
    .bind(&b.effective_at)
    .bind(&b.actor_id)
    .bind(&b.prev_hash)
    .bind(&b.stream_prev_hash)
    .bind(&b.hash)
    .bind(&b.body)
    .bind(&h_stream)
    .bind(&h_prior)
    .bind(&h_version)
    .bind(&h_hash)
    .bind(&b.idem_key)
    .bind(&b.idem_request)
    .bind(&b.idem_stream)
    .bind(&b.idem_first)
    .bind(&b.idem_last)
    .bind(&b.idem_version)
    .bind(&b.idem_hash)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_error() -> StoreError {
        StoreError::Database(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset",
        )))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ambiguous_failure_is_settled_by_looking_for_the_batch() -> anyhow::Result<()> {
        let db = dossier_testkit::TestDb::new().await?;
        let pool = db.app_pool().await?;
        let writer = WriterHandle::spawn(pool.clone());
        let event = NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "Test".into(),
            schema_version: 1,
            effective_at: None,
            actor: Actor {
                id: Uuid::nil(),
                name: "t".into(),
                role: "admin".into(),
            },
            reason: None,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            payload: serde_json::json!({}),
        };
        let committed_id = event.event_id;
        writer
            .append(AppendRequest {
                stream_id: Uuid::now_v7(),
                expected: ExpectedVersion::NoStream,
                events: vec![event],
                idempotency: None,
            })
            .await?;

        let committed = Batch {
            event_id: vec![committed_id],
            ..Batch::default()
        };
        let absent = Batch {
            event_id: vec![Uuid::now_v7()],
            ..Batch::default()
        };
        // It committed: the callers are told so, and nothing is redone.
        assert!(settle_ambiguity(&pool, &committed, Err(io_error()))
            .await
            .is_ok());
        // It did not: the failure stands, and the jobs may be retried.
        assert!(is_ambiguous(
            &settle_ambiguity(&pool, &absent, Err(io_error()))
                .await
                .unwrap_err()
        ));
        // A refusal by the server is never second-guessed.
        let refused = settle_ambiguity(&pool, &committed, Err(StoreError::Contended)).await;
        assert!(matches!(refused, Err(StoreError::Contended)));
        Ok(())
    }
}
