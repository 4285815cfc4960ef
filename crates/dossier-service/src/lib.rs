//! Use cases: what a caller can do with customer files. Each use case loads
//! what it needs, runs the pure domain decision, seals personal data and
//! appends. HTTP handlers and the CLI call these and nothing below them.

mod facts;
mod history;
mod insights;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use dossier_chain::{Actor, Hash, Timestamp};
use dossier_domain::{
    decide, evolve, Command, Contact, Customer, CustomerKind, DomainError, Email, Event, Field,
    Importance, PersonName, Phone, Text,
};
use dossier_events::{customer_json, encode};
use dossier_projections::{
    domain_event, CurrentRow, Cursor, ListQuery, ProjectionError, Search, Sort,
};
use dossier_store::{
    AppendRequest, Appended, ExpectedVersion, IdempotencyKey, Keyring, NewEvent, Principal, Role,
    Store, StoreError,
};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use dossier_projections::{ListItem, ListPage};
pub use facts::*;
pub use history::{Change, HistoryEntry, HistoryPage};
pub use insights::*;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("customer not found")]
    NotFound,
    #[error("the customer is at version {current}, not the version given in If-Match")]
    VersionMismatch { current: i64 },
    #[error("a concurrent change won; the customer is now at version {current}")]
    Conflict { current: i64 },
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyMismatch,
    #[error("{0}")]
    Domain(DomainError),
    #[error("the customer's personal data has been erased")]
    Erased,
    #[error("role {role} may not {action}")]
    Forbidden { role: Role, action: &'static str },
    #[error("possible duplicate of {} existing customer(s)", .0.len())]
    Duplicate(Vec<dossier_projections::Duplicate>),
    #[error("the read model has not caught up with seq {0} yet")]
    NotCaughtUp(i64),
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { current, .. } => ServiceError::Conflict { current },
            StoreError::IdempotencyMismatch(_) => ServiceError::IdempotencyMismatch,
            StoreError::InvalidEvent(e) => ServiceError::Invalid {
                field: "payload".into(),
                reason: e.to_string(),
            },
            StoreError::Contended | StoreError::WriterStopped | StoreError::OutcomeUnknown => {
                ServiceError::Unavailable(e.to_string())
            }
            e if e.is_unreachable() => ServiceError::Unavailable(e.to_string()),
            e => ServiceError::Internal(e.to_string()),
        }
    }
}

impl From<ProjectionError> for ServiceError {
    fn from(e: ProjectionError) -> Self {
        match e {
            ProjectionError::Store(s) => s.into(),
            e => ServiceError::Internal(e.to_string()),
        }
    }
}

impl From<DomainError> for ServiceError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotRegistered => ServiceError::NotFound,
            // The domain names a detail field ("name"); callers address it
            // as it appears in the request ("details/name"), like every
            // other detail error.
            DomainError::InvalidField { field, reason } => ServiceError::Invalid {
                field: if Field::parse(&field).is_some() {
                    format!("details/{field}")
                } else {
                    field
                },
                reason,
            },
            DomainError::InvoiceNotFound(_) => ServiceError::Invalid {
                field: "invoice_id".into(),
                reason: e.to_string(),
            },
            DomainError::AddressNotFound(_) => ServiceError::Invalid {
                field: "remove_addresses".into(),
                reason: e.to_string(),
            },
            e => ServiceError::Domain(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, ServiceError>;

/// What the caller may do, by role. The full permission matrix comes later;
/// these are the obvious restrictions.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    ReadCustomers,
    WriteCustomers,
    ReadHistory,
    ReadLedger,
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
        Action::ExportLedger => matches!(p.role, Auditor | Compliance | Admin),
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
                Action::ExportLedger => "export the raw log",
            },
        })
    }
}

/// Context of a write: why, when it became true, and retry protection.
#[derive(Clone, Debug, Default)]
pub struct WriteMeta {
    pub reason: Option<String>,
    pub effective_at: Option<Timestamp>,
    /// Client key and a digest of the request it came with.
    pub idempotency: Option<(String, [u8; 32])>,
    pub correlation_id: Option<Uuid>,
}

