//! Streaming verification of the whole log: rows come out of PostgreSQL as
//! binary COPY on one task and are checked on a blocking thread, so reading and
//! hashing overlap and memory stays flat however long the log is.

use std::sync::mpsc as std_mpsc;

use dossier_chain::{Hash, StoredRow, VerifiedHead, Verifier, Violation, ViolationKind};
use futures_util::StreamExt;
use sqlx::{Connection, Row};
use uuid::Uuid;

use crate::error::StoreError;
use crate::Store;

/// Reported every few thousand events while verifying.
#[derive(Clone, Copy, Debug)]
pub struct VerifyProgress {
    pub verified: i64,
    pub total: i64,
}

const PGCOPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
const FIELDS: i16 = 7;

/// Incremental parser for PostgreSQL's binary COPY format.
struct CopyParser {
    buf: Vec<u8>,
    pos: usize,
    header_done: bool,
    finished: bool,
}

enum Peeked<'a> {
    Incomplete,
    Trailer,
    Tuple(Tuple<'a>, usize),
}

struct Tuple<'a> {
    seq: i64,
    stream_id: Uuid,
    stream_version: i64,
    prev_hash: &'a [u8],
    stream_prev_hash: &'a [u8],
    hash: &'a [u8],
    body: &'a [u8],
}

impl CopyParser {
    fn new() -> CopyParser {
        CopyParser {
            buf: Vec::with_capacity(1 << 20),
            pos: 0,
            header_done: false,
            finished: false,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        if self.pos > 0 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Consumes the file header once it is buffered; false until then.
    fn header(&mut self) -> Result<bool, StoreError> {
        let bad = |m: &str| StoreError::Corrupt(format!("COPY stream: {m}"));
        if !self.header_done {
            let data = &self.buf[self.pos..];
            if data.len() < PGCOPY_SIGNATURE.len() + 8 {
                return Ok(false);
            }
            if &data[..PGCOPY_SIGNATURE.len()] != PGCOPY_SIGNATURE {
                return Err(bad("bad signature"));
            }
            let ext = u32::from_be_bytes(data[15..19].try_into().unwrap_or_default()) as usize;
            if data.len() < 19 + ext {
                return Ok(false);
            }
            self.pos += 19 + ext;
            self.header_done = true;
        }
        Ok(true)
    }

    /// The next complete tuple and its length in bytes, if buffered.
    fn peek(&self) -> Result<Peeked<'_>, StoreError> {
        let bad = |m: &str| StoreError::Corrupt(format!("COPY stream: {m}"));
        let data = &self.buf[self.pos..];
        if data.len() < 2 {
            return Ok(Peeked::Incomplete);
        }
        let count = i16::from_be_bytes([data[0], data[1]]);
        if count == -1 {
            return Ok(Peeked::Trailer);
        }
        if count != FIELDS {
            return Err(bad("unexpected field count"));
        }
        let mut at = 2;
        let mut fields: [&[u8]; FIELDS as usize] = [&[]; FIELDS as usize];
        for field in fields.iter_mut() {
            if data.len() < at + 4 {
                return Ok(Peeked::Incomplete);
            }
            let len = i32::from_be_bytes(data[at..at + 4].try_into().unwrap_or_default());
            at += 4;
            if len < 0 {
                return Err(bad("unexpected NULL"));
            }
            let len = len as usize;
            if data.len() < at + len {
                return Ok(Peeked::Incomplete);
            }
            *field = &data[at..at + len];
            at += len;
        }
        let int8 = |b: &[u8]| -> Result<i64, StoreError> {
            Ok(i64::from_be_bytes(
                b.try_into().map_err(|_| bad("bigint width"))?,
            ))
        };
        let tuple = Tuple {
            seq: int8(fields[0])?,
            stream_id: Uuid::from_slice(fields[1]).map_err(|_| bad("uuid width"))?,
            stream_version: int8(fields[2])?,
            prev_hash: fields[3],
            stream_prev_hash: fields[4],
            hash: fields[5],
            body: fields[6],
        };
        Ok(Peeked::Tuple(tuple, at))
    }
}

fn to_hash(seq: i64, b: &[u8]) -> Result<Hash, Violation> {
    Hash::from_slice(b).ok_or(Violation {
        seq,
        kind: ViolationKind::Malformed,
        detail: "a hash column is not 32 bytes".into(),
    })
}

/// The log's verification query, streamed as binary COPY.
const LOG_COPY: &str =
    "COPY (SELECT seq, stream_id, stream_version, prev_hash, stream_prev_hash, hash, body
       FROM events ORDER BY seq) TO STDOUT (FORMAT binary)";

