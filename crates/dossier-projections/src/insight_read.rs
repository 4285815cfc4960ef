//! Reading the tier, risk and follow-up read models, dashboard segments and
//! duplicate candidates.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use dossier_store::{IdentifierTag, Store};

use crate::{stored_json, ProjectionError};

/// A customer's classification with its provenance.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TierRow {
    pub value_tier: String,
    pub importance: String,
    /// `rule` or `manual`.
    pub importance_source: String,
    pub lifecycle: String,
    /// The inputs the rules used (amounts, dates, counts).
    pub inputs: Value,
    pub rules_version: String,
    pub evaluated_on: NaiveDate,
    /// The event whose application produced this classification.
    pub seq: i64,
}

/// A customer's risk level, each reason with the events that show it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RiskRow {
    pub level: String,
    pub reasons: Value,
    pub rules_version: String,
    pub evaluated_on: NaiveDate,
    pub seq: i64,
}

pub async fn read_tier(store: &Store, id: Uuid) -> Result<Option<TierRow>, ProjectionError> {
    let r = sqlx::query(
        "SELECT value_tier, importance, importance_source, lifecycle, inputs, rules_version,
                evaluated_on, changed_seq AS seq
         FROM customer_tier WHERE customer_id = $1",
    )
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    r.map(|r| tier_row(&r, "customer_tier", id)).transpose()
}

/// A row of `table` (customer_tier or its history) of customer `id`.
fn tier_row(
    r: &sqlx::postgres::PgRow,
    table: &'static str,
    id: Uuid,
) -> Result<TierRow, ProjectionError> {
    Ok(TierRow {
        value_tier: r.get("value_tier"),
        importance: r.get("importance"),
        importance_source: r.get("importance_source"),
        lifecycle: r.get("lifecycle"),
        inputs: stored_json(table, id, "inputs", r.get("inputs"))?,
        rules_version: r.get("rules_version"),
        evaluated_on: r.get("evaluated_on"),
        seq: r.get("seq"),
    })
}

/// A row of `table` (customer_risk or its history) of customer `id`.
fn risk_row(
    r: &sqlx::postgres::PgRow,
    table: &'static str,
    id: Uuid,
) -> Result<RiskRow, ProjectionError> {
    Ok(RiskRow {
        level: r.get("level"),
        reasons: stored_json(table, id, "reasons", r.get("reasons"))?,
        rules_version: r.get("rules_version"),
        evaluated_on: r.get("evaluated_on"),
        seq: r.get("seq"),
    })
}

/// Every change of classification, oldest first.
pub async fn tier_history(store: &Store, id: Uuid) -> Result<Vec<TierRow>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT value_tier, importance, importance_source, lifecycle, inputs, rules_version,
                evaluated_on, seq
         FROM customer_tier_history WHERE customer_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| tier_row(r, "customer_tier_history", id))
        .collect()
}

pub async fn read_risk(store: &Store, id: Uuid) -> Result<Option<RiskRow>, ProjectionError> {
    let r = sqlx::query(
        "SELECT level, reasons, rules_version, evaluated_on, changed_seq AS seq
         FROM customer_risk WHERE customer_id = $1",
    )
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    r.map(|r| risk_row(&r, "customer_risk", id)).transpose()
}

/// Every change of risk level or signals, oldest first.
pub async fn risk_history(store: &Store, id: Uuid) -> Result<Vec<RiskRow>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT level, reasons, rules_version, evaluated_on, seq
         FROM customer_risk_history WHERE customer_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| risk_row(r, "customer_risk_history", id))
        .collect()
}

