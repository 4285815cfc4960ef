//! Reading the whole log once, in seq order, as fast as the server sends it
//! (full rebuilds of the read models): one snapshot, binary COPY, the rows
//! decoded on a blocking thread and handed over in chunks. Reading, decoding
//! and whatever the consumer does with a chunk overlap.

use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc;

use crate::error::StoreError;
use crate::read::{stored_event, StoredEvent};
use crate::verify::{range_copy, read_range, CopyParser, Stop, BUFFERS_IN_FLIGHT};
use crate::Store;

/// Events per chunk handed to the consumer.
const CHUNK_EVENTS: usize = 2_048;

/// Decoded chunks waiting for the consumer.
const CHUNKS_IN_FLIGHT: usize = 8;

/// The log up to the head of one snapshot, arriving in seq order.
pub struct LogScan {
    /// The chain head in the snapshot: the scan delivers exactly the events
    /// with seq in 1..=head, each once.
    pub head: i64,
    chunks: mpsc::Receiver<Result<Vec<StoredEvent>, StoreError>>,
}

impl LogScan {
    /// The next events in seq order, `None` after the last. Blocks: call it
    /// from a thread that may block (a fold on `spawn_blocking`).
    pub fn blocking_next(&mut self) -> Option<Result<Vec<StoredEvent>, StoreError>> {
        self.chunks.blocking_recv()
    }

    /// The next events in seq order, `None` after the last.
    pub async fn next(&mut self) -> Option<Result<Vec<StoredEvent>, StoreError>> {
        self.chunks.recv().await
    }
}

impl Store {
    /// Starts reading the whole log in one snapshot. An error ends the scan:
    /// it is the last item delivered.
    pub async fn scan_events(&self) -> Result<LogScan, StoreError> {
        let snapshot = self.open_snapshot(1).await?;
        let head = snapshot.head_seq;
        let Some(mut tx) = snapshot.txs.into_iter().next() else {
            return Err(StoreError::Corrupt("no snapshot connection".into()));
        };
        let sql = range_copy(None, Some(head));
        let (out, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let (full_tx, full_rx) = mpsc::channel::<Vec<u8>>(BUFFERS_IN_FLIGHT);
        let (empty_tx, empty_rx) = std_mpsc::channel::<Vec<u8>>();
        let decoded = out.clone();
        tokio::spawn(async move {
            let decoder =
                tokio::task::spawn_blocking(move || decode_rows(full_rx, empty_tx, &decoded));
            let read = read_range(&mut tx, &sql, full_tx, empty_rx).await;
            let decoded = decoder
                .await
                .unwrap_or_else(|e| Err(StoreError::Corrupt(format!("decoder failed: {e}"))));
            let failed = match (read, decoded) {
                (Err(e), _) | (Ok(_), Err(e)) => Some(e),
                (Ok(complete), Ok(())) => {
                    if complete {
                        let _ = tx.rollback().await;
                    }
                    None
                }
            };
            if let Some(e) = failed {
                let _ = out.send(Err(e)).await;
            }
        });
        Ok(LogScan { head, chunks })
    }
}

/// Decodes the rows of the COPY buffers into events, chunk by chunk. Stops
/// quietly if the consumer is gone.
fn decode_rows(
    mut full: mpsc::Receiver<Vec<u8>>,
    empty: std_mpsc::Sender<Vec<u8>>,
    out: &mpsc::Sender<Result<Vec<StoredEvent>, StoreError>>,
) -> Result<(), StoreError> {
    let mut parser = CopyParser::new();
    let mut chunk = Vec::with_capacity(CHUNK_EVENTS);
    while let Some(mut buf) = full.blocking_recv() {
        let parsed = parser.parse(&buf, |t| {
            chunk.push(stored_event(t.body, t.hash).map_err(Stop::Corrupt)?);
            if chunk.len() == CHUNK_EVENTS {
                let next = Vec::with_capacity(CHUNK_EVENTS);
                if out
                    .blocking_send(Ok(std::mem::replace(&mut chunk, next)))
                    .is_err()
                {
                    return Err(Stop::Range);
                }
            }
            Ok(())
        });
        buf.clear();
        let _ = empty.send(buf);
        match parsed {
            Ok(()) => {}
            Err(Stop::Corrupt(e)) => return Err(e),
            Err(Stop::Range | Stop::Violation(_)) => return Ok(()),
        }
    }
    if !parser.finished {
        return Err(StoreError::Corrupt("COPY stream ended early".into()));
    }
    if !chunk.is_empty() {
        let _ = out.blocking_send(Ok(chunk));
    }
    Ok(())
}
