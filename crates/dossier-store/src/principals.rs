//! Authenticated principals: API tokens stored as SHA-256 digests.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use crate::error::StoreError;
use crate::Store;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Sales,
    Manager,
    Compliance,
    Auditor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Sales,
        Role::Manager,
        Role::Compliance,
        Role::Auditor,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sales => "sales",
            Role::Manager => "manager",
            Role::Compliance => "compliance",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: expected one of sales, manager, compliance, auditor, admin"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
}

impl Store {
    /// Registers a principal whose token has the given SHA-256 digest.
    pub async fn create_principal(
        &self,
        name: &str,
        role: Role,
        token_hash: &[u8; 32],
    ) -> Result<Principal, StoreError> {
        let id = Uuid::now_v7();
        sqlx::query("INSERT INTO principals (id, name, role, token_hash) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(name)
            .bind(role.as_str())
            .bind(&token_hash[..])
            .execute(&self.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.constraint() == Some("principals_name_key") => {
                    StoreError::PrincipalExists(name.to_owned())
                }
                _ => StoreError::Database(e),
            })?;
        Ok(Principal {
            id,
            name: name.to_owned(),
            role,
        })
    }

    /// The principal `name` that the service itself acts as (the daily
    /// evaluation run, rule adoption), created on first use. Its token digest
    /// is random and never shown: nobody can log in as it.
    pub async fn service_principal(&self, name: &str, role: Role) -> Result<Principal, StoreError> {
        let mut unusable = [0u8; 32];
        unusable[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        unusable[16..].copy_from_slice(Uuid::new_v4().as_bytes());
        sqlx::query(
            "INSERT INTO principals (id, name, role, token_hash) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(name)
        .bind(role.as_str())
        .bind(&unusable[..])
        .execute(&self.pool)
        .await?;
        let r = sqlx::query("SELECT id, name, role FROM principals WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        let role: String = r.get("role");
        Ok(Principal {
            id: r.get("id"),
            name: r.get("name"),
            role: role.parse().map_err(StoreError::Corrupt)?,
        })
    }

    /// The active principal holding the token with this digest.
    pub async fn principal_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<Principal>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, role FROM principals WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(&token_hash[..])
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let role: String = r.get("role");
            Ok(Principal {
                id: r.get("id"),
                name: r.get("name"),
                role: role.parse().map_err(StoreError::Corrupt)?,
            })
        })
        .transpose()
    }
}
