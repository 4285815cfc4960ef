//! Sales' customer list over the `customer_list` read model: filters, search,
//! sorting and keyset (cursor) pagination.
//!
//! Search uses the search terms (see [`search_terms`]) the projector keeps in
//! `customer_search` as `q:` entries (and `m:` for the one- or two-character
//! terms a name does not start with); a search collects the matching ids
//! there first and filters the list on them. They live apart from `customer_list`, whose row every event
//! rewrites, so that the terms' GIN entries are written only when they change.
//! A query of 1-2 characters matches when it is a term; a longer one when all
//! its 2-character substrings are terms and the name contains it, or when it
//! equals a term (a phone's digits, an e-mail, a credit code).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};
use uuid::Uuid;

use dossier_domain::{CustomerKind, Importance};
use dossier_insights::{Lifecycle, RiskLevel, Signal, ValueTier};
use dossier_store::Store;

use crate::ProjectionError;

/// Separator of terms when they travel as one string to `string_to_array`.
pub(crate) const TERM_SEP: char = '\u{1f}';

fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .to_lowercase()
}

/// Single characters and 2-character windows without whitespace.
fn grams(s: &str, singles: bool, out: &mut BTreeSet<String>) {
    let chars: Vec<char> = s.chars().collect();
    if singles {
        for c in chars.iter().filter(|c| !c.is_whitespace()) {
            out.insert(c.to_string());
        }
    }
    for w in chars.windows(2) {
        if !w[0].is_whitespace() && !w[1].is_whitespace() {
            out.insert(w.iter().collect());
        }
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The normalised search terms of a customer, sorted and deduplicated.
pub fn search_terms(
    name: Option<&str>,
    phone: Option<&str>,
    email: Option<&str>,
    credit_code: Option<&str>,
) -> Vec<String> {
    let mut t = BTreeSet::new();
    if let Some(name) = name {
        let name = clean(name);
        grams(&name, true, &mut t);
        t.extend(name.split_whitespace().map(str::to_owned));
    }
    if let Some(phone) = phone {
        let d = digits(phone);
        if d.len() >= 4 {
            t.insert(d[d.len() - 4..].to_owned());
        }
        // Mainland numbers are also searched without the country code.
        if let Some(national) = d.strip_prefix("86").filter(|_| phone.starts_with("+86")) {
            t.insert(national.to_owned());
        }
        if !d.is_empty() {
            t.insert(d);
        }
    }
    if let Some(email) = email {
        let e = clean(email.trim());
        if let Some((local, _)) = e.split_once('@') {
            t.insert(local.to_owned());
        }
        t.insert(e);
    }
    if let Some(code) = credit_code {
        t.insert(clean(code.trim()));
    }
    t.retain(|s| !s.is_empty());
    t.into_iter().collect()
}

/// How a query string is matched, after normalisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Search {
    /// 1-2 characters: the query must be a term.
    Term(String),
    /// Longer: all `grams` must be terms and the name must contain `text`, or
    /// `text` itself is a term.
    Long { text: String, grams: Vec<String> },
}

impl Search {
    /// Normalises a query like the terms; `None` if nothing is left.
    pub fn parse(q: &str) -> Option<Search> {
        let mut text = clean(q.trim());
        // "+86138..." finds the same as "86138...".
        if text.len() > 1 && text.starts_with('+') && text[1..].chars().all(|c| c.is_ascii_digit())
        {
            text.remove(0);
        }
        match text.chars().count() {
            0 => None,
            1 | 2 => Some(Search::Term(text)),
            _ => {
                let mut g = BTreeSet::new();
                grams(&text, false, &mut g);
                Some(Search::Long {
                    text,
                    grams: g.into_iter().collect(),
                })
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    Name,
    UpdatedAt,
    CreatedAt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Sort {
        Sort {
            key: SortKey::UpdatedAt,
            descending: true,
        }
    }
}

impl Sort {
    /// `name`, `updated_at`, `created_at`, each optionally prefixed by `-`.
    pub fn parse(raw: &str) -> Option<Sort> {
        let (descending, key) = match raw.strip_prefix('-') {
            Some(k) => (true, k),
            None => (false, raw),
        };
        let key = match key {
            "name" => SortKey::Name,
            "updated_at" => SortKey::UpdatedAt,
            "created_at" => SortKey::CreatedAt,
            _ => return None,
        };
        Some(Sort { key, descending })
    }

    pub fn as_string(&self) -> String {
        let key = match self.key {
            SortKey::Name => "name",
            SortKey::UpdatedAt => "updated_at",
            SortKey::CreatedAt => "created_at",
        };
        format!("{}{key}", if self.descending { "-" } else { "" })
    }
}

/// Where the previous page ended: the last row's sort key and id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The sort the cursor belongs to, e.g. `-updated_at`.
    pub sort: String,
    /// Name (text) or time (microseconds since the epoch).
    pub key: CursorKey,
    pub id: Uuid,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CursorKey {
    Micros(i64),
    Text(String),
}

#[derive(Debug, thiserror::Error)]
#[error("the cursor is malformed or belongs to a different sort order")]
pub struct BadCursor;

impl Cursor {
    /// The opaque form: base64url (no padding) of a small JSON document.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a cursor made by [`Cursor::encode`] for `sort`.
    pub fn decode(raw: &str, sort: Sort) -> Result<Cursor, BadCursor> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| BadCursor)?;
        let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| BadCursor)?;
        let key_fits = matches!(
            (&c.key, sort.key),
            (CursorKey::Text(_), SortKey::Name)
                | (
                    CursorKey::Micros(_),
                    SortKey::UpdatedAt | SortKey::CreatedAt
                )
        );
        if c.sort != sort.as_string() || !key_fits {
            return Err(BadCursor);
        }
        match &c.key {
            CursorKey::Micros(m) => {
                DateTime::<Utc>::from_timestamp_micros(*m).ok_or(BadCursor)?;
            }
            // PostgreSQL text cannot hold NUL: such a key was never issued.
            CursorKey::Text(t) if t.contains('\0') => return Err(BadCursor),
            CursorKey::Text(_) => {}
        }
        Ok(c)
    }
}

/// A typed list query: closed vocabularies are their enums, free strings
/// (owner, region, industry, tags) are matched exactly; `archived` selects
/// archived (true) or live (false) customers.
#[derive(Clone, Debug)]
pub struct ListQuery {
    pub kind: Option<CustomerKind>,
    pub owner: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub tier: Option<ValueTier>,
    pub importance: Option<Importance>,
    pub lifecycle: Option<Lifecycle>,
    /// Risk levels accepted (any of them).
    pub risk: Vec<RiskLevel>,
    /// An active risk signal.
    pub signal: Option<Signal>,
    /// Tags the customer must all carry.
    pub tags: Vec<String>,
    pub archived: bool,
    pub search: Option<Search>,
    pub sort: Sort,
    pub limit: i64,
    pub after: Option<Cursor>,
}

impl Default for ListQuery {
    fn default() -> ListQuery {
        ListQuery {
            kind: None,
            owner: None,
            region: None,
            industry: None,
            tier: None,
            importance: None,
            lifecycle: None,
            risk: Vec::new(),
            signal: None,
            tags: Vec::new(),
            archived: false,
            search: None,
            sort: Sort::default(),
            limit: 50,
            after: None,
        }
    }
}

/// One row of the list.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ListItem {
    pub id: Uuid,
    pub kind: String,
    pub name: Option<String>,
    pub owner: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub tags: Vec<String>,
    pub tier: Option<String>,
    pub importance: Option<String>,
    pub lifecycle: Option<String>,
    pub risk: Option<String>,
    /// Active risk signals (why the customer is flagged).
    pub signals: Vec<String>,
    pub archived: bool,
    pub erased: bool,
    pub version: i64,
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ListPage {
    pub items: Vec<ListItem>,
    pub next_cursor: Option<String>,
}

/// The name sort key: the display name lowercased, without control
/// characters ('' without a name).
pub fn name_key(name: Option<&str>) -> String {
    name.map(clean).unwrap_or_default()
}

/// The facets `customer_current` keeps in `customer_list.base_facets`: what
/// the list filters on (but owner and region, columns).
pub fn base_facets(kind: &str, industry: Option<&str>, tags: &[String]) -> Vec<String> {
    let mut f = vec![format!("kind:{kind}")];
    if let Some(v) = industry {
        f.push(format!("industry:{v}"));
    }
    f.extend(tags.iter().map(|t| format!("tag:{t}")));
    f
}

/// The entries of `customer_search.terms`: `q:<term>` for every search term
/// and `m:<term>` for the terms of one or two characters the name does not
/// start with (only a one- or two-character query looks for `m:`; longer
/// ones check the name itself).
pub fn search_entries(terms: &[String], name_key: &str) -> Vec<String> {
    let mut f = Vec::with_capacity(terms.len() * 2);
    for t in terms {
        f.push(format!("q:{t}"));
        if t.chars().count() <= 2 && !name_key.starts_with(t.as_str()) {
            f.push(format!("m:{t}"));
        }
    }
    f
}

/// `customer_search` rows as column arrays (entries joined by `TERM_SEP`).
#[derive(Default)]
pub(crate) struct SearchRows {
    id: Vec<Uuid>,
    name_key: Vec<String>,
    terms: Vec<String>,
}

impl SearchRows {
    pub(crate) fn push(&mut self, id: Uuid, name_key: &str, entries: &[String]) {
        self.id.push(id);
        self.name_key.push(name_key.to_owned());
        self.terms.push(entries.join(&TERM_SEP.to_string()));
    }
}

/// Upserts `customer_search` rows, leaving a row whose name key and terms are
/// unchanged untouched (no new row version, no index entries): most events
/// change neither.
pub(crate) async fn write_search_rows(
    tx: &mut Transaction<'static, Postgres>,
    rows: &SearchRows,
) -> Result<(), ProjectionError> {
    if rows.id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO customer_search (customer_id, name_key, terms)
         SELECT id, nk, CASE WHEN t = '' THEN '{}'::text[] ELSE string_to_array(t, $4) END
         FROM unnest($1::uuid[], $2::text[], $3::text[]) AS x(id, nk, t)
         ORDER BY id
         ON CONFLICT (customer_id) DO UPDATE SET name_key = excluded.name_key, terms = excluded.terms
         WHERE customer_search.name_key IS DISTINCT FROM excluded.name_key
            OR customer_search.terms IS DISTINCT FROM excluded.terms",
    )
    .bind(&rows.id)
    .bind(&rows.name_key)
    .bind(&rows.terms)
    .bind(TERM_SEP.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The projectors that keep `customer_list`, each its own columns of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keeper {
    Current,
    Tier,
    Risk,
}

impl Keeper {
    /// The columns of `customer_list` it keeps; the facets column last.
    fn columns(self) -> &'static [&'static str] {
        match self {
            Keeper::Current => &[
                "archived",
                "name_key",
                "created_at",
                "updated_at",
                "owner",
                "region",
                "base_facets",
            ],
            Keeper::Tier => &["value_tier", "tier_facets"],
            Keeper::Risk => &["risk_facets"],
        }
    }

    fn facets_column(self) -> &'static str {
        self.columns().last().copied().unwrap_or_default()
    }
}

