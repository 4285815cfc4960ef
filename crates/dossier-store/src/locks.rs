//! Advisory locks on names: work on the same name is serialised across every
//! process sharing the database (the duplicate check and the registration
//! it guards).

use std::sync::Arc;

use sqlx::{Postgres, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::StoreError;
use crate::Store;

/// Holds advisory locks until [`NameLocks::release`] or drop. Each holder
/// keeps a pool connection (an open transaction) meanwhile.
pub struct NameLocks {
    tx: Option<Transaction<'static, Postgres>>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// 64-bit FNV-1a of `bytes`: the advisory lock keys of names. Stable across
/// processes, builds and versions (a changed key would let an old and a new
/// process hold "the same" lock at once during an upgrade).
pub fn advisory_key(bytes: impl IntoIterator<Item = u8>) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// The advisory lock key of a name: FNV-1a of scope, NUL, name. A
/// collision only makes two unrelated names wait for each other.
fn lock_key(scope: &str, name: &[u8]) -> i64 {
    advisory_key(scope.bytes().chain([0]).chain(name.iter().copied()))
}

/// How many lock holders a pool of `max_connections` allows at once: they
/// keep their connection while the writer, which needs the same pool,
/// appends for them.
pub(crate) fn holders(max_connections: u32) -> Arc<Semaphore> {
    Arc::new(Semaphore::new((max_connections as usize / 4).max(1)))
}

impl Store {
    /// Takes the advisory locks of `names` within `scope`, in key order so
    /// that two holders never deadlock, waiting for holders of any of them.
    /// Without names it holds nothing.
    pub async fn lock_names(&self, scope: &str, names: &[&[u8]]) -> Result<NameLocks, StoreError> {
        if names.is_empty() {
            return Ok(NameLocks {
                tx: None,
                _permit: None,
            });
        }
        let permit = self
            .lock_holders
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        let mut keys: Vec<i64> = names.iter().map(|n| lock_key(scope, n)).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut tx = self.pool.begin().await?;
        for k in keys {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(k)
                .execute(&mut *tx)
                .await?;
        }
        Ok(NameLocks {
            tx: Some(tx),
            _permit: Some(permit),
        })
    }
}

impl NameLocks {
    /// Releases the locks (ends their transaction).
    pub async fn release(mut self) -> Result<(), StoreError> {
        if let Some(tx) = self.tx.take() {
            tx.rollback().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    #[test]
    fn keys_separate_scope_and_name() {
        assert_eq!(lock_key("dup", b"a"), lock_key("dup", b"a"));
        assert_ne!(lock_key("dup", b"a"), lock_key("dup", b"b"));
        assert_ne!(lock_key("dupa", b""), lock_key("dup", b"a"));
        // Pinned to the published FNV-1a 64 value of "a": keys never change
        // between versions.
        assert_eq!(super::advisory_key(*b"a") as u64, 0xaf63_dc4c_8601_ec8c);
    }
}
