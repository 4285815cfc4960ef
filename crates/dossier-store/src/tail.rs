//! The log's tail as the projectors of one process read it, decoded once.
//!
//! Every projector reads the events after its checkpoint in batches. Caught
//! up, the four projectors of a process wake on the same notification and
//! ask for the same batch within milliseconds; each read and decoded it on
//! its own (decoding the JSON records was ~17 % of the projecting process,
//! perf). [`Store::read_log_shared`](crate::Store::read_log_shared) keeps the
//! last few batches and hands the same decoded events to whoever asks for
//! the same batch soon after.
//!
//! Why this is safe: a batch is what `read_log(after, limit)` returned, a
//! gap-free prefix (in seq order) of the immutable events after `after`
//! (positions are assigned under the chain-head lock held until commit, so
//! commit order is seq order). Handing it out again is handing out a prefix
//! again: the projector applies it and moves its checkpoint exactly past it.
//! What can be lost is only batch size, so a batch is reused only while it is
//! full (a full batch is also what a fresh read would return) or young, and
//! an empty read is never kept (a projector woken by a notification must see
//! the new event).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Batches kept.
const KEEP: usize = 8;
/// How long a batch that was not full may be handed out again.
pub(crate) const FRESH: Duration = Duration::from_millis(20);

struct Batch<T> {
    after: i64,
    limit: i64,
    fetched: Instant,
    events: Arc<[T]>,
}

/// The last batches read, of events `T` (decoded stored events).
pub(crate) struct Tail<T> {
    fresh: Duration,
    recent: Mutex<VecDeque<Batch<T>>>,
}

impl<T> Tail<T> {
    pub(crate) fn new(fresh: Duration) -> Tail<T> {
        Tail {
            fresh,
            recent: Mutex::new(VecDeque::with_capacity(KEEP)),
        }
    }

    /// A kept batch for `(after, limit)` that may be handed out at `now`.
    pub(crate) fn get(&self, after: i64, limit: i64, now: Instant) -> Option<Arc<[T]>> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .find(|b| {
                b.after == after
                    && b.limit == limit
                    && (b.events.len() as i64 >= limit
                        || now.saturating_duration_since(b.fetched) < self.fresh)
            })
            .map(|b| b.events.clone())
    }

    /// Keeps a batch just read (fetched at `fetched`); an empty one is not kept.
    pub(crate) fn put(&self, after: i64, limit: i64, fetched: Instant, events: Arc<[T]>) {
        if events.is_empty() {
            return;
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.retain(|b| !(b.after == after && b.limit == limit));
        if recent.len() == KEEP {
            recent.pop_front();
        }
        recent.push_back(Batch {
            after,
            limit,
            fetched,
            events,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(first: i64, n: i64) -> Arc<[i64]> {
        (first..first + n).collect()
    }

    #[test]
    fn a_batch_is_shared_while_young_or_full() {
        let tail = Tail::new(Duration::from_millis(20));
        let t0 = Instant::now();
        let partial = events(11, 3);
        tail.put(10, 100, t0, partial.clone());
        let hit = tail
            .get(10, 100, t0 + Duration::from_millis(5))
            .expect("young");
        assert!(Arc::ptr_eq(&hit, &partial));
        assert!(
            tail.get(10, 100, t0 + Duration::from_millis(20)).is_none(),
            "old and not full"
        );
        assert!(tail.get(11, 100, t0).is_none(), "another checkpoint");
        assert!(tail.get(10, 50, t0).is_none(), "another limit");
        let full = events(21, 4);
        tail.put(20, 4, t0, full.clone());
        let hit = tail.get(20, 4, t0 + Duration::from_secs(60)).expect("full");
        assert!(Arc::ptr_eq(&hit, &full));
    }

    #[test]
    fn an_empty_read_is_never_kept_and_a_new_read_replaces_the_old() {
        let tail = Tail::new(Duration::from_secs(60));
        let t0 = Instant::now();
        tail.put(5, 10, t0, events(6, 0));
        assert!(tail.get(5, 10, t0).is_none());
        tail.put(5, 10, t0, events(6, 1));
        let newer = events(6, 2);
        tail.put(5, 10, t0, newer.clone());
        assert!(Arc::ptr_eq(&tail.get(5, 10, t0).unwrap(), &newer));
    }

    #[test]
    fn only_the_last_batches_are_kept() {
        let tail = Tail::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for after in 0..(KEEP as i64 + 2) {
            tail.put(after, 1, t0, events(after + 1, 1));
        }
        assert!(tail.get(0, 1, t0).is_none());
        assert!(tail.get(1, 1, t0).is_none());
        for after in 2..(KEEP as i64 + 2) {
            assert!(tail.get(after, 1, t0).is_some(), "batch after {after}");
        }
    }
}
