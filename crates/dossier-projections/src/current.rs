//! `customer_current`: the current state of every customer, decrypted.

use std::collections::HashMap;

use dossier_domain::{evolve, Customer, Field};
use dossier_events::{
    customer_from_json, customer_json, open_event, split_file, FileParts, SYSTEM_STREAM,
};
use dossier_store::{Keyring, Store, StoredEvent};
use serde_json::Value;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::list::{
    base_facets, name_key, search_entries, search_terms, write_search_rows, CurrentListCols,
    SearchRows, TERM_SEP,
};
use crate::{stored_json, Projection, ProjectionError};

pub struct CustomerCurrent {
    store: Store,
    keyring: Keyring,
    /// Deletes the duplicate claims of the customers it projects (not when
    /// it brings a full rebuild's new tables up to date: the live tables
    /// answer duplicate checks until the swap).
    claims: bool,
}

impl CustomerCurrent {
    pub fn new(store: Store, keyring: Keyring) -> CustomerCurrent {
        CustomerCurrent {
            store,
            keyring,
            claims: true,
        }
    }

    /// For a full rebuild's catch-up: leaves the claims alone.
    pub(crate) fn without_claims(store: Store, keyring: Keyring) -> CustomerCurrent {
        CustomerCurrent {
            store,
            keyring,
            claims: false,
        }
    }
}

/// One customer's current state as the projector keeps it.
pub(crate) struct Tracked {
    state: Customer,
    erased: bool,
    version: i64,
    last_seq: i64,
    last_hash: Vec<u8>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// Decodes one stored event for a projector ([`dossier_events::open_event`]),
/// naming its seq when it cannot be.
pub(crate) fn domain_event(
    e: &StoredEvent,
    key: Option<&dossier_seal::DataKey>,
) -> Result<(dossier_domain::Event, bool), ProjectionError> {
    open_event(&e.record, key).map_err(|err| ProjectionError::BadEvent {
        seq: e.record.seq,
        reason: err.to_string(),
    })
}

impl Tracked {
    /// Before the customer's first event.
    pub(crate) fn new(first: &StoredEvent) -> Tracked {
        Tracked {
            state: Customer::default(),
            erased: false,
            version: 0,
            last_seq: 0,
            last_hash: Vec::new(),
            created_at: first.record.recorded_at.get(),
            updated_at: first.record.recorded_at.get(),
        }
    }

    /// Folds in the customer's next event, decoded.
    pub(crate) fn apply(&mut self, e: &StoredEvent, event: &dossier_domain::Event, erased: bool) {
        let r = &e.record;
        self.state = evolve(std::mem::take(&mut self.state), event);
        self.erased |= erased;
        self.version = r.stream_version;
        self.last_seq = r.seq;
        self.last_hash = e.hash.0.to_vec();
        self.updated_at = r.recorded_at.get();
    }
}

impl Projection for CustomerCurrent {
    fn name(&self) -> &'static str {
        "customer_current"
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        // The system stream (rules, evaluation runs) is not a customer.
        let events: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| e.record.stream_id != SYSTEM_STREAM)
            .collect();
        let mut ids: Vec<Uuid> = events.iter().map(|e| e.record.stream_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let keys = self.keyring.keys_for_read(&self.store, &ids).await?;
        let mut rows: HashMap<Uuid, Tracked> = HashMap::new();
        for r in sqlx::query(
            "SELECT customer_id, file, erased, version, last_seq, last_hash, created_at, updated_at
             FROM customer_current WHERE customer_id = ANY($1) AND file IS NOT NULL",
        )
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?
        {
            let id: Uuid = r.get("customer_id");
            // Folding new events into a default customer would write a file
            // that silently lost everything before them.
            let file: serde_json::Map<String, Value> =
                stored_json("customer_current", id, "file", r.get("file"))?;
            rows.insert(
                id,
                Tracked {
                    state: customer_from_json(&Value::Object(file)),
                    erased: r.get("erased"),
                    version: r.get("version"),
                    last_seq: r.get("last_seq"),
                    last_hash: r.get("last_hash"),
                    created_at: r.get("created_at"),
                    updated_at: r.get("updated_at"),
                },
            );
        }
        for e in events {
            let r = &e.record;
            let key = keys.get(&r.stream_id).and_then(Option::as_ref);
            let (event, erased) = domain_event(e, key)?;
            rows.entry(r.stream_id)
                .or_insert_with(|| Tracked::new(e))
                .apply(e, &event, erased);
        }
        // In customer_id order: the list rows are shared with the insight
        // projectors, and locking them in one order never deadlocks.
        let mut rows: Vec<(Uuid, Tracked)> = rows.into_iter().collect();
        rows.sort_unstable_by_key(|(id, _)| *id);
        let mut cols = Cols::default();
        for (id, row) in &rows {
            cols.push(*id, row);
        }
        write_rows(tx, &cols, true).await?;
        if !self.claims {
            return Ok(());
        }
        // Projected: the read model now answers duplicate checks for them.
        crate::insight_read::drop_claims(tx, &ids).await
    }

