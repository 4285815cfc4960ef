//! Registering and changing customer files, and reading them now or as they were.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dossier_chain::{Hash, Timestamp};
use dossier_domain::{
    decide, evolve, Command, Contact, Customer, CustomerKind, Email, Field, Importance, PersonName,
    Phone, Text,
};
use dossier_events::open_event;
use dossier_events::{customer_json, split_file, SYSTEM_STREAM};
use dossier_projections::CurrentRow;
use dossier_store::{ExpectedVersion, Principal};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::access::{authorize, Action};
use crate::error::{invalid, Result, ServiceError};
use crate::write::{check_reason, decide_all, outcome, unchanged, WriteMeta, WriteOutcome};
use crate::Service;

/// A new customer file (the body of `POST /v1/customers`, beside `reason`
/// and `effective_at`).
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterInput {
    /// `person` or `company`.
    #[schema(pattern = "^(person|company)$")]
    pub kind: String,
    /// Field name to value; docs/api.md lists the fields and their rules.
    #[serde(default)]
    #[schema(schema_with = details_schema)]
    pub details: BTreeMap<String, String>,
    /// The responsible salesperson.
    #[schema(min_length = 1, max_length = 100)]
    pub owner: Option<String>,
    /// Short labels: 1 to 50 characters, no commas; at most 50.
    #[serde(default)]
    #[schema(max_items = 50, inline)]
    pub tags: Vec<Tag>,
    /// Register even if the file looks like a duplicate (needs a reason).
    #[serde(default)]
    pub force: bool,
}

/// A tag as the caller writes it.
pub type Tag = String;

/// A contact person to add.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[schema(min_length = 1, max_length = 200)]
    pub role: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// A change to a customer file (the body of `PATCH /v1/customers/{id}`,
/// beside `reason` and `effective_at`). Every part is optional; all parts
/// commit together or not at all.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeInput {
    /// Field name to its new value; `null` clears the field.
    #[serde(default)]
    #[schema(schema_with = detail_changes_schema)]
    pub details: BTreeMap<String, Option<String>>,
    /// Hand the customer to another salesperson.
    #[schema(min_length = 1, max_length = 100)]
    pub owner: Option<String>,
    #[serde(default)]
    #[schema(max_items = 50)]
    pub add_contacts: Vec<ContactInput>,
    #[serde(default)]
    #[schema(max_items = 50)]
    pub remove_contacts: Vec<Uuid>,
    #[serde(default)]
    #[schema(max_items = 50)]
    pub add_addresses: Vec<AddressInput>,
    #[serde(default)]
    #[schema(max_items = 50)]
    pub remove_addresses: Vec<Uuid>,
    #[serde(default)]
    #[schema(max_items = 50)]
    pub add_tags: Vec<String>,
    #[serde(default)]
    #[schema(max_items = 50)]
    pub remove_tags: Vec<String>,
    /// Absent: unchanged; `null`: back to the rules; `important`, `special`
    /// or `general`: a manual override.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = "^(important|special|general)$")]
    pub importance: Option<Option<String>>,
    /// Archive the customer (it leaves the default list).
    #[serde(default)]
    pub archive: bool,
}

/// A postal address to add.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    #[schema(min_length = 1, max_length = 100)]
    pub label: Option<String>,
    #[schema(min_length = 1, max_length = 500)]
    pub text: String,
}

/// Tells an explicit `null` (Some(None)) from an absent field (None).
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `details`: an object whose keys are the known field names.
fn details_schema() -> utoipa::openapi::Object {
    detail_object(false)
}

fn detail_changes_schema() -> utoipa::openapi::Object {
    detail_object(true)
}

fn detail_object(nullable: bool) -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let mut o = ObjectBuilder::new().additional_properties(Some(
        utoipa::openapi::schema::AdditionalProperties::<utoipa::openapi::Schema>::FreeForm(false),
    ));
    for f in Field::ALL {
        let value = ObjectBuilder::new()
            .schema_type(if nullable {
                utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null])
            } else {
                Type::String.into()
            })
            .min_length(Some(1))
            .max_length(Some(500));
        o = o.property(f.as_str(), value);
    }
    o.build()
}

/// Decodes one of a customer's stored events (opening its sealed values
/// with `key`); an event that cannot be decoded is a fault of the log.
pub(crate) fn domain_event(
    e: &dossier_store::StoredEvent,
    key: Option<&dossier_seal::DataKey>,
) -> Result<(dossier_domain::Event, bool)> {
    open_event(&e.record, key).map_err(|err| {
        ServiceError::Internal(format!("event seq {} cannot be read: {err}", e.record.seq))
    })
}

/// How a registration ended under its identifier locks.
enum Registered {
    Replayed(WriteOutcome),
    Appended(dossier_store::Appended),
}

/// What a write needs to know of the stream it decides on.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub id: Uuid,
    pub version: i64,
    pub last_seq: i64,
    pub last_hash: Hash,
    pub first_recorded_at: Timestamp,
    pub last_recorded_at: Timestamp,
    pub erased: bool,
}

