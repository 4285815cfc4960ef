//! Who may do what (role checks) and bearer tokens.

use base64::Engine;
use dossier_chain::Actor;
use dossier_domain::Text;
use dossier_store::{Principal, Role, StoreError};
use sha2::{Digest, Sha256};

use crate::error::{invalid, Result, ServiceError};
use crate::Service;

/// What the caller may do, by role. The full permission matrix comes later;
/// these are the obvious restrictions.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    ReadCustomers,
    WriteCustomers,
    ReadHistory,
    ReadLedger,
    /// Starting a full verification of the log (a scan of every event).
    VerifyLedger,
    /// Taking the raw log (every customer's events, sealed values included).
    ExportLedger,
}

pub fn authorize(p: &Principal, action: Action) -> Result<()> {
    use Role::*;
    let allowed = match action {
        Action::ReadCustomers => matches!(p.role, Sales | Manager | Compliance | Admin),
        Action::WriteCustomers => matches!(p.role, Sales | Manager | Admin),
        Action::ReadHistory => matches!(p.role, Sales | Manager | Compliance | Admin),
        Action::ReadLedger => true,
        Action::VerifyLedger | Action::ExportLedger => {
            matches!(p.role, Auditor | Compliance | Admin)
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(ServiceError::Forbidden {
            role: p.role,
            action: match action {
                Action::ReadCustomers => "read customer files",
                Action::WriteCustomers => "change customer files",
                Action::ReadHistory => "read customer history",
                Action::ReadLedger => "read the ledger",
                Action::VerifyLedger => "verify the whole log",
                Action::ExportLedger => "export the raw log",
            },
        })
    }
}

pub(crate) fn actor(p: &Principal) -> Actor {
    Actor {
        id: p.id,
        name: p.name.clone(),
        role: p.role.as_str().to_owned(),
    }
}

/// SHA-256 of a bearer token: what the principals table stores.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Service {
    /// The principal holding `token`, if any.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>> {
        Ok(self.store.principal_by_token(&token_digest(token)).await?)
    }

    /// Creates a principal and returns its token (shown once, stored hashed).
    pub async fn create_token(&self, name: &str, role: Role) -> Result<(Principal, String)> {
        let name = Text::parse_max(name, 100).map_err(|e| invalid("name", e.reason))?;
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        let token = format!(
            "dsr_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        );
        let p = self
            .store
            .create_principal(name.as_str(), role, &token_digest(&token))
            .await
            .map_err(|e| match e {
                StoreError::PrincipalExists(_) => {
                    invalid("name", "a principal with this name exists")
                }
                e => e.into(),
            })?;
        Ok((p, token))
    }
}