    async fn reset(&self, tx: &mut Transaction<'static, Postgres>) -> Result<(), ProjectionError> {
        for table in ["customer_current", "customer_search"] {
            // Table names are constants, never input.
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut **tx)
                .await?;
        }
        crate::list::clear_columns(tx, crate::list::Keeper::Current).await?;
        Ok(())
    }
}

impl Cols {
    /// Adds a customer's row (none before its registration).
    pub(crate) fn push(&mut self, id: Uuid, row: &Tracked) {
        let Some(kind) = row.state.kind else { return };
        let doc = customer_json(&row.state);
        let text = |f: Field| row.state.details.get(&f).map(|v| v.as_str().to_owned());
        self.id.push(id);
        self.kind.push(kind.as_str().to_owned());
        self.name.push(text(Field::Name));
        self.owner.push(row.state.owner.clone());
        self.region.push(text(Field::Region));
        self.industry.push(text(Field::Industry));
        let (name, phone, email, code) = (
            text(Field::Name),
            text(Field::Phone),
            text(Field::Email),
            text(Field::CreditCode),
        );
        let terms = search_terms(
            name.as_deref(),
            phone.as_deref(),
            email.as_deref(),
            code.as_deref(),
        );
        let key = name_key(name.as_deref());
        let tags: Vec<String> = row.state.tags.iter().cloned().collect();
        let facets = base_facets(kind.as_str(), text(Field::Industry).as_deref(), &tags);
        self.facets.push(facets.join(&TERM_SEP.to_string()));
        self.search.push(id, &key, &search_entries(&terms, &key));
        self.name_key.push(key);
        self.phone.push(phone);
        self.email.push(email);
        self.credit_code.push(code);
        self.archived.push(row.state.archived);
        self.erased.push(row.erased);
        self.file.push(doc.to_string());
        self.tags.push(tags.join(&TERM_SEP.to_string()));
        self.national_id.push(text(Field::NationalId));
        self.merged_into.push(row.state.merged_into);
        self.version.push(row.version);
        self.last_seq.push(row.last_seq);
        self.last_hash.push(row.last_hash.clone());
        self.created_at.push(row.created_at);
        self.updated_at.push(row.updated_at);
    }
}

impl Cols {
    /// The customer_list columns of the row at `i`.
    pub(crate) fn list_cols(&self, i: usize) -> CurrentListCols {
        CurrentListCols {
            archived: self.archived[i],
            name_key: self.name_key[i].clone(),
            created_at: self.created_at[i],
            updated_at: self.updated_at[i],
            owner: self.owner[i].clone(),
            region: self.region[i].clone(),
            base_facets: self.facets[i].clone(),
        }
    }

    /// The customer_search rows of these customers.
    pub(crate) fn search(&self) -> &SearchRows {
        &self.search
    }

    /// The customer of the row at `i`, if there is one.
    pub(crate) fn id_at(&self, i: usize) -> Option<Uuid> {
        self.id.get(i).copied()
    }
}