/// A customer file as the API shows it: from the current-state read model,
/// or rebuilt from the log as it was at a past point. One shape for both.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerView {
    pub id: Uuid,
    /// `person` or `company`.
    #[schema(pattern = "^(person|company)$")]
    pub kind: String,
    /// Field name to value (personal fields opened for the caller).
    #[schema(value_type = Object)]
    pub details: Value,
    /// Contact persons by id.
    #[schema(value_type = Object)]
    pub contacts: Value,
    pub owner: Option<String>,
    /// The rest of the file: addresses, tags, importance override, credit,
    /// legal status, consents, open complaints, receivables, last review.
    #[serde(flatten)]
    pub more: Map<String, Value>,
    pub archived: bool,
    pub erased: bool,
    pub version: i64,
    pub last_seq: i64,
    /// Hash of the customer's last event (64 lowercase hex digits).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub last_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Recorded time of the last event applied (rebuilt answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_recorded_at: Option<Timestamp>,
    /// True when rebuilt from the log (`at_seq`, `as_of`), false when read
    /// from the current-state read model.
    pub rebuilt_from_log: bool,
}

impl From<CurrentRow> for CustomerView {
    fn from(c: CurrentRow) -> CustomerView {
        CustomerView {
            id: c.id,
            kind: c.kind,
            details: c.details,
            contacts: c.contacts,
            owner: c.owner,
            more: c.more,
            archived: c.archived,
            erased: c.erased,
            version: c.version,
            last_seq: c.last_seq,
            last_hash: c.last_hash,
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_recorded_at: None,
            rebuilt_from_log: false,
        }
    }
}

impl CustomerView {
    fn rebuilt(state: &Customer, snap: &Snapshot) -> CustomerView {
        let file = split_file(customer_json(state)).expect("customer_json always makes an object");
        CustomerView {
            id: snap.id,
            kind: state
                .kind
                .map(|k| k.as_str().to_owned())
                .unwrap_or_default(),
            details: file.details,
            contacts: file.contacts,
            owner: state.owner.as_ref().map(|o| o.as_str().to_owned()),
            more: file.more,
            archived: state.archived,
            erased: snap.erased,
            version: snap.version,
            last_seq: snap.last_seq,
            last_hash: snap.last_hash.to_hex(),
            created_at: snap.first_recorded_at.get(),
            updated_at: snap.last_recorded_at.get(),
            last_recorded_at: Some(snap.last_recorded_at),
            rebuilt_from_log: true,
        }
    }
}

/// Which state of a customer to read.
#[derive(Clone, Copy, Debug)]
pub enum ReadAt {
    /// The current-state read model, once it has applied this seq (if given).
    Current { min_seq: Option<i64> },
    /// What the log knew at this recorded time.
    Recorded(Timestamp),
    /// The state after this global position.
    Seq(i64),
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

impl Service {
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
        let ids: Vec<dossier_store::IdentifierTag> = keys
            .identifiers()
            .into_iter()
            .map(|(field, value)| dossier_store::IdentifierTag {
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
            // A request with this Idempotency-Key may have registered while
            // this one waited for the locks: its claim must not read as a
            // duplicate of the very customer the key is creating.
            if let Some(done) = self.replay(caller, &meta).await? {
                return Ok(Registered::Replayed(done));
            }
            if !input.force {
                let found = dossier_projections::find_duplicates(&self.store, &keys, &ids).await?;
                if !found.is_empty() {
                    return Err(ServiceError::Duplicate(found));
                }
            }
            self.store.claim_identifiers(id, &ids).await?;
            self.append(caller, id, kind, ExpectedVersion::NoStream, &events, &meta)
                .await
                .map(Registered::Appended)
        }
        .await;
        // The outcome stands either way: a lock whose release failed ends
        // with its connection.
        let _ = locks.release().await;
        match registered? {
            Registered::Replayed(done) => Ok(done),
            Registered::Appended(a) => Ok(outcome(&a, a.replayed)),
        }
    }

    /// Rebuilds a customer's domain state from its stream.
    pub(crate) async fn load(
        &self,
        id: Uuid,
        max_seq: Option<i64>,
    ) -> Result<Option<(Customer, Snapshot)>> {
        if id == SYSTEM_STREAM {
            // The system stream (rules, evaluation runs) is not a customer.
            return Ok(None);
        }
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
            first_recorded_at: events[0].record.recorded_at,
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

    /// A customer file: current, or rebuilt from the log as it was.
    pub async fn read(&self, caller: &Principal, id: Uuid, at: ReadAt) -> Result<CustomerView> {
        authorize(caller, Action::ReadCustomers)?;
        let max_seq = match at {
            ReadAt::Current { min_seq } => return self.current(id, min_seq).await,
            ReadAt::Seq(n) => n,
            ReadAt::Recorded(t) => self.store.seq_known_at(t).await?,
        };
        let (state, snap) = self
            .load(id, Some(max_seq))
            .await?
            .ok_or(ServiceError::NotFound)?;
        Ok(CustomerView::rebuilt(&state, &snap))
    }

    /// The current-state read model, after waiting (briefly) for `min_seq`.
    async fn current(&self, id: Uuid, min_seq: Option<i64>) -> Result<CustomerView> {
        if let Some(min) = min_seq {
            // A seq the log has not reached yet is not one a write returned:
            // waiting for it would only delay the error.
            if min > self.store.head().await?.seq {
                return Err(invalid("min_seq", "is beyond the log's head"));
            }
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
        Ok(dossier_projections::read_current(&self.store, id)
            .await?
            .ok_or(ServiceError::NotFound)?
            .into())
    }
}
