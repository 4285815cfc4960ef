//! Sales' filtered, sorted, paginated customer list.

use dossier_domain::{CustomerKind, Importance};
use dossier_insights::{Lifecycle, RiskLevel, Signal, ValueTier};
use dossier_projections::{Cursor, ListPage, ListQuery, Search, Sort};
use dossier_store::Principal;
use serde::{Deserialize, Serialize};

use crate::access::{authorize, Action};
use crate::error::{at_most, invalid, Result};
use crate::Service;

/// Most rows of one list page.
pub const MAX_LIST_LIMIT: i64 = 200;

/// The list request as the caller gives it (the query string of
/// `GET /v1/customers`); [`Service::list`] validates it into the store's
/// [`ListQuery`]. Closed vocabularies are typed by the insight enums, so an
/// unknown value is refused where it is read.
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListInput {
    /// `person` or `company`.
    #[param(pattern = "^(person|company)$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The responsible salesperson, exactly.
    #[param(max_length = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[param(max_length = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[param(max_length = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub industry: Option<String>,
    /// Value tier.
    #[param(value_type = Option<String>, pattern = "^(A|B|C)$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<ValueTier>,
    /// `important`, `special` or `general` (重要/特殊/一般).
    #[param(pattern = "^(important|special|general)$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub importance: Option<String>,
    #[param(value_type = Option<String>, pattern = "^(prospect|new|existing|dormant|lost)$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// One risk level or several, comma-separated: `high,critical`.
    #[param(pattern = "^(low|medium|high|critical)(,(low|medium|high|critical))*$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<String>,
    /// An active risk signal.
    #[param(
        value_type = Option<String>,
        pattern = "^(overdue_receivables|purchase_decline|complaints|credit_downgrade|legal_status|lost_contact)$"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    /// Tags the customer must all carry, comma-separated (at most 10).
    #[param(max_length = 550)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `true`: archived customers only; default: live ones only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
    /// Search: name characters (a Chinese surname works), a Latin
    /// substring, phone digits, an e-mail or credit code. 1 to 200 characters.
    #[param(min_length = 1, max_length = 200)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// `name`, `updated_at` or `created_at`, `-` prefix for descending.
    #[param(pattern = "^-?(name|updated_at|created_at)$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Rows per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (opaque).
    #[param(max_length = 2000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A comma-separated list, blanks dropped.
fn comma_list(raw: &Option<String>) -> Vec<String> {
    raw.iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl ListInput {
    pub fn validate(&self) -> Result<ListQuery> {
        let kind = match &self.kind {
            None => None,
            Some(k) => Some(
                CustomerKind::parse(k)
                    .ok_or_else(|| invalid("kind", "must be person or company"))?,
            ),
        };
        let importance = match &self.importance {
            None => None,
            Some(i) => Some(Importance::parse(i).ok_or_else(|| {
                invalid(
                    "importance",
                    format!("must be one of {}", Importance::names()),
                )
            })?),
        };
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
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            return Err(invalid("limit", format!("must be 1 to {MAX_LIST_LIMIT}")));
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
        // As the document's pattern says: no blank or padded entries.
        let risk = self
            .risk
            .iter()
            .flat_map(|s| s.split(','))
            .map(|r| {
                RiskLevel::parse(r).ok_or_else(|| {
                    invalid("risk", format!("must be one of {}", RiskLevel::names()))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        at_most("tag", &self.tag, 550)?;
        let tags = comma_list(&self.tag);
        if tags.len() > 10 {
            return Err(invalid("tag", "at most 10 tags"));
        }
        at_most("owner", &self.owner, 100)?;
        at_most("region", &self.region, 100)?;
        at_most("industry", &self.industry, 100)?;
        Ok(ListQuery {
            kind,
            owner: self.owner.clone(),
            region: self.region.clone(),
            industry: self.industry.clone(),
            tier: self.tier,
            importance,
            lifecycle: self.lifecycle,
            risk,
            signal: self.signal,
            tags,
            archived: self.archived.unwrap_or(false),
            search,
            sort,
            limit,
            after,
        })
    }

    /// The same request for the page after `cursor`: its query string.
    pub fn next_page(&self, cursor: &str) -> String {
        let next = ListInput {
            cursor: Some(cursor.to_owned()),
            ..self.clone()
        };
        serde_urlencoded::to_string(&next).unwrap_or_default()
    }
}

impl Service {
    /// Sales' filtered, sorted, paginated list from the read model.
    pub async fn list(&self, caller: &Principal, input: &ListInput) -> Result<ListPage> {
        authorize(caller, Action::ReadCustomers)?;
        let query = input.validate()?;
        Ok(dossier_projections::list_customers(&self.store, &query).await?)
    }
}