/// Whose follow-ups to list.
#[derive(Clone, Debug, Default)]
pub struct FollowUpQuery {
    /// Customers of these owners; empty = everyone's.
    pub owners: Vec<String>,
    pub kind: Option<String>,
    /// Only follow-ups due on or before this date.
    pub due_by: Option<NaiveDate>,
    pub limit: i64,
    /// Rows after this many (follow-ups change daily; offset paging is honest about that).
    pub offset: i64,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct FollowUpItem {
    pub customer_id: Uuid,
    pub customer_name: Option<String>,
    pub owner: Option<String>,
    pub kind: String,
    pub due_on: NaiveDate,
    #[schema(minimum = 0, maximum = 1000)]
    pub urgency: i32,
    pub detail: String,
    pub evidence: Vec<i64>,
    pub risk: Option<String>,
    pub tier: Option<String>,
}

/// Follow-ups, most urgent first, then by due date.
pub async fn follow_ups(
    store: &Store,
    q: &FollowUpQuery,
) -> Result<Vec<FollowUpItem>, ProjectionError> {
    let mut b: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT f.customer_id, c.display_name, f.owner, f.kind, f.due_on, f.urgency, f.detail, f.evidence,
                r.level, t.value_tier
         FROM follow_ups f
         LEFT JOIN customer_current c ON c.customer_id = f.customer_id
         LEFT JOIN customer_risk r ON r.customer_id = f.customer_id
         LEFT JOIN customer_tier t ON t.customer_id = f.customer_id
         WHERE true",
    );
    if !q.owners.is_empty() {
        b.push(" AND f.owner = ANY(")
            .push_bind(q.owners.clone())
            .push(")");
    }
    if let Some(k) = &q.kind {
        b.push(" AND f.kind = ").push_bind(k.clone());
    }
    if let Some(d) = q.due_by {
        b.push(" AND f.due_on <= ").push_bind(d);
    }
    b.push(" ORDER BY f.urgency DESC, f.due_on, f.customer_id, f.kind LIMIT ")
        .push_bind(q.limit.clamp(1, 500))
        .push(" OFFSET ")
        .push_bind(q.offset.max(0));
    let rows = b.build().fetch_all(store.pool()).await?;
    Ok(rows
        .iter()
        .map(|r| FollowUpItem {
            customer_id: r.get("customer_id"),
            customer_name: r.get("display_name"),
            owner: r.get("owner"),
            kind: r.get("kind"),
            due_on: r.get("due_on"),
            urgency: r.get("urgency"),
            detail: r.get("detail"),
            evidence: r.get("evidence"),
            risk: r.get("level"),
            tier: r.get("value_tier"),
        })
        .collect())
}

/// Filters of the dashboard counts (the query string of `GET /v1/segments`),
/// matched exactly.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SegmentQuery {
    #[param(max_length = 100)]
    pub owner: Option<String>,
    #[param(max_length = 100)]
    pub region: Option<String>,
    #[param(max_length = 100)]
    pub industry: Option<String>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentCount {
    pub tier: Option<String>,
    pub risk: Option<String>,
    pub count: i64,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LabelCount {
    pub label: Option<String>,
    pub count: i64,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Segments {
    pub total: i64,
    /// Live customers by value tier × risk level (null: not yet evaluated).
    pub tier_risk: Vec<SegmentCount>,
    pub lifecycle: Vec<LabelCount>,
    pub importance: Vec<LabelCount>,
}

fn segment_filter(b: &mut QueryBuilder<'_, Postgres>, q: &SegmentQuery) {
    for (col, v) in [
        ("c.owner", &q.owner),
        ("c.region", &q.region),
        ("c.industry", &q.industry),
    ] {
        if let Some(v) = v {
            b.push(format!(" AND {col} = ")).push_bind(v.clone());
        }
    }
}

/// Counts of live customers for dashboards.
pub async fn segments(store: &Store, q: &SegmentQuery) -> Result<Segments, ProjectionError> {
    const FROM: &str = " FROM customer_current c
         LEFT JOIN customer_tier t ON t.customer_id = c.customer_id
         LEFT JOIN customer_risk r ON r.customer_id = c.customer_id
         WHERE NOT c.archived";
    let mut b = QueryBuilder::new(format!("SELECT t.value_tier, r.level, count(*) AS n{FROM}"));
    segment_filter(&mut b, q);
    b.push(" GROUP BY 1, 2 ORDER BY 1 NULLS LAST, 2 NULLS LAST");
    let tier_risk: Vec<SegmentCount> = b
        .build()
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(|r| SegmentCount {
            tier: r.get("value_tier"),
            risk: r.get("level"),
            count: r.get("n"),
        })
        .collect();
    let by = |col: &'static str| {
        let mut b = QueryBuilder::new(format!("SELECT {col} AS label, count(*) AS n{FROM}"));
        segment_filter(&mut b, q);
        b.push(" GROUP BY 1 ORDER BY 1 NULLS LAST");
        b
    };
    let mut lifecycle_q = by("t.lifecycle");
    let mut importance_q = by("t.importance");
    let labels = |rows: Vec<sqlx::postgres::PgRow>| -> Vec<LabelCount> {
        rows.iter()
            .map(|r| LabelCount {
                label: r.get("label"),
                count: r.get("n"),
            })
            .collect()
    };
    let lifecycle = labels(lifecycle_q.build().fetch_all(store.pool()).await?);
    let importance = labels(importance_q.build().fetch_all(store.pool()).await?);
    Ok(Segments {
        total: tier_risk.iter().map(|s| s.count).sum(),
        tier_risk,
        lifecycle,
        importance,
    })
}

/// Identifiers that make two files the same customer (normalised as stored).
#[derive(Clone, Debug, Default)]
pub struct DuplicateKeys {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub credit_code: Option<String>,
    pub national_id: Option<String>,
}

/// An existing live customer sharing an identifier with a new file.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Duplicate {
    pub customer_id: Uuid,
    /// Which identifier matched: phone, email, credit_code or national_id.
    pub field: String,
}