/// Sets the columns `keeper` keeps back to NULL (its reset), locking the
/// rows in customer_id order like every writer.
pub(crate) async fn clear_columns(
    tx: &mut Transaction<'static, Postgres>,
    keeper: Keeper,
) -> Result<(), ProjectionError> {
    let assignments: Vec<String> = keeper
        .columns()
        .iter()
        .map(|c| format!("{c} = NULL"))
        .collect();
    sqlx::query(&format!(
        "UPDATE customer_list SET {} WHERE customer_id IN
             (SELECT customer_id FROM customer_list ORDER BY customer_id FOR UPDATE)",
        assignments.join(", ")
    ))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What an insight projector keeps in a customer's `customer_list` row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ListPart {
    /// `value_tier` (customer_tier only).
    pub value_tier: Option<String>,
    pub facets: Vec<String>,
}

/// Writes an insight projector's part of `customer_list` (`value_tier` and
/// `tier_facets`, or `risk_facets`) for the customers in `parts`, in
/// customer_id order.
pub(crate) async fn write_list_parts(
    tx: &mut Transaction<'static, Postgres>,
    keeper: Keeper,
    parts: &BTreeMap<Uuid, ListPart>,
) -> Result<(), ProjectionError> {
    if parts.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = parts.keys().copied().collect();
    let tiers: Vec<Option<String>> = parts.values().map(|p| p.value_tier.clone()).collect();
    let joined: Vec<String> = parts
        .values()
        .map(|p| p.facets.join(&TERM_SEP.to_string()))
        .collect();
    let facets = keeper.facets_column();
    let (tier_col, tier_val, tier_set) = if keeper == Keeper::Tier {
        (", value_tier", ", vt", ", value_tier = excluded.value_tier")
    } else {
        ("", "", "")
    };
    sqlx::query(&format!(
        "INSERT INTO customer_list (customer_id, {facets}{tier_col})
         SELECT id, CASE WHEN f = '' THEN '{{}}'::text[] ELSE string_to_array(f, $3) END{tier_val}
         FROM unnest($1::uuid[], $2::text[], $4::text[]) AS t(id, f, vt)
         ORDER BY id
         ON CONFLICT (customer_id) DO UPDATE SET {facets} = excluded.{facets}{tier_set}"
    ))
    .bind(&ids)
    .bind(&joined)
    .bind(TERM_SEP.to_string())
    .bind(&tiers)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What customer_current keeps in a customer's `customer_list` row.
pub(crate) struct CurrentListCols {
    pub(crate) archived: bool,
    pub(crate) name_key: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) owner: Option<String>,
    pub(crate) region: Option<String>,
    /// Joined by `TERM_SEP`.
    pub(crate) base_facets: String,
}