#[derive(Clone, Debug, Default)]
pub struct RegisterInput {
    pub kind: String,
    pub details: BTreeMap<String, String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    /// Register even if the file looks like a duplicate (needs a reason).
    pub force: bool,
}

#[derive(Clone, Debug)]
pub struct ContactInput {
    pub name: String,
    pub role: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// A PATCH: every part is optional; all parts commit together or not at all.
#[derive(Clone, Debug, Default)]
pub struct ChangeInput {
    /// `None` clears the field.
    pub details: BTreeMap<String, Option<String>>,
    pub owner: Option<String>,
    pub add_contacts: Vec<ContactInput>,
    pub remove_contacts: Vec<Uuid>,
    pub add_addresses: Vec<AddressInput>,
    pub remove_addresses: Vec<Uuid>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    /// `Some(None)` clears the manual importance, returning it to the rules.
    pub importance: Option<Option<String>>,
    pub archive: bool,
}

#[derive(Clone, Debug)]
pub struct AddressInput {
    pub label: Option<String>,
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct WriteOutcome {
    pub customer_id: Uuid,
    /// Stream version after the write.
    pub version: i64,
    /// Seq of the last event written (or of the last event, for a no-op).
    pub seq: i64,
    /// Number of events written (0 when nothing changed).
    pub events: usize,
    pub replayed: bool,
}

/// A customer file as it was after a given event.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub id: Uuid,
    pub file: Value,
    pub version: i64,
    pub last_seq: i64,
    pub last_hash: Hash,
    pub last_recorded_at: Timestamp,
    pub erased: bool,
}

/// The list request as the caller gave it; [`Service::list`] validates it.
#[derive(Clone, Debug, Default)]
pub struct ListInput {
    pub kind: Option<String>,
    pub owner: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub tier: Option<String>,
    pub importance: Option<String>,
    pub lifecycle: Option<String>,
    pub risk: Vec<String>,
    pub signal: Option<String>,
    pub tags: Vec<String>,
    /// `Some(true)`: archived customers only; default: live ones only.
    pub archived: Option<bool>,
    pub q: Option<String>,
    /// `name`, `updated_at` or `created_at`, `-` prefix for descending.
    pub sort: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl ListInput {
    pub fn validate(self) -> Result<ListQuery> {
        if let Some(k) = &self.kind {
            CustomerKind::parse(k).ok_or_else(|| invalid("kind", "must be person or company"))?;
        }
        let sort = match &self.sort {
            None => Sort::default(),
            Some(s) => Sort::parse(s).ok_or_else(|| {
                invalid(
                    "sort",
                    "must be name, updated_at or created_at, optionally prefixed by -",
                )
            })?,
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(invalid("limit", "must be 1 to 200"));
        }
        let search = match &self.q {
            None => None,
            Some(q) if q.chars().count() > 200 => {
                return Err(invalid("q", "must be at most 200 characters"))
            }
            Some(q) => Some(Search::parse(q).ok_or_else(|| invalid("q", "must not be empty"))?),
        };
        let after = self
            .cursor
            .as_deref()
            .map(|c| Cursor::decode(c, sort))
            .transpose()
            .map_err(|e| invalid("cursor", e.to_string()))?;
        let check = |field: &str, v: &Option<String>, ok: &[&str]| -> Result<()> {
            match v {
                Some(x) if !ok.contains(&x.as_str()) => {
                    Err(invalid(field, format!("must be one of {}", ok.join(", "))))
                }
                _ => Ok(()),
            }
        };
        check("tier", &self.tier, &["A", "B", "C"])?;
        check(
            "importance",
            &self.importance,
            &["important", "special", "general"],
        )?;
        check(
            "lifecycle",
            &self.lifecycle,
            &["prospect", "new", "existing", "dormant", "lost"],
        )?;
        for r in &self.risk {
            check(
                "risk",
                &Some(r.clone()),
                &["low", "medium", "high", "critical"],
            )?;
        }
        check(
            "signal",
            &self.signal,
            &[
                "overdue_receivables",
                "purchase_decline",
                "complaints",
                "credit_downgrade",
                "legal_status",
                "lost_contact",
            ],
        )?;
        if self.tags.len() > 10 {
            return Err(invalid("tag", "at most 10 tags"));
        }
        Ok(ListQuery {
            kind: self.kind,
            owner: self.owner,
            region: self.region,
            industry: self.industry,
            tier: self.tier,
            importance: self.importance,
            lifecycle: self.lifecycle,
            risk: self.risk,
            signal: self.signal,
            tags: self.tags,
            archived: self.archived.unwrap_or(false),
            search,
            sort,
            limit,
            after,
        })
    }
}

/// Which past state to rebuild.
#[derive(Clone, Copy, Debug)]
pub enum AsOf {
    /// What the log knew at this recorded time.
    Recorded(Timestamp),
    /// The state after this global position.
    Seq(i64),
}

#[derive(Clone)]
pub struct Service {
    store: Store,
    keyring: Keyring,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ServiceError {
    ServiceError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn actor(p: &Principal) -> Actor {
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

fn parse_contact(c: &ContactInput, i: usize) -> Result<Contact> {
    let at = |f: &str| format!("add_contacts/{i}/{f}");
    Ok(Contact::new(
        PersonName::parse(&c.name).map_err(|e| invalid(at("name"), e.reason))?,
        c.role
            .as_deref()
            .map(Text::parse)
            .transpose()
            .map_err(|e| invalid(at("role"), e.reason))?,
        c.phone
            .as_deref()
            .map(Phone::parse)
            .transpose()
            .map_err(|e| invalid(at("phone"), e.reason))?,
        c.email
            .as_deref()
            .map(Email::parse)
            .transpose()
            .map_err(|e| invalid(at("email"), e.reason))?,
    ))
}

fn parse_field(name: &str) -> Result<Field> {
    Field::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
        invalid(
            format!("details/{name}"),
            format!("unknown field; known fields: {}", known.join(", ")),
        )
    })
}

/// Tags are short labels: 1-50 characters, no commas (CSV lists them joined).
fn parse_tags(at: &str, raw: &[String]) -> Result<BTreeSet<Text>> {
    if raw.len() > 50 {
        return Err(invalid(at, "at most 50 tags per request"));
    }
    raw.iter()
        .enumerate()
        .map(|(i, t)| {
            if t.contains(',') {
                return Err(invalid(format!("{at}/{i}"), "must not contain a comma"));
            }
            Text::parse_max(t, 50).map_err(|e| invalid(format!("{at}/{i}"), e.reason))
        })
        .collect()
}

fn check_reason(reason: &Option<String>) -> Result<()> {
    if let Some(r) = reason {
        if r.trim().is_empty() || r.chars().count() > 500 {
            return Err(invalid("reason", "must be 1 to 500 characters"));
        }
    }
    Ok(())
}

impl Service {
    pub fn new(store: Store, keyring: Keyring) -> Service {
        Service { store, keyring }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

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

    /// Answers a retried request from the stored result, before deciding anew.
    async fn replay(&self, caller: &Principal, meta: &WriteMeta) -> Result<Option<WriteOutcome>> {
        let Some((key, digest)) = &meta.idempotency else {
            return Ok(None);
        };
        match self
            .store
            .find_idempotency(&scoped_key(caller, key))
            .await?
        {
            Some((stored, a)) if stored == *digest => Ok(Some(outcome(&a, true))),
            Some(_) => Err(ServiceError::IdempotencyMismatch),
            None => Ok(None),
        }
    }

    async fn append(
        &self,
        caller: &Principal,
        id: Uuid,
        kind: CustomerKind,
        expected: ExpectedVersion,
        events: &[Event],
        meta: &WriteMeta,
    ) -> Result<Appended> {
        let key = self
            .keyring
            .key_for_write(&self.store, id)
            .await?
            .ok_or(ServiceError::Erased)?;
        let correlation_id = meta.correlation_id.unwrap_or_else(Uuid::now_v7);
        let mut causation_id = None;
        let mut new_events = Vec::with_capacity(events.len());
        for e in events {
            let enc = encode(e, kind, id, &key);
            let event_id = Uuid::now_v7();
            new_events.push(NewEvent {
                event_id,
                event_type: enc.event_type.to_owned(),
                schema_version: enc.schema_version,
                effective_at: meta.effective_at,
                actor: actor(caller),
                reason: meta.reason.clone(),
                correlation_id,
                causation_id,
                payload: enc.payload,
            });
            // Later events of one request were caused by the first.
            causation_id = causation_id.or(Some(event_id));
        }
        Ok(self
            .store
            .append(AppendRequest {
                stream_id: id,
                expected,
                events: new_events,
                idempotency: meta.idempotency.as_ref().map(|(k, h)| IdempotencyKey {
                    key: scoped_key(caller, k),
                    request_hash: *h,
                }),
            })
            .await?)
    }

    pub async fn register(
        &self,
        caller: &Principal,
        input: RegisterInput,
        meta: WriteMeta,
    ) -> Result<WriteOutcome> {
        authorize(caller, Action::WriteCustomers)?;
        check_reason(&meta.reason)?;
        if let Some(done) = self.replay(caller, &meta).await? {
            return Ok(done);
        }
        let kind = CustomerKind::parse(&input.kind)
            .ok_or_else(|| invalid("kind", "must be person or company"))?;
        let today = Utc::now().date_naive();
        let mut details = BTreeMap::new();
        for (name, raw) in &input.details {
            let f = parse_field(name)?;
            let v = f
                .parse_value(kind, raw, today)
                .map_err(|e| invalid(format!("details/{name}"), e.reason))?;
            details.insert(f, v);
        }
        let owner = input
            .owner
            .as_deref()
            .map(|o| Text::parse_max(o, 100))
            .transpose()
            .map_err(|e| invalid("owner", e.reason))?;
        let tags = parse_tags("tags", &input.tags)?;
        if input.force && meta.reason.is_none() {
            return Err(invalid(
                "reason",
                "registering a possible duplicate needs a reason",
            ));
        }
        let text = |f: Field| details.get(&f).map(|v| v.as_str().to_owned());
        let keys = dossier_projections::DuplicateKeys {
            phone: text(Field::Phone),
            email: text(Field::Email),
            credit_code: text(Field::CreditCode),
            national_id: text(Field::NationalId),
        };
        let ids: Vec<dossier_projections::IdentifierTag> = keys
            .identifiers()
            .into_iter()
            .map(|(field, value)| dossier_projections::IdentifierTag {
                field,
                tag: self.keyring.blind_index(field, &value),
            })
            .collect();
        let events = decide(
            &Customer::default(),
            Command::Register {
                kind,
                details,
                owner,
                tags,
            },
        )?;
        let id = Uuid::now_v7();
        // Registrations sharing an identifier take turns (across processes)
        // from the check until their append is committed, and each leaves a
        // claim that the next one finds while the read model lags behind.
        let names: Vec<&[u8]> = ids.iter().map(|t| t.tag.as_slice()).collect();
        let locks = self.store.lock_names("duplicates", &names).await?;
        let registered = async {
            if !input.force {
                let found = dossier_projections::find_duplicates(&self.store, &keys, &ids).await?;
                if !found.is_empty() {
                    return Err(ServiceError::Duplicate(found));
                }
            }
            dossier_projections::claim_identifiers(&self.store, id, &ids).await?;
            self.append(caller, id, kind, ExpectedVersion::NoStream, &events, &meta)
                .await
        }
        .await;
        // The outcome stands either way: a lock whose release failed ends
        // with its connection.
        let _ = locks.release().await;
        let a = registered?;
        Ok(outcome(&a, a.replayed))
    }

    /// Rebuilds a customer's domain state from its stream.
    async fn load(&self, id: Uuid, max_seq: Option<i64>) -> Result<Option<(Customer, Snapshot)>> {
        let events = self.store.read_stream(id, max_seq).await?;
        let Some(last) = events.last() else {
            return Ok(None);
        };
        let keys = self.keyring.keys_for_read(&self.store, &[id]).await?;
        let key = keys.get(&id).and_then(Option::as_ref);
        let mut state = Customer::default();
        let mut erased = false;
        for e in &events {
            let (event, was_erased) = domain_event(e, key)?;
            erased |= was_erased;
            state = evolve(state, &event);
        }
        let snapshot = Snapshot {
            id,
            file: customer_json(&state),
            version: last.record.stream_version,
            last_seq: last.record.seq,
            last_hash: last.hash,
            last_recorded_at: last.record.recorded_at,
            erased,
        };
        Ok(Some((state, snapshot)))
    }

    /// Applies a PATCH if the customer is still at `expected_version`.
    pub async fn change(
        &self,
        caller: &Principal,
        id: Uuid,
        expected_version: i64,
        input: ChangeInput,
        meta: WriteMeta,
    ) -> Result<WriteOutcome> {
        authorize(caller, Action::WriteCustomers)?;
        if meta.reason.is_none() {
            return Err(invalid("reason", "a change needs a reason"));
        }
        check_reason(&meta.reason)?;
        if let Some(done) = self.replay(caller, &meta).await? {
            return Ok(done);
        }
        let (state, snap) = self.load(id, None).await?.ok_or(ServiceError::NotFound)?;
        if snap.erased {
            return Err(ServiceError::Erased);
        }
        if snap.version != expected_version {
            return Err(ServiceError::VersionMismatch {
                current: snap.version,
            });
        }
        let kind = state.kind.ok_or(ServiceError::NotFound)?;
        let today = Utc::now().date_naive();
        let mut commands = Vec::new();
        if !input.details.is_empty() {
            let mut changes = BTreeMap::new();
            for (name, raw) in &input.details {
                let f = parse_field(name)?;
                let v = raw
                    .as_deref()
                    .map(|r| f.parse_value(kind, r, today))
                    .transpose()
                    .map_err(|e| invalid(format!("details/{name}"), e.reason))?;
                changes.insert(f, v);
            }
            commands.push(Command::ChangeDetails { changes });
        }
        if let Some(o) = &input.owner {
            let owner = Text::parse_max(o, 100).map_err(|e| invalid("owner", e.reason))?;
            commands.push(Command::AssignOwner { owner });
        }
        for (i, c) in input.add_contacts.iter().enumerate() {
            commands.push(Command::AddContact {
                contact_id: Uuid::now_v7(),
                contact: parse_contact(c, i)?,
            });
        }
        for contact_id in &input.remove_contacts {
            commands.push(Command::RemoveContact {
                contact_id: *contact_id,
            });
        }
        for (i, a) in input.add_addresses.iter().enumerate() {
            let at = |f: &str| format!("add_addresses/{i}/{f}");
            commands.push(Command::AddAddress {
                address_id: Uuid::now_v7(),
                label: a
                    .label
                    .as_deref()
                    .map(|l| Text::parse_max(l, 100))
                    .transpose()
                    .map_err(|e| invalid(at("label"), e.reason))?,
                text: Field::Address
                    .parse_value(kind, &a.text, today)
                    .map_err(|e| invalid(at("text"), e.reason))?,
            });
        }
        for address_id in &input.remove_addresses {
            commands.push(Command::RemoveAddress {
                address_id: *address_id,
            });
        }
        if !input.add_tags.is_empty() || !input.remove_tags.is_empty() {
            commands.push(Command::Tag {
                add: parse_tags("add_tags", &input.add_tags)?,
                remove: parse_tags("remove_tags", &input.remove_tags)?,
            });
        }
        if let Some(importance) = &input.importance {
            commands.push(Command::SetImportance {
                importance: importance
                    .as_deref()
                    .map(|i| {
                        Importance::parse(i).ok_or_else(|| {
                            invalid(
                                "importance",
                                format!("must be one of {} or null", Importance::names()),
                            )
                        })
                    })
                    .transpose()?,
            });
        }
        if input.archive {
            commands.push(Command::Archive);
        }
        if commands.is_empty() {
            return Err(invalid(
                "body",
                "nothing to change: give details, owner, add_contacts, remove_contacts, \
                 add_addresses, remove_addresses, add_tags, remove_tags, importance or archive",
            ));
        }
        let events = decide_all(state, commands)?;
        if events.is_empty() {
            return Ok(unchanged(id, &snap));
        }
        let a = self
            .append(
                caller,
                id,
                kind,
                ExpectedVersion::Exact(expected_version),
                &events,
                &meta,
            )
            .await
            .map_err(|e| match e {
                ServiceError::Conflict { current } => ServiceError::VersionMismatch { current },
                e => e,
            })?;
        Ok(outcome(&a, a.replayed))
    }

    /// The customer as it was (rebuilt from the log).
    pub async fn state_at(&self, caller: &Principal, id: Uuid, at: AsOf) -> Result<Snapshot> {
        authorize(caller, Action::ReadCustomers)?;
        let max_seq = match at {
            AsOf::Seq(n) => n,
            AsOf::Recorded(t) => self.store.seq_known_at(t).await?,
        };
        Ok(self
            .load(id, Some(max_seq))
            .await?
            .ok_or(ServiceError::NotFound)?
            .1)
    }

    /// The current-state read model, after waiting (briefly) for `min_seq`.
    pub async fn current(
        &self,
        caller: &Principal,
        id: Uuid,
        min_seq: Option<i64>,
    ) -> Result<CurrentRow> {
        authorize(caller, Action::ReadCustomers)?;
        if let Some(min) = min_seq {
            let reached = dossier_projections::wait_for(
                &self.store,
                "customer_current",
                min,
                Duration::from_secs(2),
            )
            .await?;
            if reached.is_none() {
                return Err(ServiceError::NotCaughtUp(min));
            }
        }
        dossier_projections::read_current(&self.store, id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Sales' filtered, sorted, paginated list from the read model.
    pub async fn list(&self, caller: &Principal, input: ListInput) -> Result<ListPage> {
        authorize(caller, Action::ReadCustomers)?;
        let query = input.validate()?;
        Ok(dossier_projections::list_customers(&self.store, &query).await?)
    }

    pub async fn history(
        &self,
        caller: &Principal,
        id: Uuid,
        after_version: i64,
        limit: i64,
    ) -> Result<HistoryPage> {
        authorize(caller, Action::ReadHistory)?;
        history::page(self, id, after_version, limit).await
    }
}

/// Decides commands in order, each against the state the previous ones left.
pub(crate) fn decide_all(
    state: Customer,
    commands: impl IntoIterator<Item = Command>,
) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    let mut s = state;
    for c in commands {
        for e in decide(&s, c)? {
            s = evolve(s, &e);
            events.push(e);
        }
    }
    Ok(events)
}

/// The answer to a write that changed nothing.
pub(crate) fn unchanged(id: Uuid, snap: &Snapshot) -> WriteOutcome {
    WriteOutcome {
        customer_id: id,
        version: snap.version,
        seq: snap.last_seq,
        events: 0,
        replayed: false,
    }
}

fn scoped_key(caller: &Principal, key: &str) -> String {
    // Keys are per principal: two clients choosing the same key never collide.
    format!("{}:{key}", caller.id)
}

fn outcome(a: &Appended, replayed: bool) -> WriteOutcome {
    WriteOutcome {
        customer_id: a.stream_id,
        version: a.version,
        seq: a.last_seq,
        events: (a.last_seq - a.first_seq + 1) as usize,
        replayed,
    }
}

/// Digest of a request for idempotency: method, path and body bytes.
pub fn request_digest(method: &str, path: &str, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(body);
    h.finalize().into()
}
