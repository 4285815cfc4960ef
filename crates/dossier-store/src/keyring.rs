//! Per-customer data keys: created on first use, wrapped by the master key,
//! cached unwrapped in memory for the life of the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dossier_seal::{unwrap_key, wrap_key, DataKey, MasterKey};
use uuid::Uuid;

use crate::error::StoreError;
use crate::Store;

/// Entries kept before the cache is emptied (keys are cheap to unwrap again).
const MAX_CACHED_KEYS: usize = 100_000;

#[derive(Clone)]
pub struct Keyring {
    master: Arc<MasterKey>,
    cache: Arc<Mutex<HashMap<Uuid, Option<DataKey>>>>,
}

impl Keyring {
    pub fn new(master: MasterKey) -> Keyring {
        Keyring {
            master: Arc::new(master),
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn cached(&self, id: Uuid) -> Option<Option<DataKey>> {
        self.cache.lock().ok()?.get(&id).cloned()
    }

    fn remember(&self, id: Uuid, key: Option<DataKey>) {
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= MAX_CACHED_KEYS {
                c.clear();
            }
            c.insert(id, key);
        }
    }

    fn unwrap_row(&self, id: Uuid, wrapped: Option<&[u8]>) -> Result<Option<DataKey>, StoreError> {
        wrapped
            .map(|w| unwrap_key(&self.master, id, w))
            .transpose()
            .map_err(|e| {
                StoreError::Corrupt(format!(
                    "data key of {id} does not unwrap with this master key: {e}"
                ))
            })
    }

    /// The blind index of an identifier (`dossier_seal::blind_index`).
    pub fn blind_index(&self, field: &str, value: &str) -> Vec<u8> {
        dossier_seal::blind_index(&self.master, field, value).to_vec()
    }

    /// The customer's key, creating it if the customer has none yet.
    /// `Ok(None)` means the key was destroyed: the customer is erased.
    pub async fn key_for_write(
        &self,
        store: &Store,
        id: Uuid,
    ) -> Result<Option<DataKey>, StoreError> {
        if let Some(k) = self.cached(id) {
            return Ok(k);
        }
        let row = match store.customer_key(id).await? {
            Some(row) => row,
            None => {
                let fresh = DataKey::generate();
                let wrapped = wrap_key(&self.master, id, &fresh);
                store
                    .put_customer_key(id, &wrapped, &self.master.id())
                    .await?
            }
        };
        let key = self.unwrap_row(id, row.wrapped_key.as_deref())?;
        self.remember(id, key.clone());
        Ok(key)
    }

    /// The keys of every customer for reading, unwrapped but not cached (a
    /// full rebuild needs them all once); erased customers map to `None`,
    /// unknown ones are absent.
    pub async fn all_keys_for_read(
        &self,
        store: &Store,
    ) -> Result<HashMap<Uuid, Option<DataKey>>, StoreError> {
        let rows = store.all_customer_keys().await?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let key = self.unwrap_row(row.stream_id, row.wrapped_key.as_deref())?;
            out.insert(row.stream_id, key);
        }
        Ok(out)
    }

    /// Keys of several customers for reading; erased or unknown customers map to `None`.
    pub async fn keys_for_read(
        &self,
        store: &Store,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Option<DataKey>>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.cached(*id) {
                Some(k) => {
                    out.insert(*id, k);
                }
                None => missing.push(*id),
            }
        }
        if !missing.is_empty() {
            for row in store.customer_keys(&missing).await? {
                let key = self.unwrap_row(row.stream_id, row.wrapped_key.as_deref())?;
                self.remember(row.stream_id, key.clone());
                out.insert(row.stream_id, key);
            }
            for id in missing {
                out.entry(id).or_insert(None);
            }
        }
        Ok(out)
    }
}