impl Store {
    /// Streams the same rows as [`Store::verify`] and discards them: what
    /// reading alone costs, as a baseline for verification speed. Returns the
    /// number of bytes read.
    pub async fn scan_log(&self) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut stream = conn.copy_out_raw(LOG_COPY).await?;
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            bytes += chunk?.len() as u64;
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
        mut progress: impl FnMut(VerifyProgress) + Send + 'static,
    ) -> Result<Result<VerifiedHead, Violation>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let head = sqlx::query("SELECT seq, hash FROM chain_head WHERE id")
            .fetch_one(&mut *tx)
            .await?;
        let head_seq: i64 = head.get("seq");
        let head_hash: Vec<u8> = head.get("hash");

        let (chunks_tx, chunks_rx) = std_mpsc::sync_channel::<Vec<u8>>(64);
        let checker = tokio::task::spawn_blocking(
            move || -> Result<Result<VerifiedHead, Violation>, StoreError> {
                let mut parser = CopyParser::new();
                let mut verifier = if strict {
                    Verifier::new()
                } else {
                    Verifier::integrity_only()
                };
                let mut count: i64 = 0;
                for chunk in chunks_rx {
                    parser.feed(&chunk);
                    if !parser.header()? {
                        continue;
                    }
                    loop {
                        let (t, len) = match parser.peek()? {
                            Peeked::Incomplete => break,
                            Peeked::Trailer => {
                                parser.finished = true;
                                break;
                            }
                            Peeked::Tuple(t, len) => (t, len),
                        };
                        let row = StoredRow {
                            seq: t.seq,
                            stream_id: t.stream_id,
                            stream_version: t.stream_version,
                            prev_hash: match to_hash(t.seq, t.prev_hash) {
                                Ok(h) => h,
                                Err(v) => return Ok(Err(v)),
                            },
                            stream_prev_hash: match to_hash(t.seq, t.stream_prev_hash) {
                                Ok(h) => h,
                                Err(v) => return Ok(Err(v)),
                            },
                            hash: match to_hash(t.seq, t.hash) {
                                Ok(h) => h,
                                Err(v) => return Ok(Err(v)),
                            },
                            body: t.body,
                        };
                        if let Err(v) = verifier.push(row) {
                            return Ok(Err(v));
                        }
                        parser.pos += len;
                        count += 1;
                        if count % 65_536 == 0 {
                            progress(VerifyProgress {
                                verified: count,
                                total: head_seq,
                            });
                        }
                    }
                }
                if !parser.finished {
                    return Err(StoreError::Corrupt("COPY stream ended early".into()));
                }
                progress(VerifyProgress {
                    verified: count,
                    total: head_seq,
                });
                Ok(verifier.finish(Some(head_seq)))
            },
        );

        let mut stream = tx.copy_out_raw(LOG_COPY).await?;
        let mut checker_stopped = false;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            // Once the checker has found a violation the rest is drained unread,
            // which leaves the connection in a clean state.
            if !checker_stopped && chunks_tx.send(chunk.to_vec()).is_err() {
                checker_stopped = true;
            }
        }
        drop(stream);
        drop(chunks_tx);
        let outcome = checker
            .await
            .map_err(|e| StoreError::Corrupt(format!("verifier thread failed: {e}")))??;
        tx.rollback().await?;
        Ok(outcome.and_then(|verified| {
            if verified.head_seq != head_seq || verified.head_hash.as_bytes()[..] != head_hash[..] {
                Err(Violation {
                    seq: head_seq,
                    kind: ViolationKind::BrokenLink,
                    detail: format!(
                        "the chain head row says seq {head_seq} hash {}, the log ends at seq {} hash {}",
                        hex::encode(&head_hash),
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
