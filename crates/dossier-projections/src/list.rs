//! Sales' customer list over `customer_current`: filters, search, sorting and
//! keyset (cursor) pagination.
//!
//! Search uses `search_terms` (see [`search_terms`]), filled by the projector:
//! a query of 1-2 characters matches when it is a term; a longer one when all
//! its 2-character substrings are terms and the name contains it, or when it
//! equals a term (a phone's digits, an e-mail, a credit code).

use std::collections::BTreeSet;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

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
        if let CursorKey::Micros(m) = c.key {
            DateTime::<Utc>::from_timestamp_micros(m).ok_or(BadCursor)?;
        }
        Ok(c)
    }
}

/// A typed list query. Strings are matched exactly; `archived` selects
/// archived (true) or live (false) customers.
#[derive(Clone, Debug)]
pub struct ListQuery {
    pub kind: Option<String>,
    pub owner: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    /// Value tier A, B or C.
    pub tier: Option<String>,
    pub importance: Option<String>,
    pub lifecycle: Option<String>,
    /// Risk levels accepted (any of them).
    pub risk: Vec<String>,
    /// Active risk signal, e.g. `overdue_receivables`.
    pub signal: Option<String>,
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
#[derive(Clone, Debug, Serialize)]
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

#[derive(Clone, Debug, Serialize)]
pub struct ListPage {
    pub items: Vec<ListItem>,
    pub next_cursor: Option<String>,
}

fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Appends the search condition on alias `c`.
fn push_search(b: &mut QueryBuilder<'_, Postgres>, search: Option<&Search>) {
    match search {
        None => {}
        Some(Search::Term(t)) => {
            b.push(" AND c.search_terms @> ARRAY[")
                .push_bind(t.clone())
                .push("]::text[]");
        }
        Some(Search::Long { text, grams }) => {
            b.push(" AND ((c.search_terms @> ")
                .push_bind(grams.clone())
                .push("::text[] AND c.display_name ILIKE ")
                .push_bind(like_escape(text))
                .push(") OR c.search_terms @> ARRAY[")
                .push_bind(text.clone())
                .push("]::text[])");
        }
    }
}

/// One page of customers matching `q`.
pub async fn list_customers(store: &Store, q: &ListQuery) -> Result<ListPage, ProjectionError> {
    let limit = q.limit.clamp(1, 200);
    // Without a filter on them, tier and risk are looked up for the rows of
    // the page only (scalar subqueries run after the sort and limit); joins
    // would run for every candidate row before sorting.
    let insight_filter = q.tier.is_some()
        || q.importance.is_some()
        || q.lifecycle.is_some()
        || !q.risk.is_empty()
        || q.signal.is_some();
    let mut b: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT c.customer_id, c.kind, c.display_name, c.owner, c.region, c.industry, c.tags, c.archived,
                c.erased, c.version, c.last_seq, c.created_at, c.updated_at, ",
    );
    b.push(if insight_filter {
        "t.value_tier, t.importance, t.lifecycle, r.level, r.signals FROM "
    } else {
        "(SELECT value_tier FROM customer_tier t WHERE t.customer_id = c.customer_id) AS value_tier,
         (SELECT importance FROM customer_tier t WHERE t.customer_id = c.customer_id) AS importance,
         (SELECT lifecycle FROM customer_tier t WHERE t.customer_id = c.customer_id) AS lifecycle,
         (SELECT level FROM customer_risk r WHERE r.customer_id = c.customer_id) AS level,
         (SELECT signals FROM customer_risk r WHERE r.customer_id = c.customer_id) AS signals FROM "
    });
    // Matches of a search cluster in name order (a surname starts the name),
    // so walking the name index to them can pass most of the table. Under
    // name order a search therefore collects its matches from the search
    // index first (OFFSET 0 keeps the planner from merging the subquery back)
    // and sorts only those. Other orders spread matches evenly: they keep the
    // ordered index scan, which stops after a page.
    let search_first = q.search.is_some() && q.sort.key == SortKey::Name;
    if search_first {
        b.push("(SELECT * FROM customer_current c WHERE true");
        push_search(&mut b, q.search.as_ref());
        b.push(" OFFSET 0) c");
    } else {
        b.push("customer_current c");
    }
    if insight_filter {
        b.push(
            " LEFT JOIN customer_tier t ON t.customer_id = c.customer_id
             LEFT JOIN customer_risk r ON r.customer_id = c.customer_id",
        );
    }
    b.push(" WHERE c.archived = ");
    b.push_bind(q.archived);
    for (col, v) in [
        ("c.kind", &q.kind),
        ("c.owner", &q.owner),
        ("c.region", &q.region),
        ("c.industry", &q.industry),
        ("t.value_tier", &q.tier),
        ("t.importance", &q.importance),
        ("t.lifecycle", &q.lifecycle),
    ] {
        if let Some(v) = v {
            b.push(format!(" AND {col} = ")).push_bind(v.clone());
        }
    }
    if !q.risk.is_empty() {
        b.push(" AND r.level = ANY(")
            .push_bind(q.risk.clone())
            .push(")");
    }
    if let Some(sig) = &q.signal {
        b.push(" AND r.signals @> ARRAY[")
            .push_bind(sig.clone())
            .push("]::text[]");
    }
    if !q.tags.is_empty() {
        b.push(" AND c.tags @> ")
            .push_bind(q.tags.clone())
            .push("::text[]");
    }
    if !search_first {
        push_search(&mut b, q.search.as_ref());
    }
    let key = match q.sort.key {
        SortKey::Name => "coalesce(c.display_name, '')",
        SortKey::UpdatedAt => "c.updated_at",
        SortKey::CreatedAt => "c.created_at",
    };
    let (cmp, dir) = if q.sort.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(c) = &q.after {
        b.push(format!(" AND ({key}, c.customer_id) {cmp} ("));
        match &c.key {
            CursorKey::Text(t) => b.push_bind(t.clone()),
            CursorKey::Micros(m) => {
                b.push_bind(DateTime::<Utc>::from_timestamp_micros(*m).unwrap_or_default())
            }
        };
        b.push(", ").push_bind(c.id).push(")");
    }
    b.push(format!(" ORDER BY {key} {dir}, c.customer_id {dir} LIMIT "))
        .push_bind(limit + 1);
    let rows = b.build().fetch_all(store.pool()).await?;
    let mut items: Vec<ListItem> = rows
        .iter()
        .map(|r| ListItem {
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
        })
        .collect();
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = match items.last() {
        Some(last) if more => Some(
            Cursor {
                sort: q.sort.as_string(),
                key: match q.sort.key {
                    SortKey::Name => CursorKey::Text(last.name.clone().unwrap_or_default()),
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
