//! Use cases: what a caller can do with customer files. Each use case checks
//! the caller's role, loads what it needs, runs the pure domain decision,
//! seals personal data and appends. HTTP handlers and the CLI call these and
//! nothing below them: this crate is the one seam where authorization,
//! idempotency and auditing happen.

mod access;
mod customers;
mod error;
mod facts;
mod history;
mod insights;
mod ledger;
mod list;
mod write;

use dossier_store::{Keyring, Store};

pub use access::{authorize, token_digest, Action};
pub use customers::{
    AddressInput, ChangeInput, ContactInput, CustomerView, ReadAt, RegisterInput, Snapshot,
};
pub use dossier_chain::Timestamp;
pub use dossier_projections::{
    Duplicate, FollowUpItem, LabelCount, ListItem, ListPage, RiskRow, SegmentCount, SegmentQuery,
    Segments, TierRow,
};
pub use dossier_store::{Principal, Role};
pub use error::{Result, ServiceError};
pub use facts::*;
pub use history::{Change, HistoryEntry, HistoryPage, MAX_HISTORY_LIMIT};
pub use insights::*;
pub use ledger::{ExportPage, LedgerHead, VerifyReport, ViolationDoc, MAX_EXPORT_PAGE};
pub use list::{ListInput, MAX_LIST_LIMIT};
pub use write::{request_digest, WriteMeta, WriteOutcome};

/// The authenticated principal that caused an event (docs/chain-format.md).
#[derive(utoipa::ToSchema)]
#[schema(as = Actor)]
#[allow(dead_code)]
pub struct ActorDoc {
    id: uuid::Uuid,
    name: String,
    /// sales, manager, compliance, auditor or admin.
    role: String,
}

/// How complete a file is, by the checklist of docs/rules.md.
#[derive(utoipa::ToSchema)]
#[schema(as = Completeness)]
#[allow(dead_code)]
pub struct CompletenessDoc {
    /// 0 to 100: the sum of the weights of the items present.
    #[schema(minimum = 0, maximum = 100)]
    score: i32,
    /// The missing items, in checklist order.
    missing: Vec<String>,
}

#[derive(Clone)]
pub struct Service {
    store: Store,
    keyring: Keyring,
    verify: ledger::VerifyFlight,
}

impl Service {
    pub fn new(store: Store, keyring: Keyring) -> Service {
        Service {
            store,
            keyring,
            verify: Default::default(),
        }
    }
}