/// Whole `customer_list` rows, every keeper's columns at once (a full
/// rebuild writes each row once, into an emptied table).
#[derive(Default)]
pub(crate) struct ListRows {
    id: Vec<Uuid>,
    archived: Vec<Option<bool>>,
    name_key: Vec<Option<String>>,
    created_at: Vec<Option<DateTime<Utc>>>,
    updated_at: Vec<Option<DateTime<Utc>>>,
    owner: Vec<Option<String>>,
    region: Vec<Option<String>>,
    base_facets: Vec<Option<String>>,
    value_tier: Vec<Option<String>>,
    tier_facets: Vec<Option<String>>,
    risk_facets: Vec<Option<String>>,
}

impl ListRows {
    /// A customer's row; `None` where that keeper has written nothing.
    pub(crate) fn push(
        &mut self,
        id: Uuid,
        current: Option<CurrentListCols>,
        tier: Option<ListPart>,
        risk: Option<ListPart>,
    ) {
        let sep = TERM_SEP.to_string();
        self.id.push(id);
        match current {
            Some(c) => {
                self.archived.push(Some(c.archived));
                self.name_key.push(Some(c.name_key));
                self.created_at.push(Some(c.created_at));
                self.updated_at.push(Some(c.updated_at));
                self.owner.push(c.owner);
                self.region.push(c.region);
                self.base_facets.push(Some(c.base_facets));
            }
            None => {
                self.archived.push(None);
                self.name_key.push(None);
                self.created_at.push(None);
                self.updated_at.push(None);
                self.owner.push(None);
                self.region.push(None);
                self.base_facets.push(None);
            }
        }
        self.value_tier
            .push(tier.as_ref().and_then(|t| t.value_tier.clone()));
        self.tier_facets.push(tier.map(|t| t.facets.join(&sep)));
        self.risk_facets.push(risk.map(|r| r.facets.join(&sep)));
    }
}