impl DuplicateKeys {
    /// (field, value) of each identifier given, as compared: the e-mail
    /// lowercased, the others as stored (already normalised).
    pub fn identifiers(&self) -> Vec<(&'static str, String)> {
        [
            ("phone", self.phone.clone()),
            ("email", self.email.as_ref().map(|e| e.to_lowercase())),
            ("credit_code", self.credit_code.clone()),
            ("national_id", self.national_id.clone()),
        ]
        .into_iter()
        .filter_map(|(f, v)| v.map(|v| (f, v)))
        .collect()
    }
}

/// Live customers that share an identifier with `k`: those the read model
/// knows, and those registered since that it has not projected yet (their
/// claims, matched by `tags`). Callers hold the advisory locks of `tags`
/// (`Store::lock_names`), so no registration with these identifiers is in
/// progress: a claim without a stream is left over from a registration that
/// never reached the log, and is deleted.
pub async fn find_duplicates(
    store: &Store,
    k: &DuplicateKeys,
    tags: &[IdentifierTag],
) -> Result<Vec<Duplicate>, ProjectionError> {
    let mut out = Vec::new();
    // Claims first, the read model after: customer_current projects a
    // customer and deletes its claims in one transaction, so a claim gone by
    // now means the row is there for the queries below. (The other order
    // misses a customer projected between the two.)
    if !tags.is_empty() {
        let all: Vec<Vec<u8>> = tags.iter().map(|t| t.tag.clone()).collect();
        sqlx::query(
            "DELETE FROM duplicate_claims c WHERE c.tag = ANY($1)
             AND NOT EXISTS (SELECT 1 FROM stream_heads h WHERE h.stream_id = c.customer_id)",
        )
        .bind(&all)
        .execute(store.pool())
        .await?;
        let claimed = sqlx::query(
            "SELECT c.customer_id, c.field FROM duplicate_claims c
             WHERE c.tag = ANY($1)
               AND NOT EXISTS (SELECT 1 FROM customer_current cc WHERE cc.customer_id = c.customer_id)
             ORDER BY c.field, c.customer_id LIMIT 40",
        )
        .bind(&all)
        .fetch_all(store.pool())
        .await?;
        out.extend(claimed.into_iter().map(|r| Duplicate {
            customer_id: r.get("customer_id"),
            field: r.get("field"),
        }));
    }
    for (field, cond, v) in [
        ("phone", "phone = $1", &k.phone),
        ("email", "lower(email) = lower($1)", &k.email),
        ("credit_code", "credit_code = $1", &k.credit_code),
        ("national_id", "national_id = $1", &k.national_id),
    ] {
        let Some(v) = v else { continue };
        let ids: Vec<Uuid> = sqlx::query_scalar(&format!(
            "SELECT customer_id FROM customer_current WHERE {cond} AND NOT archived ORDER BY customer_id LIMIT 10"
        ))
        .bind(v)
        .fetch_all(store.pool())
        .await?;
        for customer_id in ids {
            let d = Duplicate {
                customer_id,
                field: field.to_owned(),
            };
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

/// Deletes the claims of customers customer_current has now projected.
pub(crate) async fn drop_claims(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    ids: &[Uuid],
) -> Result<(), ProjectionError> {
    sqlx::query("DELETE FROM duplicate_claims WHERE customer_id = ANY($1)")
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
