//! The log itself: its head, a full verification, the raw export and
//! readiness. Auditors use these; nobody needs the store for them.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use dossier_chain::{Hash, Timestamp, Violation};
use dossier_store::Principal;
use serde::Serialize;
use tokio::sync::watch;

use crate::access::{authorize, Action};
use crate::error::{Result, ServiceError};
use crate::Service;

/// Largest page of the raw export.
pub const MAX_EXPORT_PAGE: i64 = 10_000;

/// The newest event of the log.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LedgerHead {
    /// Seq of the newest event (0: the log is empty).
    pub seq: i64,
    /// Its hash, 64 lowercase hex digits.
    #[schema(value_type = String, pattern = "^[0-9a-f]{64}$")]
    pub hash: Hash,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Timestamp,
    /// The chain format the events are written in.
    #[schema(example = "dossier-chain/1")]
    pub format: &'static str,
}

/// The result of a full verification of the log.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    /// True when every check passed.
    pub ok: bool,
    /// Head verified (present when `ok`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[0-9a-f]{64}$")]
    pub head_hash: Option<Hash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub streams: Option<usize>,
    /// The first violation found (present when not `ok`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ViolationDoc>)]
    pub violation: Option<Violation>,
    #[schema(value_type = i64, minimum = 0)]
    pub elapsed_ms: u64,
}

/// The first place the log breaks one of the checks of docs/chain-format.md.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ViolationDoc {
    pub seq: i64,
    #[schema(value_type = String, example = "bad_hash")]
    pub kind: String,
    pub detail: String,
}

/// One page of the raw log in the export format (docs/chain-format.md §7).
#[derive(Clone, Debug)]
pub struct ExportPage {
    /// One JSON object per event, in seq order.
    pub lines: Vec<String>,
    /// The seq to pass as `after_seq` for the next page; `None` at the end.
    pub next_after_seq: Option<i64>,
}

type Flight = watch::Receiver<Option<std::result::Result<VerifyReport, String>>>;

/// At most one full verification runs at a time; callers arriving while it
/// runs share its result instead of starting another scan of the whole log.
#[derive(Clone, Default)]
pub(crate) struct VerifyFlight(Arc<Mutex<Option<Flight>>>);

impl Service {
    /// The chain head.
    pub async fn ledger_head(&self, caller: &Principal) -> Result<LedgerHead> {
        authorize(caller, Action::ReadLedger)?;
        let h = self.store.head().await?;
        Ok(LedgerHead {
            seq: h.seq,
            hash: h.hash,
            recorded_at: h.recorded_at,
            format: dossier_chain::FORMAT,
        })
    }

    /// Verifies the whole log, or joins the verification already running.
    pub async fn verify_ledger(&self, caller: &Principal) -> Result<VerifyReport> {
        authorize(caller, Action::VerifyLedger)?;
        let mut flight = {
            let mut slot = self.verify.0.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                // Still running (no result yet, and its task is alive: a
                // task that died must not be joined forever).
                Some(rx) if rx.borrow().is_none() && rx.has_changed().is_ok() => rx.clone(),
                _ => {
                    let (tx, rx) = watch::channel(None);
                    let store = self.store.clone();
                    // Spawned, so that a caller hanging up does not cancel
                    // the scan the others are waiting for.
                    tokio::spawn(async move {
                        let started = Instant::now();
                        let outcome = store.verify(|_| {}).await;
                        let elapsed_ms = started.elapsed().as_millis() as u64;
                        let report = outcome.map_err(|e| e.to_string()).map(|r| match r {
                            Ok(v) => VerifyReport {
                                ok: true,
                                head_seq: Some(v.head_seq),
                                head_hash: Some(v.head_hash),
                                events: Some(v.events),
                                streams: Some(v.streams),
                                violation: None,
                                elapsed_ms,
                            },
                            Err(violation) => VerifyReport {
                                ok: false,
                                head_seq: None,
                                head_hash: None,
                                events: None,
                                streams: None,
                                violation: Some(violation),
                                elapsed_ms,
                            },
                        });
                        let _ = tx.send(Some(report));
                    });
                    *slot = Some(rx.clone());
                    rx
                }
            }
        };
        let done = flight
            .wait_for(Option::is_some)
            .await
            .map_err(|_| ServiceError::Internal("the verification task stopped".into()))?;
        match done.as_ref() {
            Some(Ok(report)) => Ok(report.clone()),
            Some(Err(e)) => Err(ServiceError::Unavailable(format!(
                "verification failed: {e}"
            ))),
            None => Err(ServiceError::Internal(
                "verification ended without a result".into(),
            )),
        }
    }

    /// A page of the raw log: exactly the stored bytes, for third parties.
    pub async fn export_page(
        &self,
        caller: &Principal,
        after_seq: i64,
        limit: i64,
    ) -> Result<ExportPage> {
        authorize(caller, Action::ExportLedger)?;
        let page = self.store.read_raw(after_seq, limit).await?;
        let next_after_seq = if page.len() as i64 == limit {
            page.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(ExportPage {
            lines: page
                .iter()
                .map(|e| dossier_chain::export_line(&e.as_row()))
                .collect(),
            next_after_seq,
        })
    }

    /// Whether the database answers; the head seq when it does.
    pub async fn readiness(&self) -> Result<i64> {
        Ok(self.store.head().await?.seq)
    }
}