/// Upserts the rows in `cols` into customer_current and, with `list`, their
/// columns of customer_list and their customer_search rows (when changed).
pub(crate) async fn write_rows(
    tx: &mut Transaction<'static, Postgres>,
    cols: &Cols,
    list: bool,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO customer_current (customer_id, kind, display_name, owner, region, industry, archived, erased,
                                       version, last_seq, last_hash, created_at, updated_at,
                                       phone, email, credit_code, file, tags, national_id, merged_into)
         SELECT id, kind, name, owner, region, industry, archived, erased,
                version, last_seq, last_hash, created_at, updated_at, phone, email, credit_code,
                file, CASE WHEN tg = '' THEN '{}'::text[] ELSE string_to_array(tg, $17) END, nid, mi
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[],
                     $8::bool[], $9::bigint[], $10::bigint[], $11::bytea[],
                     $12::timestamptz[], $13::timestamptz[], $14::text[], $15::text[], $16::text[],
                     $18::text[], $19::text[], $20::text[], $21::uuid[])
              AS t(id, kind, name, owner, region, industry, archived, erased, version,
                   last_seq, last_hash, created_at, updated_at, phone, email, credit_code, file, tg,
                   nid, mi)
         ON CONFLICT (customer_id) DO UPDATE SET
             kind = excluded.kind, display_name = excluded.display_name, owner = excluded.owner,
             region = excluded.region, industry = excluded.industry, archived = excluded.archived,
             erased = excluded.erased,
             version = excluded.version, last_seq = excluded.last_seq, last_hash = excluded.last_hash,
             updated_at = excluded.updated_at, phone = excluded.phone, email = excluded.email,
             credit_code = excluded.credit_code,
             file = excluded.file, tags = excluded.tags, national_id = excluded.national_id,
             merged_into = excluded.merged_into",
    )
    .bind(&cols.id)
    .bind(&cols.kind)
    .bind(&cols.name)
    .bind(&cols.owner)
    .bind(&cols.region)
    .bind(&cols.industry)
    .bind(&cols.archived)
    .bind(&cols.erased)
    .bind(&cols.version)
    .bind(&cols.last_seq)
    .bind(&cols.last_hash)
    .bind(&cols.created_at)
    .bind(&cols.updated_at)
    .bind(&cols.phone)
    .bind(&cols.email)
    .bind(&cols.credit_code)
    .bind(TERM_SEP.to_string())
    .bind(&cols.file)
    .bind(&cols.tags)
    .bind(&cols.national_id)
    .bind(&cols.merged_into)
    .execute(&mut **tx)
    .await?;
    if !list {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO customer_list (customer_id, archived, name_key, created_at, updated_at, owner, region,
                                    base_facets)
         SELECT id, archived, nk, created_at, updated_at, owner, region, string_to_array(f, $9)
         FROM unnest($1::uuid[], $2::bool[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[],
                     $7::text[], $8::text[])
              AS t(id, archived, nk, created_at, updated_at, owner, region, f)
         ORDER BY id
         ON CONFLICT (customer_id) DO UPDATE SET archived = excluded.archived,
             name_key = excluded.name_key, created_at = excluded.created_at,
             updated_at = excluded.updated_at, owner = excluded.owner, region = excluded.region,
             base_facets = excluded.base_facets",
    )
    .bind(&cols.id)
    .bind(&cols.archived)
    .bind(&cols.name_key)
    .bind(&cols.created_at)
    .bind(&cols.updated_at)
    .bind(&cols.owner)
    .bind(&cols.region)
    .bind(&cols.facets)
    .bind(TERM_SEP.to_string())
    .execute(&mut **tx)
    .await?;
    write_search_rows(tx, &cols.search).await
}

/// customer_current rows (and their customer_list columns) as column arrays.
#[derive(Default)]
pub(crate) struct Cols {
    id: Vec<Uuid>,
    kind: Vec<String>,
    name: Vec<Option<String>>,
    owner: Vec<Option<String>>,
    region: Vec<Option<String>>,
    industry: Vec<Option<String>>,
    archived: Vec<bool>,
    erased: Vec<bool>,
    version: Vec<i64>,
    last_seq: Vec<i64>,
    last_hash: Vec<Vec<u8>>,
    created_at: Vec<chrono::DateTime<chrono::Utc>>,
    updated_at: Vec<chrono::DateTime<chrono::Utc>>,
    phone: Vec<Option<String>>,
    email: Vec<Option<String>>,
    credit_code: Vec<Option<String>>,
    /// customer_list's name sort key and facets (joined by `TERM_SEP`).
    name_key: Vec<String>,
    facets: Vec<String>,
    file: Vec<String>,
    /// Tags joined by `TERM_SEP`.
    tags: Vec<String>,
    national_id: Vec<Option<String>>,
    merged_into: Vec<Option<Uuid>>,
    search: SearchRows,
}

/// A row of `customer_current` as the API returns it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CurrentRow {
    pub id: Uuid,
    pub kind: String,
    pub details: Value,
    pub contacts: Value,
    pub owner: Option<String>,
    /// The rest of the file: addresses, tags, importance override, credit,
    /// legal status, consents, open complaints, receivables, last review.
    #[serde(flatten)]
    pub more: serde_json::Map<String, Value>,
    pub archived: bool,
    pub erased: bool,
    pub version: i64,
    pub last_seq: i64,
    pub last_hash: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Reads one customer's current row; `Corrupt` if its file does not parse.
pub async fn read_current(store: &Store, id: Uuid) -> Result<Option<CurrentRow>, ProjectionError> {
    let row = sqlx::query(
        "SELECT customer_id, kind, owner, archived, erased, version, last_seq, last_hash, created_at,
                updated_at, file
         FROM customer_current WHERE customer_id = $1",
    )
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    let file: serde_json::Map<String, Value> = match r.get::<Option<&str>, _>("file") {
        Some(text) => stored_json("customer_current", id, "file", text)?,
        // Written before migration 0004 and not projected since: empty
        // until the projector reaches its events (see migration 0009).
        None => serde_json::Map::new(),
    };
    let FileParts {
        details,
        contacts,
        more,
    } = split_file(Value::Object(file)).expect("an object always splits");
    Ok(Some(CurrentRow {
        more,
        id: r.get("customer_id"),
        kind: r.get("kind"),
        details,
        contacts,
        owner: r.get("owner"),
        archived: r.get("archived"),
        erased: r.get("erased"),
        version: r.get("version"),
        last_seq: r.get("last_seq"),
        last_hash: hex::encode(r.get::<Vec<u8>, _>("last_hash")),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }))
}
