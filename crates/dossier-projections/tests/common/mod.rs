//! Shared by the projection test binaries (each uses part of it).
#![allow(dead_code)]

use dossier_seal::MasterKey;
use dossier_service::Service;
use dossier_store::{Keyring, Principal, Role, Store};
use dossier_testkit::TestDb;

/// Every table the projections write, kept here rather than taken from the
/// crate, so that a table a rebuild forgets shows up as a difference.
pub const READ_MODEL_TABLES: &[&str] = &[
    "customer_current",
    "customer_list",
    "customer_search",
    "customer_tier",
    "customer_tier_history",
    "customer_risk",
    "customer_risk_history",
    "follow_ups",
    "follow_up_state",
    "insight_facts",
    "insight_state",
];

/// A fresh database with the service on it and a principal of `role`.
pub struct Base {
    pub db: TestDb,
    pub store: Store,
    pub keyring: Keyring,
    pub service: Service,
    pub principal: Principal,
}

impl Base {
    pub async fn new(role: Role) -> anyhow::Result<Base> {
        let db = TestDb::new().await?;
        let store = db.store().await?;
        let keyring = Keyring::new(MasterKey::generate());
        let service = Service::new(store.clone(), keyring.clone());
        let (principal, _token) = service.create_token("tester", role).await?;
        Ok(Base {
            db,
            store,
            keyring,
            service,
            principal,
        })
    }
}

/// A small deterministic generator (64-bit LCG, high bits out).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}