/// Inserts whole rows (see [`ListRows`]); the same values the keepers'
/// own writes would leave.
pub(crate) async fn insert_list_rows(
    tx: &mut Transaction<'static, Postgres>,
    rows: &ListRows,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO customer_list (customer_id, archived, name_key, created_at, updated_at, owner, region,
                                    base_facets, value_tier, tier_facets, risk_facets)
         SELECT id, ar, nk, ca, ua, ow, rg, string_to_array(bf, $12), vt,
                CASE WHEN tf = '' THEN '{}'::text[] ELSE string_to_array(tf, $12) END,
                CASE WHEN rf = '' THEN '{}'::text[] ELSE string_to_array(rf, $12) END
         FROM unnest($1::uuid[], $2::bool[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
              AS t(id, ar, nk, ca, ua, ow, rg, bf, vt, tf, rf)",
    )
    .bind(&rows.id)
    .bind(&rows.archived)
    .bind(&rows.name_key)
    .bind(&rows.created_at)
    .bind(&rows.updated_at)
    .bind(&rows.owner)
    .bind(&rows.region)
    .bind(&rows.base_facets)
    .bind(&rows.value_tier)
    .bind(&rows.tier_facets)
    .bind(&rows.risk_facets)
    .bind(TERM_SEP.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The smallest string above every string that starts with `prefix` (code
/// point order), or `None` if there is none.
fn prefix_upper(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Filter conditions on `customer_list l`, shared by every branch of a query.
struct Filters {
    archived: bool,
    owner: Option<String>,
    tier: Option<String>,
    region: Option<String>,
    /// Facets the row must all carry.
    all: Vec<String>,
    /// Facets of which the row must carry one (risk levels).
    any: Vec<String>,
}

impl Filters {
    fn of(q: &ListQuery) -> Filters {
        let mut all = Vec::new();
        for (facet, v) in [
            ("kind", q.kind.map(CustomerKind::as_str)),
            ("industry", q.industry.as_deref()),
            ("importance", q.importance.map(Importance::as_str)),
            ("lifecycle", q.lifecycle.map(Lifecycle::as_str)),
            ("signal", q.signal.map(Signal::as_str)),
        ] {
            if let Some(v) = v {
                all.push(format!("{facet}:{v}"));
            }
        }
        all.extend(q.tags.iter().map(|t| format!("tag:{t}")));
        Filters {
            archived: q.archived,
            owner: q.owner.clone(),
            tier: q.tier.map(|t| t.as_str().to_owned()),
            region: q.region.clone(),
            all,
            any: q
                .risk
                .iter()
                .map(|r| format!("risk:{}", r.as_str()))
                .collect(),
        }
    }

    /// `WHERE ...` of the filters.
    fn push(&self, b: &mut QueryBuilder<'_, Postgres>) {
        b.push(" WHERE l.archived = ").push_bind(self.archived);
        for (col, v) in [
            ("owner", &self.owner),
            ("value_tier", &self.tier),
            ("region", &self.region),
        ] {
            if let Some(v) = v {
                b.push(format!(" AND l.{col} = ")).push_bind(v.clone());
            }
        }
        if !self.all.is_empty() {
            b.push(" AND l.facets @> ")
                .push_bind(self.all.clone())
                .push("::text[]");
        }
        if !self.any.is_empty() {
            b.push(" AND l.facets && ")
                .push_bind(self.any.clone())
                .push("::text[]");
        }
    }
}

/// The sort column of `customer_list` and the page's order.
struct Order {
    key: &'static str,
    dir: &'static str,
    cmp: &'static str,
}

impl Order {
    fn of(sort: Sort) -> Order {
        let key = match sort.key {
            SortKey::Name => "name_key",
            SortKey::UpdatedAt => "updated_at",
            SortKey::CreatedAt => "created_at",
        };
        let (cmp, dir) = if sort.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        Order { key, dir, cmp }
    }

    fn push_after(&self, b: &mut QueryBuilder<'_, Postgres>, after: Option<&Cursor>) {
        let Some(c) = after else { return };
        b.push(format!(
            " AND (l.{}, l.customer_id) {} (",
            self.key, self.cmp
        ));
        match &c.key {
            CursorKey::Text(t) => b.push_bind(t.clone()),
            CursorKey::Micros(m) => {
                b.push_bind(DateTime::<Utc>::from_timestamp_micros(*m).unwrap_or_default())
            }
        };
        b.push(", ").push_bind(c.id).push(")");
    }

    /// `ORDER BY <key> <dir>, <id> <dir> LIMIT <limit>`; `key` None means
    /// the sort column of `customer_list l`.
    fn push_tail(
        &self,
        b: &mut QueryBuilder<'_, Postgres>,
        cols: Option<(&str, &str)>,
        limit: i64,
    ) {
        let table_key = format!("l.{}", self.key);
        let (key, id) = cols.unwrap_or((&table_key, "l.customer_id"));
        b.push(format!(
            " ORDER BY {key} {dir}, {id} {dir} LIMIT ",
            dir = self.dir
        ))
        .push_bind(limit);
    }
}

/// One branch of the page query: ids and sort keys of matching rows, in
/// order, at most `limit`.
fn push_branch(
    b: &mut QueryBuilder<'_, Postgres>,
    q: &ListQuery,
    filters: &Filters,
    order: &Order,
    search: Branch<'_>,
    limit: i64,
) {
    b.push(format!(
        "(SELECT l.customer_id, l.{} AS sort_key FROM customer_list l",
        order.key
    ));
    filters.push(b);
    match search {
        Branch::All => {}
        Branch::Term(t) => push_term(b, &format!("q:{t}")),
        Branch::NotAtStart(Search::Term(t)) => push_term(b, &format!("m:{t}")),
        Branch::Long { text, grams } => push_long(b, text, grams),
        Branch::NotAtStart(Search::Long { text, grams }) => {
            push_long(b, text, grams);
            b.push(" AND NOT starts_with(l.name_key, ")
                .push_bind(text.clone())
                .push(")");
        }
        Branch::NameStarts(text) => {
            b.push(" AND l.name_key >= ").push_bind(text.to_owned());
            if let Some(upper) = prefix_upper(text) {
                b.push(" AND l.name_key < ").push_bind(upper);
            }
        }
    }
    order.push_after(b, q.after.as_ref());
    order.push_tail(b, None, limit);
    b.push(")");
}

// The matches of a search are collected first, as an array (an InitPlan run
// once), and the list rows fetched by id: the work is bounded by the number
// of matches. As a plain `IN (SELECT ...)` the planner, guessing ~0.15 % of
// the rows match, walked the sort index probing customer_search row by row,
// through all million rows when a term matched nothing (8 s, measured).

/// Customers whose search entries include `entry`.
fn push_term(b: &mut QueryBuilder<'_, Postgres>, entry: &str) {
    b.push(" AND l.customer_id = ANY(ARRAY(SELECT s.customer_id FROM customer_search s WHERE s.terms @> ARRAY[")
        .push_bind(entry.to_owned())
        .push("]::text[]))");
}

/// Customers with every 2-character gram of `text` whose name contains it,
/// or with `text` as a whole term.
fn push_long(b: &mut QueryBuilder<'_, Postgres>, text: &str, grams: &[String]) {
    let grams: Vec<String> = grams.iter().map(|g| format!("q:{g}")).collect();
    b.push(" AND l.customer_id = ANY(ARRAY(SELECT s.customer_id FROM customer_search s WHERE (s.terms @> ")
        .push_bind(grams)
        .push("::text[] AND strpos(s.name_key, ")
        .push_bind(text.to_owned())
        .push(") > 0) OR s.terms @> ARRAY[")
        .push_bind(format!("q:{text}"))
        .push("]::text[]))");
}

/// Which rows one branch of the page query collects.
#[derive(Clone, Copy)]
enum Branch<'a> {
    All,
    Term(&'a str),
    Long {
        text: &'a str,
        grams: &'a [String],
    },
    /// Matches of the search whose name starts with the text.
    NameStarts(&'a str),
    /// Matches of the search whose name does not start with the text.
    NotAtStart(&'a Search),
}

/// One page of customers matching `q`.
///
/// The page's ids come from `customer_list` alone (facets through one GIN
/// index, order through a b-tree); only the page's rows are then joined to
/// the current state, tier and risk. Under name order a search runs as two
/// branches merged by the outer sort: names starting with the text (an index
/// range, already in order) and the other matches (the `m:` facets or the
/// long-query condition), so a common surname never sorts all its matches.
pub async fn list_customers(store: &Store, q: &ListQuery) -> Result<ListPage, ProjectionError> {
    let limit = q.limit.clamp(1, 200);
    let filters = Filters::of(q);
    let order = Order::of(q.sort);
    let mut b: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT c.customer_id, c.kind, c.display_name, c.owner, c.region, c.industry, c.tags, c.archived,
                c.erased, c.version, c.last_seq, c.created_at, c.updated_at, p.sort_key::text AS sort_text,
                t.value_tier, t.importance, t.lifecycle, r.level, r.signals
         FROM (",
    );
    match (&q.search, q.sort.key) {
        (None, _) => push_branch(&mut b, q, &filters, &order, Branch::All, limit + 1),
        (Some(Search::Term(t)), SortKey::UpdatedAt | SortKey::CreatedAt) => {
            push_branch(&mut b, q, &filters, &order, Branch::Term(t), limit + 1)
        }
        (Some(Search::Long { text, grams }), SortKey::UpdatedAt | SortKey::CreatedAt) => {
            push_branch(
                &mut b,
                q,
                &filters,
                &order,
                Branch::Long { text, grams },
                limit + 1,
            )
        }
        (Some(s), SortKey::Name) => {
            let text = match s {
                Search::Term(t) => t,
                Search::Long { text, .. } => text,
            };
            b.push("SELECT * FROM ");
            push_branch(
                &mut b,
                q,
                &filters,
                &order,
                Branch::NameStarts(text),
                limit + 1,
            );
            b.push(" a UNION ALL SELECT * FROM ");
            push_branch(
                &mut b,
                q,
                &filters,
                &order,
                Branch::NotAtStart(s),
                limit + 1,
            );
            b.push(" m");
            order.push_tail(&mut b, Some(("sort_key", "customer_id")), limit + 1);
        }
    }
    b.push(
        ") p
         JOIN customer_current c ON c.customer_id = p.customer_id
         LEFT JOIN customer_tier t ON t.customer_id = p.customer_id
         LEFT JOIN customer_risk r ON r.customer_id = p.customer_id",
    );
    order.push_tail(&mut b, Some(("p.sort_key", "p.customer_id")), limit + 1);
    // Planned for each call's values (an unnamed statement): a cached
    // generic plan cannot tell a surname's index range from the whole table.
    let rows = b.build().persistent(false).fetch_all(store.pool()).await?;
    let mut keys = Vec::with_capacity(rows.len());
    let mut items: Vec<ListItem> = rows
        .iter()
        .map(|r| {
            keys.push(r.get::<Option<String>, _>("sort_text").unwrap_or_default());
            ListItem {
                id: r.get("customer_id"),
                kind: r.get("kind"),
                name: r.get("display_name"),
                owner: r.get("owner"),
                region: r.get("region"),
                industry: r.get("industry"),
                tags: r.get("tags"),
                tier: r.get("value_tier"),
                importance: r.get("importance"),
                lifecycle: r.get("lifecycle"),
                risk: r.get("level"),
                signals: r
                    .get::<Option<Vec<String>>, _>("signals")
                    .unwrap_or_default(),
                archived: r.get("archived"),
                erased: r.get("erased"),
                version: r.get("version"),
                last_seq: r.get("last_seq"),
                created_at: r.get("created_at"),
                updated_at: r.get("updated_at"),
            }
        })
        .collect();
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = match items.last() {
        Some(last) if more => Some(
            Cursor {
                sort: q.sort.as_string(),
                key: match q.sort.key {
                    SortKey::Name => CursorKey::Text(keys[items.len() - 1].clone()),
                    SortKey::UpdatedAt => CursorKey::Micros(last.updated_at.timestamp_micros()),
                    SortKey::CreatedAt => CursorKey::Micros(last.created_at.timestamp_micros()),
                },
                id: last.id,
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(ListPage { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_terms_are_characters_pairs_and_words() {
        let t = search_terms(Some("张三丰"), None, None, None);
        assert_eq!(t, ["三", "三丰", "丰", "张", "张三", "张三丰"]);
        let t = search_terms(Some("Li Si"), None, None, None);
        assert_eq!(t, ["i", "l", "li", "s", "si"]);
        let t = search_terms(Some("ACME Ltd"), None, None, None);
        assert!(t.contains(&"acme".to_owned()) && t.contains(&"cm".to_owned()));
        assert!(!t.iter().any(|s| s.contains(' ')));
    }

    #[test]
    fn contact_terms() {
        let t = search_terms(
            None,
            Some("+8613812345678"),
            Some("Zhang.San@Example.COM"),
            Some("91350100M000100Y43"),
        );
        for want in [
            "5678",
            "8613812345678",
            "13812345678",
            "zhang.san@example.com",
            "zhang.san",
            "91350100m000100y43",
        ] {
            assert!(t.contains(&want.to_owned()), "{want} in {t:?}");
        }
    }

    #[test]
    fn prefix_upper_bounds_every_extension() {
        assert_eq!(prefix_upper("张").as_deref(), Some("\u{5f21}"));
        assert_eq!(prefix_upper("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_upper("a\u{d7ff}").as_deref(), Some("a\u{e000}"));
        assert_eq!(prefix_upper("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(prefix_upper("\u{10ffff}"), None);
        assert_eq!(prefix_upper(""), None);
        for (p, s) in [("张", "张三丰"), ("li", "li\u{10ffff}x"), ("z", "zzz")] {
            let upper = prefix_upper(p).unwrap();
            assert!(s >= p && s < upper.as_str(), "{s} in [{p}, {upper})");
        }
    }

    #[test]
    fn search_entries_mark_terms_not_at_the_start_of_the_name() {
        let key = name_key(Some("Li Wei"));
        assert_eq!(key, "li wei");
        let terms = search_terms(Some("Li Wei"), None, None, None);
        let f = search_entries(&terms, &key);
        for want in ["q:li", "q:we", "q:wei", "m:we", "m:w"] {
            assert!(f.contains(&want.to_owned()), "{want} in {f:?}");
        }
        // "wei" is a term, but no query looks it up as `m:` (3 characters).
        for absent in ["m:li", "m:l", "m:wei"] {
            assert!(!f.iter().any(|x| x == absent), "{absent} in {f:?}");
        }
        assert_eq!(
            f.len(),
            terms.len() + f.iter().filter(|e| e.starts_with("m:")).count()
        );
    }

    #[test]
    fn list_facets_hold_no_search_terms() {
        let f = base_facets("person", Some("retail"), &["vip".into()]);
        assert_eq!(f, ["kind:person", "industry:retail", "tag:vip"]);
    }

    #[test]
    fn queries() {
        assert_eq!(Search::parse("  "), None);
        assert_eq!(Search::parse(" 张 "), Some(Search::Term("张".into())));
        assert_eq!(Search::parse("Zh"), Some(Search::Term("zh".into())));
        assert_eq!(
            Search::parse("+8613"),
            Some(Search::Long {
                text: "8613".into(),
                grams: vec!["13".into(), "61".into(), "86".into()],
            })
        );
        assert_eq!(
            Search::parse("a bc"),
            Some(Search::Long {
                text: "a bc".into(),
                grams: vec!["bc".into()],
            })
        );
    }

    #[test]
    fn cursors_round_trip_and_check_their_sort() {
        let sort = Sort::parse("-updated_at").unwrap();
        let c = Cursor {
            sort: sort.as_string(),
            key: CursorKey::Micros(1_700_000_000_123_456),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode(), sort).unwrap(), c);
        assert!(Cursor::decode(&c.encode(), Sort::parse("updated_at").unwrap()).is_err());
        assert!(Cursor::decode(&c.encode(), Sort::parse("name").unwrap()).is_err());
        assert!(Cursor::decode("not a cursor!", sort).is_err());
        assert!(Cursor::decode("e30", sort).is_err());
        let n = Sort::parse("name").unwrap();
        let c = Cursor {
            sort: "name".into(),
            key: CursorKey::Text("张三".into()),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode(), n).unwrap(), c);
        assert!(Sort::parse("bogus").is_none());
    }
}
